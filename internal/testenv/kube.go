package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
)

// KubeControllers are the kube-controller-manager controllers that run:
// Jobs and CronJobs with their garbage collection, namespaces with their
// deletion and default ServiceAccount, and the kube-root-ca.crt ConfigMap
// that pods mount.
const KubeControllers = "job-controller,cronjob-controller,ttl-after-finished-controller," +
	"garbage-collector-controller,namespace-controller,serviceaccount-controller," +
	"serviceaccount-token-controller,root-ca-certificate-publisher-controller"

// Kube is a real Kubernetes control plane for tests: etcd, kube-apiserver
// and kube-controller-manager as plain processes on loopback, with an
// empty etcd, stopped when the test that started it ends. Jobs are acted on
// by the real Job controller, not by a fake clientset. There is no
// scheduler and no kubelet: pods stay Pending until a test ends them with
// TerminatePod.
//
// The Kubernetes binaries come from scripts/install-kube.sh (where their
// version is pinned) or from the folder $GUESTKIT_KUBE_BIN; etcd is Debian's
// etcd-server (scripts/packages-test.txt), found in that folder or on PATH.
// Without them, tests skip, except under CI=true where they fail: CI must
// never pass by skipping.
//
// Starting one takes seconds (StartKube's doc has the figure), so a test
// package with many tests should share one: start it in one test and run
// the others as its subtests, each in its own Namespace.
type Kube struct {
	// Host is the API server URL, https://127.0.0.1:PORT. It stays the same
	// across RestartAPIServer.
	Host string
	// Kubeconfig is the path of a kubeconfig file for Host with the admin
	// token, for kubectl and for code under test that reads one.
	Kubeconfig string
	// Token is the admin's bearer token; the admin is in system:masters.
	Token string
	// CAData is the PEM certificate the API server serves: it is
	// self-signed, so it is also the CA to trust.
	CAData []byte
	// BinDir holds kube-apiserver, kube-controller-manager, kube-scheduler,
	// kubelet and kubectl.
	BinDir string

	etcdBin string
	dir     string // certificates, keys, kubeconfig and logs; etcd data under dir/etcd
	etcd    string // client URL, http://127.0.0.1:PORT
	apiAddr string // 127.0.0.1:PORT of Host
	kcmAddr string // 127.0.0.1:PORT of the controller-manager's /healthz
	client  kubernetes.Interface
	opts    KubeOptions

	mu    sync.Mutex
	procs map[string]*kubeProc // running, by binary name
}

type kubeProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// The component names, also their binaries' and their logs' names.
const (
	etcdName = "etcd"
	apiName  = "kube-apiserver"
	kcmName  = "kube-controller-manager"
)

// KubeOptions change how StartKubeWith starts a control plane.
type KubeOptions struct {
	// Address is the IP address kube-apiserver binds to and advertises
	// (the kubernetes Service's endpoint), and that its certificate names
	// besides 127.0.0.1: an address pods can reach for a cluster with a
	// node. Default 127.0.0.1.
	Address string
	// Controllers is the controller manager's --controllers. Default
	// KubeControllers.
	Controllers string
}

// StartKube starts etcd, kube-apiserver and kube-controller-manager with
// empty data, and stops them when t ends (in about a second); if t failed,
// it then logs the tail of each component's log. It returns once the API
// server's /readyz and the controller manager's /healthz answer ok: after
// 3.5-7.5 s on a busy 2-core machine, most of it kube-apiserver's start.
func StartKube(t testing.TB) *Kube {
	t.Helper()
	return StartKubeWith(t, KubeOptions{})
}

