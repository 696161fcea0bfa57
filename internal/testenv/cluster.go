package testenv

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// The node's pod network: a Linux bridge with the host's address on it, the
// CNI bridge plugin and host-local addresses. Pods reach the host, and so
// the API server and any server a test starts with StartMinIOOn(HostIP),
// at the gateway address.
const (
	clusterBridge  = "gk-testenv0"
	clusterSubnet  = "10.213.0.0/24"
	clusterGateway = "10.213.0.1"
	// serviceIP is the kubernetes Service's ClusterIP, the first address
	// of the API server's --service-cluster-ip-range.
	serviceIP = "10.0.0.1"
	natChain  = "GK-TESTENV-SVC"
)

// PauseImage is the sandbox image of the cluster's containerd, built by
// StartCluster from ./pause.
const PauseImage = "guestkit.io/testenv/pause:1"

// ClusterControllers are KubeControllers plus what a cluster with a node
// needs: Deployments and their ReplicaSets, the node lifecycle (which
// lifts the not-ready taint) and the garbage collection of pods.
const ClusterControllers = KubeControllers + ",deployment-controller,replicaset-controller," +
	"node-lifecycle-controller,pod-garbage-collector-controller,disruption-controller"

// The node components, also their logs' names.
const (
	schedulerName  = "kube-scheduler"
	containerdName = "containerd"
	kubeletName    = "kubelet"
)

// ClusterOptions change StartCluster's node.
type ClusterOptions struct {
	// NodeLabels are the node's labels, beside the kubelet's own.
	NodeLabels map[string]string
}

// Cluster is a one-node Kubernetes cluster of real processes on this
// machine: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// and a node made of a kubelet, containerd with runc, and a CNI bridge. Pods
// really run. What a cluster would have and this one does not:
//   - kube-proxy: no Service routing, except the kubernetes Service's
//     ClusterIP (10.0.0.1:443), which one iptables DNAT rule sends to the
//     API server, as kube-proxy's rule would; in-cluster clients work.
//     Other Services have no endpoints a pod can reach: tests run servers
//     on the host at HostIP instead.
//   - cluster DNS: pods resolve through the host's resolv.conf.
//   - a registry: images are imported with ImportImage, and pods must not
//     pull (imagePullPolicy Never or IfNotPresent).
//
// It needs root, Debian's containerd, runc, containernetworking-plugins and
// iptables, and kubelet and kube-scheduler from scripts/install-kube.sh.
// Without them tests skip, except under CI=true where they fail. One
// Cluster at a time per machine: the bridge and the NAT chain have fixed
// names.
type Cluster struct {
	*Kube
	// Node is the node's name.
	Node string
	// HostIP is the host's address on the pod network.
	HostIP string

	nodeDir string // short path: containerd's socket must fit in sun_path
	sock    string
	ctr     string
}

// StartCluster starts a Cluster and tears it down when t ends: pods
// deleted, kubelet, containerd and their leftovers (containers, shims,
// mounts), the control plane, the NAT rule and the bridge. It returns once
// the node is Ready, about 15-30 s.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	needCluster(t)
	removeStaleNodes()
	if err := setupBridge(); err != nil {
		t.Fatalf("testenv: pod network: %v", err)
	}
	t.Cleanup(func() { _ = run("ip", "link", "del", clusterBridge) })

	k := StartKubeWith(t, KubeOptions{Address: clusterGateway, Controllers: ClusterControllers})
	c := &Cluster{Kube: k, Node: "testenv-node", HostIP: clusterGateway}
	dir, err := os.MkdirTemp("", nodeDirPrefix)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	c.nodeDir = dir
	c.sock = filepath.Join(dir, "containerd.sock")
	c.ctr, _ = exec.LookPath("ctr")
	// Registered after StartKubeWith's: the node goes first, while the API
	// server still answers.
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{schedulerName, containerdName, kubeletName} {
				t.Logf("testenv: last lines of %s.log:\n%s", name, k.logTail(name))
			}
		}
		c.teardown(t)
	})

	if err := c.serviceRule(); err != nil {
		t.Fatalf("testenv: kubernetes Service rule: %v", err)
	}
	if err := c.startScheduler(t); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := c.startContainerd(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := c.importPause(t); err != nil {
		t.Fatalf("testenv: pause image: %v", err)
	}
	if err := c.startKubelet(t, opts.NodeLabels); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return c
}

