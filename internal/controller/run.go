package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/store"
)

// Trigger asks for a pass soon. Sends never block: triggers that arrive
// while a pass is due are merged into it.
type Trigger chan struct{}

// NewTrigger returns a Trigger.
func NewTrigger() Trigger { return make(Trigger, 1) }

// Poke requests a pass.
func (t Trigger) Poke() {
	select {
	case t <- struct{}{}:
	default:
	}
}

// maxErrorBackoff caps the wait after a failed pass.
const maxErrorBackoff = 30 * time.Second

// Run passes until ctx ends: every Interval, at once when trigger fires,
// and after a failed pass (the bucket unreachable, ...) again with a
// backoff from 1 s doubling up to Interval (30 s at most). It returns only
// ctx's error.
func (c *Controller) Run(ctx context.Context, trigger Trigger) error {
	return c.loop(ctx, trigger, func(*PassStats) bool { return false })
}

// loop is Run's loop, ending early when done, called after each
// successful pass, says so.
func (c *Controller) loop(ctx context.Context, trigger Trigger, done func(*PassStats) bool) error {
	backoff := time.Duration(0)
	for {
		st, err := c.Pass(ctx)
		wait := c.cfg.Interval
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			backoff = min(max(2*backoff, time.Second), c.cfg.Interval, maxErrorBackoff)
			wait = backoff
			c.log.WithError(err).WithField("retry_in", wait.String()).Warn("pass failed")
		default:
			backoff = 0
			c.logPass(st)
			if done(st) {
				return nil
			}
		}
		if !sleep(ctx, wait, trigger) {
			return ctx.Err()
		}
	}
}

func (c *Controller) logPass(st *PassStats) {
	if st.Launched == 0 && st.Rejected == 0 && st.Errors == 0 {
		return
	}
	c.log.WithFields(logrus.Fields{
		"specs": st.Snapshot.Listed, "pending": len(st.Snapshot.Pending), "launched": st.Launched,
		"rejected": st.Rejected, "waiting": st.Waiting, "errors": st.Errors, "active": c.cfg.Executor.Active(),
	}).Info("pass")
}

// sleep waits for d or a trigger; false when ctx ended.
func sleep(ctx context.Context, d time.Duration, trigger Trigger) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-trigger:
	}
	return true
}

// Progress is reported after each pass of Once.
type Progress struct {
	Total, Done, Active, Waiting int
}

// Summary is what Once did.
type Summary struct {
	// Total is the number of specs that were pending or rejected at the
	// start; Done specs from earlier runs are not counted.
	Total int
	// ByStatus counts their results.
	ByStatus map[result.Status]int
	// Noncompliant counts completed profile results with findings at or
	// above the spec's threshold (exit code 2).
	Noncompliant int
	// Items lists every spec whose result is not completed, and the specs
	// withdrawn while waiting.
	Items []SummaryItem
}

// SummaryItem is one spec of a Summary.
type SummaryItem struct {
	Key, JobID, ResultKey string
	Status                result.Status
	ExitCode              int
	Code                  result.Code
	Message               string
}

// Failed reports whether any result is failed, timeout or rejected, or a
// result could not be read. Noncompliant images are findings, not failures.
func (s *Summary) Failed() bool {
	for st, n := range s.ByStatus {
		if n > 0 && st != result.StatusCompleted {
			return true
		}
	}
	return false
}

// Once dispatches what is pending and waits until every spec found at the
// first pass has a result: new specs that arrive meanwhile are dispatched
// too, but not waited for. A spec deleted while waiting is reported as
// withdrawn.
func (c *Controller) Once(ctx context.Context, trigger Trigger, progress func(Progress)) (*Summary, error) {
	var targets, listed map[string]*intake.Entry
	err := c.loop(ctx, trigger, func(st *PassStats) bool {
		snap := st.Snapshot
		if targets == nil {
			targets = map[string]*intake.Entry{}
			for _, list := range [][]*intake.Entry{snap.Pending, snap.Rejected, snap.Aliases} {
				for _, e := range list {
					targets[e.Key] = e
				}
			}
		}
		p := Progress{Total: len(targets), Active: c.cfg.Executor.Active(), Waiting: st.Waiting}
		listed = map[string]*intake.Entry{}
		for _, list := range [][]*intake.Entry{snap.Pending, snap.Rejected, snap.Aliases, snap.Done} {
			for _, e := range list {
				listed[e.Key] = e
			}
		}
		for k := range targets {
			now, ok := listed[k]
			switch {
			case !ok && snap.Errors[k] == nil:
				p.Done++ // withdrawn
			case ok && snap.Results[now.ResultKey] && !c.cfg.Executor.Busy(now):
				// A result with the job still running is a failed
				// attempt's: the retry will replace it.
				p.Done++
				targets[k] = now // its result key may have changed (conflict)
			}
		}
		if progress != nil {
			progress(p)
		}
		return p.Done == p.Total
	})
	if err != nil {
		return nil, err
	}
	return c.summarize(ctx, targets, listed)
}

// summarize reads the results of targets.
func (c *Controller) summarize(ctx context.Context, targets, listed map[string]*intake.Entry) (*Summary, error) {
	s := &Summary{Total: len(targets), ByStatus: map[result.Status]int{}}
	var keys []string
	for k, e := range targets {
		if _, ok := listed[k]; !ok {
			s.Items = append(s.Items, SummaryItem{Key: k, JobID: e.JobID, Status: "withdrawn", Message: "the spec was deleted before it had a result"})
			continue
		}
		keys = append(keys, e.ResultKey)
	}
	results, errs := ReadResults(ctx, c.cfg.Store, keys)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for k, e := range targets {
		if _, ok := listed[k]; !ok {
			continue
		}
		item := SummaryItem{Key: k, JobID: e.JobID, ResultKey: e.ResultKey}
		if r := results[e.ResultKey]; r != nil {
			item.Status, item.ExitCode = r.Status, r.ExitCode
			if r.Error != nil {
				item.Code, item.Message = r.Error.Code, r.Error.Message
			}
		} else {
			item.Status, item.Message = "unreadable", errs[e.ResultKey].Error()
		}
		s.ByStatus[item.Status]++
		if item.Status == result.StatusCompleted && item.ExitCode == result.ExitNoncompliant {
			s.Noncompliant++
		}
		if item.Status != result.StatusCompleted {
			s.Items = append(s.Items, item)
		}
	}
	slices.SortFunc(s.Items, func(a, b SummaryItem) int { return strings.Compare(a.Key, b.Key) })
	return s, nil
}

// ReadResults reads the results at keys, 16 at a time: the results read,
// and the error of every key that could not be read.
func ReadResults(ctx context.Context, st store.Store, keys []string) (map[string]*result.Result, map[string]error) {
	results, errs := map[string]*result.Result{}, map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r, err := ReadResult(ctx, st, k)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[k] = err
				return
			}
			results[k] = r
		}()
	}
	wg.Wait()
	return results, errs
}

// ReadResult reads and decodes the result at key.
func ReadResult(ctx context.Context, st store.Store, key string) (*result.Result, error) {
	data, err := st.Get(ctx, key, result.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("read result %s: %w", st.URI(key), err)
	}
	var r result.Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("result %s: %w", st.URI(key), err)
	}
	if r.Status == "" {
		return nil, errors.New("result " + st.URI(key) + ": no status")
	}
	return &r, nil
}
