package spec

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		format string
		line   int
		col    int
		msg    string
	}{
		{"empty", "", "yaml", 0, 0, "empty document"},
		{"blank", " \n\t\n", "yaml", 0, 0, "empty document"},
		{"json missing comma", "{\n  \"version\": \"1.0\"\n  \"job_id\": \"a\"\n}", "json", 3, 3, "invalid character '\"' after object key:value pair"},
		{"json truncated", "{\"version\": \"1.0\",\n \"job_id\": ", "json", 2, 12, "unexpected end of document"},
		{"json trailing comma", "{\"a\": 1,}", "json", 1, 9, "invalid character '}'"},
		{"json trailing data", "{\"a\": 1}\n{\"b\": 2}", "json", 2, 1, "unexpected data after the top-level value"},
		{"json duplicate key", "{\n \"job_id\": \"a\",\n \"job_id\": \"b\"\n}", "json", 3, 2, `duplicate key "job_id"`},
		{"json nested duplicate", `{"payload": {"data": {"image": {"path": "/a", "path": "/b"}}}}`, "json", 1, 47, `duplicate key "path"`},
		{"json too deep", strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70), "json", 1, 326, "nested more than 64 levels deep"},
		{"json array", `[{"job_id": "a"}]`, "json", 0, 0, "a spec must be an object, not an array"},
		{"yaml bad indentation", "version: \"1.0\"\njob_id: a\n  operation: x\n", "yaml", 3, 0, "mapping values are not allowed in this context"},
		{"yaml unclosed quote", "version: \"1.0\njob_id: a\n", "yaml", 3, 0, "found unexpected end of stream"},
		{"yaml tab indentation", "payload:\n\ttype: x\n", "yaml", 2, 0, "found character that cannot start any token"},
		{"yaml duplicate key", "version: \"1.0\"\njob_id: a\njob_id: b\n", "yaml", 3, 0, `key "job_id" already set in map`},
		{"yaml second document", "version: \"1.0\"\n---\nversion: \"2.0\"\n", "yaml", 3, 0, "a second YAML document"},
		{"yaml document end then more", "version: \"1.0\"\n...\njob_id: b\n", "yaml", 3, 0, "a second YAML document"},
		{"yaml scalar", "just a string\n", "yaml", 0, 0, "a spec must be an object, not a string"},
		{"yaml list", "- a\n- b\n", "yaml", 0, 0, "a spec must be an object, not an array"},
		{"yaml null", "~\n", "yaml", 0, 0, "a spec must be an object, not null"},
		{"invalid utf-8", "{\"job_id\": \"a\xffb\"}", "json", 1, 14, "invalid UTF-8"},
		{"invalid utf-8 yaml", "job_id: a\nname: \xc3\x28\n", "yaml", 2, 7, "invalid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j, w, err := Parse([]byte(tc.in))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want *SyntaxError", err, err)
			}
			if j != nil || w != nil {
				t.Error("a failed Parse returned a job or warnings")
			}
			if se.Format != tc.format || se.Line != tc.line || se.Column != tc.col || !strings.Contains(se.Msg, tc.msg) {
				t.Errorf("got %s %d:%d %q, want %s %d:%d containing %q", se.Format, se.Line, se.Column, se.Msg, tc.format, tc.line, tc.col, tc.msg)
			}
			if tc.line > 0 && !strings.Contains(err.Error(), fmt.Sprintf("line %d", tc.line)) {
				t.Errorf("Error() lacks the line: %s", err)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	// Padding inside the document keeps it valid: only the size is wrong.
	pad := func(n int) []byte {
		b := []byte(baseInspect)
		return append(b[:len(b)-1], append(bytes.Repeat([]byte(" "), n-len(b)), '}')...)
	}
	if _, _, err := Load(pad(MaxSize)); err != nil {
		t.Errorf("exactly MaxSize: %v", err)
	}
	_, _, err := Parse(pad(MaxSize + 1))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	want := "spec is 1048577 bytes, over the 1048576-byte (1 MiB) limit: spec too large"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}

func TestYAMLAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	_, _, err := Parse([]byte(b.String()))
	var se *SyntaxError
	if !errors.As(err, &se) || se.Format != "yaml" {
		t.Fatalf("err = %v, want a YAML syntax error", err)
	}
}

