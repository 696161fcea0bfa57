package testenv

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// Unavailable ends a test that cannot run on this machine (a binary, an
// image or root is missing): it skips, except under CI=true, where it
// fails, since CI must never pass by skipping.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
