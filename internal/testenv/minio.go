// Package testenv starts real servers for the tests of any package: a MinIO
// server stands in for S3, so the store is tested against the protocol and
// not a mock of it.
//
// The MinIO binary comes from scripts/install-minio.sh (where its version is
// pinned) or from $GUESTKIT_MINIO. Without it, tests skip, except under CI=true
// where they fail: CI must never pass by skipping.
package testenv

import (
	"context"
	"fmt"
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

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/notification"
)

// Region is the region MinIO reports and Env sets.
const Region = "us-east-1"

// MinIO is a running MinIO server on loopback, single drive, stopped when
// the test ends.
type MinIO struct {
	// Endpoint is the S3 endpoint URL, http://IP:PORT.
	Endpoint string
	// Host is IP:PORT, the form minio-go and MINIO_ENDPOINT take.
	Host string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
	// Bucket exists when StartMinIO returns.
	Bucket string

	t       testing.TB
	bin     string
	dir     string // data under dir/data, log in dir/minio.log
	console string

	mu      sync.Mutex
	env     []string // extra server settings (webhook targets)
	cmd     *exec.Cmd
	exited  chan struct{}
	buckets int
}

// StartMinIO starts a MinIO server on 127.0.0.1 with an empty data folder
// and one bucket, and stops it when t ends. It takes about a second.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	return StartMinIOOn(t, "127.0.0.1")
}

// StartMinIOOn is StartMinIO listening on ip, such as a pod network's
// gateway address that pods reach (StartCluster's HostIP).
func StartMinIOOn(t testing.TB, ip string) *MinIO {
	t.Helper()
	m := &MinIO{
		AccessKey: "guestkit-test",
		SecretKey: "guestkit-test-secret",
		Bucket:    "guestkit-test",
		t:         t,
		bin:       minioBinary(t),
		dir:       t.TempDir(),
	}
	t.Cleanup(m.Stop) // registered after TempDir, so it runs before the removal
	// A free port can be taken between probing and MinIO binding it: retry.
	var err error
	for range 3 {
		m.Host, m.console = freeAddrOn(t, ip), freeAddrOn(t, ip)
		m.Endpoint = "http://" + m.Host
		if err = m.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Client(t).MakeBucket(ctx, m.Bucket, minio.MakeBucketOptions{Region: Region}); err != nil {
		t.Fatalf("testenv: make bucket %s: %v", m.Bucket, err)
	}
	return m
}

// Env returns the environment the store reads to reach this server through
// s3:// and minio:// URLs. It also blanks the variables through which a
// developer's own AWS or MinIO setup could leak into a test.
func (m *MinIO) Env() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":     m.AccessKey,
		"AWS_SECRET_ACCESS_KEY": m.SecretKey,
		"AWS_REGION":            Region,
		"AWS_ENDPOINT_URL_S3":   m.Endpoint,
		"MINIO_ENDPOINT":        m.Host,

		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_ENDPOINT_URL":            "",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"MINIO_ROOT_USER":             "",
		"MINIO_ROOT_PASSWORD":         "",
		"MINIO_ACCESS_KEY":            "",
		"MINIO_SECRET_KEY":            "",
	}
}

// SetEnv applies Env with t.Setenv (so t must not be parallel).
func (m *MinIO) SetEnv(t testing.TB) {
	t.Helper()
	for k, v := range m.Env() {
		t.Setenv(k, v)
	}
}

// Client returns a minio-go client with the root credentials, to set up or
// check objects behind the code under test.
func (m *MinIO) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(m.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""),
		Region: Region,
	})
	if err != nil {
		t.Fatalf("testenv: minio client: %v", err)
	}
	return c
}

