//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"guestkit.io/batch/internal/kubejob"
	"guestkit.io/batch/internal/testenv"
)

// namespace is where every overlay deploys guestkit-batch.
const namespace = "guestkit"

// cluster is what the scenarios need from a provider: a cluster with
// guestkit-batch deployed and running, and its bucket.
type cluster struct {
	provider   string
	kubeconfig string
	kubectlBin string
	cs         kubernetes.Interface
	bucket     *minio.Client
	bucketName string
	// restartBucket stops the bucket's server, keeps it down for down, and
	// starts it again with the same data; it returns once it serves.
	restartBucket func(t testing.TB, down time.Duration)
	// imports are how long each image archive took to load (local).
	imports map[string]time.Duration
}

// kubectl runs kubectl on the cluster and returns its standard output; a
// failure is fatal.
func (c *cluster) kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.kubectlErr(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (c *cluster) kubectlErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.kubectlBin, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out), nil
}

// startCluster brings up the provider GUESTKIT_E2E_PROVIDER names (default
// local) and deploys guestkit-batch on it.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	switch p := os.Getenv("GUESTKIT_E2E_PROVIDER"); p {
	case "", "local":
		return startLocal(t, nil)
	case "kind":
		return startKind(t)
	case "kubeconfig":
		kc := os.Getenv("KUBECONFIG")
		if kc == "" {
			t.Fatal("GUESTKIT_E2E_PROVIDER=kubeconfig needs KUBECONFIG")
		}
		return deployKindOverlay(t, "kubeconfig", kc, kubectlPath(t))
	default:
		t.Fatalf("GUESTKIT_E2E_PROVIDER=%q: want local, kind or kubeconfig", p)
		return nil
	}
}

// repoRoot is the module's root: go test runs in e2e/.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s: run the tests from the e2e folder (go test ./e2e)", root)
	}
	return root
}

// imageArchives are the runner's and the dispatcher's image archives, as
// `make image-archive` (scripts/build-image.sh) leaves them.
func imageArchives(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("bash", filepath.Join(repoRoot(t), "scripts/build-image.sh"), "--path", "all").Output()
	if err != nil {
		t.Fatalf("scripts/build-image.sh --path: %v", err)
	}
	paths := strings.Fields(string(out))
	if len(paths) != 2 {
		t.Fatalf("scripts/build-image.sh --path all printed %q: want two archives", out)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			testenv.Unavailable(t, "no image archive %s: run `make image-archive` first (make e2e does)", p)
		}
	}
	return paths
}

func kubectlPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("kubectl"); err == nil {
		return p
	}
	if dir, err := testenv.KubeBinDir(); err == nil {
		p := filepath.Join(dir, "kubectl")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	testenv.Unavailable(t, "no kubectl on PATH or from scripts/install-kube.sh")
	return ""
}

// ------------------------------------------------------------------ local

// startLocal is the local provider: the node, MinIO on the host at the pod
// network's gateway, both images imported, manifests/base through
// e2e/overlays/local plus the bucket and the settings in extra
// (dispatcher environment variables).
func startLocal(t *testing.T, extra map[string]string) *cluster {
	t.Helper()
	archives := imageArchives(t)
	start := time.Now()
	k := testenv.StartCluster(t, testenv.ClusterOptions{
		NodeLabels: map[string]string{kubejob.DefaultDiskAccessLabel: "true"},
	})
	m := testenv.StartMinIOOn(t, k.HostIP)
	t.Logf("local cluster and MinIO ready in %v", time.Since(start).Round(time.Second))
	imports := map[string]time.Duration{}
	for _, a := range archives {
		start := time.Now()
		k.ImportImage(t, a)
		imports[filepath.Base(a)] = time.Since(start)
	}
	c := &cluster{
		imports:    imports,
		provider:   "local",
		kubeconfig: k.Kubeconfig,
		kubectlBin: filepath.Join(k.BinDir, "kubectl"),
		cs:         k.Client(),
		bucket:     m.Client(t),
		bucketName: m.Bucket,
		restartBucket: func(t testing.TB, down time.Duration) {
			m.Stop()
			time.Sleep(down)
			m.Start(t)
		},
	}
	bucketURL := fmt.Sprintf("s3://%s?endpoint=%s&path-style=true&region=%s", m.Bucket, m.Endpoint, testenv.Region)
	dir := localOverlay(t, bucketURL, m.AccessKey, m.SecretKey, extra)
	c.kubectl(t, "apply", "-k", dir)
	c.waitDispatcher(t)
	t.Logf("guestkit-batch deployed %v after the start", time.Since(start).Round(time.Second))
	return c
}

