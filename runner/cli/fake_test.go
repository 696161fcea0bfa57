package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/libguestfs"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/runner/cli"
)

// The runner's probe runs for real (qemu-img on small images made by the
// tests); only the libguestfs appliance is faked. The fake serves a small
// Debian-like tree with planted findings: PermitRootLogin yes.

const testVersion = "1.2.3-test"

// debianTree is a small Debian 12 guest.
func debianTree() fstest.MapFS {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s), Mode: 0o644} }
	return fstest.MapFS{
		"etc/os-release": file(`PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
ID=debian
`),
		"etc/debian_version": file("12.5\n"),
		"etc/hostname":       file("web-01\n"),
		"etc/machine-id":     file("0123456789abcdef0123456789abcdef\n"),
		"etc/passwd": file(`root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
sshd:x:100:65534::/run/sshd:/usr/sbin/nologin
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
`),
		"etc/shadow": {Data: []byte(`root:$6$salt$hashhashhash:19700:0:99999:7:::
daemon:*:19700:0:99999:7:::
sshd:*:19700:0:99999:7:::
alice:$6$salt$hashhashhash:19700:0:99999:7:::
`), Mode: 0o640},
		"etc/group": file(`root:x:0:
daemon:x:1:
sudo:x:27:alice
alice:x:1000:
`),
		"etc/ssh/sshd_config":                                    file("# planted finding\nPermitRootLogin yes\nPasswordAuthentication yes\nX11Forwarding yes\n"),
		"lib/systemd/system/ssh.service":                         file("[Unit]\nDescription=OpenBSD Secure Shell server\n[Service]\nExecStart=/usr/sbin/sshd -D\n[Install]\nWantedBy=multi-user.target\nAlias=sshd.service\n"),
		"etc/systemd/system/multi-user.target.wants/ssh.service": {Data: []byte("/lib/systemd/system/ssh.service"), Mode: fs.ModeSymlink | 0o777},
		"etc/systemd/system/sshd.service":                        {Data: []byte("/lib/systemd/system/ssh.service"), Mode: fs.ModeSymlink | 0o777},
		"etc/network/interfaces":                                 file("auto lo\niface lo inet loopback\nauto eth0\niface eth0 inet dhcp\n"),
		"etc/resolv.conf":                                        file("nameserver 10.0.0.2\nsearch example.internal\n"),
		"etc/fstab":                                              file("UUID=1111-2222 / ext4 errors=remount-ro 0 1\n"),
		"boot/vmlinuz-6.1.0-18-amd64":                            file("kernel"),
		"boot/initrd.img-6.1.0-18-amd64":                         file("initrd"),
		"lib/modules/6.1.0-18-amd64/modules.dep":                 file(""),
		"usr/sbin/sshd":                                          {Data: []byte("ELF"), Mode: 0o755},
	}
}

// fakeAppliance is a launched appliance serving a MapFS as one OS root.
type fakeAppliance struct {
	fsys  fstest.MapFS
	facts inspect.OS
	accel result.Accelerator
	// roots overrides Roots (nil: the one root /dev/sda1).
	roots func(ctx context.Context) ([]string, error)
	// onClose runs when the runner shuts the appliance down, which it does
	// just before storing the result.
	onClose func()

	mu     sync.Mutex
	closed int
}

func newFakeAppliance() *fakeAppliance {
	return &fakeAppliance{
		fsys: debianTree(),
		facts: inspect.OS{
			Root: "/dev/sda1", Type: "linux", Distro: "debian", ProductName: "Debian GNU/Linux 12 (bookworm)",
			MajorVersion: 12, MinorVersion: 5, Arch: "x86_64", Hostname: "web-01",
			PackageFormat: "deb", PackageManagement: "apt", OSInfo: "debian12", Format: "installed",
			Mountpoints: []inspect.Mountpoint{{Path: "/", Device: "/dev/sda1"}},
			Filesystems: []inspect.Filesystem{{Device: "/dev/sda1", Type: "ext4", UUID: "1111-2222"}},
		},
		accel: result.Accelerator{Used: "tcg", Fallback: "fake appliance: no KVM"},
	}
}

func (a *fakeAppliance) Roots(ctx context.Context) ([]string, error) {
	if a.roots != nil {
		return a.roots(ctx)
	}
	return []string{"/dev/sda1"}, nil
}

func (a *fakeAppliance) OSFacts(context.Context, string) (inspect.OS, error) { return a.facts, nil }

func (a *fakeAppliance) Mount(context.Context, string) (guest.FS, []inspect.Problem, error) {
	return a.fsys, nil, nil
}

func (a *fakeAppliance) Applications(context.Context, string) ([]inspect.Application, error) {
	return []inspect.Application{
		{Name: "base-files", Version: "12.4+deb12u5", Arch: "amd64"},
		{Name: "openssh-server", Version: "1:9.2p1", Release: "2+deb12u2", Arch: "amd64"},
		{Name: "linux-image-6.1.0-18-amd64", Version: "6.1.76", Release: "1", Arch: "amd64"},
	}, nil
}

func (a *fakeAppliance) Unmount(context.Context) error { return nil }

