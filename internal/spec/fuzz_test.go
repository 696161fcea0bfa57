package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad: no input makes Load panic, and what Load accepts survives a
// round trip through the Job's own JSON unchanged.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/seed-jobs/*.json")
	files = append(files, "testdata/inspect-full.yaml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		baseInspect, baseProfile, "", "{", "[]", "null", "---\n", "a: &a [*a]\n",
		`{"a":1,"a":2}`, "version: 1.0\n", "{\"job_id\": \"\\u0000\"}", "\uFEFF{}",
		`{"operation":"guestkit.inspect","payload":{"data":{"image":{"uri":"s3://b/%2e%2e"}}}}`,
		`{"execution":{"timeout_seconds":1e400,"attempt":-0,"priority":9223372036854775808}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		j, w, err := Load(data)
		if len(data) > MaxSize {
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%d bytes: err = %v", len(data), err)
			}
			return
		}
		if j == nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Msg == "" {
				t.Fatalf("no job and err = %#v", err)
			}
			return
		}
		if !strings.HasPrefix(j.Digest(), "sha256:") || len(w) > maxReports+1 {
			t.Fatalf("digest %q, %d warnings", j.Digest(), len(w))
		}
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 || ve.Error() == "" {
				t.Fatalf("err = %#v", err)
			}
			for _, p := range ve.Problems {
				if p.Message == "" {
					t.Fatalf("problem without message: %+v", p)
				}
			}
			return
		}
		b1, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		j2, _, err := Load(b1)
		if err != nil {
			t.Fatalf("a valid job's own JSON is invalid: %v\n%s", err, b1)
		}
		b2, _ := json.Marshal(j2)
		if !bytes.Equal(b1, b2) {
			t.Fatalf("round trip changed the job:\n%s\n%s", b1, b2)
		}
	})
}
