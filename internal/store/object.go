package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// An object URI names one object: a local path, file:///path,
// s3://bucket/key, minio://bucket/key, or an http(s) URL such as a
// presigned one. Runners get such URIs for the spec, the image and the
// result, so they need no bucket credentials when URLs are presigned.

// SplitURI returns the bucket URL and the key of an object URI. http(s)
// URIs have no bucket: they are returned whole, with an empty key.
func SplitURI(uri string) (bucketURL, key string, err error) {
	var u *url.URL
	if strings.Contains(uri, "://") {
		var err error
		if u, err = url.Parse(uri); err != nil {
			return "", "", fmt.Errorf("object URI %q: %w", printable(uri), err)
		}
	} else {
		abs, err := filepath.Abs(uri)
		if err != nil {
			return "", "", fmt.Errorf("object URI %q: %w", printable(uri), err)
		}
		if strings.HasSuffix(uri, "/") {
			abs += "/" // Abs cleans it away; it marks a folder, not an object
		}
		u = &url.URL{Scheme: "file", Path: abs}
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		return uri, "", nil
	}
	b, ok := backends[u.Scheme]
	if !ok {
		return "", "", fmt.Errorf("object URI %q: unsupported scheme %q", printable(uri), u.Scheme)
	}
	return b.split(uri, u)
}

func isHTTP(uri string) bool {
	return strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://")
}

// GetURI reads one object, refusing more than max bytes.
func GetURI(ctx context.Context, uri string, max int64) ([]byte, error) {
	r, size, err := OpenURI(ctx, uri)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if size > max {
		return nil, fmt.Errorf("get %s: %d bytes > %d: %w", Redact(uri), size, max, ErrTooLarge)
	}
	return readBounded(r, Redact(uri), max)
}

// OpenURI streams one object and returns its size (-1 when unknown).
func OpenURI(ctx context.Context, uri string) (io.ReadCloser, int64, error) {
	if isHTTP(uri) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
		if err != nil {
			return nil, 0, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, 0, fmt.Errorf("get %s: %w", Redact(uri), err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				return nil, 0, fmt.Errorf("get %s: %w", Redact(uri), ErrNotFound)
			}
			return nil, 0, fmt.Errorf("get %s: HTTP %s", Redact(uri), resp.Status)
		}
		return resp.Body, resp.ContentLength, nil
	}
	bucket, key, err := SplitURI(uri)
	if err != nil {
		return nil, 0, err
	}
	st, err := Open(ctx, bucket)
	if err != nil {
		return nil, 0, err
	}
	return st.Open(ctx, key)
}

// PutURI writes one object, replacing it.
func PutURI(ctx context.Context, uri string, data []byte) error {
	if isHTTP(uri) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, uri, bytes.NewReader(data))
		if err != nil {
			return err
		}
		req.ContentLength = int64(len(data))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("put %s: %w", Redact(uri), err)
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return fmt.Errorf("put %s: HTTP %s: %s", Redact(uri), resp.Status, bytes.TrimSpace(msg))
		}
		return nil
	}
	bucket, key, err := SplitURI(uri)
	if err != nil {
		return err
	}
	st, err := Open(ctx, bucket)
	if err != nil {
		return err
	}
	return st.Put(ctx, key, data)
}

// DownloadURI copies one object to a local file and returns its size. The
// copy goes to a temporary file renamed over dst once complete, so a failed
// download never leaves a truncated disk image at dst.
func DownloadURI(ctx context.Context, uri, dst string) (int64, error) {
	r, size, err := OpenURI(ctx, uri)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part-*")
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", Redact(uri), err)
	}
	n, err := io.Copy(f, r)
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("got %d of %d bytes", n, size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		os.Remove(f.Name())
		return n, fmt.Errorf("download %s to %s: %w", Redact(uri), dst, err)
	}
	return n, nil
}

// Redact drops the query of a URL: presigned signatures must not reach logs
// or results.
func Redact(uri string) string {
	if i := strings.IndexByte(uri, '?'); i >= 0 && isHTTP(uri) {
		return uri[:i] + "?<redacted>"
	}
	return printable(uri)
}
