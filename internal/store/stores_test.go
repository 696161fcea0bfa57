package store

import (
	"strings"
	"testing"
)

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

func TestStoresResolveURI(t *testing.T) {
	s := &Stores{Home: "s3://guestkit/tenant-a?endpoint=http://127.0.0.1:9000&path-style=true"}
	for in, want := range map[string]string{
		"s3://guestkit/tenant-a/jobs/a%20b.json": "s3://guestkit/tenant-a/jobs/a%20b.json?endpoint=http://127.0.0.1:9000&path-style=true",
		"s3://guestkit/images/x.qcow2":           "s3://guestkit/images/x.qcow2?endpoint=http://127.0.0.1:9000&path-style=true",
		"s3://guestkit/x?endpoint=http://other":  "s3://guestkit/x?endpoint=http://other",
		"s3://elsewhere/x":                       "s3://elsewhere/x",
		"https://host/x?X-Amz-Signature=1":       "https://host/x?X-Amz-Signature=1",
		"/srv/images/x.qcow2":                    "/srv/images/x.qcow2",
	} {
		if got := s.ResolveURI(in); got != want {
			t.Errorf("ResolveURI(%q) = %q, want %q", in, got, want)
		}
		// What the runner does with it: the bucket URL keeps the settings.
		if bucket, _, err := SplitURI(s.ResolveURI(in)); err == nil && strings.HasPrefix(in, "s3://guestkit/") &&
			!strings.Contains(in, "other") && !strings.Contains(bucket, "endpoint=http://127.0.0.1:9000") {
			t.Errorf("SplitURI(ResolveURI(%q)) bucket %q lost the endpoint", in, bucket)
		}
	}
}
