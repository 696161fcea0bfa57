package intake

import (
	"cmp"
	"slices"
	"time"

	"guestkit.io/batch/internal/spec"
)

// Pending is a spec waiting for a Job.
type Pending struct {
	// Job is the parsed spec; never nil.
	Job *spec.Job
	// Key is the spec's object key.
	Key string
	// Seen is the object's LastModified, as the bucket says it.
	Seen time.Time
	// Priority is execution.priority as admitted (lowered to the
	// dispatcher's ceiling).
	Priority int
}

// CreatedAt is the spec's age in the queue: its created_at, but never
// before the bucket saw the object, so that a created_at in the far past
// buys no place in the queue (one in the future only delays the spec). The
// object's time alone when the spec has no created_at.
func (p Pending) CreatedAt() time.Time {
	c := p.Job.CreatedAt
	switch {
	case c == nil:
		return p.Seen
	case p.Seen.IsZero() || c.After(p.Seen):
		return *c
	}
	return p.Seen
}

// Order sorts pending specs into dispatch order, in place: execution.priority
// descending (most urgent first), then creation time ascending (oldest
// first; a spec with no known time goes after those with one), then job_id,
// then key, so that the order is total and the same on every pass.
func Order(items []Pending) {
	slices.SortStableFunc(items, comparePending)
}

func comparePending(a, b Pending) int {
	if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
		return c
	}
	ta, tb := a.CreatedAt(), b.CreatedAt()
	switch {
	case ta.IsZero() != tb.IsZero():
		if ta.IsZero() {
			return 1
		}
		return -1
	case !ta.Equal(tb):
		return ta.Compare(tb)
	}
	return cmp.Or(cmp.Compare(a.Job.JobID, b.Job.JobID), cmp.Compare(a.Key, b.Key))
}
