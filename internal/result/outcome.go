package result

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"
)

// DispatcherName is Runner.Name of the results the dispatcher writes.
const DispatcherName = "guestkit-dispatcher"

// MaxSize bounds reading a result (a profile of a large guest with all its
// packages is a few MiB).
const MaxSize = 64 << 20

// MaxDetail bounds each error.details value of a result built from an
// Outcome (the log tail keeps its last MaxDetail bytes, the others their
// first).
const MaxDetail = 4096

// Ending says how an executor saw a job end without a result from its
// runner.
type Ending string

const (
	// EndNeverRan: the runner never started (its image could not be
	// pulled, its process could not be started). Retryable.
	EndNeverRan Ending = "never-ran"
	// EndDeadline: the executor's time limit (Outcome.Limit) ended it.
	// Retryable only when the runner had not started.
	EndDeadline Ending = "deadline"
	// EndAttempts: every attempt allowed (Outcome.Limit) failed.
	EndAttempts Ending = "attempts"
	// EndExit: the executor stopped retrying on the runner's exit code
	// (Outcome.ExitCode), one its contract calls final: 2, 3, 4 or 64.
	EndExit Ending = "exit"
	// EndResultLost: the runner reported success, but its result is not
	// at Outcome.ResultURI.
	EndResultLost Ending = "result-lost"
	// EndExecutionDeadline: execution.deadline passed, so the job was not
	// retried.
	EndExecutionDeadline Ending = "execution-deadline"
	// EndOther: the executor failed the job for another reason
	// (Outcome.Reason). Retryable.
	EndOther Ending = "other"
)

// Outcome is what an executor saw of a job whose runner stored no result:
// facts only. Result turns it into the result the dispatcher stores, the
// same way for every executor.
type Outcome struct {
	JobID, Operation, IdempotencyKey string
	Image                            *Image
	Kubernetes                       *Kubernetes
	StartedAt, FinishedAt            time.Time
	Attempt                          int

	Ending Ending
	// Subject is what ran the job, in messages: "Job gk-web-1a2b", "the
	// runner".
	Subject string
	// Context is a parenthesis for messages: "attempt 2 of 3", "Job
	// gk-web-1a2b: DeadlineExceeded". Optional.
	Context string
	// Limit is what ended the job for EndDeadline ("its
	// activeDeadlineSeconds") and EndAttempts ("backoffLimit 2").
	Limit string
	// Reason is the executor's reason for EndOther.
	Reason string
	// Why explains EndNeverRan ("the runner image could not be pulled")
	// and exit 64 ("the Job template gives it bad arguments").
	Why string
	// Started says whether the runner started, for EndDeadline.
	Started bool
	// Exited says that the runner's last process ended with ExitCode
	// (Signal, when a signal killed it).
	Exited   bool
	ExitCode int
	Signal   int
	// ResultURI is where the result should be, for EndResultLost.
	ResultURI string
	// What says in a few words what the executor saw last.
	What string
	// Log is the end of the runner's log: error.details.log_tail keeps
	// its last MaxDetail bytes.
	Log string
	// Recoverable are texts where a runner that exited 7 may have written
	// its result (the log, a termination message), and RecoveredFrom
	// names them in the warning of a recovered result.
	Recoverable   []string
	RecoveredFrom string
	// Details are the executor's own facts (pod phase, attempts, ...) for
	// error.details; each value is bounded to MaxDetail bytes.
	Details map[string]string
}

