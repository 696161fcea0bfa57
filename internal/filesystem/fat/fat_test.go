package fat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

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

func needTools(t testing.TB, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds FAT images with dosfstools and mtools")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			prereq.Missing(t, "%s not installed (dosfstools, mtools, util-linux)", tool)
		}
	}
}

func runTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// tree is the source tree a fixture copies in: path → content, nil for a
// directory.
type tree map[string][]byte

func sourceTree() tree {
	tr := tree{
		"EFI":                               nil,
		"EFI/BOOT":                          nil,
		"EFI/BOOT/BOOTX64.EFI":              bytes.Repeat([]byte("MZ boot loader "), 5000),
		"EFI/debian":                        nil,
		"EFI/debian/grub.cfg":               []byte("search.fs_uuid 1234 root\nconfigfile $prefix/grub.cfg\n"),
		"EFI/debian/shimx64.efi":            bytes.Repeat([]byte{0, 1, 2, 3, 0xff}, 3001),
		"readme.txt":                        []byte("lower-case 8.3 name\n"),
		"lowbase.TXT":                       []byte("lower-case base only\n"),
		"UPPER.TXT":                         []byte("upper\n"),
		"MixedCase.Txt":                     []byte("mixed: a long name\n"),
		"A long file name with spaces.conf": []byte("spaces\n"),
		"ünïcödé 名前.txt":                    []byte("unicode long name\n"),
		"empty":                             {},
		"deep":                              nil,
	}
	p := "deep"
	for i := range 12 {
		p = fmt.Sprintf("%s/level%02d", p, i)
		tr[p] = nil
	}
	tr[p+"/bottom.txt"] = []byte("at the bottom\n")
	tr["many"] = nil
	for i := range 300 {
		tr[fmt.Sprintf("many/file number %03d.txt", i)] = []byte(fmt.Sprintf("file %d\n", i))
	}
	return tr
}

type fixture struct {
	img string
	src tree
}

// makeFixture builds a FAT image of the given type with mkfs.vfat and
// fills it with mtools, leaving one file fragmented: "frag" is copied
// after a smaller file between two others is deleted, so it fills the gap
// first.
func makeFixture(t testing.TB, bits int, size, label string) fixture {
	t.Helper()
	needTools(t, "mkfs.vfat", "mcopy", "mmd", "mdel", "mdir", "mtype")
	dir := t.TempDir()
	img := filepath.Join(dir, "fat.img")
	runTool(t, "truncate", "-s", size, img)
	args := []string{"-F", fmt.Sprint(bits)}
	if label != "" {
		args = append(args, "-n", label)
	}
	runTool(t, "mkfs.vfat", append(args, img)...)
	src := sourceTree()
	root := filepath.Join(dir, "src")
	names := make([]string, 0, len(src))
	for name := range src {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if src[name] == nil {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			runTool(t, "mmd", "-i", img, "::/"+name)
			continue
		}
		if err := os.WriteFile(p, src[name], 0o644); err != nil {
			t.Fatal(err)
		}
		runTool(t, "mcopy", "-m", "-i", img, p, "::/"+name)
	}
	gap := filepath.Join(dir, "gap")
	for _, n := range []string{"gap-a", "gap-b", "gap-c"} {
		if err := os.WriteFile(gap, bytes.Repeat([]byte(n), 1500), 0o644); err != nil {
			t.Fatal(err)
		}
		runTool(t, "mcopy", "-i", img, gap, "::/"+n)
		src[n] = bytes.Repeat([]byte(n), 1500)
	}
	runTool(t, "mdel", "-i", img, "::/gap-b")
	if bits == 32 {
		forgetNextFree(t, img)
	}
	delete(src, "gap-b")
	src["frag"] = make([]byte, 20000)
	for i := range src["frag"] {
		src["frag"][i] = byte(i * 7 / 3)
	}
	if err := os.WriteFile(gap, src["frag"], 0o644); err != nil {
		t.Fatal(err)
	}
	runTool(t, "mcopy", "-i", img, gap, "::/frag")
	return fixture{img: img, src: src}
}

// forgetNextFree sets FAT32's FSInfo hint of the next free cluster to
// "unknown", so that mtools allocates from the start, into the gap.
func forgetNextFree(t testing.TB, img string) {
	t.Helper()
	fd, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	b := make([]byte, 512)
	if _, err := fd.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	fsinfo := int64(binary.LittleEndian.Uint16(b[0x30:])) * int64(binary.LittleEndian.Uint16(b[0x0b:]))
	if _, err := fd.WriteAt([]byte{0xff, 0xff, 0xff, 0xff}, fsinfo+0x1ec); err != nil {
		t.Fatal(err)
	}
}

type walked struct {
	mode  fs.FileMode
	owner guest.Owner
	size  int64
	mtime int64
	data  []byte
}

