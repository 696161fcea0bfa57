package block

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"guestkit.io/batch/internal/prereq"
)

// testImages returns the test image directory, or skips (fails in CI).
func testImages(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the test images and qemu")
	}
	dir := os.Getenv("GUESTKIT_TEST_IMAGES")
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); dir == "" || err != nil {
		prereq.Missing(t, "no test images: run `make test`, or set GUESTKIT_TEST_IMAGES")
	}
	for _, tool := range []string{"qemu-img", "qemu-storage-daemon", "qemu-nbd"} {
		if _, err := exec.LookPath(tool); err != nil {
			prereq.Missing(t, "%s not installed (qemu-utils, qemu-system-common)", tool)
		}
	}
	return dir
}

func qemuImg(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestOpenMatchesQemuImg reads every format through Open and compares it
// with `qemu-img convert -O raw` of the same image: the whole disk's hash
// (read in big pieces, then in odd pieces through a cache too small to
// hold it), random reads, reads across chunk boundaries and at the end.
func TestOpenMatchesQemuImg(t *testing.T) {
	dir := testImages(t)
	made := t.TempDir()
	debian := filepath.Join(dir, "debian.raw")
	images := []struct{ name, path, format string }{
		{"qcow2", filepath.Join(dir, "debian.qcow2"), "qcow2"},
		{"vmdk", filepath.Join(dir, "debian.vmdk"), "vmdk"},
		{"vdi", filepath.Join(dir, "debian.vdi"), "vdi"},
		{"vhdx", filepath.Join(dir, "debian.vhdx"), "vhdx"},
		{"raw", debian, "raw"},
		{"qcow2-compressed", filepath.Join(made, "c.qcow2"), "qcow2"},
		{"qcow2-v2", filepath.Join(made, "v2.qcow2"), "qcow2"},
		{"qcow2-extended-l2", filepath.Join(made, "el2.qcow2"), "qcow2"},
		{"vmdk-streamoptimized", filepath.Join(made, "so.vmdk"), "vmdk"},
		{"vpc", filepath.Join(made, "d.vhd"), "vpc"},
		{"qcow2-qemu-nbd", filepath.Join(dir, "debian.qcow2"), "qcow2"},
	}
	qemuImg(t, "convert", "-f", "raw", "-c", "-O", "qcow2", debian, images[5].path)
	qemuImg(t, "convert", "-f", "raw", "-O", "qcow2", "-o", "compat=0.10", debian, images[6].path)
	qemuImg(t, "convert", "-f", "raw", "-O", "qcow2", "-o", "extended_l2=on,cluster_size=128k", debian, images[7].path)
	qemuImg(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", debian, images[8].path)
	qemuImg(t, "convert", "-f", "raw", "-O", "vpc", debian, images[9].path)
	for _, im := range images {
		t.Run(im.name, func(t *testing.T) {
			want := filepath.Join(t.TempDir(), "want.raw")
			qemuImg(t, "convert", "-f", im.format, "-O", "raw", im.path, want)
			wantBytes, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{}
			if im.name == "qcow2-qemu-nbd" {
				opts.server = serverQemuNBD
			}
			d, err := Open(t.Context(), im.path, im.format, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			checkDisk(t, d, wantBytes)
			if d.proc != nil {
				checkOpenFiles(t, d.proc.cmd.Process.Pid, im.path)
			}
			st := d.Stats()
			cached := im.format != "raw" // a raw file has no cache unless asked
			if st.Reads == 0 || st.BytesRead < int64(len(wantBytes)) || (st.CacheHits > 0) != cached || (st.CacheMisses > 0) != cached {
				t.Errorf("stats %+v after reading the %d-byte disk twice", st, len(wantBytes))
			}

			// The same through a cache of 1 MiB, in pieces that are
			// cached (under largeRead) and straddle chunks.
			small, err := Open(t.Context(), im.path, im.format, Options{CacheBytes: 1 << 20, server: opts.server})
			if err != nil {
				t.Fatal(err)
			}
			defer small.Close()
			h := sha256.New()
			if _, err := io.CopyBuffer(h, io.NewSectionReader(small, 0, small.Size()), make([]byte, 100_000)); err != nil {
				t.Fatal(err)
			}
			if got, want := h.Sum(nil), sha256.Sum256(wantBytes); !bytes.Equal(got, want[:]) {
				t.Errorf("read in 100000-byte pieces through a 1 MiB cache: sha256 %x, qemu-img %x", got, want)
			}
		})
	}
}

// checkDisk compares d with want in many ways.
func checkDisk(t *testing.T, d *Disk, want []byte) {
	t.Helper()
	size := int64(len(want))
	if d.Size() != size {
		t.Fatalf("size %d, qemu-img convert gives %d", d.Size(), size)
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(d, 0, size), make([]byte, 4<<20)); err != nil {
		t.Fatal(err)
	}
	if got, w := h.Sum(nil), sha256.Sum256(want); !bytes.Equal(got, w[:]) {
		t.Fatalf("whole disk sha256 %x, qemu-img %x", got, w)
	}
	check := func(off int64, n int) {
		t.Helper()
		p := make([]byte, n)
		got, err := d.ReadAt(p, off)
		wantN := int(max(0, min(int64(n), size-off)))
		if got != wantN || (wantN < n) != (err == io.EOF) || (wantN == n && err != nil) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d bytes", n, off, got, err, wantN)
		}
		if !bytes.Equal(p[:got], want[off:off+int64(got)]) {
			t.Fatalf("ReadAt(%d bytes at %d): bytes differ from qemu-img's", n, off)
		}
	}
	check(3*chunkSize-100, 300)          // across one chunk boundary
	check(5*chunkSize-1, 2*chunkSize+2)  // over three chunks
	check(size-10, 100)                  // the end, short
	check(size-chunkSize-7, chunkSize+7) // the last chunk exactly
	check(size, 10)                      // at the end: EOF
	check(0, largeRead+chunkSize/2)      // large, not cached
	rng := rand.New(rand.NewPCG(1, uint64(size)))
	// The Debian image's data is in its first megabytes: most random reads
	// go there.
	for range 300 {
		limit := size
		if rng.IntN(2) == 0 {
			limit = min(size, 8<<20)
		}
		check(rng.Int64N(limit), 1+rng.IntN(20000))
	}
	if _, err := d.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("a read at -1 succeeds")
	}
}

// checkOpenFiles asserts that the daemon has the image open and no other
// file: no backing file, no extent, nothing but pipes, sockets and
// /dev/null besides.
func checkOpenFiles(t *testing.T, pid int, image string) {
	t.Helper()
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(image)
	sawImage := false
	for _, fd := range fds {
		target, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name())
		if err != nil {
			continue
		}
		switch {
		case target == abs:
			sawImage = true
		case strings.HasPrefix(target, "socket:"), strings.HasPrefix(target, "pipe:"),
			strings.HasPrefix(target, "anon_inode:"), target == "/dev/null":
		default:
			t.Errorf("the daemon has %s open (fd %s)", target, fd.Name())
		}
	}
	if !sawImage {
		t.Errorf("the daemon does not have %s open", abs)
	}
}

