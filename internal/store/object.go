package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"guestkit.io/batch/internal/redact"
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
			return "", "", fmt.Errorf("object URI %q: %w", redact.Printable(uri), err)
		}
	} else {
		abs, err := filepath.Abs(uri)
		if err != nil {
			return "", "", fmt.Errorf("object URI %q: %w", redact.Printable(uri), err)
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
		return "", "", fmt.Errorf("object URI %q: unsupported scheme %q", redact.Printable(uri), u.Scheme)
	}
	return b.split(uri, u)
}

func isHTTP(uri string) bool {
	return strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://")
}

// URIs reads and writes object URIs. HTTP serves http(s) URIs; nil is a
// client for the operator's own URLs (presigned ones): bounded timeouts,
// redirects followed, the proxy variables honoured. A URL that a spec
// names needs a guarded client (netguard.Guard.HTTPClient) instead.
type URIs struct {
	HTTP *http.Client
	// Stall fails an http(s) body that sends nothing for this long
	// (0: DefaultStall): a server must not hold a download open forever.
	Stall time.Duration
	// MaxBytes bounds what Download and Fetch copy (0: no bound): an
	// object larger than the job could ever use fails with ErrTooLarge.
	MaxBytes int64
}

// DefaultStall is URIs.Stall's default.
const DefaultStall = time.Minute

// defaultHTTP has no overall timeout: an image download takes as long as
// its job allows; Stall bounds a silent body.
var defaultHTTP = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	ForceAttemptHTTP2:     true,
	TLSHandshakeTimeout:   10 * time.Second,
	ResponseHeaderTimeout: time.Minute,
	ExpectContinueTimeout: time.Second,
	IdleConnTimeout:       90 * time.Second,
	MaxIdleConns:          100,
}}

func (u URIs) client() *http.Client {
	if u.HTTP != nil {
		return u.HTTP
	}
	return defaultHTTP
}

// GetURI reads one object, refusing more than max bytes.
func GetURI(ctx context.Context, uri string, max int64) ([]byte, error) {
	return URIs{}.Get(ctx, uri, max)
}

// OpenURI streams one object and returns its size (-1 when unknown).
func OpenURI(ctx context.Context, uri string) (io.ReadCloser, int64, error) {
	return URIs{}.Open(ctx, uri)
}

// PutURI writes one object, replacing it.
func PutURI(ctx context.Context, uri string, data []byte) error {
	return URIs{}.Put(ctx, uri, data)
}

// DownloadURI copies one object to a local file and returns its size.
func DownloadURI(ctx context.Context, uri, dst string) (int64, error) {
	return URIs{}.Download(ctx, uri, dst)
}

// Get reads one object, refusing more than max bytes.
func (u URIs) Get(ctx context.Context, uri string, max int64) ([]byte, error) {
	r, size, err := u.Open(ctx, uri)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if size > max {
		return nil, fmt.Errorf("get %s: %d bytes > %d: %w", redact.URL(uri), size, max, ErrTooLarge)
	}
	return readBounded(r, redact.URL(uri), max)
}

// Open streams one object and returns its size (-1 when unknown).
func (u URIs) Open(ctx context.Context, uri string) (io.ReadCloser, int64, error) {
	if isHTTP(uri) {
		return u.openHTTP(ctx, uri)
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

func (u URIs) openHTTP(ctx context.Context, uri string) (io.ReadCloser, int64, error) {
	r, resp, err := u.getHTTP(ctx, uri)
	if err != nil {
		return nil, 0, err
	}
	return r, resp.ContentLength, nil
}

// getHTTP GETs uri: the body, bounded by Stall, and the response's headers.
func (u URIs) getHTTP(ctx context.Context, uri string) (io.ReadCloser, *http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("get %s: %w", redact.URL(uri), bare(err))
	}
	resp, err := u.client().Do(req)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("get %s: %w", redact.URL(uri), bare(err))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		if resp.StatusCode == http.StatusNotFound {
			return nil, nil, fmt.Errorf("get %s: %w", redact.URL(uri), ErrNotFound)
		}
		return nil, nil, fmt.Errorf("get %s: %s", redact.URL(uri), status(resp))
	}
	stall := u.Stall
	if stall <= 0 {
		stall = DefaultStall
	}
	return &stallBody{body: resp.Body, cancel: cancel, stall: stall}, resp, nil
}

