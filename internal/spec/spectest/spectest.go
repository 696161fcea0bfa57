// Package spectest builds job specs for tests: one way to make a spec,
// shared by every package's tests.
package spectest

import (
	"encoding/json"
	"strings"
	"time"

	"guestkit.io/batch/internal/spec"
)

// New is a valid guestkit.inspect spec of image uri; opts change it.
func New(id, uri string, opts ...func(*spec.Job)) *spec.Job {
	j := &spec.Job{
		Version:   "1.0",
		JobID:     id,
		Operation: spec.OpInspect,
		Payload: spec.Payload{Type: spec.OpInspect + ".v1", Data: &spec.Data{
			Image: &spec.Image{URI: uri},
		}},
	}
	for _, o := range opts {
		o(j)
	}
	return j
}

// WithKey sets execution.idempotency_key.
func WithKey(k string) func(*spec.Job) {
	return func(j *spec.Job) { Execution(j).IdempotencyKey = k }
}

// WithPriority sets execution.priority.
func WithPriority(p int) func(*spec.Job) {
	return func(j *spec.Job) { Execution(j).Priority = &p }
}

// WithCreated sets created_at.
func WithCreated(t time.Time) func(*spec.Job) {
	return func(j *spec.Job) { j.CreatedAt = &t }
}

// WithTimeout sets execution.timeout_seconds.
func WithTimeout(s int64) func(*spec.Job) {
	return func(j *spec.Job) { Execution(j).TimeoutSeconds = &s }
}

// WithAttempts sets execution.max_attempts.
func WithAttempts(n int) func(*spec.Job) {
	return func(j *spec.Job) { Execution(j).MaxAttempts = &n }
}

// WithBackend sets payload.data.options.backend.
func WithBackend(b string) func(*spec.Job) {
	return func(j *spec.Job) {
		if j.Payload.Data.Options == nil {
			j.Payload.Data.Options = &spec.Options{}
		}
		j.Payload.Data.Options.Backend = b
	}
}

// WithPath names the image by payload.data.image.path.
func WithPath(p string) func(*spec.Job) {
	return func(j *spec.Job) { j.Payload.Data.Image = &spec.Image{Path: p} }
}

// WithRouting sets routing.
func WithRouting(r spec.Routing) func(*spec.Job) {
	return func(j *spec.Job) { j.Routing = &r }
}

// Execution is j.Execution, created when absent.
func Execution(j *spec.Job) *spec.Execution {
	if j.Execution == nil {
		j.Execution = &spec.Execution{}
	}
	return j.Execution
}

// Inspect is the usual guestkit.inspect spec as submitters write it: kind
// VMOperation, a qcow2 image at image (a path when it starts with /, else
// a URI); opts change it.
func Inspect(id, image string, opts ...func(*spec.Job)) *spec.Job {
	img := &spec.Image{URI: image, Format: "qcow2"}
	if strings.HasPrefix(image, "/") {
		img = &spec.Image{Path: image, Format: "qcow2"}
	}
	j := New(id, "", opts...)
	j.Kind = "VMOperation"
	if j.Payload.Data.Image.URI == "" && j.Payload.Data.Image.Path == "" {
		j.Payload.Data.Image = img
	}
	return j
}

// JSON is j as a spec document.
func JSON(j *spec.Job) string {
	b, err := json.Marshal(j)
	if err != nil {
		panic(err) // a Job always marshals
	}
	return string(b)
}

// WithLabels sets metadata.labels.
func WithLabels(l map[string]string) func(*spec.Job) {
	return func(j *spec.Job) { metadata(j).Labels = l }
}

// WithAnnotations sets metadata.annotations.
func WithAnnotations(a map[string]string) func(*spec.Job) {
	return func(j *spec.Job) { metadata(j).Annotations = a }
}

func metadata(j *spec.Job) *spec.Metadata {
	if j.Metadata == nil {
		j.Metadata = &spec.Metadata{}
	}
	return j.Metadata
}
