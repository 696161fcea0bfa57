// Package storetest makes buckets for tests: one way to make a folder
// bucket and put objects in it, shared by every package's tests.
package storetest

import (
	"testing"

	"guestkit.io/batch/internal/store"
)

// Folder is a folder bucket in a new temporary folder, and that folder.
func Folder(t testing.TB) (store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return st, dir
}

// Put writes an object or fails the test.
func Put[D string | []byte](t testing.TB, st store.Store, key string, data D) {
	t.Helper()
	if err := st.Put(t.Context(), key, []byte(data)); err != nil {
		t.Fatal(err)
	}
}
