// Package intake reads a bucket's job specs and results into a snapshot:
// which specs wait for work, which must be rejected, and which are done.
//
// It never writes. Every spec object under store.SpecsPrefix (and the
// dispatcher's own, under store.SweepSpecsPrefix) ends in
// exactly one of Pending, Rejected or Done: an unreadable key, a spec over
// 1 MiB, malformed JSON or YAML, an invalid spec and a second spec reusing
// a job_id are all Rejected with the reason, never skipped. Only a failure
// to reach the bucket leaves a spec out of a snapshot (Snapshot.Errors),
// and the next scan retries it.
package intake

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"guestkit.io/batch/internal/policy"
	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// Entry is one spec object and what it says.
type Entry struct {
	Key    string
	Object store.Object
	// Job is the parsed spec; nil when the object could not be read or
	// parsed. It may be invalid: see Err.
	Job      *spec.Job
	Warnings []spec.Warning
	// Err says why the spec cannot run (*RejectError); nil for a valid spec.
	Err error
	// JobID is the spec's job_id when it is a valid one, else "".
	JobID string
	// Digest identifies the content: spec.Job.Digest, or the SHA-256 of the
	// bytes when the spec did not parse.
	Digest string
	// ResultKey is where this spec's one result goes.
	ResultKey string
	// Admission is what the dispatcher's policy admitted of a valid spec;
	// nil when the scanner has no policy.
	Admission *policy.Admission
}

// Pending is the entry as Order sorts it.
func (e *Entry) Pending() Pending {
	p := Pending{Job: e.Job, Key: e.Key, Seen: e.Object.LastModified, Priority: e.Job.Priority()}
	if e.Admission != nil {
		p.Priority = e.Admission.Priority
	}
	return p
}

// Reason classifies a rejection.
type Reason string

const (
	ReasonKey      Reason = "key" // the object key is unsafe
	ReasonTooLarge Reason = "too-large"
	ReasonSyntax   Reason = "syntax"   // not JSON or YAML, or not an object
	ReasonInvalid  Reason = "invalid"  // spec.Validate failed
	ReasonConflict Reason = "conflict" // another spec owns the job_id
	ReasonRefused  Reason = "refused"  // the dispatcher's policy does not allow it
)

// RejectError is why a spec is rejected.
type RejectError struct {
	Key    string
	Reason Reason
	// Owner is the spec key that owns the job_id (ReasonConflict).
	Owner string
	Err   error
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("spec %s: %v", redact.URL(e.Key), e.Err)
}

func (e *RejectError) Unwrap() error { return e.Err }

// Snapshot is the bucket at one scan.
type Snapshot struct {
	// Pending are valid specs without a result, in dispatch order, one per
	// job_id (identical copies of a spec under other keys are Done when
	// the first one is).
	Pending []*Entry
	// Rejected are specs that need a rejected result and have none yet.
	Rejected []*Entry
	// Done are specs whose result exists.
	Done []*Entry
	// Aliases are identical copies of a pending spec under another key:
	// they share its job and its result.
	Aliases []*Entry
	// Results are the result keys present.
	Results map[string]bool
	// Errors are specs that could not be read this time (the bucket
	// failed); they are retried at the next scan.
	Errors map[string]error
	// Listed is the number of spec objects.
	Listed int
}

// Scanner scans a bucket. It remembers what it read, keyed by the
// object's ETag, size and time, so a scan reads only new or changed specs.
// It is safe for concurrent use, but scans are serialized.
type Scanner struct {
	store  store.Store
	policy *policy.Policy
	// Parallel bounds concurrent reads of new specs.
	parallel int

	mu    sync.Mutex
	cache map[string]*Entry
	reads int
}

// Reads is how many spec objects were read (not served from the cache).
func (s *Scanner) Reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// NewScanner returns a Scanner of st that admits valid specs with pol (nil:
// no admission, for readers such as status). parallel <= 0 means 32.
func NewScanner(st store.Store, parallel int, pol *policy.Policy) *Scanner {
	if parallel <= 0 {
		parallel = 32
	}
	return &Scanner{store: st, policy: pol, parallel: parallel, cache: map[string]*Entry{}}
}

// Scan lists specs and results and classifies every spec. A listing that
// fails fails the scan: a partial listing would look like missing specs.
func (s *Scanner) Scan(ctx context.Context) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	var objects []store.Object
	for _, prefix := range []string{store.SpecsPrefix, store.SweepSpecsPrefix} {
		if err := s.store.List(ctx, prefix, func(o store.Object) error {
			objects = append(objects, o)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("list specs %s: %w", s.store.URI(prefix), err)
		}
	}
	snap := &Snapshot{Results: map[string]bool{}, Errors: map[string]error{}, Listed: len(objects)}
	if err := s.store.List(ctx, store.ResultsPrefix, func(o store.Object) error {
		snap.Results[o.Key] = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list results %s: %w", s.store.URI(store.ResultsPrefix), err)
	}

	entries := s.read(ctx, objects, snap.Errors)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	classify(entries, snap)
	return snap, nil
}

// read returns the entries of objects, from the cache or read anew.
func (s *Scanner) read(ctx context.Context, objects []store.Object, errs map[string]error) []*Entry {
	seen := make(map[string]bool, len(objects))
	entries := make([]*Entry, len(objects))
	var todo []int
	for i, o := range objects {
		seen[o.Key] = true
		if e, ok := s.cache[o.Key]; ok && sameObject(e.Object, o) {
			entries[i] = e
			continue
		}
		todo = append(todo, i)
	}
	for k := range s.cache {
		if !seen[k] {
			delete(s.cache, k)
		}
	}

	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.parallel)
	for _, i := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			e, err := s.load(ctx, objects[i])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[objects[i].Key] = err
				return
			}
			entries[i] = e
			s.cache[e.Key] = e
			s.reads++
		}()
	}
	wg.Wait()
	return slices.DeleteFunc(entries, func(e *Entry) bool { return e == nil })
}

