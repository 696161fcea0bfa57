//go:build bench

package benchdispatcher

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"guestkit.io/batch/internal/kubejob"
	"guestkit.io/batch/internal/notify"
	"guestkit.io/batch/internal/spec/spectest"
	"guestkit.io/batch/internal/testenv"
)

// The targets.
const (
	targetQPSRatio = 0.90
	targetRSS      = 100 << 20
	targetRSSAt    = 5000
	targetLatency  = 2 * time.Second
)

const (
	// uploaders is how many PUTs the bench keeps in flight while it fills
	// a bucket before a throughput run.
	uploaders = 50
	// imageKey is the one disk image every spec names; the dispatcher
	// stats it before launching, so it must exist.
	imageKey = "images/a.qcow2"
	// maxActive is above any spec count here: the cap must not throttle.
	maxActive = "100000"
	// webhookID and webhookToken name MinIO's webhook target, which posts
	// the events of the notification run's bucket to the dispatcher.
	webhookID    = "BENCH"
	webhookToken = "bench-token"
)

// config is the bench's settings, from the environment (doc.go).
type config struct {
	dispatcher   string
	sizes        []int
	qps          float64
	burst        int
	latencySpecs int
	latencyPause time.Duration
	// logDir keeps the dispatcher's logs; empty: a temporary folder.
	logDir string
}

func loadConfig(t *testing.T) config {
	t.Helper()
	cfg := config{sizes: []int{1000, 5000}, qps: 50, burst: 100, latencySpecs: 20, latencyPause: 1300 * time.Millisecond}
	var err error
	if v := os.Getenv("GUESTKIT_BENCH_SIZES"); v == "none" {
		cfg.sizes = nil
	} else if v != "" {
		cfg.sizes = nil
		for _, s := range strings.Split(v, ",") {
			n, perr := strconv.Atoi(strings.TrimSpace(s))
			if perr != nil || n <= 0 {
				t.Fatalf("GUESTKIT_BENCH_SIZES=%q: want positive integers separated by commas", v)
			}
			cfg.sizes = append(cfg.sizes, n)
		}
	}
	if v := os.Getenv("GUESTKIT_BENCH_QPS"); v != "" {
		if cfg.qps, err = strconv.ParseFloat(v, 64); err != nil || cfg.qps <= 0 {
			t.Fatalf("GUESTKIT_BENCH_QPS=%q: want a positive number", v)
		}
	}
	if v := os.Getenv("GUESTKIT_BENCH_BURST"); v != "" {
		if cfg.burst, err = strconv.Atoi(v); err != nil || cfg.burst <= 0 {
			t.Fatalf("GUESTKIT_BENCH_BURST=%q: want a positive integer", v)
		}
	}
	if v := os.Getenv("GUESTKIT_BENCH_LATENCY_SPECS"); v != "" {
		if cfg.latencySpecs, err = strconv.Atoi(v); err != nil || cfg.latencySpecs <= 0 {
			t.Fatalf("GUESTKIT_BENCH_LATENCY_SPECS=%q: want a positive integer", v)
		}
	}
	if v := os.Getenv("GUESTKIT_BENCH_LATENCY_PAUSE"); v != "" {
		if cfg.latencyPause, err = time.ParseDuration(v); err != nil || cfg.latencyPause < 0 {
			t.Fatalf("GUESTKIT_BENCH_LATENCY_PAUSE=%q: want a duration", v)
		}
	}
	cfg.logDir = os.Getenv("GUESTKIT_BENCH_LOGS")
	if cfg.logDir != "" {
		if err := os.MkdirAll(cfg.logDir, 0o755); err != nil {
			t.Fatalf("GUESTKIT_BENCH_LOGS: %v", err)
		}
	}
	cfg.dispatcher = os.Getenv("GUESTKIT_BENCH_DISPATCHER")
	if cfg.dispatcher == "" {
		cfg.dispatcher = filepath.Join(t.TempDir(), "guestkit-dispatcher")
		out, err := exec.Command("go", "build", "-o", cfg.dispatcher, "guestkit.io/batch/dispatcher").CombinedOutput()
		if err != nil {
			t.Fatalf("build guestkit-dispatcher: %v\n%s", err, out)
		}
	} else if !filepath.IsAbs(cfg.dispatcher) {
		// go test runs in this folder, not where the path was written.
		t.Fatalf("GUESTKIT_BENCH_DISPATCHER=%q: want an absolute path", cfg.dispatcher)
	}
	return cfg
}