// Result is the result of the job: the one its runner put on stderr or in
// its log after exit 7, when it is this job's, else one built from the
// facts, with error.phase "schedule" (the dispatcher ended the job), or
// "upload" for EndResultLost:
//
//	ending                  result
//	never ran               failed pod_failed, retryable
//	deadline                timeout deadline_exceeded; retryable when the runner never started
//	attempts                failed backoff_limit_exceeded: the attempts are spent
//	exit 3                  rejected spec_invalid
//	exit 4                  rejected pod_failed (the image error code is lost)
//	exit 2                  failed pod_failed, retryable (the report is lost)
//	exit 64                 failed pod_failed (the runner refused its command line)
//	result lost             failed upload_failed, retryable
//	execution deadline      timeout deadline_exceeded (not retried)
//	other                   failed pod_failed, retryable
//
// exit_code is the runner's own when it means the same status under the
// runner's contract, or is outside it (137: SIGKILL, OOM); otherwise the
// contract's code for the status (ExitCodeFor).
func (o *Outcome) Result(by Runner) *Result {
	if r := o.recovered(); r != nil {
		return r
	}
	res := &Result{
		APIVersion:     APIVersion,
		JobID:          cmp.Or(o.JobID, "unknown"),
		Operation:      o.Operation,
		IdempotencyKey: o.IdempotencyKey,
		Attempt:        o.Attempt,
		Runner:         by,
		Kubernetes:     o.Kubernetes,
		Image:          o.Image,
		StartedAt:      o.StartedAt.UTC(),
		FinishedAt:     o.FinishedAt.UTC(),
	}
	if res.StartedAt.After(res.FinishedAt) {
		res.StartedAt = res.FinishedAt
	}
	res.DurationSeconds = res.FinishedAt.Sub(res.StartedAt).Seconds()
	e := &Error{Phase: PhaseSchedule, Details: o.details()}
	res.Error = e
	res.Status, e.Code, e.Retryable, e.Message = o.verdict()
	if o.Ending == EndResultLost {
		e.Phase = PhaseUpload
	}
	res.ExitCode = ExitCodeFor(res.Status, e, false)
	if c := o.ExitCode; o.Exited && c > 0 && c <= 255 && (StatusOfExit(c) == res.Status || StatusOfExit(c) == "") {
		res.ExitCode = c
	}
	return res
}

// verdict is the status, code, retryability and message of the ending.
func (o *Outcome) verdict() (Status, Code, bool, string) {
	what := o.What
	ctx := ""
	if o.Context != "" {
		ctx = " (" + o.Context + ")"
	}
	switch o.Ending {
	case EndNeverRan:
		return StatusFailed, CodePodFailed, true,
			fmt.Sprintf("%s, so the runner never ran%s; %s", cmp.Or(o.Why, "the runner could not be started"), ctx, what)
	case EndDeadline:
		if o.Started {
			return StatusTimeout, CodeDeadlineExceeded, false,
				fmt.Sprintf("%s reached %s before the runner stored a result%s; %s", o.Subject, o.Limit, ctx, what)
		}
		return StatusTimeout, CodeDeadlineExceeded, true,
			fmt.Sprintf("%s reached %s before the runner started%s; %s", o.Subject, o.Limit, ctx, what)
	case EndAttempts:
		return StatusFailed, CodeBackoffLimitExceeded, false,
			fmt.Sprintf("%s failed %d times (%s) and the runner stored no result; %s", o.Subject, o.Attempt, o.Limit, what)
	case EndExit:
		switch o.ExitCode {
		case ExitBadSpec:
			return StatusRejected, CodeSpecInvalid, false, "the runner rejected the spec (exit 3) but no result was stored; " + what
		case ExitBadImage:
			return StatusRejected, CodePodFailed, false, "the runner rejected the image (exit 4) but no result was stored, so its error code is lost (see the log tail); " + what
		case ExitNoncompliant:
			return StatusFailed, CodePodFailed, true, "the runner found the image noncompliant (exit 2) but no result was stored, so the report is lost; a rerun makes it again; " + what
		case ExitUsage:
			return StatusFailed, CodePodFailed, false, fmt.Sprintf("the runner refused its command line (exit 64): %s; %s", cmp.Or(o.Why, "it was given bad arguments or environment"), what)
		}
		return StatusFailed, CodePodFailed, true, fmt.Sprintf("%s failed on exit code %d and the runner stored no result; %s", o.Subject, o.ExitCode, what)
	case EndResultLost:
		msg := fmt.Sprintf("%s succeeded but no result is at %s: it was deleted or lost after the runner stored it", o.Subject, o.ResultURI)
		if what != "" {
			msg += "; " + what
		}
		return StatusFailed, CodeUploadFailed, true, msg
	case EndExecutionDeadline:
		return StatusTimeout, CodeDeadlineExceeded, false,
			fmt.Sprintf("execution.deadline passed after attempt %d, which stored no result, so it was not retried%s; %s", o.Attempt, ctx, what)
	}
	return StatusFailed, CodePodFailed, true,
		fmt.Sprintf("%s failed (%s) and the runner stored no result; %s", o.Subject, cmp.Or(o.Reason, "no reason given"), what)
}

