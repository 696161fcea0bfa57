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
	// Seen is the object's LastModified: its age when the spec has no
	// created_at.
	Seen time.Time
}

// CreatedAt is the spec's created_at, or else when its object was written.
func (p Pending) CreatedAt() time.Time {
	if p.Job.CreatedAt != nil {
		return *p.Job.CreatedAt
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
	if c := cmp.Compare(b.Job.Priority(), a.Job.Priority()); c != 0 {
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