// bench is what every run shares: one control plane, one MinIO.
type bench struct {
	t     *testing.T
	cfg   config
	kube  *testenv.Kube
	minio *testenv.MinIO
	s3    *minio.Client
	out   io.Writer
	// webhookAddr is where MinIO's webhook target posts: the
	// --metrics-addr of the notification run's dispatcher.
	webhookAddr string
}

// TestBenchDispatcher prints the report; it fails only when the bench
// itself cannot run, never on a missed target.
func TestBenchDispatcher(t *testing.T) {
	cfg := loadConfig(t)
	ctx := t.Context()
	m := testenv.StartMinIO(t)
	k := testenv.StartKube(t)
	b := &bench{t: t, cfg: cfg, kube: k, minio: m, s3: m.Client(t), out: os.Stdout, webhookAddr: freeAddr(t)}
	// MinIO reads webhook targets at start: declared (and MinIO
	// restarted) once, used by the notification run's bucket only.
	m.AddWebhook(t, webhookID, "http://"+b.webhookAddr+notify.Path, webhookToken)
	b.header(ctx)

	var tputs []throughput
	fmt.Fprintln(b.out, "\nthroughput: the specs are in the bucket before the dispatcher starts; times are from its start")
	fmt.Fprintf(b.out, throughputRow, "specs", "upload", "ready", "1st Job", "last Job", "Jobs/s", "of QPS", "create/s", "of QPS",
		"API req", "/Job", "bucket req", "/Job", "peak RSS", "CPU", "fds", "warns", "load")
	for _, n := range cfg.sizes {
		tp := b.throughput(ctx, n)
		tputs = append(tputs, tp)
		tp.print(b.out, cfg.qps)
	}
	fmt.Fprintf(b.out, throughputLegend, uploaders)
	for _, tp := range tputs {
		tp.details(b.out)
	}

	fmt.Fprintf(b.out, "\nspec-to-Job latency: %d specs PUT one at a time, %s apart, from the PUT's response to the Job's ADDED event on a watch;\n"+
		"webhook: MinIO's notify_webhook target posts the bucket's jobs/ events to the dispatcher's %s\n",
		cfg.latencySpecs, cfg.latencyPause, notify.Path)
	fmt.Fprintf(b.out, latencyRow, "mode", "Jobs", "p50", "p95", "max", "passes", "warns", "load")
	var lats []latency
	for _, notified := range []bool{true, false} {
		l := b.latency(ctx, notified)
		l.print(b.out)
		lats = append(lats, l)
	}
	for _, l := range lats {
		l.details(b.out)
	}

	b.targets(tputs, lats)
}

func (b *bench) header(ctx context.Context) {
	version := "guestkit-dispatcher ?"
	if out, err := exec.CommandContext(ctx, b.cfg.dispatcher, "version").Output(); err == nil {
		version = strings.TrimSpace(string(out))
	}
	server := "?"
	if v, err := b.kube.Client().Discovery().ServerVersion(); err == nil {
		server = v.GitVersion
	}
	host, _ := os.Hostname()
	fmt.Fprintf(b.out, "bench-dispatcher %s on %s, %d cores, load average %s\n",
		time.Now().UTC().Format(time.RFC3339), host, runtime.NumCPU(), loadAverage())
	fmt.Fprintf(b.out, "%s (%s): watch --executor kubernetes --qps %g --burst %d --max-active %s --leader-elect=false\n",
		version, b.cfg.dispatcher, b.cfg.qps, b.cfg.burst, maxActive)
	fmt.Fprintf(b.out, "kube-apiserver %s with etcd and kube-controller-manager (its Job controller makes one Pending pod per Job: no scheduler,\n"+
		"no kubelet), MinIO and this bench on the same %d cores; each run has a fresh bucket, namespace and dispatcher\n",
		server, runtime.NumCPU())
}

