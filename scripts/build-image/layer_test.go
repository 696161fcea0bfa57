package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// testTree makes a small root filesystem: directories with special modes,
// a setuid file, relative and absolute symlinks, a hard link, a fifo, and,
// as root, files of other owners.
func testTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin", "etc", "run", "tmp", "usr/lib", "a", "empty"} {
		must(os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "bin/tool"), []byte("#!/bin/sh\necho tool\n"), 0o755))
	must(os.WriteFile(filepath.Join(root, "bin/suid"), []byte("suid"), 0o755))
	must(os.WriteFile(filepath.Join(root, "a/b"), nil, 0o600))
	must(os.WriteFile(filepath.Join(root, "a.b"), []byte("dot"), 0o644))
	must(os.Link(filepath.Join(root, "bin/tool"), filepath.Join(root, "bin/tool2")))
	must(os.Symlink("tool", filepath.Join(root, "bin/link")))
	must(os.Symlink("/usr/lib", filepath.Join(root, "lib")))
	must(syscall.Mkfifo(filepath.Join(root, "run/fifo"), 0o644))
	// Chmod, not the umask-filtered create modes.
	must(os.Chmod(filepath.Join(root, "bin/suid"), 0o4755|os.ModeSetuid))
	must(os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky))
	must(os.Chmod(filepath.Join(root, "empty"), 0o700))
	if os.Geteuid() == 0 {
		must(os.WriteFile(filepath.Join(root, "etc/shadow"), []byte("root:*:1::::::\n"), 0o640))
		must(os.Chown(filepath.Join(root, "etc/shadow"), 0, 42))
		must(os.Chown(filepath.Join(root, "empty"), 65532, 65532))
	}
	return root
}

type entry struct {
	name     string
	typeflag byte
	mode     int64
	uid, gid int
	link     string
	body     string
}

func readLayer(t *testing.T, data []byte) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if !hdr.ModTime.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s: mtime %v, want the epoch", hdr.Name, hdr.ModTime)
		}
		if hdr.Uname != "" || hdr.Gname != "" || !hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() {
			t.Errorf("%s: names %q %q, atime %v, ctime %v: want none", hdr.Name, hdr.Uname, hdr.Gname, hdr.AccessTime, hdr.ChangeTime)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid, hdr.Linkname, string(body)})
	}
}

func layerBytes(t *testing.T, root string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := writeLayer(&buf, root, time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWriteLayerKeepsTheTree(t *testing.T) {
	root := testTree(t)
	entries := readLayer(t, layerBytes(t, root))
	byName := map[string]entry{}
	var names []string
	for _, e := range entries {
		byName[e.name] = e
		names = append(names, e.name)
	}

	// Depth first, each directory in name order; no fifo, no root entry.
	want := []string{"a/", "a/b", "a.b", "bin/", "bin/link", "bin/suid", "bin/tool", "bin/tool2", "empty/", "etc/", "etc/passwd"}
	if os.Geteuid() == 0 {
		want = append(want, "etc/shadow")
	}
	want = append(want, "lib", "run/", "tmp/", "usr/", "usr/lib/")
	if !slices.Equal(names, want) {
		t.Errorf("entries\n %q\nwant\n %q", names, want)
	}

	checks := []entry{
		{name: "bin/tool", typeflag: tar.TypeReg, mode: 0o755, body: "#!/bin/sh\necho tool\n"},
		{name: "bin/tool2", typeflag: tar.TypeLink, mode: 0o755, link: "bin/tool"},
		{name: "bin/link", typeflag: tar.TypeSymlink, mode: 0o777, link: "tool"},
		{name: "lib", typeflag: tar.TypeSymlink, mode: 0o777, link: "/usr/lib"},
		{name: "bin/suid", typeflag: tar.TypeReg, mode: 0o4755, body: "suid"},
		{name: "tmp/", typeflag: tar.TypeDir, mode: 0o1777},
		{name: "a/b", typeflag: tar.TypeReg, mode: 0o600},
	}
	if os.Geteuid() == 0 {
		checks = append(checks,
			entry{name: "etc/shadow", typeflag: tar.TypeReg, mode: 0o640, gid: 42, body: "root:*:1::::::\n"},
			entry{name: "empty/", typeflag: tar.TypeDir, mode: 0o700, uid: 65532, gid: 65532})
	} else {
		t.Log("not root: ownership other than the test user's is not checked")
	}
	for _, c := range checks {
		got, ok := byName[c.name]
		if !ok {
			t.Errorf("%s: missing", c.name)
			continue
		}
		if os.Geteuid() != 0 {
			got.uid, got.gid = c.uid, c.gid
		}
		if got != c {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c)
		}
	}
}

func TestWriteLayerIsDeterministic(t *testing.T) {
	root := testTree(t)
	first := layerBytes(t, root)

	// Times change, content does not: the same layer.
	future := time.Now().Add(time.Hour)
	if err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, future, future)
	}); err != nil {
		t.Fatal(err)
	}
	if second := layerBytes(t, root); !bytes.Equal(first, second) {
		t.Errorf("the same tree gave two different layers (%d and %d bytes)", len(first), len(second))
	}

	// The gzip files too: digests are of those.
	out := t.TempDir()
	var sums [2][32]byte
	for i := range sums {
		path := filepath.Join(out, "layer.tar.gz")
		if _, err := writeLayerFile(path, root, time.Unix(1700000000, 0)); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sums[i] = sha256.Sum256(data)
	}
	if sums[0] != sums[1] {
		t.Errorf("two gzip layers of the same tree differ: %x, %x", sums[0], sums[1])
	}
	if leftovers, _ := filepath.Glob(filepath.Join(out, ".layer-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	// A changed file changes the layer.
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first, layerBytes(t, root)) {
		t.Error("a changed file did not change the layer")
	}
}

func TestWriteLayerRefusesAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeLayer(io.Discard, f, time.Unix(0, 0)); err == nil {
		t.Error("a file as the root filesystem: no error")
	}
}
