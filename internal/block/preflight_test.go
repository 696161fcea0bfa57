package block

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tinyQCOW2 is a qcow2 with 512-byte clusters and a few written clusters,
// one compressed, made by qemu-img; nil without qemu.
func tinyQCOW2(t testing.TB, extra ...string) []byte {
	dir := t.TempDir()
	raw, img := filepath.Join(dir, "d.raw"), filepath.Join(dir, "d.qcow2")
	data := make([]byte, 64<<10)
	copy(data[1024:], bytes.Repeat([]byte("data"), 200))
	copy(data[40<<10:], "more data")
	if err := os.WriteFile(raw, data, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=512"}, extra...)
	if out, err := exec.Command("qemu-img", append(args, raw, img)...).CombinedOutput(); err != nil {
		t.Logf("qemu-img: %v %s", err, out)
		return nil
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type bytesAt []byte

func (b bytesAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(b)) {
		return 0, errors.New("out of range")
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF // as a file says it
	}
	return n, nil
}

func TestCheckQCOW2(t *testing.T) {
	if testing.Short() {
		t.Skip("needs qemu-img")
	}
	good := tinyQCOW2(t)
	if good == nil {
		t.Skip("qemu-img cannot make the image")
	}
	if err := checkQCOW2(bytesAt(good), int64(len(good))); err != nil {
		t.Fatalf("a good image: %v", err)
	}
	for _, extra := range [][]string{{"-c"}, {"-o", "compat=0.10"}} {
		if b := tinyQCOW2(t, extra...); checkQCOW2(bytesAt(b), int64(len(b))) != nil {
			t.Errorf("%v: %v", extra, checkQCOW2(bytesAt(b), int64(len(b))))
		}
	}
	be := binary.BigEndian
	l1 := be.Uint64(good[40:])
	l2 := be.Uint64(good[l1:]) & qcow2OffsetMask
	mutate := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	for _, tc := range []struct {
		name, want string
		target     error
		b          []byte
	}{
		{"truncated", "past the end", ErrCorrupt, good[:len(good)-512]},
		{"magic", "magic", ErrCorrupt, mutate(func(b []byte) { b[0] = 'X' })},
		{"version", "version 4", ErrUnsupported, mutate(func(b []byte) { be.PutUint32(b[4:], 4) })},
		{"backing", "backing file", ErrRefused, mutate(func(b []byte) { be.PutUint64(b[8:], 512) })},
		{"cluster bits", "cluster bits 30", ErrCorrupt, mutate(func(b []byte) { be.PutUint32(b[20:], 30) })},
		{"encrypted", "encryption", ErrUnsupported, mutate(func(b []byte) { be.PutUint32(b[32:], 2) })},
		{"L1 huge", "more than qemu allows", ErrCorrupt, mutate(func(b []byte) { be.PutUint32(b[36:], 1<<30) })},
		{"L1 outside", "L1 table", ErrCorrupt, mutate(func(b []byte) { be.PutUint64(b[40:], 1<<40) })},
		{"L1 unaligned", "not aligned", ErrCorrupt, mutate(func(b []byte) { be.PutUint64(b[40:], l1+8) })},
		{"corrupt bit", "marked corrupt", ErrCorrupt, mutate(func(b []byte) { be.PutUint64(b[72:], qcow2IncompatCorrupt) })},
		{"data file", "external data file", ErrRefused, mutate(func(b []byte) { be.PutUint64(b[72:], qcow2IncompatDataFile) })},
		{"L2 outside", "L2 table 0", ErrCorrupt, mutate(func(b []byte) { be.PutUint64(b[l1:], 1<<40) })},
		{"data outside", "guest offset 1024", ErrCorrupt, mutate(func(b []byte) { be.PutUint64(b[l2+16:], 1<<40) })},
		{"compressed outside", "compressed cluster", ErrCorrupt, mutate(func(b []byte) { be.PutUint64(b[l2+16:], qcow2Compressed|1<<40) })},
		{"header", "header", ErrCorrupt, good[:50]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkQCOW2(bytesAt(tc.b), int64(len(tc.b)))
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want %q (%v)", err, tc.want, tc.target)
			}
		})
	}
	// A zero cluster needs no data, wherever its offset points.
	zero := mutate(func(b []byte) { be.PutUint64(b[l2+16:], 1<<40|qcow2ZeroCluster) })
	if err := checkQCOW2(bytesAt(zero), int64(len(zero))); err != nil {
		t.Errorf("a zero cluster: %v", err)
	}
}

// FuzzCheckQCOW2: any bytes give nil or an error wrapping one of the
// package's errors, without panicking.
func FuzzCheckQCOW2(f *testing.F) {
	for _, extra := range [][]string{nil, {"-c"}, {"-o", "compat=0.10"}, {"-o", "extended_l2=on,cluster_size=16k"}} {
		if b := tinyQCOW2(f, extra...); b != nil {
			f.Add(b)
		}
	}
	f.Add([]byte("QFI\xfb\x00\x00\x00\x03"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := checkQCOW2(bytesAt(b), int64(len(b)))
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrRefused) && !errors.Is(err, ErrUnsupported) &&
			!strings.Contains(err.Error(), "short") {
			t.Fatalf("unclassified error: %v", err)
		}
	})
}
