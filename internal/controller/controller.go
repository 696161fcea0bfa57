// Package controller is guestkit-dispatcher's loop: scan the bucket
// (internal/intake), store rejected results, launch pending specs on an
// Executor up to a cap, and repeat on a timer or when told to (a bucket
// notification, a finished job).
//
// It guarantees that every spec ends with exactly one result: rejected
// specs get one from here, launched specs from their runner or, when the
// job ends without one, from the executor (Results.Ensure). Results are
// only ever created, never replaced, so a runner's result always wins. A
// spec that has a result is never launched again: to rerun a job, delete
// its result (and its Job, if it is still there).
package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/metrics"
	"guestkit.io/batch/internal/policy"
	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// Config configures a Controller. Store, Executor and Policy are required.
type Config struct {
	Store    store.Store
	Executor Executor
	// Policy admits specs (internal/policy): nothing is read, probed,
	// presigned or mounted for a spec it refuses.
	Policy *policy.Policy
	// Stores opens the buckets images are in; share it with the executor,
	// with Home set to Store's bucket URL. Default: a new one without Home.
	Stores *store.Stores
	// MaxActive caps the jobs running at once; <= 0: no cap.
	MaxActive int
	// Launchers is how many specs are prechecked and launched at once;
	// default 8.
	Launchers int
	// Interval is the polling period: the backstop when notifications are
	// missed, and the only trigger without them. Default 10s.
	Interval time.Duration
	Log      logrus.FieldLogger
	Metrics  *metrics.Dispatcher
	Version  string
	Now      func() time.Time
	// PrecheckAttempts bounds the checks of a spec's image that fail for a
	// reason of the image's own (another bucket unreachable, access
	// denied); then the spec gets a failed result. An outage of the
	// dispatcher's own bucket is retried without limit. Default 5.
	PrecheckAttempts int
	// PrecheckBackoff is the wait after the first failed check; it doubles
	// each time. Default 1s.
	PrecheckBackoff time.Duration
}

// Controller dispatches the specs of one bucket.
type Controller struct {
	cfg     Config
	scanner *intake.Scanner
	results *Results
	log     logrus.FieldLogger
	m       *metrics.Dispatcher
	// checked remembers the specs (key → digest) that passed precheck, so
	// that each is checked once, not at every pass.
	mu      sync.Mutex
	checked map[string]string
	// served is, per tenant, the launch count at its last launch, and
	// launches the count: the fair share's memory (fairOrder).
	served   map[string]uint64
	launches uint64
	// failed counts the failed image checks of a spec (key and digest).
	failed map[string]*precheckFailure
	stores *store.Stores // of image buckets
}

type precheckFailure struct {
	n    int
	next time.Time
}