// localOverlay writes an overlay over e2e/overlays/local that sets the
// bucket and its credentials. kustomize takes only relative paths below
// its root, so manifests/base and e2e/overlays/local are copied beside it.
func localOverlay(t testing.TB, bucketURL, accessKey, secretKey string, extra map[string]string) string {
	t.Helper()
	root, dir := repoRoot(t), t.TempDir()
	for _, sub := range []string{"manifests/base", "e2e/overlays/local"} {
		if err := os.CopyFS(filepath.Join(dir, sub), os.DirFS(filepath.Join(root, sub))); err != nil {
			t.Fatalf("copy %s: %v", sub, err)
		}
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %s
resources:
- ../e2e/overlays/local
configMapGenerator:
- name: guestkit-dispatcher
  behavior: merge
  literals:
  - GUESTKIT_BUCKET=%s
  - GUESTKIT_ALLOW_BUCKETS=s3://%s/%s
secretGenerator:
- name: guestkit-bucket-credentials
  literals:
  - AWS_ACCESS_KEY_ID=%s
  - AWS_SECRET_ACCESS_KEY=%s
  - AWS_REGION=%s
`, namespace, bucketURL, bucketName(bucketURL), literals(extra), accessKey, secretKey, testenv.Region)
	run := filepath.Join(dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return run
}

// bucketName is the bucket of a bucket URL: the tests' images lie all
// over it (scratch/, untrusted/), so the policy allows all of it.
func bucketName(bucketURL string) string {
	_, rest, _ := strings.Cut(bucketURL, "://")
	name, _, _ := strings.Cut(rest, "?")
	name, _, _ = strings.Cut(name, "/")
	return name
}

// literals are more configMapGenerator literals, sorted.
func literals(env map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(env)) {
		fmt.Fprintf(&b, "\n  - %s=%s", k, env[k])
	}
	return b.String()
}

// waitDispatcher waits until both dispatcher replicas are running and
// ready, and one of them (not a pod that is gone) holds the Lease.
func (c *cluster) waitDispatcher(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var state string
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := c.cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=guestkit-dispatcher"})
		if err != nil {
			state = err.Error()
			return false, nil
		}
		ready := map[string]bool{}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(&p) {
				ready[p.Name] = true
			}
		}
		l, err := c.cs.CoordinationV1().Leases(namespace).Get(ctx, "guestkit-dispatcher", metav1.GetOptions{})
		holder := ""
		if err == nil && l.Spec.HolderIdentity != nil {
			holder = *l.Spec.HolderIdentity
		}
		state = fmt.Sprintf("%d of %d pods ready, lease holder %q", len(ready), len(pods.Items), holder)
		return len(ready) == 2 && len(pods.Items) == 2 && ready[holder], nil
	})
	if err != nil {
		out, _ := c.kubectlErr("-n", namespace, "get", "pods,deployments,replicasets,leases,events", "-o", "wide")
		t.Fatalf("dispatcher not available with a leader: %v (%s)\n%s", err, state, out)
	}
	t.Logf("dispatcher available: %s", state)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ------------------------------------------------------------------ kind

// startKind is the kind provider: a cluster from kind-config.yaml (deleted
// at the end unless GUESTKIT_E2E_KEEP=1), the archives loaded, then the
// kind overlay as for kubeconfig.
func startKind(t *testing.T) *cluster {
	t.Helper()
	kind, err := exec.LookPath("kind")
	if err != nil {
		testenv.Unavailable(t, "GUESTKIT_E2E_PROVIDER=kind: no kind on PATH")
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		testenv.Unavailable(t, "GUESTKIT_E2E_PROVIDER=kind: no Docker engine answers (docker info: %v)", err)
	}
	archives := imageArchives(t)
	name := "guestkit-e2e"
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	runCmd(t, kind, "create", "cluster", "--name", name, "--config", filepath.Join(repoRoot(t), "kind-config.yaml"),
		"--kubeconfig", kubeconfig, "--wait", "180s")
	if os.Getenv("GUESTKIT_E2E_KEEP") != "1" {
		t.Cleanup(func() { _ = exec.Command(kind, "delete", "cluster", "--name", name).Run() })
	}
	for _, a := range archives {
		runCmd(t, kind, "load", "image-archive", a, "--name", name)
	}
	return deployKindOverlay(t, "kind", kubeconfig, kubectlPath(t))
}

func runCmd(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// deployKindOverlay applies manifests/overlays/kind (MinIO in the cluster,
// its bucket made by a Job) and reaches MinIO through a port-forward,
// restarted whenever it ends.
func deployKindOverlay(t *testing.T, provider, kubeconfig, kubectl string) *cluster {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", kubeconfig, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{provider: provider, kubeconfig: kubeconfig, kubectlBin: kubectl, cs: cs, bucketName: "guestkit"}
	c.kubectl(t, "apply", "-k", filepath.Join(repoRoot(t), "manifests/overlays/kind"))
	c.kubectl(t, "-n", namespace, "wait", "--for=condition=complete", "job/minio-bucket", "--timeout=10m")
	c.waitDispatcher(t)

	pf := startPortForward(t, c)
	c.bucket, err = minio.New(pf.addr, &minio.Options{
		Creds: credentials.NewStaticV4("guestkit", "guestkit-dev-only", ""), Region: testenv.Region,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.restartBucket = func(t testing.TB, down time.Duration) {
		// Down for at least `down`: scaled to zero, then back.
		c.kubectl(t, "-n", namespace, "scale", "deployment/minio", "--replicas=0")
		// kubectl wait fails when no pod matches any more: that is done too.
		if out, err := c.kubectlErr("-n", namespace, "wait", "--for=delete", "pod", "-l", "app.kubernetes.io/name=minio", "--timeout=5m"); err != nil &&
			!strings.Contains(err.Error(), "no matching resources") {
			t.Fatalf("MinIO pods not gone: %v\n%s", err, out)
		}
		time.Sleep(down)
		c.kubectl(t, "-n", namespace, "scale", "deployment/minio", "--replicas=1")
		c.kubectl(t, "-n", namespace, "rollout", "status", "deployment/minio", "--timeout=5m")
		pf.waitServing(t)
	}
	pf.waitServing(t)
	return c
}

// portForward keeps `kubectl port-forward svc/minio` running on a fixed
// local port until the test ends.
type portForward struct {
	addr string
}

func startPortForward(t testing.TB, c *cluster) *portForward {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	pf := &portForward{addr: addr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cmd := exec.CommandContext(ctx, c.kubectlBin, "--kubeconfig", c.kubeconfig, "-n", namespace,
				"port-forward", "--address", "127.0.0.1", "svc/minio", port+":9000")
			_ = cmd.Run()
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return pf
}

// waitServing waits until MinIO answers through the port-forward.
func (pf *portForward) waitServing(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", pf.addr, time.Second)
		if err == nil {
			fmt.Fprintf(conn, "GET /minio/health/ready HTTP/1.0\r\n\r\n")
			line, _ := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if strings.Contains(line, " 200 ") {
				return
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("MinIO not serving through the port-forward on %s", pf.addr)
}