func sameObject(a, b store.Object) bool {
	return a.ETag == b.ETag && a.Size == b.Size && a.LastModified.Equal(b.LastModified)
}

// load reads and parses one spec. Only a bucket failure is an error; a bad
// spec is an Entry with Err set.
func (s *Scanner) load(ctx context.Context, o store.Object) (*Entry, error) {
	e := &Entry{Key: o.Key, Object: o}
	reject := func(r Reason, err error) (*Entry, error) {
		e.Err = &RejectError{Key: o.Key, Reason: r, Err: err}
		if e.ResultKey == "" {
			e.ResultKey = store.InvalidResultKey(o.Key)
		}
		return e, nil
	}
	if err := store.ValidateKey(o.Key); err != nil {
		e.Digest = digestOf([]byte(o.Key))
		return reject(ReasonKey, err)
	}
	if o.Size > spec.MaxSize {
		e.Digest = digestOf([]byte(o.Key + "\x00" + o.ETag))
		return reject(ReasonTooLarge, fmt.Errorf("%d bytes, over the %d-byte (1 MiB) limit: %w", o.Size, spec.MaxSize, spec.ErrTooLarge))
	}
	data, err := s.store.Get(ctx, o.Key, spec.MaxSize)
	switch {
	case errors.Is(err, store.ErrTooLarge):
		// Grew since it was listed.
		e.Digest = digestOf([]byte(o.Key + "\x00" + o.ETag))
		return reject(ReasonTooLarge, fmt.Errorf("over the %d-byte (1 MiB) limit: %w", spec.MaxSize, spec.ErrTooLarge))
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("spec %s: deleted while scanning: %w", o.Key, err)
	case err != nil:
		return nil, fmt.Errorf("read spec %s: %w", s.store.URI(o.Key), err)
	}
	e.Digest = digestOf(data)
	job, warnings, err := spec.Parse(data)
	if err != nil {
		reason := ReasonSyntax
		if errors.Is(err, spec.ErrTooLarge) {
			reason = ReasonTooLarge
		}
		return reject(reason, err)
	}
	e.Job, e.Warnings, e.Digest = job, warnings, job.Digest()
	// The dispatcher never needs the document again (runners read the
	// object), and thousands of cached specs would keep every byte.
	job.Raw = nil
	if job.JobID != "" && spec.ValidJobID(job.JobID) {
		e.JobID = job.JobID
		e.ResultKey = store.ResultKey(job.JobID)
	}
	if err := job.Validate(); err != nil {
		return reject(ReasonInvalid, err)
	}
	if s.policy != nil {
		a, err := s.policy.Admit(o.Key, job)
		var r *spec.Refused
		if errors.As(err, &r) && r.Field == "job_id" {
			// A job_id the spec may not use (a sweep's): it owns neither
			// the job_id nor its result key, so that it can neither
			// conflict with nor pre-empt the dispatcher's own job.
			e.JobID, e.ResultKey = "", store.InvalidResultKey(o.Key)
		}
		if err != nil {
			return reject(ReasonRefused, err)
		}
		e.Admission = a
	}
	return e, nil
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// classify sorts entries into the snapshot. Specs that share a job_id with
// different content: the oldest object (then the smallest key) owns the
// job_id, whatever either says; the others are conflicts. The owner is the
// same on every scan and every replica as long as it exists.
func classify(entries []*Entry, snap *Snapshot) {
	byID := map[string][]*Entry{}
	for _, e := range entries {
		if e.JobID != "" {
			byID[e.JobID] = append(byID[e.JobID], e)
		}
	}
	alias := map[*Entry]bool{}
	for id, group := range byID {
		if len(group) < 2 {
			continue
		}
		slices.SortFunc(group, func(a, b *Entry) int {
			return cmp.Or(a.Object.LastModified.Compare(b.Object.LastModified), strings.Compare(a.Key, b.Key))
		})
		owner := group[0]
		for _, e := range group[1:] {
			if e.Digest == owner.Digest {
				alias[e] = true
				continue
			}
			e.Err = &RejectError{Key: e.Key, Reason: ReasonConflict, Owner: owner.Key,
				Err: fmt.Errorf("job_id %q is already used by spec %s with different content (%s, not %s)", id, owner.Key, owner.Digest, e.Digest)}
			e.ResultKey = store.ConflictResultKey(id, e.Key)
		}
	}
	for _, e := range entries {
		switch {
		case snap.Results[e.ResultKey]:
			snap.Done = append(snap.Done, e)
		case alias[e]:
			snap.Aliases = append(snap.Aliases, e)
		case e.Err != nil:
			snap.Rejected = append(snap.Rejected, e)
		default:
			snap.Pending = append(snap.Pending, e)
		}
	}
	pending := make([]Pending, len(snap.Pending))
	index := make(map[string]*Entry, len(snap.Pending))
	for i, e := range snap.Pending {
		pending[i] = e.Pending()
		index[e.Key] = e
	}
	Order(pending)
	for i, p := range pending {
		snap.Pending[i] = index[p.Key]
	}
	slices.SortFunc(snap.Rejected, func(a, b *Entry) int { return strings.Compare(a.Key, b.Key) })
}

// Age is how long ago the spec object was written, for latency metrics.
func (e *Entry) Age(now time.Time) time.Duration {
	if e.Object.LastModified.IsZero() {
		return 0
	}
	return now.Sub(e.Object.LastModified)
}
