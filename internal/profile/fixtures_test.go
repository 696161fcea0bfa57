package profile

import (
	"bufio"
	"context"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"guestkit.io/batch/internal/guest"
)

// Tree fixtures. The named trees live as plain directories under
// testdata/trees/<name>/root so that an image builder can turn them into
// disk images (virt-make-fs); testdata/trees/<name>/MODES holds the modes
// and owners git cannot keep, and PACKAGES the package list of trees whose
// package database rules cannot read (rpm). loadTree builds the same tree
// as a MapFS, so unit tests and images share one truth.

// loadTree reads testdata/trees/<name>.
func loadTree(t testing.TB, name string) (fstest.MapFS, []Package) {
	t.Helper()
	base := filepath.Join("testdata", "trees", name)
	root := filepath.Join(base, "root")
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
		owner := guest.Owner{}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			m[rel] = &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777, Sys: owner}
		case fi.IsDir():
			m[rel] = &fstest.MapFile{Mode: fs.ModeDir | 0o755, Sys: owner}
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			mode := fs.FileMode(0o644)
			if fi.Mode()&0o111 != 0 {
				mode = 0o755
			}
			m[rel] = &fstest.MapFile{Data: data, Mode: mode, Sys: owner}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	applyModes(t, m, filepath.Join(base, "MODES"))
	var pkgs []Package
	if f, err := os.Open(filepath.Join(base, "PACKAGES")); err == nil {
		defer f.Close()
		pkgs = []Package{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) == 3 && !strings.HasPrefix(fl[0], "#") {
				pkgs = append(pkgs, Package{Name: fl[0], Version: fl[1], Arch: fl[2]})
			}
		}
	}
	return m, pkgs
}

// applyModes applies "mode uid gid path" lines.
func applyModes(t testing.TB, m fstest.MapFS, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("MODES: %v", err)
	}
	for i, l := range strings.Split(string(data), "\n") {
		fl := strings.Fields(l)
		if len(fl) == 0 || strings.HasPrefix(fl[0], "#") {
			continue
		}
		if len(fl) != 4 {
			t.Fatalf("%s:%d: want mode uid gid path", file, i+1)
		}
		mode, err1 := strconv.ParseUint(fl[0], 8, 32)
		uid, err2 := strconv.ParseUint(fl[1], 10, 32)
		gid, err3 := strconv.ParseUint(fl[2], 10, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("%s:%d: bad numbers", file, i+1)
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
			t.Fatalf("%s:%d: %s is not in the tree", file, i+1, fl[3])
		}
		f.Mode = f.Mode.Type() | fm
		f.Sys = guest.Owner{UID: uint32(uid), GID: uint32(gid)}
	}
}

// overlay returns base with files replaced (nil deletes).
func overlay(base fstest.MapFS, files fstest.MapFS) fstest.MapFS {
	out := maps.Clone(base)
	for k, v := range files {
		if v == nil {
			delete(out, k)
			continue
		}
		if v.Sys == nil {
			v.Sys = guest.Owner{}
		}
		out[k] = v
	}
	return out
}

// File builders for table fixtures.
func txt(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s), Mode: 0o644} }
func txtMode(s string, mode fs.FileMode, uid, gid uint32) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(s), Mode: mode, Sys: guest.Owner{UID: uid, GID: gid}}
}
func symlink(target string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
}
func dirMode(mode fs.FileMode) *fstest.MapFile { return &fstest.MapFile{Mode: fs.ModeDir | mode} }

// runRule evaluates one rule on a target, as Evaluate would.
func runRule(t testing.TB, id string, tg Target) Outcome {
	t.Helper()
	for _, r := range Rules() {
		if r.ID == id {
			return evalRule(context.Background(), r, newEnv(tg, Options{}))
		}
	}
	t.Fatalf("no rule %s", id)
	return Outcome{}
}

// evidenceText flattens evidence for substring assertions.
func evidenceText(ev []Evidence) string {
	var b strings.Builder
	for _, e := range ev {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(" | " + e.Value + " | " + e.Note + "\n")
	}
	return b.String()
}