// throughput is one run of n specs.
type throughput struct {
	n                          int
	upload                     time.Duration
	ready, first, last         time.Duration // from the dispatcher's start
	seen                       int
	apiByMethod                map[string]float64
	apiTotal                   float64
	bucketByAPI                map[string]float64 // nil: MinIO's metrics were not readable
	bucketErr                  error
	metrics                    map[string]float64
	proc                       procStats
	warnings                   int
	firstWarnings              []string
	load                       string
	incomplete                 error
	createdByDispatcherMetrics float64
}

const throughputLegend = `  upload: the bench's PUTs, %d at a time; ready: start to the "dispatching" log line (Jobs informer synced)
  Jobs/s: Jobs / (start to last Job); create/s: (Jobs-1) / (first to last Job); API req: the dispatcher's
  guestkit_dispatcher_kube_api_requests_total (watch logs no "stats" line: only once does); bucket req: MinIO's count
  for the bucket while the dispatcher ran; peak RSS: VmHWM just before SIGTERM; CPU: user+sys; fds: peak open files
  (sampled every 200 ms); warns: warning, error and non-JSON log lines; load: 1-minute load average at the end
`

const throughputRow = "%6s %7s %6s %8s %9s %7s %7s %8s %7s %8s %5s %10s %5s %9s %7s %5s %5s %5s\n"

func (tp throughput) print(w io.Writer, qps float64) {
	rate, phase := tp.rates()
	bucket, bucketPer := "n/a", "n/a"
	if tp.bucketByAPI != nil {
		total := sum(tp.bucketByAPI)
		bucket, bucketPer = fmt.Sprintf("%.0f", total), fmt.Sprintf("%.1f", total/float64(max(tp.seen, 1)))
	}
	fmt.Fprintf(w, throughputRow, strconv.Itoa(tp.n), secs(tp.upload), secs(tp.ready), secs(tp.first), secs(tp.last),
		fmt.Sprintf("%.1f", rate), pct(rate/qps), fmt.Sprintf("%.1f", phase), pct(phase/qps),
		fmt.Sprintf("%.0f", tp.apiTotal), fmt.Sprintf("%.2f", tp.apiTotal/float64(max(tp.seen, 1))),
		bucket, bucketPer, mib(tp.proc.peakRSS), secs(tp.proc.cpu), strconv.Itoa(tp.proc.peakFDs),
		strconv.Itoa(tp.warnings), tp.load)
	if tp.incomplete != nil {
		fmt.Fprintf(w, "       INCOMPLETE: %v\n", tp.incomplete)
	}
}

// rates are Jobs per second over the whole run (start to last Job) and
// over the creation phase (first to last Job).
func (tp throughput) rates() (rate, phase float64) {
	if tp.last > 0 {
		rate = float64(tp.seen) / tp.last.Seconds()
	}
	if tp.seen > 1 && tp.last > tp.first {
		phase = float64(tp.seen-1) / (tp.last - tp.first).Seconds()
	}
	return rate, phase
}

func (tp throughput) details(w io.Writer) {
	fmt.Fprintf(w, "  %d specs: %d Jobs seen, jobs_created_total %.0f, passes %.0f, specs_seen %.0f, errors %.0f; API %s\n",
		tp.n, tp.seen, tp.createdByDispatcherMetrics, tp.metrics["passes_total"], tp.metrics["specs_seen_total"], tp.metrics["errors_total"], breakdown(tp.apiByMethod))
	switch {
	case tp.bucketByAPI != nil:
		fmt.Fprintf(w, "    bucket requests while the dispatcher ran (MinIO's count): %s\n", breakdown(tp.bucketByAPI))
	case tp.bucketErr != nil:
		fmt.Fprintf(w, "    bucket requests: n/a (%v)\n", tp.bucketErr)
	}
	fmt.Fprintf(w, "    at the end: %s heap in use, %.0f goroutines; peak %d open fds, %d threads; rusage maxrss %s\n",
		mib(int64(tp.metrics["go_memstats_heap_inuse_bytes"])), tp.metrics["go_goroutines"], tp.proc.peakFDs, tp.proc.peakThreads, mib(tp.proc.maxrss))
	for _, s := range tp.firstWarnings {
		fmt.Fprintf(w, "    log: %s\n", s)
	}
}

