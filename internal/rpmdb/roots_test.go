package rpmdb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGuestRoots compares Read with rpm -qa on the databases of the guest
// roots listed in $GUESTKIT_RPMDB_ROOTS (colon-separated): a way to check
// real-world databases that the repository does not carry.
func TestGuestRoots(t *testing.T) {
	roots := os.Getenv("GUESTKIT_RPMDB_ROOTS")
	if roots == "" {
		t.Skip("GUESTKIT_RPMDB_ROOTS not set")
	}
	needTools(t, "rpm")
	for _, root := range strings.Split(roots, ":") {
		t.Run(filepath.Base(root), func(t *testing.T) {
			loc, err := Locate(os.DirFS(root))
			if err != nil {
				t.Fatal(err)
			}
			backend := loc.Backend
			if backend == BackendBDB {
				backend = "bdb_ro"
			}
			if backend == BackendNDB {
				t.Skip("Debian's rpm has no ndb backend")
			}
			want, keys := rpmQuery(t, filepath.Join(root, loc.Dir), backend)
			t.Logf("%s: %d packages", loc.File(), len(want))
			checkAgainstRPM(t, root, backend, want, keys)
		})
	}
}
