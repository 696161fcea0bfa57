package main

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
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
	bytes    atomic.Int64
	requests atomic.Int64
}

func startCounter(target string, latency time.Duration) (*counter, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &counter{addr: l.Addr().String(), latency: latency}
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
			rp.ServeHTTP(&countingWriter{ResponseWriter: w, n: &c.bytes}, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go c.srv.Serve(l)
	return c, nil
}

func (c *counter) reset() { c.bytes.Store(0); c.requests.Store(0) }

func (c *counter) close() { c.srv.Close() }

// countingWriter counts the response body bytes written to the client.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
