package ext4

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/prereq"
)

// fileDevice is a block.Device over a file.
type fileDevice struct {
	*os.File
	size int64
}

func (d fileDevice) Size() int64 { return d.size }

func openDevice(t testing.TB, name string) fileDevice {
	t.Helper()
	fd, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fd.Close() })
	st, err := fd.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return fileDevice{fd, st.Size()}
}

// memDevice is a block.Device over bytes.
type memDevice []byte

func (d memDevice) Size() int64 { return int64(len(d)) }
func (d memDevice) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(d)) {
		return 0, io.EOF
	}
	n := copy(p, d[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds filesystems with e2fsprogs")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			prereq.Missing(t, "%s not found (e2fsprogs)", tool)
		}
	}
}

func runCmd(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sparseAt is where the sparse file's last data lies: past the double
// indirect range of a 1 KiB block map (12+256+256² blocks), so that ext2
// uses its triple indirect block.
const sparseAt = 70 << 20

// buildTree fills dir with every kind of thing the reader must get right
// (device nodes, sockets and owners only when the test runs as root).
func buildTree(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	write := func(name string, data []byte, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write("empty", nil, 0o644)
	write("tiny", []byte("hello\n"), 0o644)
	write("small", random(100), 0o600) // past i_block: inline data continues in system.data
	write("medium", random(5000), 0o640)
	write("big", random(300<<10), 0o644) // indirect and double indirect with 1 KiB blocks
	write("d/e/f/deep", []byte("deep\n"), 0o644)
	must(os.MkdirAll(filepath.Join(dir, "emptydir"), 0o755))
	write("naïve ☃ name", []byte("unicode\n"), 0o644)
	write(strings.Repeat("n", 255), []byte("long name\n"), 0o644)
	write("setuid", []byte("#!/bin/sh\n"), 0o4755)
	write("setgid", []byte("#!/bin/sh\n"), 0o2711)
	must(os.MkdirAll(filepath.Join(dir, "sticky"), 0o755))
	must(os.Chmod(filepath.Join(dir, "sticky"), 0o1777))
	for i := range 5000 {
		body := []byte(nil)
		if i%500 == 0 {
			body = random(i % 3000)
		}
		write(fmt.Sprintf("many/entry-%04d", i), body, 0o644)
	}
	// A sparse file: data, a hole, data far away.
	sp, err := os.Create(filepath.Join(dir, "sparse"))
	must(err)
	_, err = sp.Write(random(4096))
	must(err)
	_, err = sp.WriteAt(random(5000), sparseAt)
	must(err)
	must(sp.Close())
	must(os.Symlink("medium", filepath.Join(dir, "fastlink")))
	must(os.Symlink(strings.Repeat("x/", 60)+"target", filepath.Join(dir, "slowlink")))
	must(os.Symlink(strings.Repeat("long/", 200)+"end", filepath.Join(dir, "longlink")))
	must(os.Symlink("d/e", filepath.Join(dir, "dirlink")))
	must(os.Symlink("/nowhere/at/all", filepath.Join(dir, "dangling")))
	must(os.Link(filepath.Join(dir, "medium"), filepath.Join(dir, "d/hardlink")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o620))
	if os.Geteuid() == 0 {
		must(syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, 1<<8|3))
		must(syscall.Mknod(filepath.Join(dir, "sda"), syscall.S_IFBLK|0o660, 8<<8))
		must(syscall.Mknod(filepath.Join(dir, "sock"), syscall.S_IFSOCK|0o755, 0))
		write("owned", []byte("owned\n"), 0o644)
		must(os.Lchown(filepath.Join(dir, "owned"), 1234, 5678))
		must(os.Lchown(filepath.Join(dir, "fastlink"), 4321, 8765))
		must(os.Lchown(filepath.Join(dir, "d"), 65534, 65534))
		write("bigids", []byte("big ids\n"), 0o644)
		must(os.Lchown(filepath.Join(dir, "bigids"), 100000, 3000000))
	}
}

// entry is what a walk compares for one path.
type entry struct {
	mode   fs.FileMode
	uid    uint32
	gid    uint32
	size   int64 // regular files and symlinks
	target string
	sum    [32]byte
	mtime  int64
}

func (e entry) String() string {
	return fmt.Sprintf("%v %d:%d size %d link %q sum %x mtime %d", e.mode, e.uid, e.gid, e.size, e.target, e.sum[:4], e.mtime)
}

// walkHost describes dir as the host sees it.
func walkHost(t *testing.T, dir string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		e := entry{mode: guest.UnixMode(st.Mode), uid: st.Uid, gid: st.Gid, mtime: st.Mtim.Sec}
		switch {
		case e.mode.IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.size, e.sum = int64(len(data)), sha256.Sum256(data)
		case e.mode&fs.ModeSymlink != 0:
			if e.target, err = os.Readlink(p); err != nil {
				return err
			}
			e.size = int64(len(e.target))
		}
		out[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// walkVolume describes v the same way, through every Volume method, and
// checks that they agree with each other.
func walkVolume(t *testing.T, v filesystem.Volume, skip func(string) bool) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	var walk func(dir string)
	walk = func(dir string) {
		list, err := v.ReadDir(dir)
		if err != nil {
			t.Fatalf("ReadDir(%q): %v", dir, err)
		}
		for i, d := range list {
			if i > 0 && list[i-1].Name() >= d.Name() {
				t.Errorf("ReadDir(%q): %q before %q", dir, list[i-1].Name(), d.Name())
			}
			p := path.Join(dir, d.Name())
			if skip(p) {
				continue
			}
			fi, err := v.Lstat(p)
			if err != nil {
				t.Fatalf("Lstat(%q): %v", p, err)
			}
			info, err := d.Info()
			if err != nil {
				t.Fatalf("Info(%q): %v", p, err)
			}
			if fi.Mode() != info.Mode() || fi.Name() != d.Name() || info.Name() != d.Name() || d.Type() != fi.Mode().Type() || d.IsDir() != fi.IsDir() {
				t.Errorf("%s: Lstat %v %q, DirEntry %v %q, Info %v", p, fi.Mode(), fi.Name(), d.Type(), d.Name(), info.Mode())
			}
			owner, ok := guest.OwnerOf(fi)
			if !ok {
				t.Fatalf("%s: Sys() is %T", p, fi.Sys())
			}
			e := entry{mode: fi.Mode(), uid: owner.UID, gid: owner.GID, mtime: fi.ModTime().Unix()}
			switch {
			case e.mode.IsRegular():
				e.size = fi.Size()
				e.sum = readVolumeFile(t, v, p, fi.Size())
			case e.mode&fs.ModeSymlink != 0:
				if e.target, err = v.ReadLink(p); err != nil {
					t.Fatalf("ReadLink(%q): %v", p, err)
				}
				e.size = fi.Size()
			case e.mode.IsDir():
				walk(p)
			}
			out[p] = e
		}
	}
	walk(".")
	return out
}

// readVolumeFile reads p whole through Read (iotest.TestReader checks Read,
// ReadAt and Seek against the content) and returns its digest.
func readVolumeFile(t *testing.T, v filesystem.Volume, p string, size int64) [32]byte {
	t.Helper()
	f, err := v.Open(p)
	if err != nil {
		t.Fatalf("Open(%q): %v", p, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil || n != size {
		t.Fatalf("read %q: %d bytes of %d, %v", p, n, size, err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	if size <= 1<<20 {
		data := make([]byte, size)
		if _, err := f.(io.ReaderAt).ReadAt(data, 0); err != nil && err != io.EOF {
			t.Fatalf("ReadAt(%q): %v", p, err)
		}
		if _, err := f.(io.Seeker).Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if err := iotest.TestReader(f, data); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	return sum
}

func compareWalks(t *testing.T, got, want map[string]entry) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s: missing (want %v)", p, w)
		case g != w:
			t.Errorf("%s:\n got %v\nwant %v", p, g, w)
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected %v", p, g)
		}
	}
}

type fixture struct {
	name string
	args []string // mke2fs options
	size string
	// checks on the image's own structures, to be sure the fixture
	// exercises what it is meant to
	check func(t *testing.T, f *FS)
}

var fixtures = []fixture{
	{"ext2-1k", []string{"-t", "ext2", "-b", "1024"}, "64M", checkBlockMaps},
	{"ext2-nofiletype", []string{"-t", "ext2", "-O", "^filetype,^dir_index"}, "64M", nil},
	{"ext3-4k", []string{"-t", "ext3", "-b", "4096"}, "64M", checkBlockMaps},
	{"ext4", []string{"-t", "ext4"}, "64M", checkExtents},
	{"ext4-32bit-nocsum", []string{"-t", "ext4", "-O", "^64bit,^metadata_csum"}, "64M", checkExtents},
	{"ext4-1k-csum", []string{"-t", "ext4", "-b", "1024", "-O", "metadata_csum,64bit"}, "64M", checkExtents},
	{"ext4-inline", []string{"-t", "ext4", "-O", "inline_data"}, "64M", checkInline},
	{"ext4-inline-1k", []string{"-t", "ext4", "-b", "1024", "-O", "inline_data"}, "64M", checkInline},
	{"ext4-meta_bg", []string{"-t", "ext4", "-O", "meta_bg,^resize_inode"}, "64M", checkExtents},
	{"ext4-bigalloc", []string{"-t", "ext4", "-O", "bigalloc", "-C", "16384"}, "128M", checkExtents},
	{"ext4-128-inodes", []string{"-t", "ext4", "-I", "128"}, "64M", checkExtents},
	{"ext4-64k", []string{"-t", "ext4", "-b", "65536", "-N", "16384"}, "128M", checkExtents},
	{"ext4-nojournal", []string{"-t", "ext4", "-O", "^has_journal"}, "64M", checkExtents},
}

// TestFixtures builds each kind of filesystem from the same tree with
// mke2fs -d, and compares a full walk of the Volume with the tree: names,
// types, modes, owners, sizes, file bytes, link targets and mtimes.
func TestFixtures(t *testing.T) {
	needTools(t, "mke2fs", "debugfs", "e2fsck")
	src := filepath.Join(t.TempDir(), "src")
	buildTree(t, src)
	want := walkHost(t, src)
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "fs.img")
			args := append([]string{"-q", "-F", "-L", "lbl-" + fx.name, "-d", src}, fx.args...)
			runCmd(t, "mke2fs", append(args, img, fx.size)...)
			// mke2fs -d writes directories linearly; e2fsck -D indexes
			// them (htree) where dir_index is on.
			if out, err := exec.Command("e2fsck", "-fyD", img).CombinedOutput(); err != nil {
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
					t.Fatalf("e2fsck -fyD: %v\n%s", err, out)
				}
			}
			if fx.name == "ext4" {
				addUnwritten(t, img)
			}
			dev := openDevice(t, img)
			f, err := Open(dev)
			if err != nil {
				t.Fatal(err)
			}
			got := walkVolume(t, f, func(p string) bool { return p == "lost+found" })
			compareWalks(t, got, want)
			if fx.check != nil {
				fx.check(t, f)
			}
			checkErrors(t, f)
		})
	}
}

