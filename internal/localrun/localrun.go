// Package localrun is the controller.Executor that runs each job as a
// local `guestkit-runner run` process instead of a Kubernetes Job
// (guestkit-dispatcher --executor local): with a file:// bucket, the
// embedded setup with no cluster and no MinIO.
//
// It mirrors the Job the Kubernetes executor makes (templates/job.yaml.tmpl):
// up to execution.max_attempts attempts, retried after a back-off of 10s
// doubling up to 5 minutes; exit 0 and the non-retryable exit codes (2, 3,
// 4, 64) end the job at once; an attempt that outlives timeout_seconds plus
// a grace is killed (SIGTERM to its process group, then SIGKILL). Each
// attempt overwrites the result of the one before (the runner stores its
// own), so the last result stored stands. When the bucket holds none after
// the last attempt, the executor writes one through
// controller.Results.Ensure: the one the runner put on stderr (exit 7),
// else one that says how the process ended.
//
// Jobs live in memory: a job interrupted by stopping the executor has no
// result and runs again when a new dispatcher finds its spec pending.
//
// Attempts do not look at the bucket: the result a failed attempt stored
// is there while the next attempt waits or runs, and a reader of the
// bucket (controller.Once) may take it for the final one. Wait says when
// every job is settled.
package localrun

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/metrics"
	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runnerenv"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// Defaults of Config.
const (
	DefaultRunner       = "guestkit-runner"
	DefaultRetryBackoff = 10 * time.Second
	// MaxRetryBackoff caps the delay between attempts, and between tries
	// to store a result.
	MaxRetryBackoff = 5 * time.Minute
	// DefaultGrace matches the Job template's pod deadline:
	// spec.StartGrace + spec.UploadGrace past timeout_seconds.
	DefaultGrace     = spec.StartGrace + spec.UploadGrace
	DefaultTermGrace = 10 * time.Second
)

// Config configures an Executor. Store and Results are required.
type Config struct {
	// Runner is the guestkit-runner binary: a path, or a name looked up in
	// PATH. Default DefaultRunner.
	Runner string
	// Store is the bucket of the specs: the runner gets its URIs.
	Store store.Store
	// Stores opens image buckets to presign their objects; with Home set
	// to Store's bucket URL. Default: a new one without Home.
	Stores *store.Stores
	// Results writes the results of jobs whose runner stored none.
	Results *controller.Results
	// Parallel caps the runner processes at once; <= 0 means 1. Jobs
	// launched beyond it wait in launch order.
	Parallel int
	// Accel is the runner's GUESTKIT_ACCEL: auto (default), kvm or tcg.
	Accel string
	// Backend is the runner's GUESTKIT_BACKEND, for specs that do not
	// choose one: auto (default), direct or appliance.
	Backend string
	// ImageAccess and Verify are the runner's GUESTKIT_IMAGE_ACCESS and
	// GUESTKIT_VERIFY (default auto). DownloadLimit is its
	// GUESTKIT_DOWNLOAD_LIMIT in bytes (0: no downloads).
	ImageAccess, Verify string
	DownloadLimit       int64
	// ExtraEnv ("NAME=value") is added to the runner's environment, which
	// holds only what runnerenv.Host lets through of the dispatcher's: no
	// bucket credentials. It may not set what the executor sets per attempt
	// (runnerenv.PerJob).
	ExtraEnv []string
	// NetAllow are the networks the runner may dial for a spec's own
	// http(s) image although they are not public (the policy's AllowCIDRs).
	NetAllow []netip.Prefix
	// ScratchDir holds one folder per attempt, the runner's TMPDIR and
	// GUESTKIT_SCRATCH_DIR (downloads, libguestfs sockets and overlays),
	// removed when the attempt ends as an emptyDir would be. Default
	// os.TempDir().
	ScratchDir string
	Log        logrus.FieldLogger
	Metrics    *metrics.Dispatcher
	// OnFinish, if set, is called after each job is settled (its result
	// confirmed), from the job's goroutine: calls may be concurrent. The
	// CLI pokes the controller's Trigger with it.
	OnFinish func()
	// RetryBackoff is the first delay between attempts; it doubles up to
	// MaxRetryBackoff, as the Job controller's does. Default
	// DefaultRetryBackoff.
	RetryBackoff time.Duration
	// Grace is added to the spec's timeout_seconds before an attempt is
	// killed: the runner stops itself at the timeout and then stores its
	// result. Default DefaultGrace.
	Grace time.Duration
	// TermGrace is how long a killed attempt gets between SIGTERM and
	// SIGKILL, to store a result. Default DefaultTermGrace.
	TermGrace time.Duration
	Now       func() time.Time
}

