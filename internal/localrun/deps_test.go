package localrun_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The embedded default (a folder bucket, the local executor) is built from
// these packages; none of them may link Kubernetes' client libraries.
func TestLocalPathLinksNoKubernetes(t *testing.T) {
	pkgs := []string{
		"guestkit.io/batch/internal/localrun",
		"guestkit.io/batch/internal/controller",
		"guestkit.io/batch/internal/intake",
		"guestkit.io/batch/internal/sweep",
		"guestkit.io/batch/internal/spec",
		"guestkit.io/batch/internal/store",
		"guestkit.io/batch/internal/result",
	}
	out, err := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 || !strings.Contains(string(out), "guestkit.io/batch/internal/store\n") {
		t.Fatalf("go list found only %d packages:\n%s", len(deps), out)
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "k8s.io/") {
			t.Errorf("the local path links %s", d)
		}
	}
}