// needCluster skips (fails under CI=true) without what a node needs.
func needCluster(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if executable(filepath.Join(cniBinDir, p)) != nil {
			missing = append(missing, filepath.Join(cniBinDir, p))
		}
	}
	if dir, err := KubeBinDir(); err != nil {
		missing = append(missing, err.Error())
	} else {
		for _, b := range []string{schedulerName, kubeletName, "kubectl"} {
			if executable(filepath.Join(dir, b)) != nil {
				missing = append(missing, filepath.Join(dir, b))
			}
		}
	}
	if len(missing) == 0 {
		return
	}
	Unavailable(t, "testenv: no Kubernetes node here, missing %s: run `bash scripts/setup.sh` and `bash scripts/install-kube.sh` as root",
		strings.Join(missing, ", "))
}

// cniBinDir is where Debian's containernetworking-plugins puts them.
const cniBinDir = "/usr/lib/cni"

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// setupBridge makes the pod network's bridge with the gateway address
// before the API server binds to that address; the CNI plugin finds it
// there. One left by an interrupted run is replaced.
func setupBridge() error {
	_ = run("ip", "link", "del", clusterBridge)
	for _, args := range [][]string{
		{"link", "add", clusterBridge, "type", "bridge"},
		{"addr", "add", clusterGateway + "/24", "dev", clusterBridge},
		{"link", "set", clusterBridge, "up"},
	} {
		if err := run("ip", args...); err != nil {
			return err
		}
	}
	return nil
}

// serviceRule is kube-proxy's rule for the kubernetes Service, and only
// that: its ClusterIP goes to the API server.
func (c *Cluster) serviceRule() error {
	_ = run("iptables", "-t", "nat", "-N", natChain) // exists after an interrupted run
	if err := run("iptables", "-t", "nat", "-F", natChain); err != nil {
		return err
	}
	if err := run("iptables", "-t", "nat", "-A", natChain, "-d", serviceIP+"/32", "-p", "tcp", "--dport", "443",
		"-j", "DNAT", "--to-destination", c.apiAddr); err != nil {
		return err
	}
	if run("iptables", "-t", "nat", "-C", "PREROUTING", "-j", natChain) != nil {
		return run("iptables", "-t", "nat", "-I", "PREROUTING", "-j", natChain)
	}
	return nil
}

func removeServiceRule() {
	_ = run("iptables", "-t", "nat", "-D", "PREROUTING", "-j", natChain)
	_ = run("iptables", "-t", "nat", "-F", natChain)
	_ = run("iptables", "-t", "nat", "-X", natChain)
}

func (c *Cluster) path(name string) string { return filepath.Join(c.nodeDir, name) }

func (c *Cluster) startScheduler(t testing.TB) error {
	var err error
	for range 3 {
		addr := freeAddr(t)
		err = c.start(schedulerName, filepath.Join(c.BinDir, schedulerName),
			"--kubeconfig="+c.Kubeconfig,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port="+port(addr),
			"--cert-dir="+c.Kube.path("scheduler"),
			"--feature-gates=WatchListClient=false",
			"--profiling=false",
		)
		if err != nil {
			return err
		}
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
		err = c.waitHealthy(schedulerName, "https://"+addr+"/healthz", tr, 60*time.Second)
		tr.CloseIdleConnections()
		if err == nil {
			return nil
		}
	}
	return err
}

