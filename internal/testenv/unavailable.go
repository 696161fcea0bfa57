package testenv

import (
	"testing"

	"guestkit.io/batch/internal/prereq"
)

// Unavailable is prereq.Missing, for tests that use testenv anyway.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	prereq.Missing(t, format, args...)
}