// StartKubeWith is StartKube with options.
func StartKubeWith(t testing.TB, opts KubeOptions) *Kube {
	t.Helper()
	if opts.Address == "" {
		opts.Address = "127.0.0.1"
	}
	if opts.Controllers == "" {
		opts.Controllers = KubeControllers
	}
	binDir, etcdBin := kubeBinaries(t)
	k := &Kube{
		BinDir:  binDir,
		etcdBin: etcdBin,
		dir:     t.TempDir(),
		procs:   map[string]*kubeProc{},
		opts:    opts,
	}
	// Registered after TempDir, so it runs before the removal.
	t.Cleanup(func() {
		k.Stop()
		if t.Failed() {
			for _, name := range []string{etcdName, apiName, kcmName} {
				t.Logf("testenv: last lines of %s.log:\n%s", name, k.logTail(name))
			}
		}
	})
	if err := k.writeCredentials(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// A free port can be taken between probing and the server binding it:
	// retry each component with new ports.
	var err error
	for range 3 {
		if err = k.startEtcd(freeAddr(t), freeAddr(t)); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	for range 3 {
		k.apiAddr = net.JoinHostPort(opts.Address, port(freeAddrOn(t, opts.Address)))
		k.Host = "https://" + k.apiAddr
		if err = k.startAPIServer(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := k.writeKubeconfig(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	for range 3 {
		k.kcmAddr = freeAddr(t)
		if err = k.startControllerManager(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	k.client, err = kubernetes.NewForConfig(k.Config())
	if err != nil {
		t.Fatalf("testenv: client: %v", err)
	}
	return k
}

// Config returns a new client configuration for the admin, which the
// caller may change. Its rate limit (QPS 200, Burst 400) is high enough
// not to slow a test down.
func (k *Kube) Config() *rest.Config {
	return &rest.Config{
		Host:            k.Host,
		BearerToken:     k.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), k.CAData...)},
		QPS:             200,
		Burst:           400,
	}
}

// Client returns a clientset for the admin. It keeps working across
// RestartAPIServer.
func (k *Kube) Client() kubernetes.Interface { return k.client }

// Namespace creates a namespace named after the test, with a random
// suffix, and deletes it when t ends. It returns once the namespace's
// default ServiceAccount exists: before that, the API server refuses pods
// in it, the Job controller's among them.
func (k *Kube) Namespace(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := k.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: namespacePrefix(t.Name())},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("testenv: create namespace: %v", err)
	}
	name := ns.Name
	t.Cleanup(func() {
		// Best effort: the test may have left the API server stopped.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = k.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	var last error
	err = wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, last = k.client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("testenv: namespace %s: no default ServiceAccount after 30 s: %v", name, last)
	}
	return name
}

// namespacePrefix turns a test name into a namespace's GenerateName: a
// DNS label of at most 57 characters (the server adds 5) ending in '-'.
func namespacePrefix(test string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(test) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else if s := b.String(); s != "" && !strings.HasSuffix(s, "-") {
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 50 {
		s = strings.TrimRight(s[:50], "-")
	}
	if s == "" {
		s = "test"
	}
	return s + "-"
}

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after 10 s),
// for a test of an outage; etcd and the controller manager keep running.
// Stopping a stopped server does nothing.
func (k *Kube) StopAPIServer() { k.stop(apiName) }

// StartAPIServer starts kube-apiserver again after StopAPIServer, on the
// same port, certificates and etcd, and waits until it is ready. Starting a
// running server does nothing.
func (k *Kube) StartAPIServer(t testing.TB) {
	t.Helper()
	k.mu.Lock()
	running := k.procs[apiName] != nil
	k.mu.Unlock()
	if running {
		return
	}
	if err := k.startAPIServer(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// RestartAPIServer stops kube-apiserver, waits 2 s, and starts it again as
// StartAPIServer does: a short outage.
func (k *Kube) RestartAPIServer(t testing.TB) {
	t.Helper()
	k.StopAPIServer()
	time.Sleep(2 * time.Second)
	k.StartAPIServer(t)
}

// Stop stops the controller manager, the API server and etcd, in that
// order. Stopping a stopped control plane does nothing.
func (k *Kube) Stop() {
	k.stop(kcmName)
	k.stop(apiName)
	k.stop(etcdName)
}

func (k *Kube) stop(name string) {
	k.mu.Lock()
	p := k.procs[name]
	delete(k.procs, name)
	k.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (k *Kube) path(name string) string { return filepath.Join(k.dir, name) }

func (k *Kube) startEtcd(client, peer string) error {
	k.etcd = "http://" + client
	// A failed try may have left a member bootstrapped for other ports.
	if err := os.RemoveAll(k.path("etcd")); err != nil {
		return err
	}
	err := k.start(etcdName, k.etcdBin,
		"--name=testenv",
		"--data-dir="+k.path("etcd"),
		"--listen-client-urls="+k.etcd,
		"--advertise-client-urls="+k.etcd,
		"--listen-peer-urls=http://"+peer,
		"--initial-advertise-peer-urls=http://"+peer,
		"--initial-cluster=testenv=http://"+peer,
		"--logger=zap",
		"--log-outputs=stderr",
	)
	if err != nil {
		return err
	}
	return k.waitHealthy(etcdName, k.etcd+"/health", http.DefaultTransport, 30*time.Second)
}

func (k *Kube) startAPIServer() error {
	err := k.start(apiName, filepath.Join(k.BinDir, apiName),
		"--etcd-servers="+k.etcd,
		"--bind-address="+k.opts.Address,
		"--advertise-address="+k.opts.Address,
		"--secure-port="+port(k.apiAddr),
		"--cert-dir="+k.path("apiserver"),
		"--tls-cert-file="+k.path("serving.crt"),
		"--tls-private-key-file="+k.path("serving.key"),
		"--token-auth-file="+k.path("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+k.path("sa.pub"),
		"--service-account-signing-key-file="+k.path("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		// Nodes are named, not resolvable: logs and exec go to their IP.
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--profiling=false",
		// Without it, SIGTERM leaves the watches of the controller manager
		// open and the server hangs until SIGKILL; with it, it ends
		// them and exits in about a second.
		"--shutdown-watch-termination-grace-period=1s",
	)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(k.CAData)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	return k.waitHealthy(apiName, k.Host+"/readyz", tr, 90*time.Second)
}

func (k *Kube) startControllerManager() error {
	err := k.start(kcmName, filepath.Join(k.BinDir, kcmName),
		"--kubeconfig="+k.Kubeconfig,
		"--controllers="+k.opts.Controllers,
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--service-account-private-key-file="+k.path("sa.key"),
		"--root-ca-file="+k.path("serving.crt"),
		"--bind-address=127.0.0.1",
		"--secure-port="+port(k.kcmAddr),
		"--cert-dir="+k.path("controller-manager"),
		// The default 20/30 would throttle a test creating many Jobs.
		"--kube-api-qps=200",
		"--kube-api-burst=400",
		// etcd 3.4 cannot serve watch-list (no RequestWatchProgress): every
		// informer would try it, log an error and fall back to list+watch.
		"--feature-gates=WatchListClient=false",
		"--profiling=false",
	)
	if err != nil {
		return err
	}
	// Its serving certificate is made up in memory at start: nothing to
	// verify it against, and nothing secret on the wire.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	return k.waitHealthy(kcmName, "https://"+k.kcmAddr+"/healthz", tr, 60*time.Second)
}

// start runs a component with its output appended to dir/NAME.log.
func (k *Kube) start(name, bin string, args ...string) error {
	logf, err := os.OpenFile(k.logPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "==== testenv: %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	// A minimal environment: the caller's KUBECONFIG, ETCD_* and proxy
	// settings stay out.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + k.dir,
		"TMPDIR=" + os.TempDir(),
	}
	cmd.Dir = k.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	p := &kubeProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	k.mu.Lock()
	k.procs[name] = p
	k.mu.Unlock()
	return nil
}

// waitHealthy polls url until it answers 200 (etcd: with "health":"true"),
// and stops the component if it does not in time or fails if it exits.
func (k *Kube) waitHealthy(name, url string, tr http.RoundTripper, timeout time.Duration) error {
	k.mu.Lock()
	p := k.procs[name]
	k.mu.Unlock()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			k.mu.Lock()
			if k.procs[name] == p {
				delete(k.procs, name)
			}
			k.mu.Unlock()
			return fmt.Errorf("%s exited: %v\n%s", name, p.cmd.ProcessState, k.logTail(name))
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if name == apiName {
			req.Header.Set("Authorization", "Bearer "+k.Token)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			last = fmt.Sprintf("%s: %s", resp.Status, body)
			if resp.StatusCode == http.StatusOK && (name != etcdName || strings.Contains(string(body), `"health":"true"`)) {
				return nil
			}
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	k.stop(name)
	return fmt.Errorf("%s not healthy after %v (%s)\n%s", name, timeout, last, k.logTail(name))
}

func (k *Kube) logPath(name string) string { return k.path(name + ".log") }

// logTail returns the last lines of a component's log, for failure
// messages.
func (k *Kube) logTail(name string) string {
	data, _ := os.ReadFile(k.logPath(name))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// writeCredentials makes the admin token, the serving certificate and the
// service-account key pair, all new for each control plane.
func (k *Kube) writeCredentials() error {
	k.Token = rand.Text()
	if err := os.WriteFile(k.path("tokens.csv"),
		fmt.Appendf(nil, "%s,testenv-admin,testenv-admin,\"system:masters\"\n", k.Token), 0o600); err != nil {
		return err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "testenv kube-apiserver"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		IsCA:                  true, // its own CA: the root-ca-file pods trust
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default",
			"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		// 10.0.0.1: the kubernetes Service in --service-cluster-ip-range.
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 0, 0, 1)},
	}
	if ip := net.ParseIP(k.opts.Address); ip != nil && !ip.IsLoopback() {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	k.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(k.path("serving.crt"), k.CAData, 0o644); err != nil {
		return err
	}
	if err := writeECKey(k.path("serving.key"), key); err != nil {
		return err
	}

	// ES256 service-account tokens: an EC key is made in microseconds, an
	// RSA one in up to a second.
	sa, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if err := writeECKey(k.path("sa.key"), sa); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return err
	}
	return os.WriteFile(k.path("sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

func writeECKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

// writeKubeconfig writes the admin's kubeconfig, once Host is known.
func (k *Kube) writeKubeconfig() error {
	k.Kubeconfig = k.path("kubeconfig")
	data := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: testenv-admin
  user:
    token: %s
contexts:
- name: testenv
  context:
    cluster: testenv
    user: testenv-admin
    namespace: default
current-context: testenv
`, k.Host, base64.StdEncoding.EncodeToString(k.CAData), k.Token)
	return os.WriteFile(k.Kubeconfig, []byte(data), 0o600)
}

// TerminatePod does what a kubelet does when a pod's containers end, for
// a control plane without kubelets: it sets the pod's phase to Succeeded
// (exitCode 0) or Failed, with container reporting a terminated state with
// exitCode, reason and message, and any other container terminated with
// exit code 0 ("Completed"). An empty reason becomes "Completed" or
// "Error", as the kubelet reports them. It reads the pod afresh and
// retries on conflicts, so pod may be stale: only its namespace and name
// are used.
func TerminatePod(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, container string, exitCode int32, reason, message string) error {
	if reason == "" {
		reason = "Completed"
		if exitCode != 0 {
			reason = "Error"
		}
	}
	pods := cs.CoreV1().Pods(pod.Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		found := false
		for _, c := range p.Spec.Containers {
			if c.Name == container {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("pod %s/%s has no container %q", p.Namespace, p.Name, container)
		}
		now := metav1.Now()
		started := metav1.NewTime(now.Add(-time.Second))
		terminated := func(c corev1.Container, code int32, reason, message string) corev1.ContainerStatus {
			return corev1.ContainerStatus{
				Name:  c.Name,
				Image: c.Image,
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					ExitCode:   code,
					Reason:     reason,
					Message:    message,
					StartedAt:  started,
					FinishedAt: now,
				}},
			}
		}
		p.Status.InitContainerStatuses = nil
		for _, c := range p.Spec.InitContainers {
			p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, terminated(c, 0, "Completed", ""))
		}
		p.Status.ContainerStatuses = nil
		for _, c := range p.Spec.Containers {
			if c.Name == container {
				p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, terminated(c, exitCode, reason, message))
			} else {
				p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, terminated(c, 0, "Completed", ""))
			}
		}
		p.Status.Phase = corev1.PodSucceeded
		if exitCode != 0 {
			p.Status.Phase = corev1.PodFailed
		}
		if p.Status.StartTime == nil {
			p.Status.StartTime = &started
		}
		for _, ct := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
			setPodCondition(p, corev1.PodCondition{Type: ct, Status: corev1.ConditionFalse,
				Reason: "PodCompleted", LastTransitionTime: now})
		}
		_, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
		return err
	})
}

func setPodCondition(p *corev1.Pod, c corev1.PodCondition) {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == c.Type {
			p.Status.Conditions[i] = c
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, c)
}

// kubeBinaries finds the folder of the Kubernetes binaries:
// $GUESTKIT_KUBE_BIN, else the folder the install script caches them in,
// complete once it holds the script's stamp file. It never builds (that
// takes minutes): run scripts/install-kube.sh first. etcd is taken from
// that folder if there, else from PATH.
func kubeBinaries(t testing.TB) (dir, etcd string) {
	t.Helper()
	dir, err := KubeBinDir()
	if err == nil {
		for _, name := range []string{apiName, kcmName} {
			if err = executable(filepath.Join(dir, name)); err != nil {
				break
			}
		}
	}
	if err == nil {
		etcd = filepath.Join(dir, etcdName)
		if executable(etcd) != nil {
			etcd, err = exec.LookPath(etcdName)
			if err != nil {
				err = fmt.Errorf("%w (install Debian's etcd-server: bash scripts/setup.sh)", err)
			}
		}
	}
	if err == nil {
		return dir, etcd
	}
	Unavailable(t, "testenv: no Kubernetes control plane (%v): run `bash scripts/install-kube.sh` once, or set GUESTKIT_KUBE_BIN", err)
	return "", ""
}

// KubeBinDir is the folder of the Kubernetes binaries (kubectl among
// them): $GUESTKIT_KUBE_BIN, else scripts/install-kube.sh's cache once it
// is complete.
func KubeBinDir() (string, error) {
	if p := os.Getenv("GUESTKIT_KUBE_BIN"); p != "" {
		return p, nil
	}
	dir, err := ScriptPath("install-kube.sh")
	if err != nil {
		return "", err
	}
	// The script renames the folder into place with its stamp inside.
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err != nil {
		return "", fmt.Errorf("%s: not built", dir)
	}
	return dir, nil
}
