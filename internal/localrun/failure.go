package localrun

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/result"
)

// resultOf is the result of a job whose runner stored none, from its last
// attempt: see result.Outcome.Result.
func (x *Executor) resultOf(e *intake.Entry, first time.Time, o *outcome) *result.Result {
	by := x.cfg.Results.By
	by.Host = x.host
	return x.outcomeOf(e, first, o).Result(by)
}

// outcomeOf is what the executor saw of a job's last attempt:
//
//	last attempt                     ending
//	not started                      never ran
//	killed past timeout + Grace      deadline
//	exit 2, 3, 4, 64                 exit
//	exit 0                           result lost
//	execution.deadline passed        execution deadline (not retried)
//	other exit, other signal         attempts: max_attempts are spent
func (x *Executor) outcomeOf(e *intake.Entry, first time.Time, o *outcome) *result.Outcome {
	j := e.Job
	maxAttempts := max(j.MaxAttempts(), 1)
	out := &result.Outcome{
		JobID:         e.JobID,
		Attempt:       o.attempt,
		StartedAt:     first,
		FinishedAt:    o.finished,
		Subject:       "the job",
		Context:       fmt.Sprintf("attempt %d of %d", o.attempt, maxAttempts),
		Started:       true,
		Exited:        o.startErr == nil,
		ExitCode:      o.exitCode,
		Signal:        int(o.signal),
		What:          o.describe(),
		Log:           o.stderr.Tail(),
		Recoverable:   []string{o.stderr.ResultLine()},
		RecoveredFrom: fmt.Sprintf("the stderr of runner process %d", o.pid),
		Details:       o.details(maxAttempts),
	}
	out.Operation, out.IdempotencyKey = e.Identity()
	// The image as the runner names it.
	if img := j.Image(); img != nil && img.Path != "" {
		out.Image = &result.Image{URI: img.Path}
	} else if img != nil && img.URI != "" {
		out.Image = &result.Image{URI: redact.URL(img.URI)}
	}
	final := o.signal == 0 && slices.Contains(result.NonRetryableExitCodes(), int32(o.exitCode))
	switch {
	case o.startErr != nil:
		out.Ending, out.Why = result.EndNeverRan, "the runner process could not be started"
	case o.timedOut:
		out.Ending, out.Limit = result.EndDeadline, fmt.Sprintf("timeout_seconds plus the dispatcher's grace (%s)", x.cfg.Grace)
	case final:
		out.Ending, out.Why = result.EndExit, "the dispatcher's runner binary does not match it"
	case o.signal == 0 && o.exitCode == result.ExitCompleted:
		out.Ending, out.ResultURI = result.EndResultLost, x.cfg.Store.URI(e.ResultKey)
	case o.deadlinePassed:
		out.Ending = result.EndExecutionDeadline
	default:
		out.Ending, out.Limit = result.EndAttempts, fmt.Sprintf("max_attempts %d", maxAttempts)
	}
	return out
}

// details are the facts of the last attempt, for error.details.
func (o *outcome) details(maxAttempts int) map[string]string {
	d := map[string]string{
		"attempts":     strconv.Itoa(o.attempt),
		"max_attempts": strconv.Itoa(maxAttempts),
	}
	if o.pid != 0 {
		d["pid"] = strconv.Itoa(o.pid)
	}
	if o.startErr != nil {
		d["start_error"] = o.startErr.Error()
	}
	if o.timedOut {
		d["killed_after"] = o.limit.String()
	}
	return d
}