// Executor runs jobs as local runner processes. It is safe for concurrent
// use.
type Executor struct {
	cfg    Config
	runner string // resolved path
	env    []string
	host   string
	log    logrus.FieldLogger
	m      *metrics.Dispatcher
	// stop is the executor's lifetime, the context of every attempt.
	stop  context.Context
	slots *slots

	mu          sync.Mutex
	jobs        map[string]launched // by job_id, launched and not settled
	active      int                 // jobs launched and not settled
	interrupted int                 // jobs that stop ended before their result
	changed     chan struct{}       // closed and replaced when active drops
}

// New returns an Executor that runs until stop ends: then it kills its
// runners (SIGKILL to their process groups, so that none stores a result
// for a job that should run again) and writes no more results.
func New(stop context.Context, cfg Config) (*Executor, error) {
	if cfg.Store == nil || cfg.Results == nil {
		return nil, errors.New("local executor: a store and results are required")
	}
	if cfg.Stores == nil {
		cfg.Stores = &store.Stores{}
	}
	if cfg.Runner == "" {
		cfg.Runner = DefaultRunner
	}
	runner, err := exec.LookPath(cfg.Runner)
	if err == nil {
		// Absolute: each attempt runs in its own folder.
		runner, err = filepath.Abs(runner)
	}
	if err != nil {
		return nil, fmt.Errorf("local executor: runner %s: %w", cfg.Runner, err)
	}
	switch cfg.Accel {
	case "":
		cfg.Accel = "auto"
	case "auto", "kvm", "tcg":
	default:
		return nil, fmt.Errorf("local executor: accel %q: want auto, kvm or tcg", cfg.Accel)
	}
	cfg.ImageAccess = cmp.Or(cfg.ImageAccess, runnerenv.AccessAuto)
	cfg.Verify = cmp.Or(cfg.Verify, runnerenv.VerifyAuto)
	if cfg.Backend == "" {
		cfg.Backend = spec.BackendAuto
	}
	if !slices.Contains(spec.Backends(), cfg.Backend) {
		return nil, fmt.Errorf("local executor: backend %q: want %s", cfg.Backend, strings.Join(spec.Backends(), ", "))
	}
	env, err := baseEnv(os.Environ(), cfg.ExtraEnv, cfg.NetAllow)
	if err != nil {
		return nil, fmt.Errorf("local executor: %w", err)
	}
	if cfg.ScratchDir == "" {
		cfg.ScratchDir = os.TempDir()
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 1
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = DefaultRetryBackoff
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.TermGrace <= 0 {
		cfg.TermGrace = DefaultTermGrace
	}
	if cfg.Log == nil {
		cfg.Log = logrus.New()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	host, _ := os.Hostname()
	return &Executor{
		cfg: cfg, runner: runner, env: env, host: host, log: cfg.Log, m: cfg.Metrics,
		stop: stop, slots: newSlots(cfg.Parallel),
		jobs: map[string]launched{}, changed: make(chan struct{}),
	}, nil
}

// launched is a job of the executor: its spec's digest and key.
type launched struct{ digest, key string }

// ActiveSpecs are the spec keys of the jobs that are not settled.
func (x *Executor) ActiveSpecs() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	keys := make([]string, 0, len(x.jobs))
	for _, j := range x.jobs {
		keys = append(keys, j.key)
	}
	return keys
}

// Active is the number of launched jobs that are not settled: waiting for
// a process slot, running, waiting to retry, or storing their result.
func (x *Executor) Active() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.active
}

// Lookup reports whether e's job_id is launched and not yet settled, and
// the digest of the spec it runs. Settled jobs are forgotten: their
// results exist, and one deleted to rerun the job makes it run again
// (the controller checks for the result right before launching).
func (x *Executor) Lookup(e *intake.Entry) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	j, ok := x.jobs[e.JobID]
	return j.digest, ok
}

// Busy reports whether e's job is launched and not settled.
func (x *Executor) Busy(e *intake.Entry) bool {
	_, ok := x.Lookup(e)
	return ok
}

// Launch queues e's job and returns at once. A job_id launched before is
// *controller.AlreadyLaunched; an image that cannot be reached from here
// (pvc://) or a passed execution.deadline is a *spec.Refused.
func (x *Executor) Launch(ctx context.Context, e *intake.Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.Job == nil || e.JobID == "" || e.ResultKey == "" {
		return fmt.Errorf("launch spec %s: not a valid pending spec", e.Key)
	}
	if err := x.Check(e); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.stop.Err(); err != nil {
		return fmt.Errorf("launch job %s: local executor stopped: %w", e.JobID, err)
	}
	if j, ok := x.jobs[e.JobID]; ok {
		return &controller.AlreadyLaunched{Name: e.JobID + " (local run)", Digest: j.digest}
	}
	x.jobs[e.JobID] = launched{digest: e.Digest, key: e.Key}
	x.active++
	// The slot is asked for here, not in the goroutine: in launch order.
	go x.run(e, x.slots.request())
	return nil
}