// throughput fills a fresh bucket with n specs, starts the dispatcher and
// waits until the n Jobs exist.
func (b *bench) throughput(ctx context.Context, n int) throughput {
	t := b.t
	tp := throughput{n: n}
	bucket := b.minio.NewBucket(t)
	ns := b.kube.Namespace(t)
	image := b.putImage(ctx, bucket)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%05d", i)
	}
	start := time.Now()
	if err := b.upload(ctx, bucket, ids, image); err != nil {
		t.Fatalf("upload %d specs: %v", n, err)
	}
	tp.upload = time.Since(start)

	jobs := b.watchJobs(ctx, ns)
	before, beforeErr := b.minio.BucketRequests(ctx, bucket)
	d := b.startDispatcher(ctx, fmt.Sprintf("throughput-%d", n), "127.0.0.1:0", bucket, ns)
	tp.ready = d.readyAt.Sub(d.started)
	// The ideal is (n-burst)/QPS; three times that plus two minutes is
	// far past any healthy run.
	timeout := 3*time.Duration(float64(n)/b.cfg.qps*float64(time.Second)) + 2*time.Minute
	tp.incomplete = jobs.waitFor(ctx, n, timeout, d.exited)
	tp.seen, tp.first, tp.last = jobs.span(d.started)

	tp.metrics, tp.apiByMethod = d.scrape(ctx)
	tp.apiTotal = sum(tp.apiByMethod)
	tp.createdByDispatcherMetrics = tp.metrics["jobs_created_total"]
	after, err := b.minio.BucketRequests(ctx, bucket)
	if err == nil && beforeErr == nil {
		tp.bucketByAPI = diff(after, before)
	}
	tp.bucketErr = cmp.Or(beforeErr, err)
	tp.proc = d.stop()
	tp.warnings, tp.firstWarnings = d.log.warningsSeen()
	tp.load = strings.Fields(loadAverage())[0]
	return tp
}

// latency is one run of specs uploaded one at a time to an idle
// dispatcher.
type latency struct {
	name          string
	specs         int
	lats          []time.Duration // sorted
	passes        float64
	warnings      int
	firstWarnings []string
	load          string
	incomplete    error
}

const latencyRow = "%-26s %7s %7s %7s %7s %7s %5s %5s\n"

func (l latency) print(w io.Writer) {
	fmt.Fprintf(w, latencyRow, l.name, fmt.Sprintf("%d/%d", len(l.lats), l.specs),
		secs2(l.quantile(0.50)), secs2(l.quantile(0.95)), secs2(l.quantile(1)),
		fmt.Sprintf("%.0f", l.passes), strconv.Itoa(l.warnings), l.load)
	if l.incomplete != nil {
		fmt.Fprintf(w, "       INCOMPLETE: %v\n", l.incomplete)
	}
}

func (l latency) details(w io.Writer) {
	for _, s := range l.firstWarnings {
		fmt.Fprintf(w, "  %s log: %s\n", l.name, s)
	}
}

// quantile is the nearest-rank quantile q of the sorted latencies.
func (l latency) quantile(q float64) time.Duration {
	if len(l.lats) == 0 {
		return -1
	}
	i := int(float64(len(l.lats))*q+0.9999999) - 1
	return l.lats[min(max(i, 0), len(l.lats)-1)]
}