// stallBody cancels its request when a Read waits longer than stall.
type stallBody struct {
	body    io.ReadCloser
	cancel  context.CancelFunc
	stall   time.Duration
	stalled atomic.Bool
}

func (b *stallBody) Read(p []byte) (int, error) {
	t := time.AfterFunc(b.stall, func() { b.stalled.Store(true); b.cancel() })
	n, err := b.body.Read(p)
	t.Stop()
	if err != nil && b.stalled.Load() {
		err = fmt.Errorf("no data for %s", b.stall)
	}
	return n, err
}

func (b *stallBody) Close() error {
	err := b.body.Close()
	b.cancel()
	return err
}

// Put writes one object, replacing it.
func (u URIs) Put(ctx context.Context, uri string, data []byte) error {
	if isHTTP(uri) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, uri, bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("put %s: %w", redact.URL(uri), bare(err))
		}
		req.ContentLength = int64(len(data))
		resp, err := u.client().Do(req)
		if err != nil {
			return fmt.Errorf("put %s: %w", redact.URL(uri), bare(err))
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			// The body is the server's: it is not echoed into logs or
			// results.
			return fmt.Errorf("put %s: %s", redact.URL(uri), status(resp))
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

// status names a response's status by its code: the reason phrase is the
// server's text, not echoed either.
func status(resp *http.Response) string {
	return strings.TrimSpace(fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode)))
}

// bare unwraps http.Client's *url.Error, whose message holds the whole
// URL, signature included: callers name the URL redacted instead.
func bare(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Download copies one object to a local file and returns its size. The
// copy goes to a temporary file renamed over dst once complete, so a failed
// download never leaves a truncated disk image at dst.
func (u URIs) Download(ctx context.Context, uri, dst string) (int64, error) {
	o, err := u.Fetch(ctx, uri, dst)
	return o.Size, err
}

// Fetch is Download, and says which object it copied: its size and, when
// the server gives one, its ETag (a bucket's, or an http(s) server's), so
// that a result can name the very object it read.
func (u URIs) Fetch(ctx context.Context, uri, dst string) (Object, error) {
	var o Object
	var r io.ReadCloser
	var size int64
	var err error
	if isHTTP(uri) {
		var resp *http.Response
		if r, resp, err = u.getHTTP(ctx, uri); err == nil {
			size, o.ETag = resp.ContentLength, strings.Trim(resp.Header.Get("ETag"), `"`)
		}
	} else {
		r, size, o, err = openObject(ctx, uri)
	}
	if err != nil {
		return o, err
	}
	defer r.Close()
	if u.MaxBytes > 0 && size > u.MaxBytes {
		return o, fmt.Errorf("download %s: %d bytes, over %d: %w", redact.URL(uri), size, u.MaxBytes, ErrTooLarge)
	}
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part-*")
	if err != nil {
		return o, fmt.Errorf("download %s: %w", redact.URL(uri), err)
	}
	src := r
	if u.MaxBytes > 0 {
		src = io.NopCloser(io.LimitReader(r, u.MaxBytes+1))
	}
	n, err := io.Copy(f, src)
	switch {
	case err == nil && u.MaxBytes > 0 && n > u.MaxBytes:
		err = fmt.Errorf("more than %d bytes: %w", u.MaxBytes, ErrTooLarge)
	case err == nil && size >= 0 && n != size:
		err = fmt.Errorf("got %d of %d bytes", n, size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	o.Size = n
	if err != nil {
		os.Remove(f.Name())
		return o, fmt.Errorf("download %s to %s: %w", redact.URL(uri), dst, err)
	}
	return o, nil
}

// openObject opens a bucket object after a Stat, for its ETag.
func openObject(ctx context.Context, uri string) (io.ReadCloser, int64, Object, error) {
	bucket, key, err := SplitURI(uri)
	if err != nil {
		return nil, 0, Object{}, err
	}
	st, err := Open(ctx, bucket)
	if err != nil {
		return nil, 0, Object{}, err
	}
	o, err := st.Stat(ctx, key)
	if err != nil {
		return nil, 0, o, err
	}
	r, size, err := st.Open(ctx, key)
	return r, size, o, err
}
