// Package metrics holds the dispatcher's Prometheus metrics and its
// /metrics, /healthz and /readyz endpoints. Each Dispatcher has its own
// registry: no global state, so tests and benchmarks can run several.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "guestkit_dispatcher"

// Dispatcher are the dispatcher's metrics.
type Dispatcher struct {
	Registry *prometheus.Registry

	SpecsSeen       prometheus.Counter
	SpecsPending    prometheus.Gauge
	JobsCreated     prometheus.Counter
	JobsActive      prometheus.Gauge
	JobsSucceeded   prometheus.Counter
	JobsFailed      prometheus.Counter
	ResultsWritten  *prometheus.CounterVec // by status, results the dispatcher wrote
	Errors          *prometheus.CounterVec // by stage: scan, launch, settle
	DispatchLatency prometheus.Histogram
	Passes          prometheus.Counter
	KubeRequests    *prometheus.CounterVec // by method and code
}

// New registers the metrics in a new registry, with Go and process
// collectors.
func New() *Dispatcher {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	m := &Dispatcher{
		Registry:       r,
		SpecsSeen:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "specs_seen_total", Help: "Spec objects read for the first time (new or changed)."}),
		SpecsPending:   prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "specs_pending", Help: "Valid specs without a result at the last pass."}),
		JobsCreated:    prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "jobs_created_total", Help: "Jobs (or local runs) launched."}),
		JobsActive:     prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "jobs_active", Help: "Launched jobs not finished, from the informer cache."}),
		JobsSucceeded:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "jobs_succeeded_total", Help: "Jobs that finished with the runner's result stored."}),
		JobsFailed:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "jobs_failed_total", Help: "Jobs that failed (the result says why)."}),
		ResultsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "results_written_total", Help: "Results the dispatcher wrote itself (rejected specs, failed Jobs), by status."}, []string{"status"}),
		Errors:         prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "errors_total", Help: "Errors that will be retried, by stage."}, []string{"stage"}),
		DispatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "dispatch_latency_seconds",
			Help:    "From a spec object's last modification to its Job's creation.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600}}),
		Passes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "passes_total", Help: "Scans of the bucket."}),
		KubeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "kube_api_requests_total",
			Help: "Requests to the Kubernetes API server, by method and status code (watches count once)."}, []string{"method", "code"}),
	}
	f(m.SpecsSeen)
	f(m.SpecsPending)
	f(m.JobsCreated)
	f(m.JobsActive)
	f(m.JobsSucceeded)
	f(m.JobsFailed)
	f(m.ResultsWritten)
	f(m.Errors)
	f(m.DispatchLatency)
	f(m.Passes)
	f(m.KubeRequests)
	return m
}

// Error counts one retried error at stage.
func (m *Dispatcher) Error(stage string) { m.Errors.WithLabelValues(stage).Inc() }

// Observe records a dispatch latency.
func (m *Dispatcher) Observe(d time.Duration) {
	if d >= 0 {
		m.DispatchLatency.Observe(d.Seconds())
	}
}

// Written counts a result the dispatcher stored.
func (m *Dispatcher) Written(status string) { m.ResultsWritten.WithLabelValues(status).Inc() }

// Totals sums each of the dispatcher's counters over its labels, by name
// without the guestkit_dispatcher_ prefix.
func (m *Dispatcher) Totals() map[string]float64 {
	out := map[string]float64{}
	mfs, err := m.Registry.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		name, ok := strings.CutPrefix(mf.GetName(), namespace+"_")
		if !ok {
			continue
		}
		for _, x := range mf.GetMetric() {
			out[name] += x.GetCounter().GetValue() + x.GetGauge().GetValue()
		}
	}
	return out
}

// RoundTripper counts the requests that go through rt in KubeRequests.
func (m *Dispatcher) RoundTripper(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(r)
		code := "error"
		if err == nil {
			code = strconv.Itoa(resp.StatusCode)
		}
		m.KubeRequests.WithLabelValues(r.Method, code).Inc()
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Handler serves /metrics, /healthz (the process is alive) and /readyz
// (ready() returns nil: caches synced, the bucket reached).
func (m *Dispatcher) Handler(ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// Serve serves h on addr until ctx ends. An empty addr serves nothing.
// The listener is bound before Serve returns the address, so a port
// conflict is reported at start.
func Serve(ctx context.Context, addr string, h http.Handler) (net.Addr, <-chan error, error) {
	errc := make(chan error, 1)
	if addr == "" {
		return nil, errc, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	return ln.Addr(), errc, nil
}
