package store

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPutURINoBody: a failed PUT names the status, never the server's body
// nor its reason phrase (both the server's text), nor the signature.
func TestPutURINoBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte("<Error>internal-hostname.corp secret-token</Error>"))
	}))
	defer srv.Close()
	err := PutURI(t.Context(), srv.URL+"/r.json?X-Amz-Signature=s3cr3t", []byte("{}"))
	want := "put " + srv.URL + "/r.json?<redacted>: HTTP 403 Forbidden"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

// TestHTTPErrorsRedacted: http.Client's own errors (*url.Error) hold the
// whole URL; the store's name it redacted.
func TestHTTPErrorsRedacted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: connection refused
	uri := "http://" + addr + "/o?X-Amz-Signature=s3cr3t"
	_, getErr := GetURI(t.Context(), uri, 10)
	putErr := PutURI(t.Context(), uri, []byte("x"))
	_, dlErr := DownloadURI(t.Context(), uri, filepath.Join(t.TempDir(), "d"))
	for _, err := range []error{getErr, putErr, dlErr} {
		if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "/o?<redacted>") {
			t.Errorf("err = %v", err)
		}
	}
}

// TestURIsClient: URIs sends http(s) requests through its client.
func TestURIsClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	var calls atomic.Int32
	c := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
	u := URIs{HTTP: c}
	if b, err := u.Get(t.Context(), srv.URL+"/a", 10); err != nil || string(b) != "ok" {
		t.Fatalf("Get = %q, %v", b, err)
	}
	if err := u.Put(t.Context(), srv.URL+"/b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if n, err := u.Download(t.Context(), srv.URL+"/c", filepath.Join(t.TempDir(), "c")); err != nil || n != 2 {
		t.Fatalf("Download = %d, %v", n, err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d requests through the client, want 3", calls.Load())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestURIsStall: a body that stops sending fails after Stall, not never.
func TestURIsStall(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("some"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	_, err := URIs{Stall: 200 * time.Millisecond}.Download(t.Context(), srv.URL+"/slow", filepath.Join(t.TempDir(), "d"))
	if err == nil || !strings.Contains(err.Error(), "no data for 200ms") || errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("gave up after %s", d)
	}
}

// MaxBytes refuses an object over the bound, whether its server announces
// the length or streams it.
func TestFetchMaxBytes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length
		}
		_, _ = w.Write(make([]byte, 1000))
	}))
	defer srv.Close()
	u := URIs{MaxBytes: 999}
	for _, p := range []string{"/sized", "/chunked"} {
		dst := filepath.Join(t.TempDir(), "d")
		if _, err := u.Fetch(t.Context(), srv.URL+p, dst); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v, want ErrTooLarge", p, err)
		}
		if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a partial image is left at %s", p, dst)
		}
	}
	if o, err := (URIs{MaxBytes: 1000}).Fetch(t.Context(), srv.URL+"/sized", filepath.Join(t.TempDir(), "d")); err != nil || o.Size != 1000 {
		t.Errorf("at the bound: %+v, %v", o, err)
	}
}
