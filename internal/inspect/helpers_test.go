package inspect

import (
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s), Mode: 0o644} }

func link(target string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
}

func newReader(fsys fs.FS) *reader { return &reader{fsys: fsys, root: "/dev/sda1"} }

// merge returns a new tree with the files of all trees, later ones winning.
func merge(trees ...fstest.MapFS) fstest.MapFS {
	out := fstest.MapFS{}
	for _, t := range trees {
		for k, v := range t {
			out[k] = v
		}
	}
	return out
}

// noProblems fails the test if the reader recorded any problem.
func noProblems(t *testing.T, r *reader) {
	t.Helper()
	for _, p := range r.problems {
		t.Errorf("unexpected problem: %+v", p)
	}
}

// hasProblem reports whether a problem for path mentions substr.
func hasProblem(r *reader, path, substr string) bool {
	for _, p := range r.problems {
		if p.Path == path && strings.Contains(p.Message, substr) {
			return true
		}
	}
	return false
}

// asJSON renders v for readable failure messages.
func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// hugeFS reports a size of 2 GiB for one file and fails the test if that
// file is opened: the bound must hold without reading.
type hugeFS struct {
	fstest.MapFS
	name string
	t    *testing.T
}

type hugeInfo struct{ name string }

func (h hugeInfo) Name() string       { return h.name }
func (h hugeInfo) Size() int64        { return 2 << 30 }
func (h hugeInfo) Mode() fs.FileMode  { return 0o644 }
func (h hugeInfo) ModTime() time.Time { return time.Time{} }
func (h hugeInfo) IsDir() bool        { return false }
func (h hugeInfo) Sys() any           { return nil }

func (h hugeFS) Stat(name string) (fs.FileInfo, error) {
	if name == h.name {
		return hugeInfo{name: name[strings.LastIndexByte(name, '/')+1:]}, nil
	}
	return h.MapFS.Stat(name)
}

func (h hugeFS) Lstat(name string) (fs.FileInfo, error) {
	if name == h.name {
		return h.Stat(name)
	}
	return h.MapFS.Lstat(name)
}

func (h hugeFS) Open(name string) (fs.File, error) {
	if name == h.name {
		h.t.Errorf("opened %s although it is too large", name)
	}
	return h.MapFS.Open(name)
}
