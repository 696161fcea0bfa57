// Package tree loads the profile test trees (internal/profile/testdata/trees)
// as in-memory guest filesystems. The same directories are built into disk
// images by scripts/testimages.sh, so unit tests and real-appliance tests
// share one truth; this package is their one reader.
//
// A tree is DIR/root (files 0644, or 0755 when executable; directories
// 0755; everything owned by 0:0), DIR/MODES ("mode uid gid path" lines for
// the modes and owners git cannot keep; a path ending in / is a directory
// git cannot keep) and, optionally, DIR/PACKAGES ("name version arch" lines
// for trees whose package database the rules cannot read, such as rpm).
package tree

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing/fstest"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/guestconf"
)

// Load reads the tree in dir. Packages is nil when dir has no PACKAGES.
func Load(dir string) (fstest.MapFS, []guestconf.Package, error) {
	root := filepath.Join(dir, "root")
	m := fstest.MapFS{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			m[rel] = &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777, Sys: guest.Owner{}}
		case fi.IsDir():
			m[rel] = &fstest.MapFile{Mode: fs.ModeDir | 0o755, Sys: guest.Owner{}}
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			mode := fs.FileMode(0o644)
			if fi.Mode()&0o111 != 0 {
				mode = 0o755
			}
			m[rel] = &fstest.MapFile{Data: data, Mode: mode, Sys: guest.Owner{}}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("load tree %s: %w", dir, err)
	}
	if err := applyModes(m, filepath.Join(dir, "MODES")); err != nil {
		return nil, nil, err
	}
	var pkgs []guestconf.Package
	if f, err := os.Open(filepath.Join(dir, "PACKAGES")); err == nil {
		defer f.Close()
		pkgs = []guestconf.Package{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) == 3 && !strings.HasPrefix(fl[0], "#") {
				pkgs = append(pkgs, guestconf.Package{Name: fl[0], Version: fl[1], Arch: fl[2]})
			}
		}
		if err := sc.Err(); err != nil {
			return nil, nil, fmt.Errorf("read %s/PACKAGES: %w", dir, err)
		}
	}
	return m, pkgs, nil
}

// applyModes applies "mode uid gid path" lines.
func applyModes(m fstest.MapFS, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("MODES: %w", err)
	}
	for i, l := range strings.Split(string(data), "\n") {
		fl := strings.Fields(l)
		if len(fl) == 0 || strings.HasPrefix(fl[0], "#") {
			continue
		}
		if len(fl) != 4 {
			return fmt.Errorf("%s:%d: want mode uid gid path", file, i+1)
		}
		mode, err1 := strconv.ParseUint(fl[0], 8, 32)
		uid, err2 := strconv.ParseUint(fl[1], 10, 32)
		gid, err3 := strconv.ParseUint(fl[2], 10, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			return fmt.Errorf("%s:%d: bad numbers", file, i+1)
		}
		isDir := strings.HasSuffix(fl[3], "/")
		p := strings.Trim(fl[3], "/")
		fm := fs.FileMode(mode & 0o777)
		if mode&0o4000 != 0 {
			fm |= fs.ModeSetuid
		}
		if mode&0o2000 != 0 {
			fm |= fs.ModeSetgid
		}
		if mode&0o1000 != 0 {
			fm |= fs.ModeSticky
		}
		f := m[p]
		switch {
		case f == nil && isDir:
			f = &fstest.MapFile{Mode: fs.ModeDir}
			m[p] = f
		case f == nil:
			return fmt.Errorf("%s:%d: %s is not in the tree", file, i+1, fl[3])
		}
		f.Mode = f.Mode.Type() | fm
		f.Sys = guest.Owner{UID: uint32(uid), GID: uint32(gid)}
	}
	return nil
}
