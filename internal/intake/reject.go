package intake

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// RejectedResult is the result stored for a spec that cannot run, or that
// the dispatcher refused: see Refusal.
func (e *Entry) RejectedResult(by result.Runner, now time.Time, err error) *result.Result {
	return e.Refusal(err).Result(by, now)
}

// Refusal is what the result of a spec that cannot run says, or of one the
// dispatcher refused (err overrides e.Err when not nil: an image source
// the dispatcher does not serve, a passed deadline). It names the spec
// object, so a spec without a usable job_id is still traceable.
func (e *Entry) Refusal(err error) *result.Refusal {
	if err == nil {
		err = e.Err
	}
	f := spec.RefusalOf(err)
	f.JobID = e.JobID
	if f.Details == nil {
		f.Details = map[string]string{}
	}
	f.Details["spec_key"], f.Details["spec_digest"] = printable(e.Key), e.Digest
	var re *RejectError
	if errors.As(err, &re) && re.Reason == ReasonConflict {
		f.Code = result.CodeSpecConflict
	}
	if re == nil {
		f.Message = fmt.Sprintf("spec %s: %v", redact.URL(e.Key), err)
	}
	if re != nil && re.Owner != "" {
		f.Details["owner_spec_key"] = re.Owner
	}
	f.Operation, f.IdempotencyKey = e.Identity()
	for _, w := range e.Warnings {
		f.Warnings = append(f.Warnings, w.String())
	}
	return f
}

// printable quotes a key that is not plain text, so that control
// characters in a stranger's key cannot forge log lines or JSON readers'
// displays.
func printable(key string) string {
	if store.ValidateKey(key) == nil {
		return key
	}
	q := fmt.Sprintf("%q", key)
	return q[1 : len(q)-1]
}

// Failure is what the failed result of a spec says when it failed before
// any runner started (its image could not be checked).
func (e *Entry) Failure(code result.Code, phase result.Phase, message string) *result.Failure {
	f := &result.Failure{JobID: e.JobID, Code: code, Phase: phase, Message: message, Retryable: true,
		Details: map[string]string{"spec_key": printable(e.Key), "spec_digest": e.Digest}}
	f.Operation, f.IdempotencyKey = e.Identity()
	return f
}

// Identity is the spec's operation (when supported) and idempotency key,
// for the results the dispatcher writes for it.
func (e *Entry) Identity() (operation, idempotencyKey string) {
	if e.Job == nil {
		return "", ""
	}
	if slices.Contains(spec.SupportedOperations(), e.Job.Operation) {
		operation = e.Job.Operation
	}
	if e.Job.Execution != nil {
		idempotencyKey = e.Job.Execution.IdempotencyKey
	}
	return operation, idempotencyKey
}