// Check reports a spec no attempt could run, without side effects: one the
// policy did not admit, a pvc:// image (there is no claim to mount here) or
// a passed execution.deadline, as a *spec.Refused. Launch checks it too.
func (x *Executor) Check(e *intake.Entry) error {
	if e.Admission == nil {
		return fmt.Errorf("spec %s was not admitted by the dispatcher's policy", redact.URL(e.Key))
	}
	if img := e.Admission.Image; img.Kind == spec.ImagePVC {
		return &spec.Refused{Field: "payload.data.image.uri", Value: img.URI,
			Err: errors.New("pvc:// images need a Kubernetes executor: a local runner has no claim to mount; use a path, file://, bucket or http URI")}
	}
	if dl, ok := e.Job.Deadline(); ok {
		if now := x.cfg.Now(); !now.Before(dl) {
			return &spec.Refused{Field: "execution.deadline", Value: dl.Format(time.RFC3339),
				Err: fmt.Errorf("passed at dispatch (%s)", now.Format(time.RFC3339))}
		}
	}
	return nil
}

// Wait returns when every launched job is settled, or, after the
// executor's context ended, when every runner is dead: then with an error
// if some jobs were left without a result. It returns ctx's error if ctx
// ends first.
func (x *Executor) Wait(ctx context.Context) error {
	for {
		x.mu.Lock()
		active, interrupted, changed := x.active, x.interrupted, x.changed
		x.mu.Unlock()
		if active == 0 {
			if interrupted > 0 {
				return fmt.Errorf("local executor stopped: %d jobs were interrupted without a result: %w", interrupted, x.stop.Err())
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// done records the end of a job's goroutine.
func (x *Executor) done(jobID string, settled bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.active--
	if settled {
		delete(x.jobs, jobID)
	} else {
		x.interrupted++
	}
	close(x.changed)
	x.changed = make(chan struct{})
}

// run makes the attempts of e's job, then settles it. ticket is the
// request for the first attempt's slot.
func (x *Executor) run(e *intake.Entry, ticket chan struct{}) {
	settled := false
	defer func() { x.done(e.JobID, settled) }()
	ctx := x.stop
	log := x.log.WithFields(logrus.Fields{"job_id": e.JobID, "spec": e.Key})
	maxAttempts := max(e.Job.MaxAttempts(), 1)
	var first time.Time
	var last *outcome
	for n := 1; ; n++ {
		if n > 1 {
			ticket = x.slots.request()
		}
		if !x.slots.await(ctx, ticket) {
			return
		}
		last = x.attempt(ctx, e, n)
		x.slots.release()
		if n == 1 {
			first = last.started
		}
		if last.stopped {
			log.WithField("attempt", n).Warn("runner killed: the local executor stopped; the job runs again at the next start")
			return
		}
		if last.ends() || n >= maxAttempts {
			break
		}
		if dl, ok := e.Job.Deadline(); ok && !x.cfg.Now().Before(dl) {
			last.deadlinePassed = true
			break
		}
		delay := backoff(x.cfg.RetryBackoff, n)
		log.WithFields(last.fields()).WithFields(logrus.Fields{"max_attempts": maxAttempts, "retry_in": delay.String()}).Warn("runner attempt failed; retrying")
		if !sleep(ctx, delay) {
			return
		}
	}
	created, ok := x.settle(ctx, log, e, first, last)
	if !ok {
		return
	}
	settled = true
	if !created && last.exitCode == result.ExitCompleted && last.signal == 0 && last.startErr == nil {
		x.m.JobsSucceeded.Inc()
	} else {
		x.m.JobsFailed.Inc()
	}
	log.WithFields(last.fields()).WithField("dispatcher_result", created).Info("job finished")
	if x.cfg.OnFinish != nil {
		x.cfg.OnFinish()
	}
}

// settle makes sure the job has a result, retrying until the bucket takes
// it or the executor stops (ok false): a result must not be lost.
func (x *Executor) settle(ctx context.Context, log logrus.FieldLogger, e *intake.Entry, first time.Time, last *outcome) (created, ok bool) {
	build := func(context.Context) (*result.Result, error) { return x.resultOf(e, first, last), nil }
	for n := 1; ; n++ {
		created, err := x.cfg.Results.Ensure(ctx, e.ResultKey, build)
		if err == nil {
			return created, true
		}
		if ctx.Err() != nil {
			return false, false
		}
		x.m.Error("settle")
		delay := backoff(x.cfg.RetryBackoff, n)
		log.WithError(err).WithField("retry_in", delay.String()).Warn("cannot confirm the job's result; retrying")
		if !sleep(ctx, delay) {
			return false, false
		}
	}
}

// backoff is the delay after the n-th failure: base doubling, capped.
func backoff(base time.Duration, n int) time.Duration {
	limit := max(base, MaxRetryBackoff)
	d := base << min(n-1, 16)
	if d <= 0 || d > limit {
		return limit
	}
	return d
}

// sleep waits for d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
