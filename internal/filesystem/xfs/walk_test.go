package xfs

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"testing"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/prereq"
)

// fileDev is a block.Device over a host file.
type fileDev struct {
	*os.File
	size int64
}

func (d fileDev) Size() int64 { return d.size }

func openDev(t *testing.T, name string) block.Device {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return fileDev{f, st.Size()}
}

// facts is what the tests compare about one file.
type facts struct {
	mode     fs.FileMode
	uid, gid uint32
	size     int64 // regular files and symlinks only
	target   string
	sum      string // sha256 of a regular file's bytes
	mtime    int64  // Unix seconds; compared only when the truth has it
}

func (f facts) String() string {
	return fmt.Sprintf("%v %d:%d size %d %q %.12s mtime %d", f.mode, f.uid, f.gid, f.size, f.target, f.sum, f.mtime)
}

func sum(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

// walk reads every file of v through the Volume interface and checks the
// interface's own promises on the way (sorted ReadDir, entry types that
// match Lstat, ReaderAt and Seeker agreeing with Read).
func walk(t *testing.T, v filesystem.Volume) map[string]facts {
	t.Helper()
	got := map[string]facts{}
	var dir func(p string)
	dir = func(p string) {
		ents, err := v.ReadDir(p)
		if err != nil {
			t.Errorf("ReadDir(%q): %v", p, err)
			return
		}
		if !slices.IsSortedFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) }) {
			t.Errorf("ReadDir(%q) not sorted", p)
		}
		for _, e := range ents {
			cp := path.Join(p, e.Name())
			fi, err := v.Lstat(cp)
			if err != nil {
				t.Errorf("Lstat(%q): %v", cp, err)
				continue
			}
			if fi.Mode().Type() != e.Type() || fi.Name() != e.Name() {
				t.Errorf("%s: entry says %v, Lstat %v %q", cp, e.Type(), fi.Mode(), fi.Name())
			}
			o, ok := guest.OwnerOf(fi)
			if !ok {
				t.Errorf("%s: no owner", cp)
			}
			ft := facts{mode: fi.Mode(), uid: o.UID, gid: o.GID, mtime: fi.ModTime().Unix()}
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				ft.size = fi.Size()
				if ft.target, err = v.ReadLink(cp); err != nil {
					t.Errorf("ReadLink(%q): %v", cp, err)
				}
			case fi.Mode().IsRegular():
				ft.size = fi.Size()
				ft.sum = readAll(t, v, cp, fi.Size())
			case fi.IsDir():
				dir(cp)
			}
			got[cp] = ft
		}
	}
	dir(".")
	return got
}

// readAll reads a file through Read, checks ReadAt and Seek at a few
// offsets against it, and returns its checksum.
func readAll(t *testing.T, v filesystem.Volume, name string, size int64) string {
	t.Helper()
	f, err := v.Open(name)
	if err != nil {
		t.Errorf("Open(%q): %v", name, err)
		return ""
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil || int64(len(data)) != size {
		t.Errorf("read %q: %d bytes of %d, %v", name, len(data), size, err)
		return ""
	}
	ra, ok1 := f.(io.ReaderAt)
	sk, ok2 := f.(io.Seeker)
	if !ok1 || !ok2 {
		t.Errorf("%q: not an io.ReaderAt and io.Seeker", name)
		return ""
	}
	for _, off := range []int64{0, 1, 511, 4095, 4097, size / 3, size - 1, size - 5000} {
		if off < 0 || off >= size {
			continue
		}
		buf := make([]byte, min(9000, size-off+7))
		n, err := ra.ReadAt(buf, off)
		if want := data[off:min(size, off+int64(len(buf)))]; !bytes.Equal(buf[:n], want) || (n < len(buf) && err != io.EOF) {
			t.Errorf("%q: ReadAt(%d bytes, %d) = %d, %v; differs from Read", name, len(buf), off, n, err)
		}
		if p, err := sk.Seek(off, io.SeekStart); p != off || err != nil {
			t.Errorf("%q: Seek(%d) = %d, %v", name, off, p, err)
		}
		b := make([]byte, 100)
		n, _ = io.ReadFull(f, b)
		if !bytes.Equal(b[:n], data[off:min(size, off+100)]) {
			t.Errorf("%q: Read after Seek(%d) differs", name, off)
		}
	}
	return sum(data)
}

// compare reports every difference between two walks.
func compare(t *testing.T, got, want map[string]facts) {
	t.Helper()
	bad := 0
	for p, w := range want {
		g, ok := got[p]
		if w.mtime == 0 {
			g.mtime = 0
		}
		switch {
		case !ok:
			t.Errorf("missing %s (%v)", p, w)
		case g != w:
			t.Errorf("%s: got %v, want %v", p, g, w)
		default:
			continue
		}
		if bad++; bad > 20 {
			t.Error("too many differences")
			return
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			g.mtime = 0
			t.Errorf("unexpected %s (%v)", p, g)
		}
	}
}

// blkid returns `blkid -p -o export` as a map.
func blkid(t *testing.T, name string) map[string]string {
	t.Helper()
	out, err := exec.Command("blkid", "-p", "-o", "export", name).Output()
	if err != nil {
		t.Fatalf("blkid -p %s: %v", name, err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			// The export format escapes shell characters with a backslash.
			var u strings.Builder
			for i := 0; i < len(v); i++ {
				if v[i] == '\\' && i+1 < len(v) {
					i++
				}
				u.WriteByte(v[i])
			}
			m[k] = u.String()
		}
	}
	return m
}

func checkProbe(t *testing.T, dev block.Device, blk map[string]string) {
	t.Helper()
	info, ok := Probe(dev)
	want := filesystem.Info{Type: blk["TYPE"], Label: blk["LABEL"], UUID: blk["UUID"]}
	if !ok || info != want {
		t.Errorf("Probe = %+v, %v; blkid %+v", info, ok, want)
	}
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds filesystems with host tools")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			prereq.Missing(t, "%s not installed (xfsprogs, libguestfs-tools)", tool)
		}
	}
}

// isPathErr checks that err is an fs.PathError for name wrapping target.
func isPathErr(err error, name string, target error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Path == name && errors.Is(err, target)
}
