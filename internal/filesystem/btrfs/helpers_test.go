package btrfs

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
	"regexp"
	"sort"
	"strings"
	"testing"

	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/prereq"
)

// fileDevice is a block.Device over an image file.
type fileDevice struct {
	*os.File
	size int64
}

func (d fileDevice) Size() int64 { return d.size }

func openImage(t *testing.T, name string) fileDevice {
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
	return fileDevice{f, st.Size()}
}

// needTools skips under -short and reports missing host tools.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs host tools: " + strings.Join(tools, ", "))
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			prereq.Missing(t, "%s not installed (scripts/packages-test.txt)", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// unescape undoes blkid's backslashes before spaces and quotes.
var unescape = regexp.MustCompile(`\\(.)`)

// blkidExport is what `blkid -p -o export` says of an image.
func blkidExport(t *testing.T, img string) map[string]string {
	t.Helper()
	out := run(t, "blkid", "-p", "-o", "export", img)
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = unescape.ReplaceAllString(v, "$1")
		}
	}
	return m
}

func checkProbe(t *testing.T, dev fileDevice, img string) {
	t.Helper()
	want := blkidExport(t, img)
	got, ok := Probe(dev)
	if !ok {
		t.Fatalf("Probe: not btrfs; blkid says %v", want)
	}
	if got.Type != want["TYPE"] || got.Label != want["LABEL"] || got.UUID != want["UUID"] {
		t.Errorf("Probe = %+v; blkid says TYPE=%s LABEL=%s UUID=%s", got, want["TYPE"], want["LABEL"], want["UUID"])
	}
}

// entry is one file of a tree as both sides see it.
type entry struct {
	mode     fs.FileMode
	uid, gid uint32
	size     int64 // regular files and symlinks
	sum      string
	link     string
}

func (e entry) String() string {
	return fmt.Sprintf("%v %d:%d size %d sum %.12s link %q", e.mode, e.uid, e.gid, e.size, e.sum, e.link)
}

func sum(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

// walkVolume reads every file of v: through ReadDir, Lstat (compared with
// the DirEntry's Info and Type), ReadLink and Open, and for regular files
// through Read, ReadAt and Seek.
func walkVolume(t *testing.T, v filesystem.Volume) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	var walk func(dir string)
	walk = func(dir string) {
		fi, err := v.Lstat(dir)
		if err != nil {
			t.Fatalf("Lstat(%q): %v", dir, err)
		}
		out[dir] = volEntry(t, v, dir, fi)
		if !fi.IsDir() {
			return
		}
		ents, err := v.ReadDir(dir)
		if err != nil {
			t.Fatalf("ReadDir(%q): %v", dir, err)
		}
		if !sort.SliceIsSorted(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() }) {
			t.Errorf("ReadDir(%q) is not sorted", dir)
		}
		// Open + ReadDir(n) pages through the same names.
		d, err := v.Open(dir)
		if err != nil {
			t.Fatalf("Open(%q): %v", dir, err)
		}
		var paged []string
		for {
			page, err := d.(fs.ReadDirFile).ReadDir(7)
			for _, e := range page {
				paged = append(paged, e.Name())
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("ReadDir(%q, 7): %v", dir, err)
			}
		}
		d.Close()
		if len(paged) != len(ents) {
			t.Errorf("Open(%q).ReadDir pages %d names, ReadDir %d", dir, len(paged), len(ents))
		}
		for _, e := range ents {
			p := path.Join(dir, e.Name())
			info, err := e.Info()
			if err != nil {
				t.Fatalf("DirEntry(%q).Info: %v", p, err)
			}
			if info.Mode().Type() != e.Type() || info.Name() != e.Name() {
				t.Errorf("DirEntry %q: Type %v, Info %v %q", p, e.Type(), info.Mode(), info.Name())
			}
			walk(p)
		}
	}
	walk(".")
	return out
}

func volEntry(t *testing.T, v filesystem.Volume, name string, fi fs.FileInfo) entry {
	t.Helper()
	o, ok := fi.Sys().(guest.Owner)
	if !ok {
		t.Fatalf("Lstat(%q).Sys() = %T", name, fi.Sys())
	}
	e := entry{mode: fi.Mode(), uid: o.UID, gid: o.GID}
	switch {
	case fi.Mode().IsRegular():
		e.size = fi.Size()
		f, err := v.Open(name)
		if err != nil {
			t.Fatalf("Open(%q): %v", name, err)
		}
		defer f.Close()
		data, err := io.ReadAll(f)
		if err != nil {
			t.Fatalf("read %q: %v", name, err)
		}
		if int64(len(data)) != fi.Size() {
			t.Errorf("%q: read %d bytes, size %d", name, len(data), fi.Size())
		}
		e.sum = sum(data)
		// ReadAt and Seek agree with the sequential read.
		ra := f.(io.ReaderAt)
		for _, off := range []int64{0, 1, 4095, 4096, 65535, 131072, fi.Size() / 3, fi.Size() - 1} {
			if off < 0 || off >= fi.Size() {
				continue
			}
			buf := make([]byte, 10000)
			n, err := ra.ReadAt(buf, off)
			if want := min(int64(len(buf)), fi.Size()-off); int64(n) != want || (err != nil && err != io.EOF) {
				t.Errorf("%q: ReadAt(%d) = %d, %v; want %d", name, off, n, err, want)
			}
			if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
				t.Errorf("%q: ReadAt(%d) differs from the sequential read", name, off)
			}
		}
		if fi.Size() > 0 {
			sk := f.(io.Seeker)
			if pos, err := sk.Seek(-1, io.SeekEnd); err != nil || pos != fi.Size()-1 {
				t.Errorf("%q: Seek(-1, end) = %d, %v", name, pos, err)
			}
			b := make([]byte, 2)
			if n, _ := f.Read(b); n != 1 || b[0] != data[len(data)-1] {
				t.Errorf("%q: read after Seek: %d %x", name, n, b[:n])
			}
		}
	case fi.Mode()&fs.ModeSymlink != 0:
		e.size = fi.Size()
		l, err := v.ReadLink(name)
		if err != nil {
			t.Fatalf("ReadLink(%q): %v", name, err)
		}
		e.link = l
		if _, err := v.Open(name); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Open(symlink %q) = %v, want ErrInvalid", name, err)
		}
	}
	return e
}

// compareTrees reports every difference between two walks.
func compareTrees(t *testing.T, got, want map[string]entry) {
	t.Helper()
	var names []string
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	bad := 0
	for _, n := range names {
		g, gok := got[n]
		w, wok := want[n]
		switch {
		case !gok:
			t.Errorf("%s: missing (want %v)", n, w)
		case !wok:
			t.Errorf("%s: extra (%v)", n, g)
		case g != w:
			t.Errorf("%s:\n got %v\nwant %v", n, g, w)
		default:
			continue
		}
		if bad++; bad > 30 {
			t.Fatal("too many differences")
		}
	}
}
