package localrun

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"guestkit.io/batch/internal/dispatch"
	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// resultOf is the result of a job whose runner stored none, from its last
// attempt: the result the runner put on stderr after exit 7 when it is
// this job's, else what the executor saw, as dispatch.ResultFromJob says
// it for a Job:
//
//	last attempt                     result
//	not started                      failed pod_failed, retryable
//	killed past timeout + Grace      timeout deadline_exceeded
//	exit 3                           rejected spec_invalid
//	exit 4                           rejected pod_failed (the image error code is lost)
//	exit 2                           failed pod_failed, retryable (the report is lost)
//	exit 64                          failed pod_failed (the runner refused its command line)
//	exit 0                           failed pod_failed, retryable (the result vanished)
//	execution.deadline passed        timeout deadline_exceeded (not retried)
//	other exit, other signal         failed backoff_limit_exceeded: max_attempts are spent
//
// error.phase is "schedule" (the dispatcher ended the job) and
// error.details holds the exit code or signal, the attempts and the tail
// of stderr.
func (x *Executor) resultOf(e *intake.Entry, first time.Time, o *outcome) *result.Result {
	if o.startErr == nil && o.signal == 0 && o.exitCode == result.ExitUploadFailed {
		if r := dispatch.RecoverResult(o.stderr.ResultLine()); r != nil && r.JobID == e.JobID {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s recovered this result from the stderr of runner process %d: the runner could not store it (exit 7)", dispatch.DispatcherName, o.pid))
			return r
		}
	}
	j := e.Job
	maxAttempts := max(j.MaxAttempts(), 1)
	by := x.cfg.Results.By
	by.Host = x.host
	res := &result.Result{
		APIVersion: result.APIVersion,
		JobID:      e.JobID,
		Attempt:    o.attempt,
		Runner:     by,
		StartedAt:  first.UTC(),
		FinishedAt: o.finished.UTC(),
	}
	if slices.Contains(spec.SupportedOperations(), j.Operation) {
		res.Operation = j.Operation
	}
	if ex := j.Execution; ex != nil {
		res.IdempotencyKey = ex.IdempotencyKey
	}
	// The image as the runner names it.
	if img := j.Image(); img != nil && img.Path != "" {
		res.Image = &result.Image{URI: img.Path}
	} else if img != nil && img.URI != "" {
		res.Image = &result.Image{URI: store.Redact(img.URI)}
	}
	if res.StartedAt.After(res.FinishedAt) {
		res.StartedAt = res.FinishedAt
	}
	res.DurationSeconds = res.FinishedAt.Sub(res.StartedAt).Seconds()

	fail := &result.Error{Phase: result.PhaseSchedule, Details: o.details(maxAttempts)}
	res.Error = fail
	what := o.describe()
	switch {
	case o.startErr != nil:
		res.Status, fail.Code, fail.Retryable = result.StatusFailed, result.CodePodFailed, true
		fail.Message = fmt.Sprintf("the runner never ran (attempt %d of %d); %s", o.attempt, maxAttempts, what)
	case o.timedOut:
		res.Status, fail.Code = result.StatusTimeout, result.CodeDeadlineExceeded
		fail.Message = fmt.Sprintf("the runner ran past timeout_seconds plus the dispatcher's grace (%s) and stored no result (attempt %d of %d); %s", x.cfg.Grace, o.attempt, maxAttempts, what)
	case o.signal == 0 && o.exitCode == result.ExitBadSpec:
		res.Status, fail.Code = result.StatusRejected, result.CodeSpecInvalid
		fail.Message = "the runner rejected the spec (exit 3) but no result was stored; " + what
	case o.signal == 0 && o.exitCode == result.ExitBadImage:
		res.Status, fail.Code = result.StatusRejected, result.CodePodFailed
		fail.Message = "the runner rejected the image (exit 4) but no result was stored, so its error code is lost (see the log tail); " + what
	case o.signal == 0 && o.exitCode == result.ExitNoncompliant:
		res.Status, fail.Code, fail.Retryable = result.StatusFailed, result.CodePodFailed, true
		fail.Message = "the runner found the image noncompliant (exit 2) but no result was stored, so the report is lost; a rerun makes it again; " + what
	case o.signal == 0 && o.exitCode == result.ExitUsage:
		res.Status, fail.Code = result.StatusFailed, result.CodePodFailed
		fail.Message = "the runner refused its command line (exit 64): the dispatcher's runner binary does not match it; " + what
	case o.signal == 0 && o.exitCode == result.ExitCompleted:
		res.Status, fail.Code, fail.Retryable = result.StatusFailed, result.CodePodFailed, true
		fail.Message = fmt.Sprintf("the runner exited 0 but there is no result at %s; %s", x.cfg.Store.URI(e.ResultKey), what)
	case o.deadlinePassed:
		res.Status, fail.Code = result.StatusTimeout, result.CodeDeadlineExceeded
		fail.Message = fmt.Sprintf("execution.deadline passed after attempt %d of %d, which stored no result, so it was not retried; %s", o.attempt, maxAttempts, what)
	default:
		res.Status, fail.Code = result.StatusFailed, result.CodeBackoffLimitExceeded
		fail.Message = fmt.Sprintf("the runner failed %d times (max_attempts %d) and stored no result; %s", o.attempt, maxAttempts, what)
	}
	res.ExitCode = result.ExitCodeFor(res.Status, fail, false)
	// The process's own code when it means the same under the runner's
	// contract, or is outside it (137: SIGKILL).
	if c := o.exitCode; c > 0 && c <= 255 && (result.StatusOfExit(c) == res.Status || result.StatusOfExit(c) == "") {
		res.ExitCode = c
	}
	return res
}

// details are the facts of the last attempt, for error.details.
func (o *outcome) details(maxAttempts int) map[string]string {
	d := map[string]string{
		"attempts":     strconv.Itoa(o.attempt),
		"max_attempts": strconv.Itoa(maxAttempts),
	}
	set := func(k, v string) {
		if v != "" {
			d[k] = v
		}
	}
	if o.pid != 0 {
		set("pid", strconv.Itoa(o.pid))
	}
	switch {
	case o.startErr != nil:
		set("start_error", result.Head(o.startErr.Error(), dispatch.MaxDetail))
	case o.signal != 0:
		set("signal", strconv.Itoa(int(o.signal)))
		set("exit_code", strconv.Itoa(o.exitCode))
	default:
		set("exit_code", strconv.Itoa(o.exitCode))
	}
	if o.timedOut {
		set("killed_after", o.limit.String())
	}
	set("log_tail", result.Tail(o.stderr.Tail(), dispatch.MaxDetail))
	return d
}
