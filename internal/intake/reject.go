package intake

import (
	"errors"
	"fmt"
	"time"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// RejectedResult is the result stored for a spec that cannot run, or that
// the dispatcher refused (err overrides e.Err when not nil: an image
// source the dispatcher does not serve, a passed deadline). It names the
// spec object, so a spec without a usable job_id is still traceable.
func (e *Entry) RejectedResult(by result.Runner, now time.Time, err error) *result.Result {
	if err == nil {
		err = e.Err
	}
	code := result.CodeSpecInvalid
	var re *RejectError
	switch {
	case errors.Is(err, spec.ErrUnsupportedOperation):
		code = result.CodeSpecUnsupported
	case errors.As(err, &re) && re.Reason == ReasonConflict:
		code = result.CodeSpecConflict
	}
	var fields []result.FieldError
	var ve *spec.ValidationError
	if errors.As(err, &ve) {
		fields = ve.Problems
	}
	jobID := e.JobID
	if jobID == "" {
		jobID = "unknown"
	}
	msg := err.Error()
	if re == nil {
		msg = fmt.Sprintf("spec %s: %v", store.Redact(e.Key), err)
	}
	res := result.Rejected(jobID, by, now, code, msg, fields)
	res.Error.Details = map[string]string{"spec_key": printable(e.Key), "spec_digest": e.Digest}
	if re != nil && re.Owner != "" {
		res.Error.Details["owner_spec_key"] = re.Owner
	}
	if e.Job != nil {
		if op := e.Job.Operation; op == spec.OpInspect || op == spec.OpProfile {
			res.Operation = op
		}
		if e.Job.Execution != nil {
			res.IdempotencyKey = e.Job.Execution.IdempotencyKey
		}
	}
	for _, w := range e.Warnings {
		res.Warnings = append(res.Warnings, w.String())
	}
	return res
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
