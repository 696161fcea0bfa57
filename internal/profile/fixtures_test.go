package profile

import (
	"context"
	"io/fs"
	"maps"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/profile/tree"
)

// Tree fixtures. The named trees live as plain directories under
// testdata/trees/<name>/root so that an image builder can turn them into
// disk images (virt-make-fs); testdata/trees/<name>/MODES holds the modes
// and owners git cannot keep, and PACKAGES the package list of trees whose
// package database rules cannot read (rpm). loadTree builds the same tree
// as a MapFS, so unit tests and images share one truth.

// loadTree reads testdata/trees/<name> through the shared loader.
func loadTree(t testing.TB, name string) (fstest.MapFS, []Package) {
	t.Helper()
	m, pkgs, err := tree.Load(filepath.Join("testdata", "trees", name))
	if err != nil {
		t.Fatalf("tree %s: %v", name, err)
	}
	return m, pkgs
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
