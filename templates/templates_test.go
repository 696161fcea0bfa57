package templates

import (
	"bytes"
	"testing"
	"text/template"
)

func TestJobTemplate(t *testing.T) {
	a := JobTemplate()
	if !bytes.Contains(a, []byte("kind: Job")) || !bytes.Contains(a, []byte("- name: runner")) {
		t.Fatalf("JobTemplate is not the Job template:\n%s", a)
	}
	a[0] = 'X'
	if b := JobTemplate(); b[0] == 'X' {
		t.Errorf("JobTemplate returns the embedded bytes, not a copy")
	}
	// It parses (internal/kubejob renders and checks it).
	if _, err := template.New(JobTemplateName).Funcs(template.FuncMap{"json": func(any) string { return "" }}).Parse(string(JobTemplate())); err != nil {
		t.Error(err)
	}
}