// NewBucket creates an empty bucket, so a test starts from a clean listing.
func (m *MinIO) NewBucket(t testing.TB) string {
	t.Helper()
	m.mu.Lock()
	m.buckets++
	name := fmt.Sprintf("%s-%d", m.Bucket, m.buckets)
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{Region: Region}); err != nil {
		t.Fatalf("testenv: make bucket %s: %v", name, err)
	}
	return name
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s). Data stays for
// Restart. Stopping a stopped server does nothing.
func (m *MinIO) Stop() {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart starts the server again on the same port and data, after Stop.
func (m *MinIO) Restart() {
	m.t.Helper()
	m.Stop()
	if err := m.start(); err != nil {
		m.t.Fatalf("testenv: restart: %v", err)
	}
}

// Start starts the server again after Stop, on the same port and data;
// starting a running server does nothing. Unlike Restart it reports to t,
// so a subtest can call it.
func (m *MinIO) Start(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	running := m.cmd != nil
	m.mu.Unlock()
	if running {
		return
	}
	if err := m.start(); err != nil {
		t.Fatalf("testenv: start: %v", err)
	}
}

// AddWebhook declares a webhook notification target named id (MinIO reads
// targets from its environment at start, so the server restarts) that
// posts events to endpoint with the bearer token; its ARN is
// arn:minio:sqs::ID:webhook, for Notify.
func (m *MinIO) AddWebhook(t testing.TB, id, endpoint, token string) {
	t.Helper()
	m.mu.Lock()
	m.env = append(m.env,
		"MINIO_NOTIFY_WEBHOOK_ENABLE_"+id+"=on",
		"MINIO_NOTIFY_WEBHOOK_ENDPOINT_"+id+"="+endpoint,
		"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_"+id+"="+token)
	m.mu.Unlock()
	m.Restart()
}

// Notify sends the bucket's object-created events under prefix to the
// webhook targets ids (see AddWebhook).
func (m *MinIO) Notify(t testing.TB, bucket, prefix string, ids ...string) {
	t.Helper()
	cfg := notification.Configuration{}
	for _, id := range ids {
		arn := notification.NewArn("minio", "sqs", "", id, "webhook")
		q := notification.NewConfig(arn)
		q.AddEvents(notification.ObjectCreatedAll)
		q.AddFilterPrefix(prefix)
		cfg.AddQueue(q)
	}
	// MinIO registers webhook targets in the background after a start:
	// until then it refuses their ARNs.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := m.Client(t).SetBucketNotification(ctx, bucket, cfg)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: bucket notification on %s: %v", bucket, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (m *MinIO) logPath() string { return filepath.Join(m.dir, "minio.log") }

// start runs the server and waits until it reports ready.
func (m *MinIO) start() error {
	logf, err := os.OpenFile(m.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(m.bin, "server", filepath.Join(m.dir, "data"),
		"--address", m.Host, "--console-address", m.console)
	// A minimal environment: MINIO_* settings of the caller stay out.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + m.dir,
		"TMPDIR=" + os.TempDir(),
		"MINIO_ROOT_USER=" + m.AccessKey,
		"MINIO_ROOT_PASSWORD=" + m.SecretKey,
		"MINIO_BROWSER=off", // no console to start: faster, and nothing on the console port
		"MINIO_UPDATE=off",
	}
	m.mu.Lock()
	cmd.Env = append(cmd.Env, m.env...)
	m.mu.Unlock()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", m.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	m.mu.Lock()
	m.cmd, m.exited = cmd, exited
	m.mu.Unlock()

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			m.mu.Lock()
			m.cmd = nil
			m.mu.Unlock()
			return fmt.Errorf("minio on %s exited: %v\n%s", m.Host, cmd.ProcessState, m.logTail())
		default:
		}
		resp, err := client.Get(m.Endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.Stop()
	return fmt.Errorf("minio on %s not ready after 30 s\n%s", m.Host, m.logTail())
}

// logTail returns the last lines of the server log, for failure messages.
func (m *MinIO) logTail() string {
	data, _ := os.ReadFile(m.logPath())
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

func freeAddr(t testing.TB) string {
	t.Helper()
	return freeAddrOn(t, "127.0.0.1")
}

// freeAddrOn returns IP:PORT with a port free on ip.
func freeAddrOn(t testing.TB, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// minioBinary finds the server: $GUESTKIT_MINIO, else the path the install
// script caches it at. It never builds (that takes minutes): run
// scripts/install-minio.sh first.
func minioBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("GUESTKIT_MINIO"); p != "" {
		if err := executable(p); err != nil {
			t.Fatalf("testenv: GUESTKIT_MINIO: %v", err)
		}
		return p
	}
	p, err := ScriptPath("install-minio.sh")
	if err == nil {
		err = executable(p)
	}
	if err == nil {
		return p
	}
	Unavailable(t, "testenv: no MinIO server (%v): run `bash scripts/install-minio.sh` once, or set GUESTKIT_MINIO", err)
	return ""
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: not an executable file", p)
	}
	return nil
}
