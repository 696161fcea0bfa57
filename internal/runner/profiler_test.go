package runner

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/spec"
)

// TestProfilerSaysWhenNoRuleApplies: a requested profile without a rule
// for the root's OS (compliance on Windows) is logged with its root, and
// its score says so; a profile with Windows rules is not.
func TestProfilerSaysWhenNoRuleApplies(t *testing.T) {
	job := &spec.Job{Operation: spec.OpProfile, Payload: spec.Payload{Type: spec.OpProfile + ".v1", Data: &spec.Data{Profiles: []string{"security", "compliance"}}}}
	p, err := newProfiler(job)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := logrus.New()
	log.SetOutput(&buf)
	log.SetFormatter(&logrus.JSONFormatter{})
	p.log = log
	root := &inspect.OS{Root: "/dev/sda2", Type: "windows", Distro: "windows"}
	if err := p.visit(context.Background(), root, fstest.MapFS{"Windows/System32/cmd.exe": {Data: []byte("MZ")}}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{`"msg":"no rule of profile compliance applies to windows"`, `"profile":"compliance"`, `"root":"/dev/sda2"`, `"applicable":0`, `"level":"warning"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"profile":"security"`) {
		t.Errorf("security has Windows rules, yet was logged:\n%s", out)
	}
	sc := p.reports[0].Profiles
	if len(sc) != 2 || sc[1].Note == "" || sc[1].Applicable != 0 || sc[0].Applicable == 0 {
		t.Errorf("scores %+v", sc)
	}
}