func (c *Cluster) startContainerd() error {
	for _, d := range []string{"cni", "ipam", "runc"} {
		if err := os.MkdirAll(c.path(d), 0o755); err != nil {
			return err
		}
	}
	cni := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "testenv",
  "plugins": [{
    "type": "bridge",
    "bridge": %q,
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "dataDir": %q,
      "ranges": [[{"subnet": %q, "gateway": %q}]],
      "routes": [{"dst": "0.0.0.0/0"}]
    }
  }]
}
`, clusterBridge, c.path("ipam"), clusterSubnet, clusterGateway)
	if err := os.WriteFile(c.path("cni/10-testenv.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}
	// restrict_oom_score_adj: the test machines refuse a negative
	// oom_score_adj, and runc then fails to start anything.
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, c.path("root"), c.path("state"), c.sock, c.sock+".ttrpc", PauseImage, c.path("runc"), cniBinDir, c.path("cni"))
	if err := os.WriteFile(c.path("containerd.toml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := c.start(containerdName, "containerd", "--config", c.path("containerd.toml")); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.ctrRun(context.Background(), "version")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd not answering after 30 s: %w\n%s", err, c.logTail(containerdName))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) ctrRun(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, c.ctr, append([]string{"--address", c.sock, "--namespace", "k8s.io"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ImportImage loads a docker or OCI image archive into the node's
// containerd, as `kind load image-archive` would, and unpacks it. Pods
// then find it by the names in the archive.
func (c *Cluster) ImportImage(t testing.TB, archive string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	if err := c.ctrRun(ctx, "images", "import", archive); err != nil {
		t.Fatalf("testenv: import %s: %v", archive, err)
	}
	t.Logf("testenv: imported %s in %v", filepath.Base(archive), time.Since(start).Round(100*time.Millisecond))
}

// importPause builds the sandbox image from ./pause and imports it.
func (c *Cluster) importPause(t testing.TB) error {
	bin := c.path("pause")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "guestkit.io/batch/internal/testenv/pause")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build pause: %w: %s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	if err := tw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar.Bytes())), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		RootFS:       v1.RootFS{Type: "layers"},
		Config:       v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"},
	})
	if err != nil {
		return err
	}
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return err
	}
	tag, err := name.NewTag(PauseImage)
	if err != nil {
		return err
	}
	archive := c.path("pause.tar")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		return err
	}
	c.ImportImage(t, archive)
	return nil
}

func (c *Cluster) startKubelet(t testing.TB, labels map[string]string) error {
	// The kubelet makes its pod-resources socket as a temporary file and
	// renames it into place; that rename sometimes fails with "invalid
	// cross-device link" (seen once here under load; k3s-io/k3s#4042), and
	// the kubelet exits. Its own tmpfs, as kindcontainer does, avoids it;
	// the teardown unmounts it with the rest (unmountUnder).
	podResources := c.path("kubelet/pod-resources")
	if err := os.MkdirAll(podResources, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", podResources, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "size=1m,mode=0755"); err != nil {
		t.Logf("testenv: tmpfs on %s: %v (the kubelet makes its socket on the node folder)", podResources, err)
	}
	kubeletPort, healthzPort := port(freeAddrOn(t, clusterGateway)), port(freeAddr(t))
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %s
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# The API server reaches the kubelet for logs: anonymous and allowed,
# on the pod network's address only.
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
# A test machine's disk may be fuller than a node's: no eviction, and the
# imported images are never collected (they cannot be pulled again).
evictionHard:
  memory.available: 50Mi
  nodefs.available: "0%%"
  imagefs.available: "0%%"
  nodefs.inodesFree: "0%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
podLogsDir: %s
volumePluginDir: %s
resolvConf: /etc/resolv.conf
maxPods: 50
syncFrequency: 10s
fileCheckFrequency: 60s
nodeStatusUpdateFrequency: 5s
`, clusterGateway, kubeletPort, healthzPort, c.sock, c.path("pod-logs"), c.path("volume-plugins"))
	if err := os.WriteFile(c.path("kubelet.yaml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	var pairs []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		pairs = append(pairs, k+"="+labels[k])
	}
	args := []string{
		"--config=" + c.path("kubelet.yaml"),
		"--kubeconfig=" + c.Kubeconfig,
		"--root-dir=" + c.path("kubelet"),
		"--cert-dir=" + c.path("kubelet-pki"),
		"--hostname-override=" + c.Node,
		"--node-ip=" + clusterGateway,
		"--v=1",
	}
	if len(pairs) > 0 {
		args = append(args, "--node-labels="+strings.Join(pairs, ","))
	}
	if err := c.start(kubeletName, filepath.Join(c.BinDir, kubeletName), args...); err != nil {
		return err
	}
	return c.waitNodeReady(2 * time.Minute)
}

