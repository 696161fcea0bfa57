package squashfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/prereq"
)

type fileDev struct {
	*os.File
	size int64
}

func (d fileDev) Size() int64 { return d.size }

func openDev(t testing.TB, name string) fileDev {
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

func needTools(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds squashfs images with squashfs-tools")
	}
	for _, tool := range []string{"mksquashfs", "unsquashfs", "blkid"} {
		if _, err := exec.LookPath(tool); err != nil {
			prereq.Missing(t, "%s not installed (squashfs-tools, util-linux)", tool)
		}
	}
	if os.Geteuid() != 0 {
		prereq.Missing(t, "the squashfs fixtures chown files: run as root")
	}
}

func runTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// makeSource builds the tree mksquashfs packs: small files (fragments), a
// three-block file with a tail, a sparse file, an exact multiple of the
// block size, symlinks, a directory of 3000 entries, other owners, setuid
// and sticky bits.
func makeSource(t testing.TB) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "src")
	write := func(name string, data []byte, mode uint32) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Chmod(p, uint32(mode)); err != nil {
			t.Fatal(err)
		}
	}
	pattern := func(n int, seed byte) []byte {
		b := make([]byte, n)
		x := uint32(seed) + 1
		for i := range b {
			x = x*1103515245 + 12345
			b[i] = byte(x >> 16)
		}
		return b
	}
	write("etc/passwd", []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644)
	write("etc/shadow", []byte("root:*:19000:0:99999:7:::\n"), 0o640)
	write("etc/os-release", []byte("ID=debian\nVERSION_ID=12\n"), 0o644)
	write("empty", nil, 0o644)
	write("usr/bin/sudo", pattern(1000, 1), 0o4755)
	write("three-blocks", pattern(3*131072+5000, 2), 0o644) // three blocks and a tail
	write("exact", pattern(2*131072, 3), 0o600)             // no tail at all
	write("text", bytes.Repeat([]byte("compressible text line\n"), 20000), 0o644)
	// Sparse: zero blocks around data.
	sparse := make([]byte, 5*131072+77)
	copy(sparse[2*131072+100:], pattern(1000, 4))
	write("sparse", sparse, 0o644)
	for i := range 3000 {
		write(fmt.Sprintf("many/entry-%04d-%s", i, strings.Repeat("x", i%40)), []byte(fmt.Sprint(i)), 0o644)
	}
	write("home/user/notes.txt", []byte("owned by a user\n"), 0o600)
	if err := os.Chown(filepath.Join(root, "home/user"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(root, "home/user/notes.txt"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	write("var/www/index.html", []byte("<html></html>\n"), 0o644)
	if err := os.Chown(filepath.Join(root, "var/www/index.html"), 33, 44); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"bin":                  "usr/bin",
		"etc/localtime":        "/usr/share/zoneinfo/Etc/UTC",
		"dangling":             "../nowhere/at/all",
		"etc/long-link":        strings.Repeat("a/", 600) + "end",
		"home/user/.bashrc.ln": "/etc/skel/.bashrc",
	} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// pseudo are mksquashfs pseudo definitions: device nodes and a FIFO
// that the source tree cannot hold without mknod.
var pseudo = []string{
	"dev d 755 0 0",
	"dev/null c 666 0 0 1 3",
	"dev/sda b 660 0 6 8 0",
	"dev/initctl i 600 0 0 f",
	"dev/log i 666 0 0 s",
}

func mksquashfs(t testing.TB, src string, args ...string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fs.squashfs")
	a := []string{src, img, "-noappend", "-no-progress", "-quiet"}
	for _, p := range pseudo {
		a = append(a, "-p", p)
	}
	runTool(t, "mksquashfs", append(a, args...)...)
	return img
}

type node struct {
	mode   fs.FileMode
	owner  guest.Owner
	size   int64
	data   []byte
	target string
}

func walk(t testing.TB, v *FS) map[string]node {
	t.Helper()
	out := map[string]node{}
	var visit func(dir string)
	visit = func(dir string) {
		ents, err := v.ReadDir(dir)
		if err != nil {
			t.Fatalf("ReadDir(%q): %v", dir, err)
		}
		if !sort.SliceIsSorted(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() }) {
			t.Errorf("ReadDir(%q) is not sorted", dir)
		}
		for _, e := range ents {
			p := path.Join(dir, e.Name())
			fi, err := v.Lstat(p)
			if err != nil {
				t.Fatalf("Lstat(%q): %v", p, err)
			}
			if fi.Mode().Type() != e.Type() || fi.Name() != e.Name() {
				t.Errorf("%s: Lstat %v %q, ReadDir %v %q", p, fi.Mode().Type(), fi.Name(), e.Type(), e.Name())
			}
			owner, _ := guest.OwnerOf(fi)
			n := node{mode: fi.Mode(), owner: owner, size: fi.Size()}
			switch {
			case fi.IsDir():
				visit(p)
			case fi.Mode().Type() == fs.ModeSymlink:
				if n.target, err = v.ReadLink(p); err != nil {
					t.Fatalf("ReadLink(%q): %v", p, err)
				}
			case fi.Mode().IsRegular():
				f, err := v.Open(p)
				if err != nil {
					t.Fatalf("Open(%q): %v", p, err)
				}
				if n.data, err = io.ReadAll(f); err != nil {
					t.Fatalf("read %q: %v", p, err)
				}
				f.Close()
			}
			out[p] = n
		}
	}
	visit(".")
	return out
}

// lsMode spells a mode as ls and unsquashfs do.
func lsMode(m fs.FileMode) string {
	t := map[fs.FileMode]byte{fs.ModeDir: 'd', fs.ModeSymlink: 'l', fs.ModeDevice | fs.ModeCharDevice: 'c', fs.ModeDevice: 'b', fs.ModeNamedPipe: 'p', fs.ModeSocket: 's', 0: '-'}[m.Type()]
	b := []byte{t}
	for i, c := range "rwxrwxrwx" {
		if m.Perm()&(1<<(8-i)) != 0 {
			b = append(b, byte(c))
		} else {
			b = append(b, '-')
		}
	}
	special := func(i int, on bool, c byte) {
		if !on {
			return
		}
		if b[i] == 'x' {
			b[i] = c
		} else {
			b[i] = c - 'a' + 'A'
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's')
	special(6, m&fs.ModeSetgid != 0, 's')
	special(9, m&fs.ModeSticky != 0, 't')
	return string(b)
}

var llnLine = regexp.MustCompile(`^(\S{10}) (\d+)/(\d+) +(\d+|\d+, *\d+) \d{4}-\d\d-\d\d \d\d:\d\d squashfs-root(/.*)?$`)

// unsquashfsList is `unsquashfs -lln`: path → "mode uid/gid size [->
// target]".
func unsquashfsList(t testing.TB, img string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(runTool(t, "unsquashfs", "-lln", img)), "\n") {
		m := llnLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		name, target, _ := strings.Cut(strings.TrimPrefix(m[5], "/"), " -> ")
		if name == "" {
			continue
		}
		size := m[4]
		if strings.Contains(size, ",") {
			size = "dev"
		}
		out[name] = fmt.Sprintf("%s %s/%s %s %s", m[1], m[2], m[3], size, target)
	}
	return out
}

func TestAgainstSourceAndUnsquashfs(t *testing.T) {
	needTools(t)
	src := makeSource(t)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"gzip", []string{"-comp", "gzip"}},
		{"xz", []string{"-comp", "xz"}},
		{"zstd", []string{"-comp", "zstd"}},
		{"lz4", []string{"-comp", "lz4", "-Xhc"}},
		{"lzo", []string{"-comp", "lzo"}},
		{"uncompressed", []string{"-noI", "-noD", "-noF", "-noX"}},
		{"gzip-4k-nofrag", []string{"-b", "4096", "-no-fragments"}},
		{"gzip-always-frag", []string{"-always-use-fragments", "-no-duplicates"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := mksquashfs(t, src, c.args...)
			f, err := Open(openDev(t, img))
			if err != nil {
				t.Fatal(err)
			}
			got := walk(t, f)

			// Against the source tree.
			n := 0
			err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
				if err != nil || p == src {
					return err
				}
				n++
				rel, _ := filepath.Rel(src, p)
				rel = filepath.ToSlash(rel)
				st, err := os.Lstat(p)
				if err != nil {
					return err
				}
				g, ok := got[rel]
				if !ok {
					t.Errorf("%s: missing", rel)
					return nil
				}
				sys := st.Sys().(*syscall.Stat_t)
				if g.mode != guest.UnixMode(sys.Mode) || g.owner != (guest.Owner{UID: sys.Uid, GID: sys.Gid}) {
					t.Errorf("%s: %v %+v, want %v %d/%d", rel, g.mode, g.owner, guest.UnixMode(sys.Mode), sys.Uid, sys.Gid)
				}
				switch {
				case st.Mode().IsRegular():
					want, err := os.ReadFile(p)
					if err != nil {
						return err
					}
					if g.size != int64(len(want)) || !bytes.Equal(g.data, want) {
						t.Errorf("%s: %d bytes (size %d), want %d", rel, len(g.data), g.size, len(want))
					}
				case st.Mode()&fs.ModeSymlink != 0:
					want, _ := os.Readlink(p)
					if g.target != want || g.size != int64(len(want)) {
						t.Errorf("%s: -> %q (size %d), want %q", rel, g.target, g.size, want)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != n+len(pseudo) {
				t.Errorf("%d entries, want %d from the source and %d pseudo", len(got), n, len(pseudo))
			}

			// Against unsquashfs, pseudo files included.
			want := unsquashfsList(t, img)
			if len(want) != len(got) {
				t.Errorf("unsquashfs lists %d entries, we %d", len(want), len(got))
			}
			for name, w := range want {
				g, ok := got[name]
				if !ok {
					t.Errorf("%s: missing (unsquashfs: %s)", name, w)
					continue
				}
				size := fmt.Sprint(g.size)
				if g.mode&fs.ModeDevice != 0 {
					size = "dev"
				}
				if s := fmt.Sprintf("%s %d/%d %s %s", lsMode(g.mode), g.owner.UID, g.owner.GID, size, g.target); s != w {
					t.Errorf("%s: we say %q, unsquashfs %q", name, s, w)
				}
			}
			testAccess(t, f, src)
		})
	}
}

func testAccess(t *testing.T, f *FS, src string) {
	t.Helper()
	want, _ := os.ReadFile(filepath.Join(src, "three-blocks"))
	fl, err := f.Open("three-blocks")
	if err != nil {
		t.Fatal(err)
	}
	ra, ok := fl.(io.ReaderAt)
	sk, ok2 := fl.(io.Seeker)
	if !ok || !ok2 {
		t.Fatal("an open file is not an io.ReaderAt and io.Seeker")
	}
	buf := make([]byte, 200000)
	if n, err := ra.ReadAt(buf, 100000); n != len(buf) || err != nil || !bytes.Equal(buf, want[100000:300000]) {
		t.Errorf("ReadAt across blocks = %d, %v", n, err)
	}
	if n, err := ra.ReadAt(buf, int64(len(want))-10); n != 10 || err != io.EOF || !bytes.Equal(buf[:10], want[len(want)-10:]) {
		t.Errorf("ReadAt at the end = %d, %v", n, err)
	}
	if pos, err := sk.Seek(-6000, io.SeekEnd); err != nil || pos != int64(len(want))-6000 {
		t.Errorf("Seek = %d, %v", pos, err)
	}
	if rest, err := io.ReadAll(fl); err != nil || !bytes.Equal(rest, want[len(want)-6000:]) {
		t.Errorf("read after seek: %d bytes, %v", len(rest), err)
	}
	// The fixture has what it claims: a sparse block, a tail in a
	// fragment.
	sp, err := f.Open("sparse")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(sp.(*file).sizes, 0) {
		t.Errorf("sparse has no sparse block: %v", sp.(*file).sizes)
	}
	if f.sb.flags&0x10 == 0 {
		if in, err := f.lookup("t", "etc/passwd"); err != nil || in.frag == invalidFrag {
			t.Errorf("etc/passwd is not in a fragment: %v", err)
		}
	}
	for _, name := range []string{"nothing", "etc/passwd/x", "bin/sudo", "many/entry-9999"} {
		if _, err := f.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Lstat(%q): %v, want not exist (no symlink following)", name, err)
		}
	}
	if _, err := f.Lstat("ETC/passwd"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lookup is case-sensitive; got %v", err)
	}
	if _, err := f.Open("/etc"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Open(/etc): %v, want invalid", err)
	}
	if _, err := f.ReadLink("etc/passwd"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("ReadLink of a file: %v, want invalid", err)
	}
	if _, err := f.Open("dev/null"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Open of a device: %v, want invalid", err)
	}
	d, err := f.Open("etc")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for {
		ents, err := d.(fs.ReadDirFile).ReadDir(2)
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(names, " ") != "localtime long-link os-release passwd shadow" {
		t.Errorf("ReadDir(etc) in pairs: %v", names)
	}
}

func TestProbeAgainstBlkid(t *testing.T) {
	needTools(t)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	img := mksquashfs(t, src)
	out := runTool(t, "blkid", "-p", "-o", "export", img)
	info, ok := Probe(openDev(t, img))
	if !ok || !strings.Contains(out, "TYPE="+info.Type+"\n") || info.Label != "" || info.UUID != "" || strings.Contains(out, "UUID=") || strings.Contains(out, "LABEL=") {
		t.Errorf("Probe = %+v, %v; blkid says\n%s", info, ok, out)
	}
	if info, ok := Probe(openDev(t, filepath.Join(src, "..", "src"))); ok {
		t.Errorf("a directory probes as %+v", info)
	}
}

// An xz image whose blocks pass through a branch/call/jump filter is
// refused as unsupported, not read wrong.
func TestXZFilterUnsupported(t *testing.T) {
	needTools(t)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), bytes.Repeat([]byte("x86 code"), 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	img := mksquashfs(t, src, "-comp", "xz", "-Xbcj", "x86")
	if _, err := Open(openDev(t, img)); !errors.Is(err, filesystem.ErrUnsupported) {
		t.Errorf("Open: %v, want unsupported", err)
	}
}
