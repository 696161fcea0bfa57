package btrfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"guestkit.io/batch/internal/filesystem"
)

func mkfsImage(t *testing.T, src string, args ...string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "btrfs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 160<<20); err != nil {
		t.Fatal(err)
	}
	run(t, "mkfs.btrfs", append(append([]string{"-q", "-f", "--rootdir", src}, args...), img)...)
	return img
}

// poke overwrites bytes of an image file.
func poke(t *testing.T, img string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func readAll(v filesystem.Volume, name string) ([]byte, error) {
	f, err := v.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// TestCorrupt damages real images and checks the errors: a bad
// superblock checksum, one and both copies of a DUP tree block, a
// truncated image, a two-device filesystem, no filesystem at all.
func TestCorrupt(t *testing.T) {
	needTools(t, "mkfs.btrfs")
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "etc/hostname"), []byte("guest\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("superblock", func(t *testing.T) {
		img := mkfsImage(t, src)
		poke(t, img, superOffset+0x12b+100, []byte{'X'})
		dev := openImage(t, img)
		if _, ok := Probe(dev); !ok {
			t.Error("Probe: a checksum error hides the filesystem (blkid 2.38 still sees it)")
		}
		if _, err := Open(dev); !errors.Is(err, filesystem.ErrCorrupt) {
			t.Errorf("Open = %v, want ErrCorrupt", err)
		}
	})

	t.Run("dup", func(t *testing.T) {
		img := mkfsImage(t, src, "-m", "dup")
		f, err := Open(openImage(t, img))
		if err != nil {
			t.Fatal(err)
		}
		r, err := f.root(fsTreeObjectID)
		if err != nil {
			t.Fatal(err)
		}
		phys, _, err := f.mapLogical(r.tree.bytenr)
		if err != nil || len(phys) != 2 {
			t.Fatalf("fs tree at %d: copies %v, %v", r.tree.bytenr, phys, err)
		}
		// One bad copy: the other one is read.
		poke(t, img, int64(phys[0])+200, []byte("garbage"))
		f, err = Open(openImage(t, img))
		if err != nil {
			t.Fatal(err)
		}
		v, err := f.Volume(fsTreeObjectID)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := readAll(v, "etc/hostname"); err != nil || string(b) != "guest\n" {
			t.Errorf("with copy 0 damaged: %q, %v", b, err)
		}
		// Both bad: corrupt.
		poke(t, img, int64(phys[1])+200, []byte("garbage"))
		f, err = Open(openImage(t, img))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Volume(fsTreeObjectID); !errors.Is(err, filesystem.ErrCorrupt) {
			t.Errorf("with both copies damaged: %v, want ErrCorrupt", err)
		}
	})

	t.Run("truncated", func(t *testing.T) {
		img := mkfsImage(t, src)
		if err := os.Truncate(img, 4<<20); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(openImage(t, img)); !errors.Is(err, filesystem.ErrCorrupt) {
			t.Errorf("Open = %v, want ErrCorrupt", err)
		}
	})

	t.Run("two devices", func(t *testing.T) {
		dir := t.TempDir()
		a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		for _, p := range []string{a, b} {
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, 160<<20); err != nil {
				t.Fatal(err)
			}
		}
		run(t, "mkfs.btrfs", "-q", "-f", "-d", "single", "-m", "single", a, b)
		if _, err := Open(openImage(t, a)); !errors.Is(err, filesystem.ErrUnsupported) {
			t.Errorf("Open = %v, want ErrUnsupported", err)
		}
	})

	t.Run("not btrfs", func(t *testing.T) {
		img := filepath.Join(t.TempDir(), "zero")
		if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		dev := openImage(t, img)
		if _, ok := Probe(dev); ok {
			t.Error("Probe: btrfs on zeroes")
		}
		if _, err := Open(dev); !errors.Is(err, filesystem.ErrCorrupt) {
			t.Errorf("Open = %v, want ErrCorrupt", err)
		}
	})
}
