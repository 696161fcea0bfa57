// Package templates holds the default Kubernetes objects of guestkit-batch
// as Go text/templates. job.yaml.tmpl is the Job the dispatcher creates for
// one job spec; internal/kubejob renders it, and an operator may replace it
// with a copy of their own (BuilderConfig.TemplatePath).
package templates

import (
	_ "embed"
	"slices"
)

// JobTemplateName names the built-in Job template in error messages.
const JobTemplateName = "templates/job.yaml.tmpl"

//go:embed job.yaml.tmpl
var jobTemplate []byte

// JobTemplate returns the built-in Job template (a copy).
func JobTemplate() []byte { return slices.Clone(jobTemplate) }
