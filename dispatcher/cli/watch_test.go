package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"guestkit.io/batch/dispatcher/cli"
	"guestkit.io/batch/internal/dispatch"
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
	addrs := map[string]string{"replica-a": freePort(t), "replica-b": freePort(t)}
	m.AddWebhook(t, "A", "http://"+addrs["replica-a"]+"/minio/events", "s3cr3t")
	m.AddWebhook(t, "B", "http://"+addrs["replica-b"]+"/minio/events", "s3cr3t")
	m.Notify(t, bucket, "jobs/", "A", "B")
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
	a, b := start("replica-a"), start("replica-b")
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() {
			t.Logf("replica logs:\n%s\n%s", a.stderr, b.stderr)
		}
	})
	replicas := map[string]*replica{a.id: a, b.id: b}

	holder := func() string {
		l, err := k.Client().CoordinationV1().Leases(ns).Get(ctx, "guestkit-dispatcher", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	waitFor(t, 30*time.Second, "a leader", func() bool { return replicas[holder()] != nil })
	leader := replicas[holder()]
	standby := a
	if leader == a {
		standby = b
	}
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
			if j.Annotations[dispatch.AnnotationJobID] == id {
				n++
			}
		}
		return n
	}
	if c, _ := httpPost("http://"+leader.addr+"/minio/events", "wrong", `{"Records":[]}`); c != 401 {
		t.Errorf("a notification with a wrong token: HTTP %d, want 401", c)
	}
	written := put("jobs/one.json", spec("one"))
	waitFor(t, 10*time.Second, "the Job of spec one (notifications, not the 30 s poll)", func() bool { return jobsFor("one") == 1 })
	t.Logf("spec to Job with notifications: %s", time.Since(written).Round(10*time.Millisecond))

	_, metricsText := httpGet("http://" + leader.addr + "/metrics")
	for _, want := range []string{"guestkit_dispatcher_jobs_created_total 1", "guestkit_dispatcher_dispatch_latency_seconds_count 1", `guestkit_dispatcher_kube_api_requests_total{code="201",method="POST"}`} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("leader /metrics lacks %q", want)
		}
	}
	if _, s := httpGet("http://" + standby.addr + "/metrics"); !strings.Contains(s, "guestkit_dispatcher_jobs_created_total 0") {
		t.Error("the standby created Jobs")
	}

	leader.cancel()
	if err := <-leader.done; err != nil {
		t.Errorf("the stopped leader returned %v", err)
	}
	waitFor(t, 30*time.Second, "the standby to lead", func() bool { return holder() == standby.id })
	put("jobs/two.json", spec("two"))
	waitFor(t, 15*time.Second, "the Job of spec two from the new leader", func() bool { return jobsFor("two") == 1 })
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