// waitNodeReady waits for the node to be Ready with no taint left: the
// node lifecycle controller lifts not-ready once the kubelet reports Ready.
func (c *Cluster) waitNodeReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		c.mu.Lock()
		p := c.procs[kubeletName]
		c.mu.Unlock()
		if p == nil {
			return false, errors.New("kubelet stopped")
		}
		select {
		case <-p.exited:
			return false, fmt.Errorf("kubelet exited: %v", p.cmd.ProcessState)
		default:
		}
		n, err := c.Client().CoreV1().Nodes().Get(ctx, c.Node, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		ready := false
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				ready = cond.Status == corev1.ConditionTrue
				last = fmt.Sprintf("Ready=%s %s: %s", cond.Status, cond.Reason, cond.Message)
			}
		}
		if ready && len(n.Spec.Taints) > 0 {
			last = fmt.Sprintf("taints %v", n.Spec.Taints)
			return false, nil
		}
		return ready, nil
	})
	if err != nil {
		return fmt.Errorf("node %s not ready (%s): %w\n%s", c.Node, last, err, c.logTail(kubeletName))
	}
	return nil
}

// teardown ends every pod through the kubelet while it still runs, then
// stops the node, then removes what the node's processes may have left
// behind: containers, shims, mounts, the NAT rule.
func (c *Cluster) teardown(t testing.TB) {
	// No controller makes new pods meanwhile.
	c.stop(kcmName)
	c.stop(schedulerName)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	grace := int64(1)
	pods, err := c.Client().CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, p := range pods.Items {
			_ = c.Client().CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
		}
		_ = wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			l, err := c.Client().CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
			return err == nil && len(l.Items) == 0, nil
		})
	}
	c.stop(kubeletName)
	removeContainers(c.nodeDir)
	c.stop(containerdName)
	killUnder(c.nodeDir)
	unmountUnder(c.nodeDir)
	removeServiceRule()
	if err := os.RemoveAll(c.nodeDir); err != nil {
		t.Logf("testenv: remove %s: %v", c.nodeDir, err)
	}
}

// nodeDirPrefix names the node folders in os.TempDir().
const nodeDirPrefix = "gk-node-"

// removeStaleNodes removes what an interrupted run (a test binary killed
// before its cleanup) left of its node: containers, shims, mounts, folder.
func removeStaleNodes() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), nodeDirPrefix+"*"))
	for _, dir := range dirs {
		removeContainers(dir)
		killUnder(dir)
		unmountUnder(dir)
		_ = os.RemoveAll(dir)
	}
}

// removeContainers deletes, through runc, any container of the node in dir
// that the kubelet did not remove.
func removeContainers(dir string) {
	root := filepath.Join(dir, "runc", "k8s.io")
	out, err := exec.Command("runc", "--root", root, "list", "-q").Output()
	if err != nil {
		return
	}
	for id := range strings.FieldsSeq(string(out)) {
		_ = run("runc", "--root", root, "delete", "--force", id)
	}
}

// killUnder kills the processes whose command line names dir: containerd's
// shims, which outlive containerd.
func killUnder(dir string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(dir)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// unmountUnder detaches every mount below dir, deepest first, until none
// is left: the kubelet binds its root folder on itself, so a mount made
// under it before (the pod-resources tmpfs) shows again once the bind is
// gone.
func unmountUnder(dir string) {
	for range 8 {
		points := mountsUnder(dir)
		if len(points) == 0 {
			return
		}
		for _, p := range points {
			_ = syscall.Unmount(p, syscall.MNT_DETACH)
		}
	}
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	return points
}