func TestUnknownFieldsWarn(t *testing.T) {
	in := `{
  "version": "1.0", "job_id": "a", "operation": "guestkit.inspect", "JOB_ID": "b", "extra": {"deep": [1]},
  "metadata": {"owner": "x", "labels": {"a": "b"}},
  "payload": {"type": "guestkit.inspect.v1", "data": {
    "image": {"path": "/a.qcow2", "create_backup": true, "backup_path": "/b"},
    "options": {"deep_scan": true, "include_kernels": true},
    "weird key": 1
  }}
}`
	j, w, err := Load([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"JOB_ID: unknown field; ignored",
		"extra: unknown field; ignored",
		"metadata.owner: unknown field; ignored",
		"payload.data.image.backup_path: unknown field; ignored",
		"payload.data.image.create_backup: unknown field; ignored",
		"payload.data.options.include_kernels: unknown field; ignored",
		`payload.data["weird key"]: unknown field; ignored`,
	}
	if got := warningStrings(w); !slices.Equal(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
	// Keys match exactly, unlike encoding/json: JOB_ID did not overwrite job_id.
	if j.JobID != "a" {
		t.Errorf("job_id = %q", j.JobID)
	}
	if !bytes.Contains(j.Raw, []byte("create_backup")) {
		t.Error("Raw lost the unknown field")
	}
}

func TestWarningsAreCapped(t *testing.T) {
	d := parseDoc(t, baseInspect)
	for i := range 150 {
		d.set(fmt.Sprintf("x%03d", i), 1)
	}
	_, w, err := Load(d.bytes(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != maxReports+1 || w[maxReports].String() != "and 50 more warnings" || w[0].String() != "x000: unknown field; ignored" {
		t.Errorf("%d warnings, first %v, last %v", len(w), w[0], w[len(w)-1])
	}
}

func TestTypeErrorsAreReportedTogether(t *testing.T) {
	in := `{"version": 1.0, "job_id": 7, "operation": "guestkit.inspect",
  "execution": {"timeout_seconds": "1h", "cancellable": "no"},
  "payload": {"type": "guestkit.inspect.v1", "data": {"image": "/a.qcow2"}}}`
	j, _, err := Load([]byte(in))
	if j == nil {
		t.Fatal("wrong types must not stop Parse")
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	checkProblems(t, ve.Problems, []problem{
		{"execution.cancellable", "no", "must be true or false, not a string"},
		{"execution.timeout_seconds", "1h", "must be an integer, not a string"},
		{"job_id", "7", "must be a string, not a number"},
		{"payload.data.image", "/a.qcow2", "must be an object, not a string"},
		{"version", "1.0", "must be a string, not a number"},
	})
}

func TestFormatDetection(t *testing.T) {
	// A byte order mark and leading space do not hide JSON.
	j, _, err := Load(append([]byte("\uFEFF \n"), baseInspect...))
	if err != nil || j.JobID != "job-1" {
		t.Fatalf("BOM JSON: %v", err)
	}
	// YAML flow style that does not start with '{' is YAML.
	y := `version: "1.0"
job_id: job-1
created_at: "2026-01-30T10:00:00Z"
kind: VMOperation
operation: guestkit.inspect
payload: {type: guestkit.inspect.v1, data: {image: {path: /vms/a.qcow2, format: qcow2, read_only: yes}}}
`
	jy, _, err := Load([]byte(y))
	if err != nil {
		t.Fatalf("YAML: %v", err)
	}
	jj, _, _ := Load([]byte(baseInspect))
	if jy.Digest() != jj.Digest() {
		t.Errorf("same job in YAML and JSON: digests %s and %s", jy.Digest(), jj.Digest())
	}
	// A leading document marker and comments are fine.
	if _, _, err := Load([]byte("# job\n---\n" + y + "...\n")); err != nil {
		t.Errorf("explicit document: %v", err)
	}
}

func TestDigest(t *testing.T) {
	a, _, _ := Parse([]byte(`{"job_id": "a", "n": 1.0, "x": {"b": 1, "a": [1, 2]}}`))
	b, _, _ := Parse([]byte("{\n  \"x\": {\"a\": [1, 2], \"b\": 1e0},\n  \"n\": 1, \"job_id\": \"a\"\n}"))
	c, _, _ := Parse([]byte(`{"job_id": "a", "n": 1, "x": {"b": 1, "a": [2, 1]}}`))
	if a.Digest() != b.Digest() {
		t.Errorf("same content, different digests: %s %s", a.Digest(), b.Digest())
	}
	if a.Digest() == c.Digest() {
		t.Error("different content, same digest")
	}
	// sha256 of {"job_id":"a","n":1,"x":{"a":[1,2],"b":1}}
	if want := "sha256:471fb5fd1643ae348f83c03f8f2e69596f492ca37bf5ced76e0841b597d5d89d"; a.Digest() != want {
		t.Errorf("digest %s, want %s", a.Digest(), want)
	}
}
