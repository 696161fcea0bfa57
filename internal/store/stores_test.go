package store

import "testing"

func TestStoresResolve(t *testing.T) {
	s := &Stores{Home: "s3://guestkit/tenant-a?endpoint=http://minio.guestkit.svc:9000&path-style=true"}
	for in, want := range map[string]string{
		// Home's bucket without settings: Home's settings, at the root.
		"s3://guestkit": "s3://guestkit?endpoint=http://minio.guestkit.svc:9000&path-style=true",
		// Settings of its own win.
		"s3://guestkit?endpoint=http://other:9000": "s3://guestkit?endpoint=http://other:9000",
		// Another bucket, another scheme, a folder: unchanged.
		"s3://elsewhere":       "s3://elsewhere",
		"minio://guestkit":     "minio://guestkit",
		"file:///srv/guestkit": "file:///srv/guestkit",
	} {
		if got := s.Resolve(in); got != want {
			t.Errorf("Resolve(%q) = %q, want %q", in, got, want)
		}
	}
	if got := (&Stores{}).Resolve("s3://guestkit"); got != "s3://guestkit" {
		t.Errorf("no Home: Resolve = %q", got)
	}
	if got := (&Stores{Home: "s3://guestkit"}).Resolve("s3://guestkit"); got != "s3://guestkit" {
		t.Errorf("Home without settings: Resolve = %q", got)
	}
}
