package store

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"guestkit.io/batch/internal/testenv"
)

// fixture is one store under test, opened on an empty bucket or folder.
type fixture struct {
	kind string // s3, minio or file
	url  string // bucket URL, no trailing slash
	st   Store
	ctx  context.Context
}

func (f *fixture) bucket() bool { return f.kind != "file" }

// TestStores runs every behaviour of the Store contract against the three
// implementations: s3:// and minio:// on a real MinIO server, file:// on a
// temporary folder. Each case gets a fresh bucket or folder.
func TestStores(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	kinds := []struct {
		kind string
		url  func(t *testing.T) string
	}{
		{"s3", func(t *testing.T) string { return "s3://" + m.NewBucket(t) }},
		{"minio", func(t *testing.T) string { return "minio://" + m.NewBucket(t) }},
		{"file", func(t *testing.T) string { return "file://" + t.TempDir() }},
	}
	cases := []struct {
		name string
		fn   func(*testing.T, *fixture)
	}{
		{"PutGet", testPutGet},
		{"Missing", testMissing},
		{"TooLarge", testTooLarge},
		{"CreateOnce", testCreateOnce},
		{"CreateConcurrent", testCreateConcurrent},
		{"Stat", testStat},
		{"Delete", testDelete},
		{"ListPaged", testListPaged},
		{"ListPrefixes", testListPrefixes},
		{"ListStops", testListStops},
		{"Prefixed", testPrefixed},
		{"Presign", testPresign},
		{"URIHelpers", testURIHelpers},
		{"InvalidKeys", testInvalidKeys},
		{"MissingBucket", testMissingBucket},
	}
	for _, k := range kinds {
		t.Run(k.kind, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
					defer cancel()
					f := &fixture{kind: k.kind, url: k.url(t), ctx: ctx}
					f.st = mustOpen(t, ctx, f.url)
					c.fn(t, f)
				})
			}
		})
	}
}

func mustOpen(t *testing.T, ctx context.Context, url string) Store {
	t.Helper()
	st, err := Open(ctx, url)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	return st
}

func mustPut(t *testing.T, f *fixture, st Store, key string, data []byte) {
	t.Helper()
	if err := st.Put(f.ctx, key, data); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func wantContent(t *testing.T, f *fixture, st Store, key string, want []byte) {
	t.Helper()
	got, err := st.Get(f.ctx, key, 1<<20)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %q, want %q", key, got, want)
	}
}

// wantErr checks the sentinel and that the message names the object.
func wantErr(t *testing.T, what string, err, sentinel error, name string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("%s = %v, want %v", what, err, sentinel)
	}
	if !strings.Contains(err.Error(), name) {
		t.Fatalf("%s = %q, want it to name %q", what, err, name)
	}
}

