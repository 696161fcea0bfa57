package inspect

import "testing"

// Consumers see a package's version as its database writes it, whether the
// list comes from libguestfs (three fields) or from dpkg/apk directly.
func TestPackageVersion(t *testing.T) {
	for _, c := range []struct {
		format string
		app    Application
		want   string
	}{
		{"deb", Application{Version: "3.0.9", Release: "1", Epoch: 1}, "1:3.0.9-1"},
		{"deb", Application{Version: "0.17+2.4", Release: "2"}, "0.17+2.4-2"},
		{"deb", Application{Version: "20230311"}, "20230311"},
		// libguestfs splits 1.2-3-4 at the first hyphen; dpkg's revision is 4.
		{"deb", Application{Version: "1.2", Release: "3-4"}, "1.2-3-4"},
		{"rpm", Application{Version: "1.46.0", Release: "8.el9_4", Epoch: 1}, "1:1.46.0-8.el9_4"},
		// libguestfs drops the r of apk's -rN.
		{"apk", Application{Version: "1.36.1", Release: "15"}, "1.36.1-r15"},
		{"apk", Application{Version: "3.1_p16"}, "3.1_p16"},
		{"pacman", Application{Version: "2.39", Release: "1", Epoch: 1}, "1:2.39-1"},
	} {
		if got := c.app.PackageVersion(c.format); got != c.want {
			t.Errorf("%+v: %q, want %q", c.app, got, c.want)
		}
	}
}