// addUnwritten preallocates blocks inside the hole of "sparse" with
// debugfs: unwritten extents, which must read as zeroes.
func addUnwritten(t *testing.T, img string) {
	runCmd(t, "debugfs", "-w", "-R", "fallocate /sparse 4 40", img)
	if out := runCmd(t, "debugfs", "-R", "ex /sparse", img); !strings.Contains(out, "Uninit") {
		t.Fatalf("no unwritten extent in sparse:\n%s", out)
	}
}

func mustInode(t *testing.T, f *FS, name string) *inode {
	t.Helper()
	in, err := f.lookup(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return in
}

func checkBlockMaps(t *testing.T, f *FS) {
	for _, name := range []string{"big", "sparse", "many"} {
		if in := mustInode(t, f, name); in.flags&flagExtents != 0 {
			t.Errorf("%s: extents on %s", name, f.sb.blkidType())
		}
	}
	if f.sb.blockSize == 1024 && mustInode(t, f, "sparse").iblock[56] == 0 {
		t.Errorf("sparse: no triple indirect block")
	}
	checkHtree(t, f)
}

func checkExtents(t *testing.T, f *FS) {
	for _, name := range []string{"big", "sparse"} {
		if in := mustInode(t, f, name); in.flags&flagExtents == 0 {
			t.Errorf("%s: no extents", name)
		}
	}
	checkHtree(t, f)
}

func checkHtree(t *testing.T, f *FS) {
	if f.sb.compat&0x20 != 0 && mustInode(t, f, "many").flags&flagIndex == 0 {
		t.Errorf("many: not an htree directory")
	}
}

func checkInline(t *testing.T, f *FS) {
	checkExtents(t, f)
	for _, name := range []string{"tiny", "small", "emptydir", "d/e", "slowlink"} {
		if in := mustInode(t, f, name); in.flags&flagInlineData == 0 {
			t.Errorf("%s: no inline data", name)
		}
	}
	if len(mustInode(t, f, "small").inline) == 0 {
		t.Errorf("small: nothing in system.data")
	}
}

// checkErrors checks the errors of the Volume contract.
func checkErrors(t *testing.T, f *FS) {
	for _, c := range []struct {
		op, name string
		want     error
		call     func(string) error
	}{
		{"lstat", "nothing", fs.ErrNotExist, func(n string) error { _, err := f.Lstat(n); return err }},
		{"lstat", "tiny/x", fs.ErrNotExist, func(n string) error { _, err := f.Lstat(n); return err }},
		{"lstat", "dirlink/f", fs.ErrNotExist, func(n string) error { _, err := f.Lstat(n); return err }},
		{"lstat", "/tiny", fs.ErrInvalid, func(n string) error { _, err := f.Lstat(n); return err }},
		{"readdir", "tiny", fs.ErrInvalid, func(n string) error { _, err := f.ReadDir(n); return err }},
		{"readdir", "dirlink", fs.ErrInvalid, func(n string) error { _, err := f.ReadDir(n); return err }},
		{"readlink", "tiny", fs.ErrInvalid, func(n string) error { _, err := f.ReadLink(n); return err }},
		{"open", "fastlink", fs.ErrInvalid, func(n string) error { _, err := f.Open(n); return err }},
		{"open", "fifo", fs.ErrInvalid, func(n string) error { _, err := f.Open(n); return err }},
	} {
		err := c.call(c.name)
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Op != c.op || pe.Path != c.name || !errors.Is(err, c.want) {
			t.Errorf("%s(%q): %v, want a PathError wrapping %v", c.op, c.name, err, c.want)
		}
	}
	// The root, by Lstat and Open.
	fi, err := f.Lstat(".")
	if err != nil || !fi.IsDir() || fi.Name() != "." {
		t.Errorf("Lstat(.): %v, %v", fi, err)
	}
	d, err := f.Open("d")
	if err != nil {
		t.Fatal(err)
	}
	rd := d.(fs.ReadDirFile)
	first, err := rd.ReadDir(1)
	rest, err2 := rd.ReadDir(-1)
	if err != nil || err2 != nil || len(first) != 1 || len(rest) != 1 || first[0].Name() != "e" {
		t.Errorf("Open(d).ReadDir: %v %v, %v %v", first, err, rest, err2)
	}
	if _, err := rd.ReadDir(1); err != io.EOF {
		t.Errorf("ReadDir past the end: %v", err)
	}
}

// TestProbe compares Probe with blkid -p on filesystems of every type.
func TestProbe(t *testing.T) {
	needTools(t, "mke2fs", "blkid")
	dir := t.TempDir()
	for i, c := range [][]string{
		{"-t", "ext2"},
		{"-t", "ext3"},
		{"-t", "ext4"},
		{"-t", "ext4", "-O", "^64bit,^metadata_csum,^extent,^flex_bg,^huge_file,^dir_nlink,^extra_isize"},
		{"-t", "ext2", "-O", "has_journal"},
		{"-t", "ext3", "-O", "extent"},
		{"-t", "ext4", "-E", "test_fs"},
		{"-t", "ext4", "-L", "  spaced label  "},
		{"-t", "ext4", "-L", "sixteen-chars-xx"},
		{"-t", "ext4", "-U", "clear"},
		{"-t", "ext4", "-U", "01234567-89AB-CDEF-0123-456789ABCDEF"},
		{"-O", "journal_dev", "-b", "4096"},
	} {
		img := filepath.Join(dir, fmt.Sprint(i))
		runCmd(t, "mke2fs", append(append([]string{"-q", "-F"}, c...), img, "8M")...)
		want := blkidInfo(t, img, 0)
		got, ok := Probe(openDevice(t, img))
		if !ok || got != want {
			t.Errorf("mke2fs %v: Probe %+v %v, blkid %+v", c, got, ok, want)
		}
	}
	// blkid 2.38 does not check the superblock checksum; Open does.
	img := filepath.Join(dir, "badcsum")
	runCmd(t, "mke2fs", "-q", "-F", "-t", "ext4", img, "8M")
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	data[superblockOffset+0x30] ^= 1 // s_wtime
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, ok := Probe(memDevice(data)); got != blkidInfo(t, img, 0) || !ok {
		t.Errorf("Probe on a bad checksum: %+v %v, blkid %+v", got, ok, blkidInfo(t, img, 0))
	}
	if _, err := Open(memDevice(data)); !errors.Is(err, filesystem.ErrCorrupt) {
		t.Errorf("Open on a bad checksum: %v", err)
	}
}

// blkidInfo runs blkid -p on the filesystem at off in img.
func blkidInfo(t *testing.T, img string, off int64) filesystem.Info {
	t.Helper()
	out, _ := exec.Command("blkid", "-p", "-O", fmt.Sprint(off), "-o", "export", img).Output()
	var info filesystem.Info
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "TYPE":
			info.Type = v
		case "LABEL":
			info.Label = unescapeExport(v)
		case "UUID":
			info.UUID = v
		}
	}
	return info
}

