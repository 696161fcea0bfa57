package libguestfs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/guestconf"
)

// testImage returns a test image built by scripts/testimages.sh (which
// `make test` runs). Only -short skips these tests.
func testImage(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs libguestfs and the test images; run `make test`")
	}
	dir := os.Getenv("GUESTKIT_TEST_IMAGES")
	if dir == "" {
		t.Fatal("GUESTKIT_TEST_IMAGES is not set: run `make test`")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGuestFS checks the guest.FS semantics on a real appliance, in one
// launch: symlinks resolve inside the guest, ownership and special modes
// come through, absence is fs.ErrNotExist (and cached), reads are bounded.
func TestGuestFS(t *testing.T) {
	img := testImage(t, "debian.qcow2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s, err := Launch(ctx, Options{Image: img, Format: "qcow2"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	acc := s.Accelerator()
	if acc.Used != AccelTCG && acc.Used != AccelKVM {
		t.Errorf("accelerator = %+v", acc)
	}
	if KVMUsable() != nil && (acc.Used != AccelTCG || acc.Fallback == "") {
		t.Errorf("KVM fails its self-test here, so auto must use TCG and say why: %+v", acc)
	}
	roots, err := s.Roots(ctx)
	if err != nil || len(roots) != 1 || roots[0] != "/dev/sda1" {
		t.Fatalf("roots = %v, %v", roots, err)
	}
	fsys, probs, err := s.Mount(ctx, roots[0])
	if err != nil || len(probs) != 0 {
		t.Fatalf("mount: %v %v", probs, err)
	}
	defer s.Unmount(ctx)

	// An absolute symlink target resolves inside the guest, not on the host.
	fi, err := fs.Lstat(fsys, "etc/os-release")
	if err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Fatalf("lstat etc/os-release: %v %v", fi, err)
	}
	data, err := guest.ReadFile(fsys, "etc/os-release", guest.DefaultMaxFile)
	if err != nil || !strings.Contains(string(data), "ID=debian") {
		t.Fatalf("read through symlink: %q %v", data, err)
	}
	if data, err := guestconf.ReadFile(fsys, "etc/hostname"); err != nil || strings.TrimSpace(string(data)) != "deb12-test" {
		t.Errorf("hostname = %q, %v", data, err)
	}

	// Ownership and modes.
	fi, err = fsys.Stat("etc/shadow")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := guest.OwnerOf(fi); !ok || o.UID != 0 || o.GID != 42 || fi.Mode().Perm() != 0o640 {
		t.Errorf("etc/shadow: owner %+v mode %v", o, fi.Mode())
	}
	fi, err = fsys.Stat("tmp")
	if err != nil || !fi.IsDir() || fi.Mode()&fs.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("tmp: %v %v, want sticky 1777", fi.Mode(), err)
	}

	// Directory listings carry each entry's lstat.
	ents, err := fsys.ReadDir("etc/systemd/system/multi-user.target.wants")
	if err != nil || len(ents) == 0 {
		t.Fatalf("readdir: %v %v", ents, err)
	}
	found := false
	for _, e := range ents {
		if e.Name() == "ssh.service" {
			found = e.Type() == fs.ModeSymlink
		}
	}
	if !found {
		t.Errorf("ssh.service link not listed as a symlink in %v", ents)
	}
	target, err := fsys.ReadLink("etc/systemd/system/systemd-networkd-wait-online.service")
	if err != nil || target != "/dev/null" {
		t.Errorf("masked unit -> %q, %v", target, err)
	}

	// Absence is fs.ErrNotExist, also when answered from the cache.
	for i := 0; i < 2; i++ {
		if _, err := fsys.Stat("etc/selinux/config"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("round %d: stat missing = %v", i, err)
		}
		if _, err := fsys.ReadDir("no/such/dir"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("round %d: readdir missing = %v", i, err)
		}
	}
	if _, err := fs.Stat(fsys, "../../etc/passwd"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("escaping path: %v", err)
	}

	// Bounded reads.
	if _, err := guest.ReadFile(fsys, "etc/passwd", 16); !errors.Is(err, guest.ErrTooLarge) {
		t.Errorf("bounded read: %v", err)
	}
	f, err := fsys.Open("var/lib/dpkg/status")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if n, err := f.Read(buf); err != nil || n != 10 || string(buf) != "Package: " && !strings.HasPrefix(string(buf), "Package") {
		t.Errorf("partial read: %q %d %v", buf, n, err)
	}
	f.Close()

	st, probs, err := s.Storage(ctx, nil)
	if err != nil || len(probs) != 0 {
		t.Fatalf("storage: %v %v", probs, err)
	}
	if len(st.Devices) != 1 || st.Devices[0].Partition != "msdos" || len(st.Partitions) != 1 || st.Partitions[0].Type != "0x83" {
		t.Errorf("storage = %+v", st)
	}
	if len(st.Filesystems) != 1 || st.Filesystems[0].Type != "ext4" || st.Filesystems[0].Label != "debian-root" {
		t.Errorf("filesystems = %+v", st.Filesystems)
	}
}

// TestLaunchKilledOnCancel: when the job's context ends, qemu dies and the
// pending call returns; nothing is left running.
func TestLaunchKilledOnCancel(t *testing.T) {
	img := testImage(t, "debian.qcow2")
	// A TCG launch takes several seconds: 1 s always lands inside it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	s, err := Launch(ctx, Options{Image: img, Format: "qcow2", Accel: AccelTCG})
	if err == nil {
		s.Close()
		t.Fatal("the appliance launched within 1 s under TCG")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("launch returned %s after the deadline", d)
	}
	time.Sleep(500 * time.Millisecond)
	if kids := qemuChildren(); len(kids) != 0 {
		t.Errorf("qemu still running: %v", kids)
	}
}