// New returns a Controller.
func New(cfg Config) (*Controller, error) {
	if cfg.Store == nil || cfg.Executor == nil || cfg.Policy == nil {
		return nil, errors.New("controller: a store, an executor and a policy are required")
	}
	if cfg.PrecheckAttempts <= 0 {
		cfg.PrecheckAttempts = 5
	}
	if cfg.PrecheckBackoff <= 0 {
		cfg.PrecheckBackoff = time.Second
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Launchers <= 0 {
		cfg.Launchers = 8
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
	if cfg.Stores == nil {
		cfg.Stores = &store.Stores{}
	}
	c := &Controller{cfg: cfg, scanner: intake.NewScanner(cfg.Store, 0, cfg.Policy), log: cfg.Log, m: cfg.Metrics,
		checked: map[string]string{}, failed: map[string]*precheckFailure{}, served: map[string]uint64{}, stores: cfg.Stores}
	c.results = NewResults(cfg.Store, cfg.Version, cfg.Log, cfg.Metrics)
	return c, nil
}

// NewResults returns the Results that a controller and its executor share.
func NewResults(st store.Store, version string, log logrus.FieldLogger, m *metrics.Dispatcher) *Results {
	return &Results{
		Store: st,
		By:    result.Runner{Name: result.DispatcherName, Version: version},
		Log:   log,
		Written: func(r *result.Result) {
			if m != nil {
				m.Written(string(r.Status))
			}
		},
	}
}

// Results is the result writer the controller uses.
func (c *Controller) Results() *Results { return c.results }

// PassStats is what one pass did.
type PassStats struct {
	Snapshot *intake.Snapshot
	Launched int
	Rejected int // rejected results stored
	Waiting  int // pending specs left for a later pass by the cap
	Errors   int // specs to retry (bucket or API errors)
}

// Pass scans the bucket once, stores the results of rejected specs and
// launches pending ones while the cap allows. Errors about one spec are
// logged and counted, and the spec is retried at the next pass; only a
// failed scan fails the pass.
func (c *Controller) Pass(ctx context.Context) (*PassStats, error) {
	c.m.Passes.Inc()
	known := c.scannedKeys()
	snap, err := c.scanner.Scan(ctx)
	if err != nil {
		c.m.Error("scan")
		return nil, err
	}
	st := &PassStats{Snapshot: snap, Errors: len(snap.Errors)}
	for k, err := range snap.Errors {
		c.m.Error("scan")
		c.log.WithError(err).WithField("spec", k).Warn("spec not read; retrying at the next pass")
	}
	c.m.SpecsSeen.Add(float64(c.scannedKeys() - known))
	c.m.SpecsPending.Set(float64(len(snap.Pending)))

	for _, e := range snap.Rejected {
		if err := c.reject(ctx, e, nil); err != nil {
			st.Errors++
			continue
		}
		st.Rejected++
	}

	c.mu.Lock()
	order := fairOrder(snap.Pending, c.cfg.Executor.ActiveSpecs(), c.served)
	c.mu.Unlock()
	c.dispatch(ctx, order, st)
	c.forgetChecked(snap)
	c.m.JobsActive.Set(float64(c.cfg.Executor.Active()))
	return st, ctx.Err()
}

// dispatch prechecks and launches pending specs. Slots go to specs in
// their order; prechecks run ahead and launches run alongside, each by
// cfg.Launchers workers, because one spec at a time would leave the API
// client idle during every bucket round trip. Specs beyond the cap are
// still prechecked, so that a spec that can never run is rejected now
// rather than when a slot frees.
func (c *Controller) dispatch(ctx context.Context, pending []*intake.Entry, st *PassStats) {
	checks := c.prechecks(ctx, pending)
	var mu sync.Mutex // guards st
	count := func(n *int) {
		mu.Lock()
		*n++
		mu.Unlock()
	}
	launches, wait := c.launchers(ctx, st, count)
	active := c.cfg.Executor.Active()
	c.m.JobsActive.Set(float64(active))
	for i, e := range pending {
		var r checked
		select {
		case r = <-checks[i]:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		switch {
		case errors.Is(r.err, errBackoff):
			count(&st.Waiting)
			continue
		case r.err != nil:
			count(&st.Errors)
			continue
		case !r.ok:
			count(&st.Rejected)
			continue
		}
		if digest, found := c.cfg.Executor.Lookup(e); found {
			c.checkSame(ctx, e, digest)
			continue
		}
		if c.cfg.MaxActive > 0 && active >= c.cfg.MaxActive {
			count(&st.Waiting)
			continue
		}
		// The slot is taken even if the launch finds a result: the next
		// pass recounts from the executor.
		active++
		launches <- e
	}
	close(launches)
	wait()
}

// checked is the precheck of one spec.
type checked struct {
	ok  bool
	err error
}

// prechecks runs precheck on pending specs, in order, by cfg.Launchers
// workers; the i-th channel gets the i-th spec's answer. They stop when ctx
// ends.
func (c *Controller) prechecks(ctx context.Context, pending []*intake.Entry) []chan checked {
	results := make([]chan checked, len(pending))
	for i := range results {
		results[i] = make(chan checked, 1)
	}
	todo := make(chan int)
	go func() {
		defer close(todo)
		for i := range pending {
			select {
			case todo <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range c.cfg.Launchers {
		go func() {
			for i := range todo {
				ok, err := c.precheck(ctx, pending[i])
				results[i] <- checked{ok, err}
			}
		}()
	}
	return results
}

// launchers starts cfg.Launchers workers that launch the specs sent on
// the returned channel and count the outcomes in st; close the channel,
// then wait.
func (c *Controller) launchers(ctx context.Context, st *PassStats, count func(*int)) (chan<- *intake.Entry, func()) {
	launches := make(chan *intake.Entry)
	var wg sync.WaitGroup
	for range c.cfg.Launchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range launches {
				launched, err := c.launch(ctx, e)
				switch {
				case err != nil:
					count(&st.Errors)
				case launched:
					count(&st.Launched)
				}
			}
		}()
	}
	return launches, wg.Wait
}

// scannedKeys is how many spec objects the scanner has read so far, for
// specs_seen_total.
func (c *Controller) scannedKeys() int { return c.scanner.Reads() }

// launch starts e's job unless its result appeared since the listing or
// its image is missing. launched is false when nothing was started.
func (c *Controller) launch(ctx context.Context, e *intake.Entry) (launched bool, err error) {
	log := c.log.WithFields(logrus.Fields{"spec": e.Key, "job_id": e.JobID})
	// The listing may be old by now: a job can have finished, stored its
	// result and been cleaned up since. Launching again would run it twice.
	if _, err := c.cfg.Store.Stat(ctx, e.ResultKey); err == nil {
		return false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		c.m.Error("launch")
		log.WithError(err).Warn("cannot check for a result; retrying at the next pass")
		return false, err
	}
	err = c.cfg.Executor.Launch(ctx, e)
	var already *AlreadyLaunched
	var refused *spec.Refused
	switch {
	case err == nil:
		c.mu.Lock()
		c.launches++
		c.served[policy.TenantOf(e.Key)] = c.launches
		c.mu.Unlock()
		c.m.JobsCreated.Inc()
		c.m.Observe(e.Age(c.cfg.Now()))
		log.Info("job launched")
		return true, nil
	case errors.As(err, &already):
		c.checkSame(ctx, e, already.Digest)
		return false, nil
	case errors.As(err, &refused):
		return false, c.reject(ctx, e, refused)
	}
	c.m.Error("launch")
	log.WithError(err).Warn("launch failed; retrying at the next pass")
	return false, err
}

// precheck rejects, before it waits for a slot, a spec that can never
// run: one the executor refuses, or whose bucket image is missing. ok is
// true for a spec to launch; an error means "retry at the next pass".
func (c *Controller) precheck(ctx context.Context, e *intake.Entry) (ok bool, err error) {
	c.mu.Lock()
	done := c.checked[e.Key] == e.Digest
	c.mu.Unlock()
	if done {
		return true, nil
	}
	if _, found := c.cfg.Executor.Lookup(e); found {
		return true, nil // checked when it was launched
	}
	if c.backingOff(e) {
		return false, errBackoff
	}
	var refused *spec.Refused
	if err := c.cfg.Executor.Check(e); errors.As(err, &refused) {
		return false, c.reject(ctx, e, refused)
	} else if err != nil {
		c.m.Error("launch")
		c.log.WithError(err).WithField("spec", e.Key).Error("cannot render the job")
		return false, err
	}
	if err := c.checkImage(ctx, e); err != nil {
		return c.imageUnchecked(ctx, e, err)
	}
	c.mu.Lock()
	c.checked[e.Key] = e.Digest
	c.mu.Unlock()
	return true, nil
}

// forgetChecked drops the memory of specs no longer pending.
func (c *Controller) forgetChecked(snap *intake.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.checked)+len(c.failed) <= 2*len(snap.Pending) {
		return
	}
	keep := make(map[string]string, len(snap.Pending))
	failed := map[string]*precheckFailure{}
	for _, e := range snap.Pending {
		if d, ok := c.checked[e.Key]; ok {
			keep[e.Key] = d
		}
		if f, ok := c.failed[contentKey(e)]; ok {
			failed[contentKey(e)] = f
		}
	}
	c.checked, c.failed = keep, failed
}

// checkImage stats a bucket image, so that a missing one is rejected
// without starting a pod. Other sources are checked by the runner where
// the image is.
func (c *Controller) checkImage(ctx context.Context, e *intake.Entry) error {
	img := e.Admission.Image
	if img.Kind != spec.ImageBucket {
		return nil
	}
	st, err := c.stores.Open(ctx, img.Bucket)
	if err != nil {
		return fmt.Errorf("image %s: %w", redact.URL(img.URI), err)
	}
	if _, err := st.Stat(ctx, img.Key); err != nil {
		return fmt.Errorf("image %s: %w", redact.URL(img.URI), err)
	}
	return nil
}

// imageUnchecked handles a failed image check: a missing image is
// rejected; an outage of the dispatcher's own bucket is retried without
// limit (the spec is not at fault); any other failure is retried
// PrecheckAttempts times with backoff, then the spec gets a failed result,
// so that once and sweep always finish.
func (c *Controller) imageUnchecked(ctx context.Context, e *intake.Entry, err error) (bool, error) {
	log := c.log.WithError(err).WithField("spec", e.Key)
	if errors.Is(err, store.ErrNotFound) {
		return false, c.rejectImage(ctx, e, err)
	}
	c.m.Error("launch")
	if _, serr := c.cfg.Store.Stat(ctx, e.Key); serr != nil && !errors.Is(serr, store.ErrNotFound) {
		log.Warn("the bucket is unreachable; retrying at the next pass")
		return false, err
	}
	id := contentKey(e)
	c.mu.Lock()
	f := c.failed[id]
	if f == nil {
		f = &precheckFailure{}
		c.failed[id] = f
	}
	f.n++
	f.next = c.cfg.Now().Add(c.cfg.PrecheckBackoff << min(f.n-1, 10))
	n := f.n
	c.mu.Unlock()
	if n < c.cfg.PrecheckAttempts {
		log.WithField("attempt", n).Warn("cannot check the image; retrying with backoff")
		return false, errBackoff
	}
	res := e.Failure(result.CodeImageUnreadable, result.PhaseFetch,
		fmt.Sprintf("the image could not be checked after %d attempts: %v", n, err)).Result(c.results.By, c.cfg.Now())
	if _, cerr := c.results.Create(ctx, e.ResultKey, res); cerr != nil {
		c.m.Error("reject")
		return false, cerr
	}
	return false, nil
}

// contentKey names one content of one spec object.
func contentKey(e *intake.Entry) string { return e.Key + "\x00" + e.Digest }

// errBackoff: the spec waits for its next image check.
var errBackoff = errors.New("image check backing off")

// backingOff says whether e waits for its next image check.
func (c *Controller) backingOff(e *intake.Entry) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.failed[contentKey(e)]
	return f != nil && c.cfg.Now().Before(f.next)
}

// checkSame reports a spec whose job runs a different content: it was
// changed (or replaced) after its job was launched. The running job keeps
// the content it started with; the new content gets a conflict result, so
// that it is not silently ignored.
func (c *Controller) checkSame(ctx context.Context, e *intake.Entry, digest string) {
	if digest == "" || digest == e.Digest {
		return
	}
	conflict := &intake.RejectError{Key: e.Key, Reason: intake.ReasonConflict,
		Err: fmt.Errorf("job_id %q was launched from different content (%s, not %s): the spec changed after dispatch; the running job keeps the content it started with", e.JobID, digest, e.Digest)}
	key := store.ConflictResultKey(e.JobID, contentKey(e))
	res := e.RejectedResult(c.results.By, c.cfg.Now(), conflict)
	if _, err := c.results.Create(ctx, key, res); err != nil {
		c.m.Error("reject")
		c.log.WithError(err).WithField("spec", e.Key).Warn("cannot store the conflict result; retrying at the next pass")
	}
}

func (c *Controller) reject(ctx context.Context, e *intake.Entry, err error) error {
	res := e.RejectedResult(c.results.By, c.cfg.Now(), err)
	if _, err := c.results.Create(ctx, e.ResultKey, res); err != nil {
		c.m.Error("reject")
		c.log.WithError(err).WithField("spec", e.Key).Warn("cannot store the rejected result; retrying at the next pass")
		return err
	}
	return nil
}

func (c *Controller) rejectImage(ctx context.Context, e *intake.Entry, err error) error {
	f := e.Refusal(err)
	f.Code, f.Phase = result.CodeImageNotFound, result.PhaseFetch
	res := f.Result(c.results.By, c.cfg.Now())
	if _, err := c.results.Create(ctx, e.ResultKey, res); err != nil {
		c.m.Error("reject")
		return err
	}
	return nil
}
