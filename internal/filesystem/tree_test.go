package filesystem_test

import (
	"errors"
	"io/fs"
	"testing"
	"testing/fstest"

	"guestkit.io/batch/internal/filesystem"
)

// mapVolume serves a MapFS as a Volume; the Tree only hands it paths
// whose parents are resolved directories.
type mapVolume struct{ m fstest.MapFS }

func (v mapVolume) Lstat(name string) (fs.FileInfo, error)     { return fs.Lstat(v.m, name) }
func (v mapVolume) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(v.m, name) }
func (v mapVolume) ReadLink(name string) (string, error)       { return fs.ReadLink(v.m, name) }
func (v mapVolume) Open(name string) (fs.File, error)          { return v.m.Open(name) }

func link(target string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
}

func dir() *fstest.MapFile { return &fstest.MapFile{Mode: fs.ModeDir | 0o755} }

func newTree(t *testing.T) *filesystem.Tree {
	t.Helper()
	root := mapVolume{fstest.MapFS{
		"etc/os-release":   {Data: []byte("ID=debian\n")},
		"etc/escape":       link("../../../../etc/os-release"),
		"etc/abs":          link("/boot/grub/grub.cfg"),
		"lib":              link("usr/lib"),
		"usr/lib/x":        {Data: []byte("x")},
		"usr/bin/sh":       {Data: []byte("ELF")},
		"bin":              link("usr/bin"),
		"boot":             dir(),
		"var":              link("/data/var"),
		"data/var":         dir(),
		"home":             {Data: []byte("a file, not a directory")},
		"boot/hidden":      {Data: []byte("under the mount")},
		"usr/lib/relative": link("../../etc/os-release"),
	}}
	boot := mapVolume{fstest.MapFS{
		"grub/grub.cfg": {Data: []byte("menuentry")},
		"up":            link("../etc/os-release"),
	}}
	vlog := mapVolume{fstest.MapFS{"log/syslog": {Data: []byte("log")}}}
	home := mapVolume{fstest.MapFS{"u/.profile": {Data: []byte("p")}}}
	tree, errs := filesystem.NewTree([]filesystem.Mount{
		{Path: "/boot", Volume: boot}, {Path: "/", Volume: root}, {Path: "/var", Volume: vlog}, {Path: "/home", Volume: home},
	})
	if tree == nil {
		t.Fatal(errs)
	}
	// /home is a file on the root: refused, as mount(2) refuses it.
	if len(errs) != 1 {
		t.Fatalf("errors %v, want one for /home", errs)
	}
	return tree
}

func TestTreeResolvesInsideTheGuest(t *testing.T) {
	tree := newTree(t)
	for name, want := range map[string]string{
		"etc/os-release":   "ID=debian\n",
		"etc/escape":       "ID=debian\n", // .. stops at the guest's /
		"etc/abs":          "menuentry",   // absolute: from the guest's /, across a mount
		"lib/x":            "x",
		"usr/lib/relative": "ID=debian\n",
		"boot/up":          "ID=debian\n", // .. out of a mounted volume
		"var/log/syslog":   "log",         // a mount reached through a symlinked mountpoint
	} {
		got, err := fs.ReadFile(tree, name)
		if err != nil || string(got) != want {
			t.Errorf("ReadFile(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := fs.ReadFile(tree, "boot/hidden"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file under a mountpoint shows through: %v", err)
	}
	loop, _ := filesystem.NewTree([]filesystem.Mount{{Path: "/", Volume: mapVolume{fstest.MapFS{"a": link("b"), "b": link("/a")}}}})
	if _, err := loop.Stat("a"); err == nil {
		t.Error("a symlink loop resolved")
	}
	if target, err := tree.ReadLink("lib"); err != nil || target != "usr/lib" {
		t.Errorf("ReadLink(lib) = %q, %v", target, err)
	}
	fi, err := tree.Lstat("lib")
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 || fi.Name() != "lib" {
		t.Errorf("Lstat(lib) = %v, %v; want the link itself", fi, err)
	}
	fi, err = tree.Stat("boot")
	if err != nil || !fi.IsDir() || fi.Name() != "boot" {
		t.Errorf("Stat(boot) = %v, %v", fi, err)
	}
	ents, err := tree.ReadDir("boot")
	if err != nil || len(ents) != 2 || ents[0].Name() != "grub" || ents[1].Name() != "up" {
		t.Errorf("ReadDir(boot) = %v, %v; want the mounted volume's entries", ents, err)
	}
	if _, err := tree.Stat("../etc"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("an invalid io/fs path: %v", err)
	}
	if err := fstest.TestFS(tree, "etc/os-release", "boot/grub/grub.cfg", "usr/lib/x"); err != nil {
		t.Error(err)
	}
}
