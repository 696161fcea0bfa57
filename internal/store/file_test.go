package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// Symlinks planted in the folder cannot reach outside it, for reads or
// writes.
func TestFileStoreSymlinkEscape(t *testing.T) {
	ctx := t.Context()
	dir, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"passwd":  "/etc/passwd",
		"etc":     "/etc",
		"secret":  secret,
		"outside": outside,
		"up":      "..",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	st := mustOpen(t, ctx, "file://"+dir)
	for _, key := range []string{"passwd", "etc/passwd", "secret", "outside/secret", "up/" + filepath.Base(outside) + "/secret"} {
		if data, err := st.Get(ctx, key, 1<<20); err == nil || data != nil {
			t.Errorf("Get(%q) = %q, %v; want an error", key, data, err)
		}
		if _, err := st.Stat(ctx, key); err == nil {
			t.Errorf("Stat(%q) succeeded through a symlink out of the folder", key)
		}
		_ = st.Delete(ctx, key) // may remove a link itself, never what it points to
	}
	if _, err := os.Stat(secret); err != nil {
		t.Fatalf("Delete through a symlink removed %s: %v", secret, err)
	}
	for _, key := range []string{"outside/new", "etc/guestkit-test"} {
		if err := st.Put(ctx, key, []byte("x")); err == nil {
			t.Errorf("Put(%q) wrote through a symlink out of the folder", key)
		}
		if err := st.Create(ctx, key, []byte("x")); err == nil {
			t.Errorf("Create(%q) wrote through a symlink out of the folder", key)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
		t.Fatal("a write escaped the folder")
	}
	mustPut(t, &fixture{ctx: ctx}, st, "real", []byte("inside"))
	if got := listKeys(t, &fixture{ctx: ctx}, st, ""); !slices.Equal(got, []string{"real"}) {
		t.Fatalf("List = %q: symlinks are not objects", got)
	}
}

// Reads through a store whose folder does not exist find nothing and create
// nothing; the first write creates the folder.
func TestFileStoreMissingFolder(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "not", "yet")
	st := mustOpen(t, ctx, dir)
	f := &fixture{ctx: ctx}
	if _, err := st.Get(ctx, "k", 10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get = %v, want ErrNotFound", err)
	}
	if _, err := GetURI(ctx, filepath.Join(dir, "k"), 10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetURI = %v, want ErrNotFound", err)
	}
	if _, err := st.Stat(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat = %v, want ErrNotFound", err)
	}
	if got := listKeys(t, f, st, ""); got != nil {
		t.Fatalf("List = %q", got)
	}
	if err := st.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	if _, err := os.Stat(filepath.Dir(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reads created %s: %v", filepath.Dir(dir), err)
	}
	mustPut(t, f, st, "k", []byte("v"))
	wantContent(t, f, st, "k", []byte("v"))

	file := filepath.Join(dir, "k")
	if _, err := Open(ctx, file); err == nil {
		t.Fatalf("Open(%s) on a regular file succeeded", file)
	}
}

// A FIFO planted in the folder is no object, and opening it does not hang.
func TestFileStoreFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	st := mustOpen(t, t.Context(), dir)
	done := make(chan error, 1)
	go func() {
		_, err := st.Get(t.Context(), "fifo", 10)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(fifo) = %v, want ErrNotFound", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Get(fifo) hangs")
	}
}

// Temporary files are hidden from List, and no key can take their form.
func TestFileStoreTempNames(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	st := mustOpen(t, ctx, dir)
	f := &fixture{ctx: ctx}
	stale := filepath.Join(dir, "k.tmp-0123456789abcdef")
	if err := os.WriteFile(stale, []byte("crashed writer"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustPut(t, f, st, "k", []byte("v"))
	mustPut(t, f, st, "k.tmp-notrandom", []byte("v"))
	if got := listKeys(t, f, st, ""); !slices.Equal(got, []string{"k", "k.tmp-notrandom"}) {
		t.Fatalf("List = %q", got)
	}
	for _, err := range []error{
		st.Put(ctx, "x.tmp-0123456789abcdef", []byte("v")),
		st.Create(ctx, "d/x.tmp-fedcba9876543210", []byte("v")),
	} {
		if !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("write of a temporary name = %v, want ErrInvalidKey", err)
		}
	}
	// Writers leave no temporary files behind, whether they win or lose.
	if err := st.Create(ctx, "k", []byte("again")); !errors.Is(err, ErrExists) {
		t.Fatalf("Create = %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"k", "k.tmp-0123456789abcdef", "k.tmp-notrandom"}) {
		t.Fatalf("folder holds %q", names)
	}
	if data, _ := os.ReadFile(stale); !bytes.Equal(data, []byte("crashed writer")) {
		t.Fatal("the stale file changed")
	}
}