// latency starts an idle dispatcher, with MinIO's webhook posting the
// bucket's events to it or with polling only, then PUTs specs one at a
// time and times each until its Job appears.
func (b *bench) latency(ctx context.Context, notified bool) latency {
	t := b.t
	name, mode, addr := "polling only (10s)", "polling", "127.0.0.1:0"
	if notified {
		name, mode, addr = "webhook notifications", "webhook", b.webhookAddr
	}
	l := latency{name: name, specs: b.cfg.latencySpecs}
	bucket := b.minio.NewBucket(t)
	if notified {
		b.minio.Notify(t, bucket, "jobs/", webhookID)
	}
	ns := b.kube.Namespace(t)
	image := b.putImage(ctx, bucket)
	jobs := b.watchJobs(ctx, ns)
	d := b.startDispatcher(ctx, "latency-"+mode, addr, bucket, ns)
	// Let the first (empty) pass end.
	sleep(ctx, 2*time.Second)

	put := map[string]time.Time{}
	for i := range l.specs {
		id := fmt.Sprintf("latency-%s-%03d", mode, i)
		if err := b.putSpec(ctx, bucket, id, image); err != nil {
			t.Fatalf("put spec %s: %v", id, err)
		}
		put[id] = time.Now()
		sleep(ctx, b.cfg.latencyPause)
	}
	// Polling finds the last spec within an interval (10 s by default).
	l.incomplete = jobs.waitFor(ctx, l.specs, 40*time.Second, d.exited)
	for id, at := range jobs.seenAt() {
		if p, ok := put[id]; ok {
			l.lats = append(l.lats, at.Sub(p))
		}
	}
	slices.Sort(l.lats)
	metrics, _ := d.scrape(ctx)
	l.passes = metrics["passes_total"]
	d.stop()
	l.warnings, l.firstWarnings = d.log.warningsSeen()
	l.load = strings.Fields(loadAverage())[0]
	return l
}

func (b *bench) targets(tputs []throughput, lats []latency) {
	fmt.Fprintln(b.out, "\ntargets:")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	for _, tp := range tputs {
		rate, phase := tp.rates()
		fmt.Fprintf(b.out, "  Jobs/s >= %.0f%% of QPS %g at %d specs, start to last Job: %s (%.1f/s, %s; creation phase alone %.1f/s, %s)\n",
			targetQPSRatio*100, b.cfg.qps, tp.n, verdict(tp.incomplete == nil && rate >= targetQPSRatio*b.cfg.qps), rate, pct(rate/b.cfg.qps), phase, pct(phase/b.cfg.qps))
	}
	for _, tp := range tputs {
		if tp.n == targetRSSAt {
			fmt.Fprintf(b.out, "  peak RSS < %s at %d specs: %s (%s)\n", mib(targetRSS), tp.n, verdict(tp.proc.peakRSS > 0 && tp.proc.peakRSS < targetRSS), mib(tp.proc.peakRSS))
		}
	}
	for _, l := range lats {
		if strings.HasPrefix(l.name, "webhook") {
			p95 := l.quantile(0.95)
			fmt.Fprintf(b.out, "  spec-to-Job p95 < %s with notifications: %s (p95 %s, max %s)\n",
				targetLatency, verdict(l.incomplete == nil && p95 >= 0 && p95 < targetLatency), secs2(p95), secs2(l.quantile(1)))
		}
	}
}

// putImage stores the disk image the specs name and returns its URI.
func (b *bench) putImage(ctx context.Context, bucket string) string {
	data := []byte("QFI\xfb not a real image: the dispatcher only stats it")
	if _, err := b.s3.PutObject(ctx, bucket, imageKey, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		b.t.Fatalf("put %s/%s: %v", bucket, imageKey, err)
	}
	return "minio://" + bucket + "/" + imageKey
}

// specJSON is a valid guestkit.inspect spec of a bucket image.
func specJSON(id, image string) []byte {
	return []byte(spectest.JSON(spectest.Inspect(id, image,
		spectest.WithPriority(5), spectest.WithAttempts(1), spectest.WithTimeout(600))))
}

