package btrfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"guestkit.io/batch/internal/filesystem"
)

// makeSourceTree fills dir with every kind of file mkfs.btrfs --rootdir
// copies: inline and extent-sized files, a sparse file, a 3000-entry
// directory, long and non-ASCII names, links, devices, odd modes and
// owners.
func makeSourceTree(t *testing.T, dir string) {
	t.Helper()
	rnd := rand.New(rand.NewSource(1))
	random := func(n int) []byte {
		b := make([]byte, n)
		rnd.Read(b)
		return b
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, data []byte, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, name)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, mode))
		must(os.Chmod(p, mode))
	}
	write("empty", nil, 0o644)
	write("small", []byte("hello, btrfs\n"), 0o644)
	write("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	write("sector", random(4096), 0o600)
	write("sector1", random(4097), 0o640)
	write("inline-max", random(2048), 0o644)
	write("medium", random(100000), 0o755)
	write("big", random(3<<20+123), 0o644)
	text := strings.Repeat("the quick brown fox jumps over the lazy dog\n", 30000)
	write("text", []byte(text), 0o644)
	write("setuid", []byte("#!/bin/sh\n"), 0o4755)
	write("nothing", []byte("x"), 0)
	// A sparse file: data at 5 MB, holes around it.
	sp, err := os.Create(filepath.Join(dir, "sparse"))
	must(err)
	_, err = sp.WriteAt([]byte("in the middle"), 5_000_000)
	must(err)
	must(sp.Truncate(9_000_000))
	must(sp.Close())

	for i := 0; i < 3000; i++ {
		write(fmt.Sprintf("many/file-%04d", i), []byte(fmt.Sprint(i)), 0o644)
	}
	write(strings.Repeat("n", 255), []byte("long name"), 0o644)
	write("ünïcødé/日本語.txt", []byte("utf-8"), 0o644)
	deep := "deep"
	for i := 0; i < 40; i++ {
		deep = filepath.Join(deep, fmt.Sprint(i))
	}
	write(filepath.Join(deep, "leaf"), []byte("deep"), 0o644)

	must(os.Symlink("small", filepath.Join(dir, "link-rel")))
	must(os.Symlink("/etc/passwd", filepath.Join(dir, "link-abs")))
	must(os.Symlink("../../nowhere", filepath.Join(dir, "etc/dangling")))
	must(os.Symlink(strings.Repeat("x/", 500), filepath.Join(dir, "link-long")))
	must(os.Link(filepath.Join(dir, "small"), filepath.Join(dir, "etc/hardlink")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	must(syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, 1<<8|3))
	must(syscall.Mknod(filepath.Join(dir, "sda"), syscall.S_IFBLK|0o660, 8<<8))
	must(os.Mkdir(filepath.Join(dir, "tmp"), 0o755))
	must(os.Chmod(filepath.Join(dir, "tmp"), 0o1777|fs.ModeSticky))
	must(os.Mkdir(filepath.Join(dir, "shared"), 0o755))
	must(os.Chmod(filepath.Join(dir, "shared"), 0o775|fs.ModeSetgid))
	must(os.Lchown(filepath.Join(dir, "shared"), 1000, 100))
	must(os.Lchown(filepath.Join(dir, "medium"), 1000, 1000))
	must(os.Lchown(filepath.Join(dir, "link-rel"), 65534, 65534))
	must(os.Lchown(filepath.Join(dir, "fifo"), 0, 5))
}

// walkSource reads the source tree as the host sees it.
func walkSource(t *testing.T, dir string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := entry{mode: fi.Mode(), uid: st.Uid, gid: st.Gid}
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.size, e.sum = fi.Size(), sum(data)
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.size, e.link = fi.Size(), l
		}
		out[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMkfsRootdir builds filesystems with mkfs.btrfs --rootdir in several
// layouts (node sizes, checksum algorithms, DUP and single metadata, mixed
// block groups) and compares a full walk with the source tree: names,
// modes, owners, sizes, bytes and link targets; and Probe with blkid.
func TestMkfsRootdir(t *testing.T) {
	needTools(t, "mkfs.btrfs", "blkid")
	src := filepath.Join(t.TempDir(), "src")
	makeSourceTree(t, src)
	want := walkSource(t, src)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"default", nil},
		{"node4k", []string{"-n", "4096"}},
		{"node64k", []string{"-n", "65536"}},
		{"single", []string{"-m", "single", "-d", "single"}},
		{"dupdata", []string{"-d", "dup"}},
		{"mixed", []string{"-M", "-n", "4096"}},
		{"xxhash", []string{"--csum", "xxhash"}},
		{"sha256", []string{"--csum", "sha256", "-L", "sha label  "}},
		{"blake2", []string{"--csum", "blake2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "btrfs.img")
			if err := os.WriteFile(img, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(img, 256<<20); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"-q", "-f", "-L", "test-" + tc.name, "--rootdir", src}, tc.args...)
			run(t, "mkfs.btrfs", append(args, img)...)
			dev := openImage(t, img)
			checkProbe(t, dev, img)
			f, err := Open(dev)
			if err != nil {
				t.Fatal(err)
			}
			if id, err := f.Default(); err != nil || id != 5 {
				t.Errorf("Default() = %d, %v; want 5", id, err)
			}
			if subs, err := f.Subvolumes(); err != nil || len(subs) != 0 {
				t.Errorf("Subvolumes() = %v, %v; want none", subs, err)
			}
			v, err := f.Volume(5)
			if err != nil {
				t.Fatal(err)
			}
			compareTrees(t, walkVolume(t, v), want)
			checkErrors(t, v)
			if tc.name == "default" {
				checkConcurrent(t, v, want)
			}
		})
	}
}

