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
	Err   error
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
// unsupported operation, or every field that failed validation.
func RefusalOf(err error) *result.Refusal {
	f := &result.Refusal{Code: result.CodeSpecInvalid, Message: err.Error()}
	if errors.Is(err, ErrUnsupportedOperation) {
		f.Code = result.CodeSpecUnsupported
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		f.Fields = ve.Problems
	}
	return f
}
