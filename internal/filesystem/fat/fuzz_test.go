package fat

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"testing"

	"guestkit.io/batch/internal/filesystem"
)

// memDev is a block.Device over bytes.
type memDev struct{ *bytes.Reader }

func (d memDev) Size() int64 { return d.Reader.Size() }

// The seeds are small images made with mkfs.vfat and filled with mcopy
// (a directory tree, a long name, a multi-cluster file); the FAT32 one is
// below mtools' cluster minimum, so it holds only its label.
func FuzzFAT(f *testing.F) {
	for _, name := range []string{"testdata/fat12.img.gz", "testdata/fat32.img.gz"} {
		f.Add(gunzip(f, name))
	}
	f.Fuzz(func(t *testing.T, img []byte) {
		dev := memDev{bytes.NewReader(img)}
		Probe(dev)
		v, err := Open(dev)
		if err != nil {
			return
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
				if _, err := v.Lstat(p); err != nil {
					checkErr(t, err)
					continue
				}
				if e.IsDir() {
					visit(p, depth+1)
					continue
				}
				fl, err := v.Open(p)
				if err != nil {
					checkErr(t, err)
					continue
				}
				if _, err := io.Copy(io.Discard, io.LimitReader(fl, 256<<10)); err != nil {
					checkErr(t, err)
				}
				fl.(io.ReaderAt).ReadAt(make([]byte, 100), 1000)
				fl.Close()
			}
		}
		visit(".", 0)
	})
}

// checkErr fails on an error that is not one of the documented kinds.
func checkErr(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, filesystem.ErrCorrupt) && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("undocumented error: %v", err)
	}
}

func gunzip(t testing.TB, name string) []byte {
	fd, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	zr, err := gzip.NewReader(fd)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