func (a *fakeAppliance) Storage(context.Context, []inspect.Filesystem) (inspect.Storage, []inspect.Problem, error) {
	return inspect.Storage{
		Devices:     []inspect.Device{{Name: "/dev/sda", Size: 64 << 20, Partition: "msdos"}},
		Partitions:  []inspect.Partition{{Name: "/dev/sda1", Device: "/dev/sda", Number: 1, Start: 1 << 20, Size: 63 << 20, Type: "83"}},
		Filesystems: []inspect.Filesystem{{Device: "/dev/sda1", Type: "ext4", UUID: "1111-2222"}},
	}, nil, nil
}

func (a *fakeAppliance) Accelerator() result.Accelerator { return a.accel }

func (a *fakeAppliance) Close() error {
	a.mu.Lock()
	a.closed++
	hook := a.onClose
	a.mu.Unlock()
	if hook != nil {
		hook()
	}
	return nil
}

func (a *fakeAppliance) closeCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// fakeLauncher hands out app, or fails with err, and records its calls.
type fakeLauncher struct {
	app *fakeAppliance
	err error

	mu    sync.Mutex
	calls []libguestfs.Options
}

func newFakeLauncher() *fakeLauncher { return &fakeLauncher{app: newFakeAppliance()} }

func (l *fakeLauncher) Launch(_ context.Context, opts libguestfs.Options) (runner.Appliance, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, opts)
	if l.err != nil {
		return nil, l.err
	}
	l.app.accel.Requested = opts.Accel
	return l.app, nil
}

func (l *fakeLauncher) launched() []libguestfs.Options {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]libguestfs.Options(nil), l.calls...)
}

// qcow2 makes an empty qcow2 image of 64 MiB.
func qcow2(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	qemuImg(t, "create", "-q", "-f", "qcow2", p, "64M")
	return p
}

// rawDisk writes a 4 MiB raw disk with an MBR, so that it is recognised.
func rawDisk(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	b := make([]byte, 4<<20)
	b[446+4] = 0x83
	b[446+8] = 1
	b[446+12] = 0x10
	b[510], b[511] = 0x55, 0xaa
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("qemu-img", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
	}
}

// outcome is one run of the command line.
type outcome struct {
	code           int
	err            error
	stdout, stderr string
}

// runCLI runs guestkit-runner with args and the fake launcher (nil: a
// launcher that fails the test if called).
func runCLI(t *testing.T, ctx context.Context, l *fakeLauncher, args ...string) outcome {
	t.Helper()
	var stdout, stderr bytes.Buffer
	deps := cli.Deps{Stdout: &stdout, Stderr: &stderr, Version: testVersion}
	if l != nil {
		// The fake appliance serves the test's guest: auto falls back
		// to it, as it does for a disk the direct reader cannot read.
		deps.Launch = l.Launch
		deps.OpenDirect = func(context.Context, runner.DirectImage, logrus.FieldLogger) (runner.DirectSession, error) {
			return nil, fmt.Errorf("this test's guest is served by a fake appliance: %w", filesystem.ErrUnsupported)
		}
	} else {
		deps.Launch = func(context.Context, libguestfs.Options) (runner.Appliance, error) {
			t.Error("the appliance was launched")
			return nil, &libguestfs.LaunchError{Accel: "tcg", Err: os.ErrInvalid}
		}
	}
	err := cli.Run(ctx, args, deps)
	return outcome{code: cli.ExitCode(err), err: err, stdout: stdout.String(), stderr: stderr.String()}
}

// readResult reads and decodes the stored result, failing if it is absent.
func readResult(t *testing.T, path string) *result.Result {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("result: %v", err)
	}
	var res result.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("result %s: %v\n%s", path, err, b)
	}
	if res.APIVersion != result.APIVersion || res.Runner.Name != "guestkit-runner" || res.Runner.Version != testVersion {
		t.Errorf("result header: api_version %q runner %+v", res.APIVersion, res.Runner)
	}
	if res.StartedAt.IsZero() || res.FinishedAt.Before(res.StartedAt) || res.DurationSeconds < 0 {
		t.Errorf("result times: started %v finished %v duration %v", res.StartedAt, res.FinishedAt, res.DurationSeconds)
	}
	return &res
}

// loadSeed reads a seed job of the legacy worker, as a JSON tree.
func loadSeed(name string) map[string]any {
	b, err := os.ReadFile(filepath.Join("..", "..", "internal", "spec", "testdata", "seed-jobs", name))
	if err != nil {
		panic(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	return m
}

// set sets a dotted path in a JSON tree, creating objects on the way.
func set(m map[string]any, path string, v any) {
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	if v == nil {
		delete(m, keys[len(keys)-1])
		return
	}
	m[keys[len(keys)-1]] = v
}

// writeJSON writes v as a spec file and returns its path.
func writeJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// reportOf decodes a result's data.
func reportOf(t *testing.T, res *result.Result) *runner.ProfileData {
	t.Helper()
	var d runner.ProfileData
	if err := json.Unmarshal(res.Data, &d); err != nil {
		t.Fatalf("data: %v\n%s", err, res.Data)
	}
	return &d
}
