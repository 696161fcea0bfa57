// Package resulttest reads and checks result documents in tests, against
// the result v1 schema, the same way in every package.
package resulttest

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/testenv"
)

// Check fails the test when data is not a result v1 document.
func Check(t testing.TB, data []byte) {
	t.Helper()
	s := testenv.CompileSchema(t, "result-v1.schema.json", result.Schema())
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(doc); err != nil {
		t.Errorf("result does not match result v1: %v\n%s", err, data)
	}
}

// CheckResult is Check of r as JSON.
func CheckResult(t testing.TB, r *result.Result) {
	t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	Check(t, data)
}

// Read reads the result at key, checked by Check.
func Read(t testing.TB, st store.Store, key string) *result.Result {
	t.Helper()
	data, err := st.Get(t.Context(), key, result.MaxSize)
	if err != nil {
		t.Fatalf("result %s: %v", key, err)
	}
	Check(t, data)
	var r result.Result
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("result %s: %v", key, err)
	}
	return &r
}