func (b *bench) putSpec(ctx context.Context, bucket, id, image string) error {
	data := specJSON(id, image)
	_, err := b.s3.PutObject(ctx, bucket, "jobs/"+id+".json", bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/json"})
	return err
}

// upload PUTs a spec for each id, uploaders at a time.
func (b *bench) upload(ctx context.Context, bucket string, ids []string, image string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	todo := make(chan string)
	var wg sync.WaitGroup
	for range uploaders {
		wg.Go(func() {
			for id := range todo {
				if err := b.putSpec(ctx, bucket, id, image); err != nil {
					cancel(fmt.Errorf("put spec %s: %w", id, err))
					return
				}
			}
		})
	}
feed:
	for _, id := range ids {
		select {
		case todo <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(todo)
	wg.Wait()
	return context.Cause(ctx)
}

// jobWatch records when each Job (by job_id) is first seen by a watch.
type jobWatch struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// watchJobs runs an informer on ns's Jobs until ctx ends and returns once
// it has synced.
func (b *bench) watchJobs(ctx context.Context, ns string) *jobWatch {
	w := &jobWatch{seen: map[string]time.Time{}}
	factory := informers.NewSharedInformerFactoryWithOptions(b.kube.Client(), 0, informers.WithNamespace(ns))
	inf := factory.Batch().V1().Jobs().Informer()
	// Only the job_id is needed: thousands of full Jobs would cost this
	// process memory and the machine time.
	if err := inf.SetTransform(func(obj any) (any, error) {
		if j, ok := obj.(*batchv1.Job); ok {
			return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: j.Name, Namespace: j.Namespace, ResourceVersion: j.ResourceVersion,
				Annotations: map[string]string{kubejob.AnnotationJobID: j.Annotations[kubejob.AnnotationJobID]}}}, nil
		}
		return obj, nil
	}); err != nil {
		b.t.Fatalf("jobs informer: %v", err)
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		at := time.Now()
		j, ok := obj.(*batchv1.Job)
		if !ok {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if id := j.Annotations[kubejob.AnnotationJobID]; id != "" {
			if _, dup := w.seen[id]; !dup {
				w.seen[id] = at
			}
		}
	}}); err != nil {
		b.t.Fatalf("jobs informer: %v", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	b.t.Cleanup(cancel)
	factory.Start(wctx.Done())
	if !cache.WaitForCacheSync(wctx.Done(), inf.HasSynced) {
		b.t.Fatalf("jobs informer in %s: not synced", ns)
	}
	return w
}

func (w *jobWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}

func (w *jobWatch) seenAt() map[string]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.seen)
}

// span is how many Jobs were seen, and when the first and the last were,
// from start.
func (w *jobWatch) span(start time.Time) (n int, first, last time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, at := range w.seen {
		d := at.Sub(start)
		if n == 0 || d < first {
			first = d
		}
		last = max(last, d)
		n++
	}
	return n, first, last
}

// waitFor waits until n Jobs are seen; an error says why they were not.
func (w *jobWatch) waitFor(ctx context.Context, n int, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for w.count() < n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("the dispatcher exited with %d of %d Jobs created", w.count(), n)
		case <-deadline.C:
			return fmt.Errorf("%d of %d Jobs after %s", w.count(), n, timeout)
		case <-tick.C:
		}
	}
	return nil
}

// dispatcherProc is a running guestkit-dispatcher watch.
type dispatcherProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	started time.Time
	readyAt time.Time // its "dispatching" log line
	log     *logWatch
	exited  chan struct{}
	metrics string // http://ADDR/metrics
	sampler *procSampler
	stopped *procStats
}

