package controller_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/policy"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/result/resulttest"
	"guestkit.io/batch/internal/spec/spectest"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/store/storetest"
)

// outage is a folder bucket whose Stat fails while down is set: the
// dispatcher's own bucket unreachable.
type outage struct {
	store.Store
	down atomic.Bool
}

func (o *outage) Stat(ctx context.Context, key string) (store.Object, error) {
	if o.down.Load() {
		return store.Object{}, errors.New("connection refused")
	}
	return o.Store.Stat(ctx, key)
}

// launcher is an executor that launches nothing: these tests stop at the
// precheck.
type launcher struct{ launched atomic.Int32 }

func (*launcher) Active() int                         { return 0 }
func (*launcher) ActiveSpecs() []string               { return nil }
func (*launcher) Lookup(*intake.Entry) (string, bool) { return "", false }
func (*launcher) Busy(*intake.Entry) bool             { return false }
func (*launcher) Check(*intake.Entry) error           { return nil }
func (l *launcher) Launch(context.Context, *intake.Entry) error {
	l.launched.Add(1)
	return nil
}

// The image is in a bucket the policy allows but nothing answers at; the
// spec's own bucket answers.
func newPrecheck(t *testing.T) (*outage, *launcher, *controller.Controller) {
	t.Helper()
	// Nothing answers the image bucket, at once (no SDK retries).
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "x")
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	folder, _ := storetest.Folder(t)
	st := &outage{Store: folder}
	storetest.Put(t, st, "jobs/a.json", spectest.JSON(spectest.Inspect("a", "s3://elsewhere/disk.qcow2")))
	pol, err := policy.New(policy.Config{Home: "s3://home", Buckets: []string{"s3://elsewhere/"}})
	if err != nil {
		t.Fatal(err)
	}
	x := &launcher{}
	c, err := controller.New(controller.Config{Store: st, Executor: x, Policy: pol,
		Stores:           &store.Stores{Home: "s3://home?endpoint=http://127.0.0.1:1&path-style=true&region=us-east-1"},
		PrecheckAttempts: 3, PrecheckBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return st, x, c
}

// A check that fails for a reason of the image's own ends in a failed
// result after PrecheckAttempts, so once and sweep finish.
func TestPrecheckGivesUp(t *testing.T) {
	st, x, c := newPrecheck(t)
	for pass := 1; pass <= 20; pass++ {
		if _, err := c.Pass(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Stat(t.Context(), "results/a.json"); err == nil {
			r := resulttest.Read(t, st, "results/a.json")
			if r.Status != result.StatusFailed || r.Error.Code != result.CodeImageUnreadable || r.Error.Phase != result.PhaseFetch || !r.Error.Retryable {
				t.Errorf("result %s %+v", r.Status, r.Error)
			}
			if pass < 3 {
				t.Errorf("gave up after %d passes, before 3 attempts", pass)
			}
			if x.launched.Load() != 0 {
				t.Error("launched anyway")
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no result after 20 passes: the spec would keep once waiting forever")
}

// When the dispatcher's own bucket is down, the spec is not at fault: it
// is retried without limit and gets no result.
func TestPrecheckRetriesOwnOutage(t *testing.T) {
	st, x, c := newPrecheck(t)
	st.down.Store(true)
	for range 6 {
		if _, err := c.Pass(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	st.down.Store(false)
	if _, err := st.Stat(t.Context(), "results/a.json"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a result after an outage of the dispatcher's own bucket: %v", err)
	}
	if x.launched.Load() != 0 {
		t.Error("launched although the image was never checked")
	}
}
