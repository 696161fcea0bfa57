package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/store"
)

// Executor runs the job of one spec somewhere: as a Kubernetes Job
// (internal/kubejob) or as a local runner process (internal/localrun).
//
// An executor owns a job from Launch until its result is confirmed: when
// the job ends without a result (killed, timed out, never started), the
// executor writes one through Results.Ensure, from what it saw.
type Executor interface {
	// Active is the number of launched jobs that have not finished.
	Active() int
	// ActiveSpecs are the spec keys of those jobs, for the fair share of
	// the cap between tenants.
	ActiveSpecs() []string
	// Lookup reports whether a job of e's job_id was launched and is not
	// yet cleaned up, and the digest of the spec it runs.
	Lookup(e *intake.Entry) (digest string, found bool)
	// Busy reports whether e's job runs: launched and not settled (a
	// result may already exist from a failed attempt that is retried).
	Busy(e *intake.Entry) bool
	// Check reports a spec this executor can never run (an image source
	// it does not serve, a passed deadline) as a *spec.Refused,
	// without side effects, so that it is rejected before it waits for a
	// slot.
	Check(e *intake.Entry) error
	// Launch starts e's job. A launch that already exists is
	// *AlreadyLaunched; a spec this executor cannot run is a
	// *spec.Refused (a rejected result is stored for it).
	Launch(ctx context.Context, e *intake.Entry) error
}

// AlreadyLaunched: the job exists (another replica, an earlier process).
type AlreadyLaunched struct {
	Name   string // the Job or process that runs it
	Digest string // of the spec it runs
}

func (e *AlreadyLaunched) Error() string {
	return fmt.Sprintf("job %s already exists (spec %s)", e.Name, e.Digest)
}

// Results writes the results the dispatcher is responsible for. It never
// replaces an object: a runner's result always wins.
type Results struct {
	Store store.Store
	// By names the writer in the result (guestkit-dispatcher).
	By  result.Runner
	Log logrus.FieldLogger
	// Written, if set, is called for each result this Results stored.
	Written func(r *result.Result)
}

// Ensure makes sure key holds a result. If it exists, nothing is written
// (created false). Otherwise build makes one and it is created with
// If-None-Match, so that a runner storing its own result at the same
// moment wins, and so do other replicas.
func (r *Results) Ensure(ctx context.Context, key string, build func(context.Context) (*result.Result, error)) (created bool, err error) {
	_, err = r.Store.Stat(ctx, key)
	switch {
	case err == nil:
		return false, nil
	case !errors.Is(err, store.ErrNotFound):
		return false, fmt.Errorf("check result %s: %w", r.Store.URI(key), err)
	}
	res, err := build(ctx)
	if err != nil {
		return false, err
	}
	return r.Create(ctx, key, res)
}

// Create stores res at key unless something is there already.
func (r *Results) Create(ctx context.Context, key string, res *result.Result) (bool, error) {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return false, fmt.Errorf("result %s: %w", key, err)
	}
	err = r.Store.Create(ctx, key, data)
	switch {
	case errors.Is(err, store.ErrExists):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("store result %s: %w", r.Store.URI(key), err)
	}
	if r.Log != nil {
		r.Log.WithFields(logrus.Fields{"job_id": res.JobID, "result": key, "status": res.Status, "code": errCode(res)}).Info("dispatcher stored result")
	}
	if r.Written != nil {
		r.Written(res)
	}
	return true, nil
}

func errCode(r *result.Result) string {
	if r.Error == nil {
		return ""
	}
	return string(r.Error.Code)
}