// unescapeExport undoes blkid -o export's shell quoting of spaces.
func unescapeExport(v string) string {
	return strings.ReplaceAll(v, `\ `, " ")
}

// TestUnsupported checks that features the reader does not implement are
// refused with ErrUnsupported naming them.
func TestUnsupported(t *testing.T) {
	needTools(t, "mke2fs", "debugfs")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "fs.img")
	runCmd(t, "mke2fs", "-q", "-F", "-t", "ext4", "-O", "casefold", "-d", src, img, "8M")
	runCmd(t, "debugfs", "-w", "-R", "set_inode_field /d flags 0x40080000", img)
	f, err := Open(openDevice(t, img))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadDir("d"); !errors.Is(err, filesystem.ErrUnsupported) || !strings.Contains(err.Error(), "casefold") {
		t.Errorf("ReadDir of a casefolded directory: %v", err)
	}
	runCmd(t, "debugfs", "-w", "-R", "feature needs_recovery", img)
	if _, err := Open(openDevice(t, img)); err != nil {
		t.Errorf("needs_recovery with an empty journal: %v", err)
	}
	runCmd(t, "debugfs", "-w", "-R", "feature ^needs_recovery", img)
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sb := data[superblockOffset : superblockOffset+superblockSize]
	sb[0x60] |= incompatCompression
	putChecksum(sb)
	if _, err := Open(memDevice(data)); !errors.Is(err, filesystem.ErrUnsupported) || !strings.Contains(err.Error(), "compression") {
		t.Errorf("compression: %v", err)
	}
	sb[0x62] |= 0x80 // an incompat bit nobody has defined yet
	sb[0x60] &^= incompatCompression
	putChecksum(sb)
	if _, err := Open(memDevice(data)); !errors.Is(err, filesystem.ErrUnsupported) || !strings.Contains(err.Error(), "0x800000") {
		t.Errorf("unknown incompat bit: %v", err)
	}
}

func putChecksum(sb []byte) {
	c := crc32cRaw(^uint32(0), sb[:0x3FC])
	sb[0x3FC], sb[0x3FD], sb[0x3FE], sb[0x3FF] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
}

var _ block.Device = memDevice(nil)
