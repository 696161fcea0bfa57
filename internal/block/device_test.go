package block

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestOpenDeviceMatchesQemuImg reads every format of the test images from
// the image file seen only as a Device (as a remote object is) and
// compares with `qemu-img convert -O raw` of the file.
func TestOpenDeviceMatchesQemuImg(t *testing.T) {
	dir := testImages(t)
	for _, im := range []struct{ file, format string }{
		{"debian.qcow2", "qcow2"},
		{"debian.vmdk", "vmdk"},
		{"debian.vdi", "vdi"},
		{"debian.vhdx", "vhdx"},
		{"debian.raw", "raw"},
	} {
		t.Run(im.format, func(t *testing.T) {
			path := filepath.Join(dir, im.file)
			want := filepath.Join(t.TempDir(), "want.raw")
			qemuImg(t, "convert", "-f", im.format, "-O", "raw", path, want)
			wantBytes, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			dev := openFileDevice(t, path)
			d, err := OpenDevice(t.Context(), dev, im.format, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.Size() != int64(len(wantBytes)) {
				t.Fatalf("size %d, qemu-img %d", d.Size(), len(wantBytes))
			}
			checkSampled(t, d, wantBytes)
			st := d.Stats()
			if st.Reads == 0 || st.BytesRead == 0 {
				t.Errorf("Disk stats %+v", st)
			}
			if im.format == "raw" {
				if d.Export() != nil || d.proc != nil || d.cache != nil {
					t.Error("a raw device goes through a daemon or a cache")
				}
				if dev.reads.Load() != st.Reads {
					t.Errorf("%d device reads, the Disk counts %d", dev.reads.Load(), st.Reads)
				}
				return
			}
			x := d.Export().Stats()
			if x.Connections != 1 || x.Reads == 0 || x.BytesRead == 0 || x.Errors != 0 {
				t.Errorf("export stats %+v", x)
			}
			// The daemon opened no file: the image reaches it by NBD only.
			checkNoFiles(t, d.proc.cmd.Process.Pid)
			t.Logf("%s: %d reads of %d bytes from the Disk; the daemon read %d bytes of the %d-byte image in %d requests",
				im.format, st.Reads, st.BytesRead, x.BytesRead, dev.size, x.Requests)
			sock := d.Export().Socket()
			if err := d.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			assertReaped(t, d.proc)
			if _, err := os.Stat(filepath.Dir(sock)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the export's directory after Close: %v", err)
			}
		})
	}
}

// checkSampled compares d with want at chunk boundaries, the end and
// random places (most in the first megabytes, where the data is).
func checkSampled(t *testing.T, d *Disk, want []byte) {
	t.Helper()
	size := int64(len(want))
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
	check(0, 4096)
	check(3*chunkSize-100, 300)
	check(size-10, 100)
	check(size, 10)
	check(1<<20, largeRead+chunkSize/2)
	rng := rand.New(rand.NewPCG(1, uint64(size)))
	for range 300 {
		limit := size
		if rng.IntN(4) != 0 {
			limit = min(size, 16<<20)
		}
		check(rng.Int64N(limit), 1+rng.IntN(70000))
	}
}

// checkNoFiles asserts that process pid has no regular file open.
func checkNoFiles(t *testing.T, pid int) {
	t.Helper()
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name())
		if err != nil {
			continue
		}
		if strings.HasPrefix(target, "/") && target != "/dev/null" {
			t.Errorf("the daemon has %s open (fd %s)", target, fd.Name())
		}
	}
}

// TestOpenDeviceRefuses: the checks a file gets, on a device: a truncated
// qcow2 is corrupt, one with a backing file refused, before any daemon.
func TestOpenDeviceRefuses(t *testing.T) {
	dir := testImages(t)
	for _, tc := range []struct {
		file, format string
		want         error
		msg          string
	}{
		{"truncated.qcow2", "qcow2", ErrCorrupt, "past the end"},
		{"backing.qcow2", "qcow2", ErrRefused, "backing file"},
		{"datafile.qcow2", "qcow2", ErrRefused, "external data file"},
		{"vmdk-extent.vmdk", "vmdk", ErrRefused, "descriptor"},
	} {
		_, err := OpenDevice(t.Context(), openFileDevice(t, filepath.Join(dir, tc.file)), tc.format, Options{})
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v (%s)", tc.file, err, tc.want, tc.msg)
		}
	}
	for _, f := range []string{"", "auto", "qed", "QCOW2"} {
		if _, err := OpenDevice(t.Context(), memDevice(nil), f, Options{}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("format %q: %v", f, err)
		}
	}
}

