// Package prereq decides what a test does when something it needs is
// missing on this machine (a binary, an image, root). It imports nothing
// heavy, so that the parsers' fuzz tests, which share a test binary with
// such tests, do not link Kubernetes and MinIO (testenv) and run tens of
// times slower for it.
package prereq

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// Missing ends a test that cannot run here: it skips, except under
// CI=true, where it fails, since CI must never pass by skipping.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
