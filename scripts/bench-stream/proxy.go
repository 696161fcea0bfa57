package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// counter is a reverse proxy in front of MinIO that counts what a run
// fetched at the HTTP level: the ground truth for every reader (the runner's
// download and stream paths, nbdkit's curl plugin), whatever the reader
// itself reports. Presigned URLs are signed for the proxy's address, and the
// proxy passes the Host header through, so MinIO checks the signature
// against the host the client used. Runs are sequential: reset before each.
type counter struct {
	srv      *http.Server
	addr     string
	latency  time.Duration
	rate     float64 // bytes per second of one response; 0: unlimited
	bytes    atomic.Int64
	requests atomic.Int64
	// headFromGet answers a HEAD from a one-byte ranged GET, for
	// nbdkit's curl plugin (1.32), which sizes the object with a HEAD:
	// a presigned GET URL refuses it, the signature covering the method.
	// Never on for the runner, whose HEADs must fail as they would
	// against a real bucket.
	headFromGet atomic.Bool
	target      *url.URL
}

func startCounter(target string, latency time.Duration, rate float64) (*counter, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &counter{addr: l.Addr().String(), latency: latency, rate: rate, target: u}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // the signed host
		},
		// Bodies stream through: a whole-object GET is never buffered.
		FlushInterval: -1,
	}
	c.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c.requests.Add(1)
			if c.latency > 0 {
				// An emulated remote bucket: one round trip per request.
				time.Sleep(c.latency)
			}
			if r.Method == http.MethodHead && c.headFromGet.Load() {
				c.headAsGet(w, r)
				return
			}
			rp.ServeHTTP(&countingWriter{ResponseWriter: w, n: &c.bytes, rate: c.rate, start: time.Now()}, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go c.srv.Serve(l)
	return c, nil
}

// headAsGet answers a HEAD with the object's size from a GET of its first
// byte (counted as one request and one byte).
func (c *counter) headAsGet(w http.ResponseWriter, r *http.Request) {
	u := *c.target
	u.Path, u.RawQuery = r.URL.Path, r.URL.RawQuery
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Host = r.Host
	req.Header.Set("Range", "bytes=0-0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	c.bytes.Add(n)
	cr := resp.Header.Get("Content-Range") // bytes 0-0/SIZE
	i := strings.LastIndexByte(cr, '/')
	if resp.StatusCode != http.StatusPartialContent || i < 0 {
		w.WriteHeader(resp.StatusCode)
		return
	}
	for _, h := range []string{"ETag", "Last-Modified", "Content-Type"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("Content-Length", cr[i+1:])
	w.WriteHeader(http.StatusOK)
}

func (c *counter) reset() { c.bytes.Store(0); c.requests.Store(0) }

func (c *counter) close() { c.srv.Close() }

// countingWriter counts the response body bytes written to the client,
// paced to rate (an emulated per-connection throughput of a remote bucket).
type countingWriter struct {
	http.ResponseWriter
	n       *atomic.Int64
	rate    float64
	start   time.Time
	written int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	w.written += int64(n)
	if w.rate > 0 {
		due := time.Duration(float64(w.written) / w.rate * float64(time.Second))
		if d := due - time.Since(w.start); d > 0 {
			time.Sleep(d)
		}
	}
	return n, err
}

func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