// startDispatcher runs `guestkit-dispatcher watch` on bucket and ns,
// serving /metrics and the webhook on addr, and returns once it logs
// "dispatching" (its Jobs informer has synced).
func (b *bench) startDispatcher(ctx context.Context, run, addr, bucket, ns string) *dispatcherProc {
	t := b.t
	args := []string{
		"--bucket", "minio://" + bucket, "--log-format", "json",
		"watch", "--executor", "kubernetes", "--kubeconfig", b.kube.Kubeconfig, "--namespace", ns,
		"--qps", strconv.FormatFloat(b.cfg.qps, 'g', -1, 64), "--burst", strconv.Itoa(b.cfg.burst),
		"--max-active", maxActive, "--metrics-addr", addr, "--leader-elect=false", "--notify-token", webhookToken,
	}
	cmd := exec.Command(b.cfg.dispatcher, args...)
	// Only what it needs: the caller's GUESTKIT_*, KUBECONFIG and AWS
	// settings stay out.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	// As deployed: manifests/base/deployment.yaml sets GOMEMLIMIT.
	if v := cmp.Or(os.Getenv("GUESTKIT_BENCH_GOMEMLIMIT"), "96MiB"); v != "off" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+v)
	}
	for k, v := range b.minio.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logDir := b.cfg.logDir
	if logDir == "" {
		logDir = t.TempDir()
	}
	logf, err := os.Create(filepath.Join(logDir, "dispatcher-"+run+".log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	lw := newLogWatch(logf)
	cmd.Stdout, cmd.Stderr = lw, lw
	d := &dispatcherProc{t: t, cmd: cmd, log: lw, exited: make(chan struct{})}
	d.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", b.cfg.dispatcher, err)
	}
	go func() {
		_ = cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() { d.stop() })
	d.sampler = sampleProc(ctx, cmd.Process.Pid)
	select {
	case <-lw.dispatching:
		d.readyAt = lw.dispatchingAt()
	case <-d.exited:
		t.Fatalf("guestkit-dispatcher exited at start: %v\n%s", cmd.ProcessState, lw.tail())
	case <-time.After(60 * time.Second):
		t.Fatalf("guestkit-dispatcher not dispatching after 60 s:\n%s", lw.tail())
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	d.metrics = "http://" + lw.metricsAddr() + "/metrics"
	return d
}

// stop reads the peak RSS, then stops the dispatcher with SIGTERM (SIGKILL
// after 30 s) and returns what it used. Stopping twice returns the first
// figures.
func (d *dispatcherProc) stop() procStats {
	if d.stopped != nil {
		return *d.stopped
	}
	var st procStats
	// VmHWM goes with the process: read it while it runs.
	st.peakRSS = statusBytes(d.cmd.Process.Pid, "VmHWM")
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	st.peakFDs, st.peakThreads = d.sampler.stop()
	if ru, ok := d.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		st.maxrss = ru.Maxrss << 10 // KiB on Linux
		st.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if st.peakRSS == 0 {
		st.peakRSS = st.maxrss
	}
	d.stopped = &st
	return st
}

// scrape reads the dispatcher's /metrics: every guestkit_dispatcher_
// series summed by name (prefix dropped) plus a few of Go's, and the
// Kubernetes API requests by method and code.
func (d *dispatcherProc) scrape(ctx context.Context) (totals, api map[string]float64) {
	totals, api = map[string]float64{}, map[string]float64{}
	samples, err := scrapeURL(ctx, d.metrics, "")
	if err != nil {
		d.t.Logf("scrape %s: %v", d.metrics, err)
		return totals, api
	}
	for _, s := range samples {
		if name, ok := strings.CutPrefix(s.name, "guestkit_dispatcher_"); ok {
			totals[name] += s.value
		}
		switch s.name {
		case "go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes", "process_open_fds":
			totals[s.name] = s.value
		case "guestkit_dispatcher_kube_api_requests_total":
			api[s.labels["method"]+" "+s.labels["code"]] += s.value
		}
	}
	return totals, api
}

// logWatch is the dispatcher's stdout and stderr: it copies them to a
// file and picks out the lines the bench acts on.
type logWatch struct {
	file        io.Writer
	dispatching chan struct{}

	mu         sync.Mutex
	partial    []byte
	lines      []string // the last ones, for failure messages
	addr       string
	readyAt    time.Time
	warnings   int
	firstWarns []string
}

func newLogWatch(file io.Writer) *logWatch {
	return &logWatch{file: file, dispatching: make(chan struct{})}
}

func (l *logWatch) Write(p []byte) (int, error) {
	now := time.Now()
	_, _ = l.file.Write(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]), now)
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// line handles one log line; l.mu is held.
func (l *logWatch) line(s string, now time.Time) {
	l.lines = append(l.lines, s)
	if len(l.lines) > 40 {
		l.lines = l.lines[len(l.lines)-20:]
	}
	var entry map[string]any
	if err := json.Unmarshal([]byte(s), &entry); err != nil {
		// client-go's klog lines are not JSON; count them as warnings.
		l.warn(s)
		return
	}
	msg, _ := entry["msg"].(string)
	switch level, _ := entry["level"].(string); {
	case level == "warning" || level == "error" || level == "fatal" || level == "panic":
		if e, ok := entry["error"].(string); ok {
			msg += ": " + e
		}
		l.warn(level + ": " + msg)
	case strings.HasPrefix(msg, "serving /metrics"):
		l.addr, _ = entry["addr"].(string)
	case msg == "dispatching" && l.readyAt.IsZero():
		l.readyAt = now
		close(l.dispatching)
	}
}