// checkErrors checks the error of each misuse of a Volume.
func checkErrors(t *testing.T, v filesystem.Volume) {
	t.Helper()
	for _, tc := range []struct {
		op, name string
		want     error
	}{
		{"lstat", "missing", fs.ErrNotExist},
		{"lstat", "small/x", fs.ErrNotExist},    // through a file
		{"lstat", "link-rel/x", fs.ErrNotExist}, // through a symlink
		{"lstat", "/etc", fs.ErrInvalid},
		{"lstat", "etc/../small", fs.ErrInvalid},
		{"readdir", "small", fs.ErrInvalid},
		{"readlink", "small", fs.ErrInvalid},
		{"open", "fifo", fs.ErrInvalid},
		{"open", "etc/missing", fs.ErrNotExist},
	} {
		var err error
		switch tc.op {
		case "lstat":
			_, err = v.Lstat(tc.name)
		case "readdir":
			_, err = v.ReadDir(tc.name)
		case "readlink":
			_, err = v.ReadLink(tc.name)
		case "open":
			_, err = v.Open(tc.name)
		}
		var pe *fs.PathError
		if !errors.Is(err, tc.want) || !errors.As(err, &pe) || pe.Path != tc.name {
			t.Errorf("%s(%q) = %v; want a PathError wrapping %v", tc.op, tc.name, err, tc.want)
		}
	}
}

// checkConcurrent reads every regular file from several goroutines at
// once, through fresh lookups, and compares the bytes.
func checkConcurrent(t *testing.T, v filesystem.Volume, want map[string]entry) {
	t.Helper()
	var names []string
	for n, e := range want {
		if e.mode.IsRegular() {
			names = append(names, n)
		}
	}
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := range names {
				n := names[(i*7+g*13)%len(names)]
				f, err := v.Open(n)
				if err != nil {
					errs <- err
					return
				}
				data, err := io.ReadAll(f)
				f.Close()
				if err != nil || sum(data) != want[n].sum {
					errs <- fmt.Errorf("%s: %d bytes, %v", n, len(data), err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
