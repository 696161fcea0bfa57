// Package store reads and writes the objects of a bucket: job specs,
// results, disk images and sweep reports. Backends are picked by URL
// scheme; each registers itself (backend.go): s3:// (aws-sdk-go-v2),
// minio:// (minio-go) and file:// (a local folder, the embedded default).
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"guestkit.io/batch/internal/redact"
)

// Object is one listed object.
type Object struct {
	Key          string
	Size         int64
	ETag         string // unquoted; empty for the file store
	LastModified time.Time
	// VersionID is the object's version in a versioned bucket (Stat only;
	// empty for the file store and unversioned buckets).
	VersionID string
	// SHA256 is the lower-case hex sha256 of the whole object as the store
	// itself attests it (Stat only): an S3 additional checksum of type
	// FULL_OBJECT. Empty when the store attests none, including the
	// COMPOSITE checksum of a multipart upload (a hash of part hashes, not
	// the file's sha256) and every file-store object (hash the file).
	SHA256 string
}

// Store is a bucket, optionally under a key prefix. Keys are relative to
// that prefix and validated by ValidateKey.
type Store interface {
	// List calls fn for every object under prefix, page by page, in key
	// order. An error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(Object) error) error
	// Get reads an object, refusing objects larger than max bytes.
	Get(ctx context.Context, key string, max int64) ([]byte, error)
	// Open streams an object (disk images).
	Open(ctx context.Context, key string) (io.ReadCloser, int64, error)
	// Put writes an object, replacing it.
	Put(ctx context.Context, key string, data []byte) error
	// Create writes an object only if it does not exist (If-None-Match: *);
	// ErrExists otherwise.
	Create(ctx context.Context, key string, data []byte) error
	// Stat returns an object's metadata; ErrNotFound if absent.
	Stat(ctx context.Context, key string) (Object, error)
	// Delete removes an object; absent objects are not an error.
	Delete(ctx context.Context, key string) error
	// PresignGet and PresignPut return URLs that grant one operation on
	// key for ttl without credentials.
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
	PresignPut(ctx context.Context, key string, ttl time.Duration) (string, error)
	// URI is the canonical URI of key ("s3://bucket/prefix/key").
	URI(key string) string
}

var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrExists: Create found the object already there.
	ErrExists = errors.New("object already exists")
	// ErrTooLarge: the object exceeds the read bound.
	ErrTooLarge = errors.New("object exceeds size limit")
	// ErrInvalidKey: the key is unsafe or malformed.
	ErrInvalidKey = errors.New("invalid object key")
)

// MaxKeyLen is S3's key length limit.
const MaxKeyLen = 1024

// ValidateKey refuses keys that could escape a prefix or a folder, or that
// carry control characters: keys come from strangers' listings.
func ValidateKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, redact.Printable(key), why)
	}
	switch {
	case key == "":
		return bad("empty")
	case len(key) > MaxKeyLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxKeyLen))
	case !utf8.ValidString(key):
		return bad("not UTF-8")
	case strings.HasPrefix(key, "/"):
		return bad("starts with /")
	case strings.Contains(key, "\\"):
		return bad("contains a backslash")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return bad("contains a control character")
		}
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "..", ".":
			return bad("contains a . or .. segment")
		case "":
			// "a//b", and "a/": a folder, which a file store cannot hold
			// as an object.
			return bad("contains an empty segment")
		}
	}
	return nil
}

// Open returns the Store for a bucket URL:
//
//	s3://BUCKET[/PREFIX][?endpoint=URL&region=R&path-style=true]
//	minio://BUCKET[/PREFIX][?endpoint=HOST:PORT&secure=true&region=R]
//	file:///ABS/PATH   (or a plain path; no host, query or fragment)
//
// In URLs and object URIs, %, ? and # in a path are escaped (%25, %3F, %23).
// Credentials come from the environment: the AWS default chain for s3://
// (including IRSA web identity), and MINIO_ROOT_USER/MINIO_ROOT_PASSWORD,
// MINIO_ACCESS_KEY/MINIO_SECRET_KEY or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
// for minio://.
func Open(ctx context.Context, bucketURL string) (Store, error) {
	u, err := parseURL(bucketURL)
	if err != nil {
		return nil, err
	}
	b, ok := backends[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("bucket URL %q: unsupported scheme %q (want %s)", bucketURL, u.Scheme, schemes())
	}
	return b.open(ctx, u)
}

func parseURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("empty bucket URL")
	}
	if !strings.Contains(s, "://") {
		return &url.URL{Scheme: "file", Path: s}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("bucket URL %q: %w", s, err)
	}
	return u, nil
}

// checkFileURL refuses what would silently name another folder: a host
// ("file://dir/x" is /x on host dir, not ./dir/x), or a query or fragment
// (an unescaped ? or # in a path).
func checkFileURL(u *url.URL) error {
	switch {
	case u.Host != "" && u.Host != "localhost":
		return fmt.Errorf("file URL %q: host %q: want file:///ABS/PATH", redact.Printable(u.String()), u.Host)
	case u.Opaque != "":
		return fmt.Errorf("file URL %q: relative: want file:///ABS/PATH or a plain path", redact.Printable(u.String()))
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("file URL %q: has a query or fragment (escape ? as %%3F, # as %%23)", redact.Printable(u.String()))
	}
	return nil
}

// escapePath escapes in a URI's path what url.Parse would take for an
// escape, a query or a fragment (%, ?, #) or refuse (control bytes), so
// that every valid key survives URI and SplitURI. Spaces and non-ASCII stay
// readable.
func escapePath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '%' || c == '?' || c == '#' || c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// joinKey puts a key under a store's prefix.
func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return strings.TrimSuffix(prefix, "/") + "/" + key
}

// readBounded reads at most max bytes and fails with ErrTooLarge past it.
func readBounded(r io.Reader, key string, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("read %s: more than %d bytes: %w", key, max, ErrTooLarge)
	}
	return data, nil
}

// bucketSeen remembers that a bucket existed, so that a Stat's 404 (which
// cannot tell a missing bucket from a missing object) does not cost a
// bucket check every time: a dispatcher stats thousands of absent results.
type bucketSeen struct{ at atomic.Int64 }

// bucketMemo is how long a seen bucket is trusted to exist.
const bucketMemo = time.Minute

func (b *bucketSeen) recent() bool {
	t := b.at.Load()
	return t != 0 && time.Since(time.Unix(0, t)) < bucketMemo
}

func (b *bucketSeen) see() { b.at.Store(time.Now().UnixNano()) }