// walk reads every entry of v through ReadDir, Lstat and Open.
func walk(t testing.TB, v filesystem.Volume) map[string]walked {
	t.Helper()
	out := map[string]walked{}
	var visit func(dir string, depth int)
	visit = func(dir string, depth int) {
		if depth > 64 {
			t.Fatalf("%s: too deep", dir)
		}
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
			w := walked{mode: fi.Mode(), owner: owner, size: fi.Size()}
			if fi.IsDir() {
				visit(p, depth+1)
			} else {
				f, err := v.Open(p)
				if err != nil {
					t.Fatalf("Open(%q): %v", p, err)
				}
				if w.data, err = io.ReadAll(f); err != nil {
					t.Fatalf("read %q: %v", p, err)
				}
				f.Close()
			}
			out[p] = w
		}
	}
	visit(".", 0)
	return out
}

func TestAgainstSourceAndMtools(t *testing.T) {
	for _, c := range []struct {
		bits        int
		size, label string
	}{
		{12, "8M", "FATTWELVE"},
		{16, "40M", "SIXTEEN"},
		{32, "64M", "EFI SYSTEM"},
	} {
		t.Run(fmt.Sprintf("FAT%d", c.bits), func(t *testing.T) {
			fx := makeFixture(t, c.bits, c.size, c.label)
			f, err := Open(openDev(t, fx.img))
			if err != nil {
				t.Fatal(err)
			}
			if f.bits != c.bits {
				t.Errorf("FAT%d, want FAT%d", f.bits, c.bits)
			}
			got := walk(t, f)
			for name, data := range fx.src {
				w, ok := got[name]
				if !ok {
					t.Errorf("%s: missing", name)
					continue
				}
				wantMode := fs.FileMode(0o755)
				if data == nil {
					wantMode |= fs.ModeDir
				} else if !bytes.Equal(w.data, data) || w.size != int64(len(data)) {
					t.Errorf("%s: %d bytes (size %d), want %d", name, len(w.data), w.size, len(data))
				}
				if w.mode != wantMode || w.owner != (guest.Owner{}) {
					t.Errorf("%s: mode %v owner %+v, want %v root", name, w.mode, w.owner, wantMode)
				}
			}
			for name := range got {
				if _, ok := fx.src[name]; !ok {
					t.Errorf("%s: not in the source", name)
				}
			}

			// mdir's recursive bare listing names the same entries.
			var mdir []string
			for _, l := range strings.Split(strings.TrimSpace(runTool(t, "mdir", "-b", "-/", "-i", fx.img, "::")), "\n") {
				mdir = append(mdir, strings.TrimSuffix(strings.TrimPrefix(l, "::/"), "/"))
			}
			var ours []string
			for name := range got {
				ours = append(ours, name)
			}
			sort.Strings(mdir)
			sort.Strings(ours)
			if strings.Join(mdir, "\n") != strings.Join(ours, "\n") {
				t.Errorf("mdir lists\n%s\nwe list\n%s", strings.Join(mdir, "\n"), strings.Join(ours, "\n"))
			}
			for _, name := range []string{"frag", "EFI/BOOT/BOOTX64.EFI", "ünïcödé 名前.txt", "many/file number 299.txt"} {
				if want := runTool(t, "mtype", "-i", fx.img, "::/"+name); want != string(got[name].data) {
					t.Errorf("%s: mtype gives %d bytes, we %d", name, len(want), len(got[name].data))
				}
			}

			// The fragmented file is in more than one run.
			fl, err := f.Open("frag")
			if err != nil {
				t.Fatal(err)
			}
			if runs := fl.(*file).runs; len(runs) < 2 {
				t.Errorf("frag is in %d run(s); the fixture should fragment it", len(runs))
			}
			testFileAccess(t, fl, fx.src["frag"])
			testLookups(t, f)
		})
	}
}

func testFileAccess(t *testing.T, fl fs.File, want []byte) {
	t.Helper()
	ra, ok := fl.(io.ReaderAt)
	sk, ok2 := fl.(io.Seeker)
	if !ok || !ok2 {
		t.Fatal("an open file is not an io.ReaderAt and io.Seeker")
	}
	buf := make([]byte, 5000)
	n, err := ra.ReadAt(buf, 1234)
	if n != 5000 || err != nil || !bytes.Equal(buf, want[1234:6234]) {
		t.Errorf("ReadAt(5000 at 1234) = %d, %v", n, err)
	}
	n, err = ra.ReadAt(buf, int64(len(want))-10)
	if n != 10 || err != io.EOF || !bytes.Equal(buf[:10], want[len(want)-10:]) {
		t.Errorf("ReadAt at the end = %d, %v", n, err)
	}
	if pos, err := sk.Seek(-100, io.SeekEnd); err != nil || pos != int64(len(want))-100 {
		t.Errorf("Seek = %d, %v", pos, err)
	}
	rest, err := io.ReadAll(fl)
	if err != nil || !bytes.Equal(rest, want[len(want)-100:]) {
		t.Errorf("read after seek: %d bytes, %v", len(rest), err)
	}
}

