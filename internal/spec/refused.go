package spec

import (
	"errors"
	"fmt"

	"guestkit.io/batch/internal/result"
)

// Refused says that a spec cannot run with this dispatcher's configuration
// (invalid, an image source it refuses, a passed deadline, a routing
// conflict). Retrying cannot help: the dispatcher stores a rejected result.
// Any other error from an executor is the dispatcher's own.
type Refused struct {
	Field string // spec field path, when one field is at fault
	Value string
	// Rule names the operator's policy rule that refused the spec (a flag
	// such as --allow-bucket); "" for a spec this dispatcher cannot run.
	Rule string
	Err  error
}

// Refuse returns a *Refused for field.
func Refuse(field, value, format string, a ...any) *Refused {
	return &Refused{Field: field, Value: value, Err: fmt.Errorf(format, a...)}
}

func (e *Refused) Error() string {
	if e.Field == "" {
		return e.Err.Error()
	}
	if e.Value == "" {
		return e.Field + ": " + e.Err.Error()
	}
	return fmt.Sprintf("%s %q: %v", e.Field, e.Value, e.Err)
}

func (e *Refused) Unwrap() error { return e.Err }

// RefusalOf is the refusal of a spec that err says cannot run: an
// unsupported operation, every field that failed validation, or the field
// and rule of the dispatcher's policy that refused it (spec_refused).
func RefusalOf(err error) *result.Refusal {
	f := &result.Refusal{Code: result.CodeSpecInvalid, Message: err.Error()}
	if errors.Is(err, ErrUnsupportedOperation) {
		f.Code = result.CodeSpecUnsupported
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		f.Fields = ve.Problems
	}
	var r *Refused
	if errors.As(err, &r) && r.Field != "" {
		f.Fields = []result.FieldError{{Field: r.Field, Value: r.Value, Message: r.Err.Error()}}
		if r.Rule != "" {
			f.Code = result.CodeSpecRefused
			f.Details = map[string]string{"rule": r.Rule}
		}
	}
	return f
}