func listKeys(t *testing.T, f *fixture, st Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := st.List(f.ctx, prefix, func(o Object) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

func testPutGet(t *testing.T, f *fixture) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for key, data := range map[string][]byte{
		"a.json":                []byte(`{"a":1}`),
		"dir/sub/bin":           all,
		"empty":                 {},
		"with space/ünï 文件.txt": []byte("unicode key"),
		"a..b":                  []byte("dots"),
	} {
		mustPut(t, f, f.st, key, data)
		wantContent(t, f, f.st, key, data)
		r, size, err := f.st.Open(f.ctx, key)
		if err != nil {
			t.Fatalf("Open(%q): %v", key, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) || size != int64(len(data)) {
			t.Fatalf("Open(%q) = %q (size %d), %v; want %q", key, got, size, err, data)
		}
	}
	mustPut(t, f, f.st, "a.json", []byte("replaced"))
	wantContent(t, f, f.st, "a.json", []byte("replaced"))
}

func testMissing(t *testing.T, f *fixture) {
	_, err := f.st.Get(f.ctx, "no/such.json", 100)
	wantErr(t, "Get(missing)", err, ErrNotFound, "no/such.json")
	_, _, err = f.st.Open(f.ctx, "no/such.json")
	wantErr(t, "Open(missing)", err, ErrNotFound, "no/such.json")
	_, err = f.st.Stat(f.ctx, "no/such.json")
	wantErr(t, "Stat(missing)", err, ErrNotFound, "no/such.json")
	// A "folder" is no object, in a bucket or a folder.
	mustPut(t, f, f.st, "dir/obj", []byte("x"))
	_, err = f.st.Get(f.ctx, "dir", 100)
	wantErr(t, "Get(folder)", err, ErrNotFound, "dir")
	_, err = f.st.Stat(f.ctx, "dir")
	wantErr(t, "Stat(folder)", err, ErrNotFound, "dir")
}

func testTooLarge(t *testing.T, f *fixture) {
	data := bytes.Repeat([]byte("0123456789"), 100)
	mustPut(t, f, f.st, "big", data)
	_, err := f.st.Get(f.ctx, "big", 999)
	wantErr(t, "Get(big, 999)", err, ErrTooLarge, "big")
	got, err := f.st.Get(f.ctx, "big", 1000)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get(big, exact size) = %d bytes, %v", len(got), err)
	}
}

func testCreateOnce(t *testing.T, f *fixture) {
	if err := f.st.Create(f.ctx, "once/lock.json", []byte("first")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	err := f.st.Create(f.ctx, "once/lock.json", []byte("second"))
	wantErr(t, "second Create", err, ErrExists, "once/lock.json")
	wantContent(t, f, f.st, "once/lock.json", []byte("first"))
	// Create over an object written by Put also fails.
	mustPut(t, f, f.st, "once/put", []byte("put"))
	err = f.st.Create(f.ctx, "once/put", []byte("create"))
	wantErr(t, "Create over Put", err, ErrExists, "once/put")
	wantContent(t, f, f.st, "once/put", []byte("put"))
}

// Create is the claim primitive: of 8 racing writers exactly one wins, and
// the object holds the winner's data.
func testCreateConcurrent(t *testing.T, f *fixture) {
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f.st.Create(f.ctx, "claim", fmt.Appendf(nil, "writer %d", i))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both created the object", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, ErrExists):
			t.Fatalf("writer %d: %v, want ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no writer won: %v", errs)
	}
	wantContent(t, f, f.st, "claim", fmt.Appendf(nil, "writer %d", winner))
}

func testStat(t *testing.T, f *fixture) {
	data := []byte("stat me")
	before := time.Now().Add(-time.Minute)
	mustPut(t, f, f.st, "s/obj.bin", data)
	o, err := f.st.Stat(f.ctx, "s/obj.bin")
	if err != nil {
		t.Fatal(err)
	}
	if o.Key != "s/obj.bin" || o.Size != int64(len(data)) || o.LastModified.Before(before) {
		t.Fatalf("Stat = %+v", o)
	}
	if f.bucket() {
		// A single PUT's ETag is the MD5 of the content, unquoted.
		sum := md5.Sum(data)
		if want := hex.EncodeToString(sum[:]); o.ETag != want {
			t.Fatalf("Stat ETag = %q, want %q", o.ETag, want)
		}
	}
	var listed []Object
	if err := f.st.List(f.ctx, "s/", func(o Object) error { listed = append(listed, o); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].Key != o.Key || listed[0].Size != o.Size || listed[0].ETag != o.ETag {
		t.Fatalf("List = %+v, Stat = %+v", listed, o)
	}
}

func testDelete(t *testing.T, f *fixture) {
	mustPut(t, f, f.st, "d/obj", []byte("x"))
	mustPut(t, f, f.st, "d/keep", []byte("y"))
	if err := f.st.Delete(f.ctx, "d/obj"); err != nil {
		t.Fatal(err)
	}
	_, err := f.st.Stat(f.ctx, "d/obj")
	wantErr(t, "Stat after Delete", err, ErrNotFound, "d/obj")
	if err := f.st.Delete(f.ctx, "d/obj"); err != nil {
		t.Fatalf("Delete(missing) = %v, want nil", err)
	}
	if err := f.st.Delete(f.ctx, "d"); err != nil { // a "folder"
		t.Fatalf("Delete(folder) = %v, want nil", err)
	}
	wantContent(t, f, f.st, "d/keep", []byte("y"))
}

// More objects than S3's 1000-key page, under a prefix, among neighbours
// that share its first letters.
func testListPaged(t *testing.T, f *fixture) {
	const n = 1100
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("many/%04d", i))
	}
	decoys := []string{"man", "many-x/0", "manyz", "other/0001"}
	keys := append(slices.Clone(want), decoys...)
	var wg sync.WaitGroup
	errs := make(chan error, len(keys))
	work := make(chan string)
	for range 16 {
		wg.Go(func() {
			for k := range work {
				if err := f.st.Put(f.ctx, k, []byte(k)); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := f.st.List(f.ctx, "many/", func(o Object) error {
		if o.Size != int64(len(o.Key)) {
			return fmt.Errorf("%s: size %d", o.Key, o.Size)
		}
		got = append(got, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) { // sorted, each key once, nothing else
		t.Fatalf("List(many/) = %d keys (first %q, last %q), want %d", len(got), got[:min(3, len(got))], got[max(0, len(got)-3):], n)
	}
	if all := listKeys(t, f, f.st, ""); len(all) != len(keys) {
		t.Fatalf("List() = %d keys, want %d", len(all), len(keys))
	}
}

func testListPrefixes(t *testing.T, f *fixture) {
	// No key is also a "folder" of another: neither a folder nor MinIO's
	// drive layout can hold both "a" and "a/b".
	keys := []string{"a.txt", "ab/c", "a/b", "a/bc/d", "b/a", "a.tmp-x", "c/a.tmp-0123456789abcdef0"}
	for _, k := range keys {
		mustPut(t, f, f.st, k, []byte(k))
	}
	for prefix, want := range map[string][]string{
		"":     {"a.tmp-x", "a.txt", "a/b", "a/bc/d", "ab/c", "b/a", "c/a.tmp-0123456789abcdef0"},
		"a":    {"a.tmp-x", "a.txt", "a/b", "a/bc/d", "ab/c"},
		"a/":   {"a/b", "a/bc/d"},
		"a/b":  {"a/b", "a/bc/d"},
		"a/bc": {"a/bc/d"},
		"ab/":  {"ab/c"},
		"b/a":  {"b/a"},
		"zz":   nil,
		"zz/":  nil,
	} {
		if got := listKeys(t, f, f.st, prefix); !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q, want %q", prefix, got, want)
		}
	}
}

func testListStops(t *testing.T, f *fixture) {
	for i := range 5 {
		mustPut(t, f, f.st, fmt.Sprintf("s/%d", i), []byte("x"))
	}
	stop := errors.New("stop here")
	calls := 0
	err := f.st.List(f.ctx, "s/", func(Object) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Fatalf("List = %v after %d calls, want %v after 3", err, calls, stop)
	}
}

// A store opened under a prefix keeps keys relative to it, and sees nothing
// beside it, not even a neighbour whose name extends the prefix.
func testPrefixed(t *testing.T, f *fixture) {
	mustPut(t, f, f.st, "some/prefixed/decoy", []byte("decoy"))
	mustPut(t, f, f.st, "top", []byte("top"))
	for _, suffix := range []string{"/some/prefix", "/some/prefix/"} {
		ps := mustOpen(t, f.ctx, f.url+suffix)
		mustPut(t, f, ps, "k/x.json", []byte("inside"))
		wantContent(t, f, f.st, "some/prefix/k/x.json", []byte("inside"))
		wantContent(t, f, ps, "k/x.json", []byte("inside"))
		if got := listKeys(t, f, ps, ""); !slices.Equal(got, []string{"k/x.json"}) {
			t.Fatalf("%s: List() = %q", suffix, got)
		}
		if got := listKeys(t, f, ps, "k/"); !slices.Equal(got, []string{"k/x.json"}) {
			t.Fatalf("%s: List(k/) = %q", suffix, got)
		}
		if o, err := ps.Stat(f.ctx, "k/x.json"); err != nil || o.Key != "k/x.json" {
			t.Fatalf("%s: Stat = %+v, %v", suffix, o, err)
		}
		if got, want := ps.URI("k/x.json"), f.st.URI("some/prefix/k/x.json"); got != want {
			t.Fatalf("%s: URI = %q, want %q", suffix, got, want)
		}
		if _, err := ps.Get(f.ctx, "top", 100); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: Get(top) through the prefix = %v, want ErrNotFound", suffix, err)
		}
		if err := ps.Delete(f.ctx, "k/x.json"); err != nil {
			t.Fatal(err)
		}
	}
}

// Presigned URLs work without credentials, with plain net/http, for the
// one operation they were made for.
func testPresign(t *testing.T, f *fixture) {
	mustPut(t, f, f.st, "p/get.json", []byte("presigned get"))
	getURL, err := f.st.PresignGet(f.ctx, "p/get.json", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	putURL, err := f.st.PresignPut(f.ctx, "p/put.json", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !f.bucket() {
		// A folder has nothing to sign: the URLs are its file URIs.
		if getURL != f.st.URI("p/get.json") || putURL != f.st.URI("p/put.json") {
			t.Fatalf("file presign = %q, %q", getURL, putURL)
		}
		return
	}
	resp, err := http.Get(getURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "presigned get" {
		t.Fatalf("GET presigned: %s %q", resp.Status, body)
	}
	if code := httpPut(t, putURL, "presigned put"); code != http.StatusOK {
		t.Fatalf("PUT presigned: %d", code)
	}
	wantContent(t, f, f.st, "p/put.json", []byte("presigned put"))
	// A GET URL grants no PUT.
	if code := httpPut(t, getURL, "overwrite"); code != http.StatusForbidden {
		t.Fatalf("PUT on the GET URL: %d, want 403", code)
	}
	wantContent(t, f, f.st, "p/get.json", []byte("presigned get"))
}

func httpPut(t *testing.T, url, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The single-object helpers, through the store's own URIs and through
// presigned URLs (file URIs for the file store).
func testURIHelpers(t *testing.T, f *fixture) {
	dst := filepath.Join(t.TempDir(), "download")
	for _, key := range []string{"u/result.json", "u/odd #1?%41 ünï.json"} {
		data := []byte("via " + key)
		uri := f.st.URI(key)
		if err := PutURI(f.ctx, uri, data); err != nil {
			t.Fatalf("PutURI(%q): %v", uri, err)
		}
		wantContent(t, f, f.st, key, data)
		wantURI(t, f.ctx, uri, data, dst)

		getURL, err := f.st.PresignGet(f.ctx, key, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		wantURI(t, f.ctx, getURL, data, dst)
		putURL, err := f.st.PresignPut(f.ctx, key, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := PutURI(f.ctx, putURL, []byte("presigned "+key)); err != nil {
			t.Fatalf("PutURI(presigned): %v", err)
		}
		wantContent(t, f, f.st, key, []byte("presigned "+key))
	}

	missing := f.st.URI("u/missing")
	_, err := GetURI(f.ctx, missing, 100)
	wantErr(t, "GetURI(missing)", err, ErrNotFound, "u/missing")
	if _, err := DownloadURI(f.ctx, missing, dst); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DownloadURI(missing) = %v, want ErrNotFound", err)
	}
	mustPut(t, f, f.st, "u/big", bytes.Repeat([]byte("x"), 101))
	_, err = GetURI(f.ctx, f.st.URI("u/big"), 100)
	wantErr(t, "GetURI(big)", err, ErrTooLarge, "u/big")
	if f.bucket() {
		u, err := f.st.PresignGet(f.ctx, "u/missing", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		_, err = GetURI(f.ctx, u, 100)
		wantErr(t, "GetURI(presigned missing)", err, ErrNotFound, "u/missing")
		if u, err = f.st.PresignGet(f.ctx, "u/big", time.Minute); err != nil {
			t.Fatal(err)
		}
		_, err = GetURI(f.ctx, u, 100)
		wantErr(t, "GetURI(presigned big)", err, ErrTooLarge, "u/big")
		if strings.Contains(err.Error(), "Signature") {
			t.Fatalf("error leaks the signature: %v", err)
		}
	} else {
		// A plain path names the same object as its file URI.
		p := filepath.Join(strings.TrimPrefix(f.url, "file://"), "u", "plain #1.json")
		if err := PutURI(f.ctx, p, []byte("plain")); err != nil {
			t.Fatal(err)
		}
		wantContent(t, f, f.st, "u/plain #1.json", []byte("plain"))
		wantURI(t, f.ctx, p, []byte("plain"), dst)
	}
}

func wantURI(t *testing.T, ctx context.Context, uri string, want []byte, dst string) {
	t.Helper()
	got, err := GetURI(ctx, uri, 1<<20)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("GetURI(%q) = %q, %v; want %q", uri, got, err, want)
	}
	n, err := DownloadURI(ctx, uri, dst)
	if err != nil || n != int64(len(want)) {
		t.Fatalf("DownloadURI(%q) = %d, %v", uri, n, err)
	}
	if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("DownloadURI(%q) wrote %q, %v; want %q", uri, got, err, want)
	}
}

// Every operation refuses an invalid key before touching the store.
func testInvalidKeys(t *testing.T, f *fixture) {
	for _, key := range []string{"", "/etc/passwd", "../escape", "a/../../escape", "a\x00b", "a/"} {
		ops := map[string]func() error{
			"Put":    func() error { return f.st.Put(f.ctx, key, []byte("x")) },
			"Create": func() error { return f.st.Create(f.ctx, key, []byte("x")) },
			"Get":    func() error { _, err := f.st.Get(f.ctx, key, 10); return err },
			"Open":   func() error { _, _, err := f.st.Open(f.ctx, key); return err },
			"Stat":   func() error { _, err := f.st.Stat(f.ctx, key); return err },
			"Delete": func() error { return f.st.Delete(f.ctx, key) },
			"PresignGet": func() error {
				_, err := f.st.PresignGet(f.ctx, key, time.Minute)
				return err
			},
			"PresignPut": func() error {
				_, err := f.st.PresignPut(f.ctx, key, time.Minute)
				return err
			},
		}
		for name, op := range ops {
			if err := op(); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s(%q) = %v, want ErrInvalidKey", name, key, err)
			}
		}
	}
	if got := listKeys(t, f, f.st, ""); len(got) != 0 {
		t.Fatalf("objects after refused writes: %q", got)
	}
	if !f.bucket() {
		parent := filepath.Dir(strings.TrimPrefix(f.url, "file://"))
		if _, err := os.Stat(filepath.Join(parent, "escape")); err == nil {
			t.Fatal("a write escaped the folder")
		}
	}
}

// A missing bucket is a configuration error, not a missing object: callers
// that create what they do not find must not be told "not found", and
// Delete must not report success.
func testMissingBucket(t *testing.T, f *fixture) {
	url := f.url + "-missing"
	switch f.kind {
	case "minio":
		url += "?region=" + testenv.Region // no location lookup: Stat's HEAD meets the missing bucket
	case "file":
		url = "file:///proc/guestkit-missing" // a folder that cannot be created
	}
	st := mustOpen(t, f.ctx, url)
	ops := map[string]func() error{
		"Put":    func() error { return st.Put(f.ctx, "k", []byte("x")) },
		"Create": func() error { return st.Create(f.ctx, "k", []byte("x")) },
		"List":   func() error { return st.List(f.ctx, "", func(Object) error { return nil }) },
	}
	if f.bucket() {
		ops["Get"] = func() error { _, err := st.Get(f.ctx, "k", 10); return err }
		ops["Open"] = func() error { _, _, err := st.Open(f.ctx, "k"); return err }
		ops["Stat"] = func() error { _, err := st.Stat(f.ctx, "k"); return err }
		ops["Delete"] = func() error { return st.Delete(f.ctx, "k") }
	}
	for name, op := range ops {
		err := op()
		if name == "List" && !f.bucket() {
			if err != nil {
				t.Errorf("List of a missing folder = %v, want no objects", err)
			}
			continue
		}
		if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrExists) {
			t.Errorf("%s in a missing bucket = %v, want another error", name, err)
		}
	}
}