func (l *logWatch) warn(s string) {
	l.warnings++
	if len(l.firstWarns) < 3 {
		l.firstWarns = append(l.firstWarns, oneLine(s, 240))
	}
}

func (l *logWatch) metricsAddr() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addr
}

func (l *logWatch) dispatchingAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.readyAt
}

func (l *logWatch) warningsSeen() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.warnings, slices.Clone(l.firstWarns)
}

func (l *logWatch) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// procStats is what the dispatcher process used.
type procStats struct {
	peakRSS     int64 // VmHWM just before the stop
	maxrss      int64 // rusage, after the exit
	cpu         time.Duration
	peakFDs     int
	peakThreads int
}

// procSampler samples a process's open files and threads every 200 ms.
type procSampler struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu           sync.Mutex
	fds, threads int
}

func sampleProc(ctx context.Context, pid int) *procSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &procSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
			threads := int(statusValue(pid, "Threads"))
			if err == nil {
				s.mu.Lock()
				s.fds, s.threads = max(s.fds, len(ents)), max(s.threads, threads)
				s.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *procSampler) stop() (fds, threads int) {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fds, s.threads
}

// statusValue reads a number from /proc/PID/status (0 when unreadable).
func statusValue(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for sc := bufio.NewScanner(bytes.NewReader(data)); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// statusBytes reads a kB field of /proc/PID/status in bytes.
func statusBytes(pid int, field string) int64 { return statusValue(pid, field) << 10 }

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrapeURL reads a Prometheus text endpoint, with a bearer token if any.
func scrapeURL(ctx context.Context, url, token string) ([]sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, oneLine(string(body), 200))
	}
	var out []sample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if s, ok := parseSample(sc.Text()); ok {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}

// parseSample parses `name{k="v",...} value [timestamp]`. Label values
// here never hold escaped quotes or commas.
func parseSample(line string) (sample, bool) {
	if line == "" || line[0] == '#' {
		return sample{}, false
	}
	s := sample{labels: map[string]string{}}
	rest := line
	if i := strings.IndexByte(line, '{'); i >= 0 {
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return sample{}, false
		}
		s.name, rest = line[:i], line[j+1:]
		for _, kv := range strings.Split(line[i+1:j], ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				s.labels[strings.TrimSpace(k)] = strings.Trim(v, `"`)
			}
		}
	} else {
		name, r, ok := strings.Cut(line, " ")
		if !ok {
			return sample{}, false
		}
		s.name, rest = name, r
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return sample{}, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return sample{}, false
	}
	s.value = v
	return s, true
}

func diff(after, before map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func sum(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// breakdown prints counts largest first: "HEADOBJECT 2000, GET 12".
func breakdown(m map[string]float64) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			if m[a] > m[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.0f", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// freeAddr is a loopback address with a port free now, for a server that
// must be named before it starts.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func secs(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// secs2 prints a latency: milliseconds below a second.
func secs2(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func pct(r float64) string { return fmt.Sprintf("%.0f%%", r*100) }

func mib(b int64) string { return fmt.Sprintf("%d MiB", b>>20) }

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n-3] + "..."
	}
	return s
}
