package store

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"guestkit.io/batch/internal/redact"
)

// A backend is one kind of bucket, named by its URL scheme. Each backend's
// file registers itself in an init function; adding a backend is that one
// file plus its tests.
type backend struct {
	scheme string
	// remote: a bucket behind a network service, named scheme://BUCKET/KEY,
	// that specs may name images in and that settings (?endpoint=...)
	// apply to. The file backend is not: file:// URIs are host paths.
	remote bool
	// open opens the bucket of a parsed bucket URL.
	open func(ctx context.Context, u *url.URL) (Store, error)
	// split returns the bucket URL and key of a parsed object URI.
	split func(uri string, u *url.URL) (bucketURL, key string, err error)
}

// asStore keeps a failed open's nil pointer from becoming a non-nil Store.
func asStore[S Store](s S, err error) (Store, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}

// backends is written only by init functions, before any goroutine runs.
var backends = map[string]backend{}

func register(b backend) {
	if _, dup := backends[b.scheme]; dup {
		panic("store: backend " + b.scheme + " registered twice")
	}
	backends[b.scheme] = b
}

// IsBucketScheme says whether scheme names a remote bucket backend
// (s3, minio, ...): scheme://BUCKET/KEY.
func IsBucketScheme(scheme string) bool {
	return backends[scheme].remote
}

// IsBucketURI says whether uri names an object in a remote bucket.
func IsBucketURI(uri string) bool {
	scheme, _, ok := strings.Cut(uri, "://")
	return ok && IsBucketScheme(scheme)
}

// BucketSchemes lists the remote bucket schemes, sorted.
func BucketSchemes() []string {
	var s []string
	for name, b := range backends {
		if b.remote {
			s = append(s, name)
		}
	}
	slices.Sort(s)
	return s
}

// schemes lists every backend's scheme, sorted, for error messages.
func schemes() string {
	s := make([]string, 0, len(backends))
	for name := range backends {
		s = append(s, name)
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}

// splitRemote is the split of remote backends: the host is the bucket, the
// path the key, and the query the bucket's settings.
func splitRemote(uri string, u *url.URL) (string, string, error) {
	key := strings.TrimPrefix(u.Path, "/")
	b := url.URL{Scheme: u.Scheme, Host: u.Host, RawQuery: u.RawQuery}
	if key == "" {
		return "", "", fmt.Errorf("object URI %q: no key", redact.Printable(uri))
	}
	return b.String(), key, ValidateKey(key)
}
