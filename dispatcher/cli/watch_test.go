package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"guestkit.io/batch/dispatcher/cli"
	"guestkit.io/batch/internal/kubejob"
	"guestkit.io/batch/internal/testenv"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWatchReplicasElectALeaderAndFollowNotifications runs two watch
// replicas against a real API server and MinIO: one leads, specs become
// Jobs through bucket notifications well before the 30 s polling period,
// and when the leader stops the standby takes over.
func TestWatchReplicasElectALeaderAndFollowNotifications(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and MinIO")
	}
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	k := testenv.StartKube(t)
	ns := k.Namespace(t)
	bucket := m.NewBucket(t)
	mc := m.Client(t)
	ctx := context.Background()
	put := func(key, data string) time.Time {
		t.Helper()
		if _, err := mc.PutObject(ctx, bucket, key, strings.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}
	put("images/a.qcow2", "QFI\xfb")
	image := fmt.Sprintf("minio://%s/images/a.qcow2", bucket)
	spec := func(id string) string {
		return fmt.Sprintf(`{"version":"1.0","job_id":%q,"kind":"VMOperation","operation":"guestkit.inspect","payload":{"type":"guestkit.inspect.v1","data":{"image":{"uri":%q}}}}`, id, image)
	}

	type replica struct {
		id, addr string
		cancel   context.CancelFunc
		done     chan error
		stderr   *bytes.Buffer
	}
	var mu sync.Mutex
	// MinIO posts bucket events to both replicas' webhooks.
	// Like pods behind a Service: the same port on two addresses, and a Pod
	// object per replica (named by its identity) that tells its address.
	_, port, _ := net.SplitHostPort(freePort(t))
	addrs := map[string]string{"replica-a": "127.0.0.2:" + port, "replica-b": "127.0.0.3:" + port}
	for id, addr := range addrs {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: ns},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "dispatcher", Image: "guestkit-dispatcher:test"}}}}
		pod, err := k.Client().CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ip, _, _ := net.SplitHostPort(addr)
		pod.Status.PodIP, pod.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
		if _, err := k.Client().CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// MinIO notifies replica b only: while a leads, b passes the events on.
	m.AddWebhook(t, "B", "http://"+addrs["replica-b"]+"/minio/events", "s3cr3t")
	m.Notify(t, bucket, "jobs/", "B")
	start := func(id string) *replica {
		r := &replica{id: id, addr: addrs[id], done: make(chan error, 1), stderr: &bytes.Buffer{}}
		rctx, cancel := context.WithCancel(ctx)
		r.cancel = cancel
		t.Cleanup(cancel)
		go func() {
			err := cli.Run(rctx, []string{"--bucket", "minio://" + bucket, "watch", "--executor", "kubernetes",
				"--kubeconfig", k.Kubeconfig, "--namespace", ns, "--metrics-addr", r.addr, "--interval", "30s",
				"--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "500ms", "--identity", id, "--notify-token", "s3cr3t"},
				cli.Deps{Stdout: io.Discard, Stderr: lockedWriter{&mu, r.stderr}, Version: "test"})
			r.done <- err
		}()
		return r
	}
	a := start("replica-a")
	replicas := map[string]*replica{a.id: a}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() {
			for _, r := range replicas {
				t.Logf("replica %s log:\n%s", r.id, r.stderr)
			}
		}
	})
	holder := func() string {
		l, err := k.Client().CoordinationV1().Leases(ns).Get(ctx, "guestkit-dispatcher", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	waitFor(t, 30*time.Second, "a to lead", func() bool { return holder() == a.id })
	b := start("replica-b")
	mu.Lock()
	replicas[b.id] = b
	mu.Unlock()
	leader, standby := a, b
	for _, r := range []*replica{a, b} {
		waitFor(t, 20*time.Second, r.id+" ready", func() bool { c, _ := httpGet("http://" + r.addr + "/readyz"); return c == 200 })
		if c, body := httpGet("http://" + r.addr + "/healthz"); c != 200 || body != "ok\n" {
			t.Errorf("%s /healthz: %d %q", r.id, c, body)
		}
	}

	jobsFor := func(id string) int {
		list, err := k.Client().BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, j := range list.Items {
			if j.Annotations[kubejob.AnnotationJobID] == id {
				n++
			}
		}
		return n
	}
	if c, _ := httpPost("http://"+leader.addr+"/minio/events", "wrong", `{"Records":[]}`); c != 401 {
		t.Errorf("a notification with a wrong token: HTTP %d, want 401", c)
	}
	written := put("jobs/one.json", spec("one"))
	waitFor(t, 10*time.Second, "the Job of spec one (a notification passed on by the standby, not the 30 s poll)", func() bool { return jobsFor("one") == 1 })
	t.Logf("spec to Job with a notification through the standby: %s", time.Since(written).Round(10*time.Millisecond))

	_, metricsText := httpGet("http://" + leader.addr + "/metrics")
	for _, want := range []string{"guestkit_dispatcher_jobs_created_total 1", "guestkit_dispatcher_dispatch_latency_seconds_count 1", `guestkit_dispatcher_kube_api_requests_total{code="201",method="POST"}`} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("leader /metrics lacks %q", want)
		}
	}
	if _, s := httpGet("http://" + standby.addr + "/metrics"); !strings.Contains(s, "guestkit_dispatcher_jobs_created_total 0") {
		t.Error("the standby created Jobs")
	}

	// status joins specs, Jobs and results (the Job is pending or, once the
	// Job controller made its pod, running).
	st := dispatcher(t, "--bucket", "minio://"+bucket, "status", "--kubernetes", "--kubeconfig", k.Kubeconfig, "--namespace", ns, "-o", "json")
	var rows []cli.StatusRow
	if err := json.Unmarshal([]byte(st.stdout), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("status: %v %+v", err, st)
	}
	if rows[0].Spec != "jobs/one.json" || rows[0].State != "pending" || !strings.HasPrefix(rows[0].Job, "gk-one-") || (rows[0].JobSt != "pending" && rows[0].JobSt != "running") {
		t.Errorf("status row = %+v", rows[0])
	}

	leader.cancel()
	if err := <-leader.done; err != nil {
		t.Errorf("the stopped leader returned %v", err)
	}
	waitFor(t, 30*time.Second, "the standby to lead", func() bool { return holder() == standby.id })
	written = put("jobs/two.json", spec("two"))
	waitFor(t, 10*time.Second, "the Job of spec two from the new leader (its own notification)", func() bool { return jobsFor("two") == 1 })
	t.Logf("spec to Job with a notification to the leader: %s", time.Since(written).Round(10*time.Millisecond))
	if n := jobsFor("one"); n != 1 {
		t.Errorf("spec one has %d Jobs after the failover", n)
	}
	standby.cancel()
	if err := <-standby.done; err != nil {
		t.Errorf("the standby returned %v", err)
	}
}

func httpPost(url, token, body string) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