func testLookups(t *testing.T, f *FS) {
	t.Helper()
	for _, name := range []string{"efi/boot/bootx64.efi", "EFI/Debian/GRUB.CFG", "README.TXT", "upper.txt", "ALONGF~1.CON", "EFI/BOOT."} {
		if _, err := f.Lstat(name); err != nil {
			t.Errorf("Lstat(%q): %v", name, err)
		}
	}
	if fi, err := f.Lstat("efi/boot/bootx64.efi"); err == nil && fi.Name() != "BOOTX64.EFI" {
		t.Errorf("case-insensitive lookup names %q", fi.Name())
	}
	for _, name := range []string{"nothing", "readme.txt/x", "EFI/nothing/x"} {
		if _, err := f.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Lstat(%q): %v, want not exist", name, err)
		}
		var pe *fs.PathError
		if _, err := f.Open(name); !errors.As(err, &pe) || pe.Path != name {
			t.Errorf("Open(%q): %v, want a PathError", name, err)
		}
	}
	if _, err := f.Lstat("/EFI"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Lstat(/EFI): %v, want invalid", err)
	}
	if _, err := f.ReadLink("readme.txt"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("ReadLink: %v, want invalid", err)
	}
	fi, err := f.Lstat(".")
	if err != nil || !fi.IsDir() || fi.Mode() != fs.ModeDir|0o755 {
		t.Errorf("Lstat(.) = %v, %v", fi, err)
	}
	d, err := f.Open("EFI")
	if err != nil {
		t.Fatal(err)
	}
	ents, err := d.(fs.ReadDirFile).ReadDir(-1)
	if err != nil || len(ents) != 2 || ents[0].Name() != "BOOT" || ents[1].Name() != "debian" {
		t.Errorf("ReadDir(EFI) = %v, %v", ents, err)
	}
	fi, _ = f.Lstat("readme.txt")
	if want := time.Now().UTC(); fi.ModTime().Before(want.Add(-time.Hour)) || fi.ModTime().After(want.Add(time.Hour)) {
		t.Errorf("mtime %v, want about %v", fi.ModTime(), want)
	}
}

// blkidExport runs `blkid -p -o export` and unescapes its values.
func blkidExport(t testing.TB, img string) map[string]string {
	t.Helper()
	out, _ := exec.Command("blkid", "-p", "-o", "export", img).Output()
	vals := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) {
				i++
			}
			b.WriteByte(v[i])
		}
		vals[k] = b.String()
	}
	return vals
}

func TestProbeAgainstBlkid(t *testing.T) {
	needTools(t, "mkfs.vfat", "blkid", "mlabel")
	for _, c := range []struct {
		name  string
		args  []string
		after func(img string)
	}{
		{name: "fat12", args: []string{"-F", "12", "-n", "ESP12"}},
		{name: "fat16-nolabel", args: []string{"-F", "16"}},
		{name: "fat32", args: []string{"-F", "32", "-n", "MY EFI", "-i", "0a1b2c3d"}},
		// mlabel changes the root directory's label only, as Windows does.
		{name: "fat16-relabelled", args: []string{"-F", "16", "-n", "BOOTSECTOR"}, after: func(img string) {
			runTool(t, "mlabel", "-i", img, "::ROOTDIR")
		}},
		{name: "fat32-relabelled", args: []string{"-F", "32", "-n", "BOOTSECTOR"}, after: func(img string) {
			runTool(t, "mlabel", "-i", img, "::ROOTDIR32")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "fat.img")
			runTool(t, "truncate", "-s", "64M", img)
			runTool(t, "mkfs.vfat", append(c.args, img)...)
			if c.after != nil {
				c.after(img)
			}
			want := blkidExport(t, img)
			info, ok := Probe(openDev(t, img))
			if !ok || info.Type != want["TYPE"] || info.Label != want["LABEL"] || info.UUID != want["UUID"] {
				t.Errorf("Probe = %+v, %v; blkid says %v", info, ok, want)
			}
			f, err := Open(openDev(t, img))
			if err != nil || f.Info() != info {
				t.Errorf("Open: %v, Info %+v", err, f.Info())
			}
		})
	}
	// Not FAT: zeros and a squashfs-like header.
	img := filepath.Join(t.TempDir(), "zero.img")
	runTool(t, "truncate", "-s", "1M", img)
	if info, ok := Probe(openDev(t, img)); ok {
		t.Errorf("zeros probe as %+v", info)
	}
}
