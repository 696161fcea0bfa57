package squashfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"testing"

	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/guest"
)

type memDev struct{ *bytes.Reader }

func (d memDev) Size() int64 { return d.Reader.Size() }

// The seeds are one small tree packed by mksquashfs 4.5 with 4 KiB blocks
// and each compressor: etc/passwd (uid 1000, a fragment), usr/bin/tool
// (9000 random bytes: uncompressed blocks and a tail), sparse (12688 bytes
// with two zero blocks), symlinks bin and pw, and dev/null from a pseudo
// definition.
var seeds = []string{"gzip", "xz", "lz4", "zstd", "lzo"}

func readSeed(t testing.TB, comp string) []byte {
	b, err := os.ReadFile("testdata/seed-" + comp + ".sqfs")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSeeds reads the committed seeds without any tool.
func TestSeeds(t *testing.T) {
	for _, comp := range seeds {
		t.Run(comp, func(t *testing.T) {
			f, err := Open(memDev{bytes.NewReader(readSeed(t, comp))})
			if err != nil {
				t.Fatal(err)
			}
			fi, err := f.Lstat("etc/passwd")
			if err != nil || fi.Size() != 26 || fi.Mode() != 0o644 {
				t.Fatalf("etc/passwd: %v, %v", fi, err)
			}
			if o, _ := guest.OwnerOf(fi); o != (guest.Owner{UID: 1000, GID: 1000}) {
				t.Errorf("etc/passwd owner %+v", o)
			}
			if target, err := f.ReadLink("bin"); target != "usr/bin" || err != nil {
				t.Errorf("bin -> %q, %v", target, err)
			}
			fi, err = f.Lstat("dev/null")
			if err != nil || fi.Mode() != fs.ModeDevice|fs.ModeCharDevice|0o666 {
				t.Errorf("dev/null: %v, %v", fi, err)
			}
			sp, err := fs.ReadFile(fsAdapter{f}, "sparse")
			want := append(append(make([]byte, 8192), bytes.Repeat([]byte("data"), 100)...), make([]byte, 4096)...)
			if err != nil || !bytes.Equal(sp, want) {
				t.Errorf("sparse: %d bytes, %v", len(sp), err)
			}
			tool, err := fs.ReadFile(fsAdapter{f}, "usr/bin/tool")
			if err != nil || len(tool) != 9000 {
				t.Errorf("usr/bin/tool: %d bytes, %v", len(tool), err)
			}
		})
	}
}

type fsAdapter struct{ v *FS }

func (a fsAdapter) Open(name string) (fs.File, error) { return a.v.Open(name) }

func FuzzSquashfs(f *testing.F) {
	for _, comp := range seeds {
		f.Add(readSeed(f, comp))
	}
	f.Fuzz(func(t *testing.T, img []byte) {
		for _, err := range fuzzOne(img) {
			checkErr(t, err)
		}
	})
}

// fuzzOne opens, walks and reads img, and returns the errors met.
func fuzzOne(img []byte) []error {
	var errs []error
	checkErr := func(_ any, err error) { errs = append(errs, err) }
	var t any
	{
		dev := memDev{bytes.NewReader(img)}
		Probe(dev)
		v, err := Open(dev)
		if err != nil {
			checkErr(t, err)
			return errs
		}
		budget := 500
		var visit func(dir string, depth int)
		visit = func(dir string, depth int) {
			ents, err := v.ReadDir(dir)
			if err != nil {
				checkErr(t, err)
				return
			}
			for _, e := range ents {
				if budget--; budget < 0 || depth > 8 {
					return
				}
				p := path.Join(dir, e.Name())
				fi, err := v.Lstat(p)
				if err != nil {
					checkErr(t, err)
					continue
				}
				switch {
				case fi.IsDir():
					visit(p, depth+1)
				case fi.Mode().Type() == fs.ModeSymlink:
					if _, err := v.ReadLink(p); err != nil {
						checkErr(t, err)
					}
				case fi.Mode().IsRegular():
					fl, err := v.Open(p)
					if err != nil {
						checkErr(t, err)
						continue
					}
					if _, err := io.Copy(io.Discard, io.LimitReader(fl, 256<<10)); err != nil {
						checkErr(t, err)
					}
					fl.(io.ReaderAt).ReadAt(make([]byte, 100), 5000)
					fl.Close()
				}
			}
		}
		visit(".", 0)
	}
	return errs
}

// checkErr fails on an error that is not one of the documented kinds.
func checkErr(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, filesystem.ErrCorrupt) && !errors.Is(err, filesystem.ErrUnsupported) &&
		!errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("undocumented error: %v", err)
	}
}