// TestOpenDeviceFaults: when the device fails under qemu, the Disk's read
// error is the device's (errors.Is finds it), not a corrupt image; a
// device that fails at once fails OpenDevice with its error.
func TestOpenDeviceFaults(t *testing.T) {
	dir := testImages(t)
	path := filepath.Join(dir, "debian.qcow2")
	changed := errors.New("image changed")
	dev := &faultyDevice{Device: openFileDevice(t, path), err: changed, from: 1 << 62, to: 1 << 62}
	d, err := OpenDevice(t.Context(), dev, "qcow2", Options{CacheBytes: -1, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p := make([]byte, 4096)
	if _, err := d.ReadAt(p, 0); err != nil {
		t.Fatal(err)
	}
	// From now on every read of the image fails; the header and tables
	// qemu already holds are not read again, the data clusters are.
	dev.from, dev.to = 0, 1<<62
	_, err = d.ReadAt(p, 1<<20)
	if !errors.Is(err, changed) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "EIO") {
		t.Errorf("read after the device failed: %v, want EIO from the device's error", err)
	}
	t.Logf("device failure: %v", err)

	// At once: the header cannot be read.
	dev = &faultyDevice{Device: openFileDevice(t, path), err: changed, from: 0, to: 1 << 62}
	if _, err := OpenDevice(t.Context(), dev, "qcow2", Options{}); !errors.Is(err, changed) || errors.Is(err, ErrCorrupt) {
		t.Errorf("OpenDevice on a failing device: %v", err)
	}
	// After the preflight's reads: qemu cannot open the image, and the
	// error names the device's failure, not a corrupt image.
	counter := &failAfter{Device: openFileDevice(t, path), n: 1 << 30}
	if err := checkImage(counter, counter.Size(), "qcow2"); err != nil {
		t.Fatal(err)
	}
	fail := &failAfter{Device: openFileDevice(t, path), n: counter.reads.Load(), err: changed}
	_, err = OpenDevice(t.Context(), fail, "qcow2", Options{Timeout: 10 * time.Second})
	if !errors.Is(err, changed) || errors.Is(err, ErrCorrupt) {
		t.Errorf("OpenDevice on a device that fails after the preflight: %v", err)
	}
	t.Logf("failure at start: %v", err)
}

// failAfter fails every read after its first n with err.
type failAfter struct {
	Device
	n     int64
	err   error
	reads atomic.Int64
}

func (d *failAfter) ReadAt(p []byte, off int64) (int, error) {
	if d.reads.Add(1) > d.n {
		return 0, d.err
	}
	return d.Device.ReadAt(p, off)
}

// TestOpenDeviceRaw: a raw image on a device reads as the device; a device
// that fails or comes up short fails the read with its error.
func TestOpenDeviceRaw(t *testing.T) {
	data := randomBytes(1<<20, 20)
	d, err := OpenDevice(t.Context(), memDevice(data), "raw", Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 1000)
	if n, err := d.ReadAt(p, 1<<20-500); n != 500 || err != io.EOF || !bytes.Equal(p[:500], data[1<<20-500:]) {
		t.Errorf("read at the end: %d, %v", n, err)
	}
	if st := d.Stats(); st.Requests != 1 || st.Reads != 1 || st.BytesRead != 500 {
		t.Errorf("stats %+v", st)
	}
	d.Close()
	if _, err := d.ReadAt(p, 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("read after Close: %v", err)
	}
	changed := errors.New("image changed")
	d, err = OpenDevice(t.Context(), &faultyDevice{Device: memDevice(data), err: changed, from: 0, to: 10}, "raw", Options{CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.ReadAt(p, 0); !errors.Is(err, changed) || !strings.Contains(err.Error(), "at 0") {
		t.Errorf("failing device: %v", err)
	}
	d2, _ := OpenDevice(t.Context(), shortDevice{memDevice(data)}, "raw", Options{})
	if _, err := d2.ReadAt(p, 0); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short device: %v", err)
	}
}