// TestCorruptImages: what qemu would read as zeroes (a truncated qcow2) is
// refused before the daemon starts; what qemu finds broken (garbage in
// the L1 table, a compressed cluster that does not inflate) fails the read
// with qemu's own message.
func TestCorruptImages(t *testing.T) {
	dir := testImages(t)
	made := t.TempDir()

	_, err := Open(t.Context(), filepath.Join(dir, "truncated.qcow2"), "qcow2", Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "past the end") {
		t.Errorf("truncated.qcow2: %v, want a corrupt image with a cluster past the end", err)
	}

	// Garbage in the L1 table: our check refuses it; qemu itself, asked
	// directly, fails the read with EIO and says why. The disk has data in
	// the parts L1 entries 0 and 1 map; only entry 0 is overwritten.
	garbage := filepath.Join(made, "l1.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", garbage, "1G")
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x61 0 64k", "-c", "write -P 0x62 600M 64k", garbage).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	hdr := make([]byte, 48)
	f, err := os.OpenFile(garbage, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(hdr, 0); err != nil {
		t.Fatal(err)
	}
	l1 := int64(binary.BigEndian.Uint64(hdr[40:]))
	if _, err := f.WriteAt([]byte{0x80, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde}, l1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Open(t.Context(), garbage, "qcow2", Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "L2 table 0") {
		t.Errorf("garbage L1 table: %v, want a corrupt L2 table 0", err)
	}
	d, err := openDaemon(t.Context(), garbage, "qcow2", Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.ReadAt(make([]byte, 4096), 0)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "EIO") || !strings.Contains(err.Error(), "L2 table offset") {
		t.Errorf("qemu on a garbage L1 table: %v, want EIO with qemu's message", err)
	}
	t.Logf("garbage L1: %v", err)
	// The connection survives a server error: the other half still reads.
	p := make([]byte, 4096)
	if _, err := d.ReadAt(p, 600<<20); err != nil || !bytes.Equal(p, bytes.Repeat([]byte{0x62}, 4096)) {
		t.Errorf("a read after the server's error: %v, %q...", err, p[:8])
	}
	d.Close()

	// A compressed cluster whose bytes are overwritten does not inflate.
	comp := filepath.Join(made, "c.qcow2")
	qemuImg(t, "convert", "-f", "raw", "-c", "-O", "qcow2", filepath.Join(dir, "debian.raw"), comp)
	off, guest := firstCompressedCluster(t, comp)
	f, err = os.OpenFile(comp, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xff}, 256), off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d, err = Open(t.Context(), comp, "qcow2", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.ReadAt(make([]byte, 512), guest)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "EIO") {
		t.Errorf("a compressed cluster that does not inflate: %v, want EIO", err)
	}
	d.Close()

	// A vdi whose header is garbage: the daemon refuses it at start.
	vdi := filepath.Join(made, "bad.vdi")
	src, err := os.ReadFile(filepath.Join(dir, "debian.vdi"))
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(src[0x178:], 12345) // the block size qemu requires to be 1 MiB
	if err := os.WriteFile(vdi, src, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Open(t.Context(), vdi, "vdi", Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "qemu-storage-daemon") {
		t.Errorf("garbage vdi header: %v, want the daemon's refusal", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("the refusal took %s", time.Since(start))
	}
	t.Logf("bad vdi: %v", err)
}

// firstCompressedCluster returns the file offset of the first compressed
// cluster's data and its guest offset, from the L2 tables.
func firstCompressedCluster(t *testing.T, path string) (host, guest int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	bits := be.Uint32(b[20:])
	cluster := int64(1) << bits
	l1Size, l1Off := int64(be.Uint32(b[36:])), int64(be.Uint64(b[40:]))
	for i := range l1Size {
		l2 := int64(be.Uint64(b[l1Off+8*i:]) & qcow2OffsetMask)
		if l2 == 0 {
			continue
		}
		for j := range cluster / 8 {
			e := be.Uint64(b[l2+8*j:])
			if e&qcow2Compressed != 0 {
				return int64(e & (1<<(62-(bits-8)) - 1)), (i*(cluster/8) + j) * cluster
			}
		}
	}
	t.Fatal("no compressed cluster")
	return 0, 0
}

// TestBackingFileNotOpened: an overlay is refused by Open; the daemon,
// started on it directly, does not open the base either: the base's bytes
// do not show through.
func TestBackingFileNotOpened(t *testing.T) {
	testImages(t)
	dir := t.TempDir()
	base, overlay := filepath.Join(dir, "base.raw"), filepath.Join(dir, "overlay.qcow2")
	marker := bytes.Repeat([]byte("BASE-FILE-BYTES!"), 4096)
	if err := os.WriteFile(base, marker, 0o600); err != nil {
		t.Fatal(err)
	}
	qemuImg(t, "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", overlay, "64k")
	_, err := Open(t.Context(), overlay, "qcow2", Options{})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "backing file") {
		t.Errorf("overlay: %v, want a refused backing file", err)
	}
	d, err := openDaemon(t.Context(), overlay, "qcow2", Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	checkOpenFiles(t, d.proc.cmd.Process.Pid, overlay)
	got := make([]byte, len(marker))
	if _, err := d.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, make([]byte, len(got))) {
		t.Errorf("the overlay without its base reads %q..., want zeroes", got[:32])
	}

	// vmdk: a descriptor naming an extent in another file is refused.
	desc := filepath.Join(dir, "desc.vmdk")
	if err := os.WriteFile(desc, []byte("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 128 FLAT \""+base+"\" 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), desc, "vmdk", Options{}); !errors.Is(err, ErrRefused) {
		t.Errorf("vmdk descriptor: %v, want refused", err)
	}
}

// TestDaemonLifecycle: Close and the end of ctx both kill and reap the
// daemon and leave no socket behind; reads then fail at once.
func TestDaemonLifecycle(t *testing.T) {
	dir := testImages(t)
	image := filepath.Join(dir, "debian.qcow2")
	before := socketDirs(t)

	d, err := Open(t.Context(), image, "qcow2", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := socketDirs(t) - before; n != 0 {
		t.Errorf("%d socket directories left while the disk is open", n)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	assertReaped(t, d.proc)
	if _, err := d.ReadAt(make([]byte, 1), 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("read after Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	d, err = Open(ctx, image, "qcow2", Options{CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	cancel()
	assertReaped(t, d.proc)
	start := time.Now()
	if _, err := d.ReadAt(make([]byte, 4096), 1<<20); err == nil {
		t.Error("a read after ctx ended succeeds")
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("the failed read took %s", time.Since(start))
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close after ctx ended: %v", err)
	}

	// A ctx already over: no daemon at all.
	if _, err := Open(ctx, image, "qcow2", Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled ctx: %v", err)
	}
	// qemu-nbd too.
	d, err = Open(t.Context(), image, "qcow2", Options{server: serverQemuNBD})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	assertReaped(t, d.proc)
	if n := socketDirs(t) - before; n != 0 {
		t.Errorf("%d socket directories left", n)
	}
	// A missing daemon binary.
	if _, err := Open(t.Context(), image, "qcow2", Options{Daemon: "/nonexistent/qsd"}); err == nil || !strings.Contains(err.Error(), "/nonexistent/qsd") {
		t.Errorf("missing daemon: %v", err)
	}
}

func assertReaped(t *testing.T, d *daemon) {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the daemon was not reaped")
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(d.cmd.Process.Pid)); err == nil {
		t.Errorf("pid %d still exists", d.cmd.Process.Pid)
	}
}

func socketDirs(t *testing.T) int {
	m, err := filepath.Glob(filepath.Join(os.TempDir(), "guestkit-block-*"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// TestOpenErrors: formats are never guessed, and a raw image must be a
// regular file.
func TestOpenErrors(t *testing.T) {
	if _, err := Open(t.Context(), "/dev/null", "raw", Options{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("raw /dev/null: %v", err)
	}
	for _, f := range []string{"", "auto", "qed", "QCOW2", "raw "} {
		if _, err := Open(t.Context(), "/dev/null", f, Options{}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("format %q: %v", f, err)
		}
	}
	if _, err := Open(t.Context(), filepath.Join(t.TempDir(), "none"), "qcow2", Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestManifestImages opens every test image of a format Open takes: the
// good ones read as `qemu-img convert` says, the broken ones fail as the
// manifest expects (image_corrupt, image_backing_file), never with zeroes.
func TestManifestImages(t *testing.T) {
	dir := testImages(t)
	manifest, err := os.ReadFile(filepath.Join(dir, "MANIFEST"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, line := range strings.Split(string(manifest), "\n") {
		f := strings.Split(line, "\t")
		if strings.HasPrefix(line, "#") || len(f) < 4 || f[2] == "" {
			continue
		}
		name, file, format, expected := f[0], filepath.Join(dir, f[1]), f[2], f[3]
		t.Run(name, func(t *testing.T) {
			d, err := Open(t.Context(), file, format, Options{})
			switch expected {
			case "image_corrupt":
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Open: %v, want a corrupt image", err)
				}
				return
			case "image_backing_file":
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("Open: %v, want a refused image", err)
				}
				return
			case "image_too_large":
				if err != nil {
					t.Fatalf("Open: %v (the size limit is image.Probe's)", err)
				}
				d.Close()
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			want := filepath.Join(t.TempDir(), "want.raw")
			qemuImg(t, "convert", "-f", format, "-O", "raw", file, want)
			wf, err := os.Open(want)
			if err != nil {
				t.Fatal(err)
			}
			defer wf.Close()
			hw, hg := sha256.New(), sha256.New()
			nw, err := io.Copy(hw, wf)
			if err != nil {
				t.Fatal(err)
			}
			if d.Size() != nw {
				t.Fatalf("size %d, qemu-img %d", d.Size(), nw)
			}
			if _, err := io.Copy(hg, io.NewSectionReader(d, 0, d.Size())); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(hw.Sum(nil), hg.Sum(nil)) {
				t.Errorf("sha256 %x, qemu-img %x", hg.Sum(nil), hw.Sum(nil))
			}
			checked++
		})
	}
	if checked < 10 {
		t.Errorf("compared %d images", checked)
	}
}