// details are the executor's facts, bounded, with the runner's exit and
// log tail.
func (o *Outcome) details() map[string]string {
	d := map[string]string{}
	for k, v := range o.Details {
		if v != "" {
			d[k] = Head(v, MaxDetail)
		}
	}
	if o.Exited {
		d["exit_code"] = strconv.Itoa(o.ExitCode)
		if o.Signal != 0 {
			d["signal"] = strconv.Itoa(o.Signal)
		}
	}
	if t := Tail(o.Log, MaxDetail); t != "" {
		d["log_tail"] = t
	}
	if len(d) == 0 {
		return nil
	}
	return d
}

// recovered is the result a runner that could not store it (exit 7) left
// in one of o.Recoverable, if it is this job's.
func (o *Outcome) recovered() *Result {
	if !o.Exited || o.Signal != 0 || o.ExitCode != ExitUploadFailed {
		return nil
	}
	for _, text := range o.Recoverable {
		r := Recover(text)
		if r == nil || (o.JobID != "" && r.JobID != o.JobID) {
			continue
		}
		if r.Kubernetes == nil {
			r.Kubernetes = o.Kubernetes
		}
		r.Warnings = append(r.Warnings, fmt.Sprintf("%s recovered this result from %s: the runner could not store it (exit 7)", DispatcherName, o.RecoveredFrom))
		return r
	}
	return nil
}

// Recover finds the result a runner wrote to stderr when it could not
// store it (exit 7): the last line holding a result v1 JSON object
// (anything before its '{', such as a timestamp, is skipped). nil if none.
func Recover(log string) *Result {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		if !strings.Contains(line, `"api_version":"`+APIVersion+`"`) {
			continue
		}
		start := strings.IndexByte(line, '{')
		if start < 0 {
			continue
		}
		var r Result
		if json.Unmarshal([]byte(strings.TrimSpace(line[start:])), &r) == nil && r.APIVersion == APIVersion && r.JobID != "" && r.Status != "" {
			return &r
		}
	}
	return nil
}

// Refusal is a spec that cannot run: unreadable, invalid, conflicting with
// another, or refused by the dispatcher (its image, its deadline). Runner
// and dispatcher both store its result.
type Refusal struct {
	JobID, Operation, IdempotencyKey string
	Code                             Code
	// Phase is PhaseSpec when empty.
	Phase    Phase
	Message  string
	Fields   []FieldError
	Details  map[string]string
	Warnings []string
}

// Result is the rejected result of the refusal.
func (f *Refusal) Result(by Runner, now time.Time) *Result {
	res := unrun(f.JobID, f.Operation, f.IdempotencyKey, StatusRejected, by, now,
		&Error{Code: f.Code, Message: f.Message, Phase: cmp.Or(f.Phase, PhaseSpec), Fields: f.Fields, Details: maps.Clone(f.Details)})
	res.Warnings = f.Warnings
	return res
}

// Failure is a spec that ran into a failure of its own before any runner
// started (its image could not be checked): a failed result.
type Failure struct {
	JobID, Operation, IdempotencyKey string
	Code                             Code
	Phase                            Phase
	Message                          string
	Retryable                        bool
	Details                          map[string]string
}

// Result is the failed result of f.
func (f *Failure) Result(by Runner, now time.Time) *Result {
	return unrun(f.JobID, f.Operation, f.IdempotencyKey, StatusFailed, by, now,
		&Error{Code: f.Code, Message: f.Message, Phase: f.Phase, Retryable: f.Retryable, Details: maps.Clone(f.Details)})
}

// unrun is the result of a spec that no runner ran, written now.
func unrun(jobID, operation, idempotencyKey string, status Status, by Runner, now time.Time, e *Error) *Result {
	now = now.UTC()
	res := &Result{
		APIVersion:     APIVersion,
		JobID:          cmp.Or(jobID, "unknown"),
		Operation:      operation,
		IdempotencyKey: idempotencyKey,
		Status:         status,
		Runner:         by,
		StartedAt:      now,
		FinishedAt:     now,
		Error:          e,
	}
	res.ExitCode = ExitCodeFor(res.Status, res.Error, false)
	return res
}
