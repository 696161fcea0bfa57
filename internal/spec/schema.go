package spec

import _ "embed"

//go:embed job-v1.schema.json
var jobSchema string // a string, so that no caller can change it

// JobSchema returns the JSON Schema (draft 2020-12) of job spec v1, for
// editors and for checks before submission. Validate remains the
// authority: it also checks rules that the schema cannot express.
func JobSchema() []byte { return []byte(jobSchema) }
