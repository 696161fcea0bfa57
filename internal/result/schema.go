package result

import _ "embed"

//go:embed result-v1.schema.json
var schema string // a string, so that no caller can change it

// Schema returns the JSON Schema (draft 2020-12) of result v1, for
// consumers that check results before trusting them.
func Schema() []byte { return []byte(schema) }
