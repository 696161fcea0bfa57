package runner

import (
	"testing"

	"guestkit.io/batch/internal/inspect"
)

// The rules see a package's version as its database writes it, whether the
// list comes from libguestfs (three fields) or from dpkg/apk directly.
func TestPackageVersion(t *testing.T) {
	for _, c := range []struct {
		app  inspect.Application
		want string
	}{
		{inspect.Application{Version: "3.0.9", Release: "1", Epoch: 1}, "1:3.0.9-1"},
		{inspect.Application{Version: "0.17+2.4", Release: "2"}, "0.17+2.4-2"},
		{inspect.Application{Version: "20230311"}, "20230311"},
		{inspect.Application{Version: "1.46.0", Release: "8.el9_4", Epoch: 1}, "1:1.46.0-8.el9_4"},
	} {
		if got := packageVersion(c.app); got != c.want {
			t.Errorf("%+v: %q, want %q", c.app, got, c.want)
		}
	}
}
