package store

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateKey(t *testing.T) {
	long := strings.Repeat("k", MaxKeyLen+1)
	bad := []struct {
		key, named string // named: how the error shows the key
	}{
		{"", `""`},
		{"/abs", `"/abs"`},
		{"a/../b", `"a/../b"`},
		{"..", `".."`},
		{"../a", `"../a"`},
		{"a/..", `"a/.."`},
		{".", `"."`},
		{"./a", `"./a"`},
		{"a/./b", `"a/./b"`},
		{"a//b", `"a//b"`},
		{"a/", `"a/"`},
		{`a\b`, `"a\\b"`},
		{"a\x00b", `"a?b"`},
		{"a\nb", `"a?b"`},
		{"a\x7fb", `"a?b"`},
		{"a\u0085b", `"a?b"`},
		{"a\x9bb", `"a?b"`}, // a lone C1 byte is not UTF-8
		{"\xff\xfe", `"??"`},
		{long, `"` + strings.Repeat("k", 200) + `..."`},
	}
	for _, tc := range bad {
		err := ValidateKey(tc.key)
		if !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", tc.key, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.named) {
			t.Errorf("ValidateKey(%q) = %q, want it to name the key as %s", tc.key, err, tc.named)
		}
	}
	good := []string{
		"a", "a b", "dir/sub/file.json", "ünïcødé/文件.txt", "a..b", "..a", "a..", "a.",
		".hidden", "a/.b", "x/...", "a#b?c%d&e", "tab-free name (1).json",
		strings.Repeat("k", MaxKeyLen),
	}
	for _, key := range good {
		if err := ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", key, err)
		}
	}
}

func TestSplitURI(t *testing.T) {
	abs, err := filepath.Abs("rel/b.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		uri, bucket, key string
		err              error // nil: success; errAny: any error
	}{
		{"s3://b/dir/k.json", "s3://b", "dir/k.json", nil},
		{"s3://b/k?endpoint=http://127.0.0.1:9000&region=eu", "s3://b?endpoint=http://127.0.0.1:9000&region=eu", "k", nil},
		{"minio://b/a/b", "minio://b", "a/b", nil},
		{"s3://b/a b%3F%23%25.json", "s3://b", "a b?#%.json", nil},
		{"s3://b/ünï/文件", "s3://b", "ünï/文件", nil},
		{"file:///tmp/a/b.json", "file:///tmp/a", "b.json", nil},
		{"file://localhost/tmp/a/b.json", "file:///tmp/a", "b.json", nil},
		{"file:///tmp/a/x%23y", "file:///tmp/a", "x#y", nil},
		{"/tmp/a/b.json", "file:///tmp/a", "b.json", nil},
		{"/tmp/a/x#y", "file:///tmp/a", "x#y", nil},
		{"rel/b.json", "file://" + filepath.Dir(abs), "b.json", nil},
		{"https://h.example/k?X-Amz-Signature=s", "https://h.example/k?X-Amz-Signature=s", "", nil},
		{"http://127.0.0.1:9000/b/k", "http://127.0.0.1:9000/b/k", "", nil},
		{"s3://b/", "", "", errAny},
		{"s3://b", "", "", errAny},
		{"s3://b/../x", "", "", ErrInvalidKey},
		{"s3://b/a//x", "", "", ErrInvalidKey},
		{"file:///", "", "", errAny},
		{"file://otherhost/x", "", "", errAny},
		{"ftp://h/x", "", "", errAny},
		{"s3://b/%zz", "", "", errAny},
	}
	for _, tc := range cases {
		bucket, key, err := SplitURI(tc.uri)
		switch {
		case tc.err == nil && err != nil:
			t.Errorf("SplitURI(%q): %v", tc.uri, err)
		case tc.err == nil && (bucket != tc.bucket || key != tc.key):
			t.Errorf("SplitURI(%q) = %q, %q; want %q, %q", tc.uri, bucket, key, tc.bucket, tc.key)
		case tc.err == errAny && err == nil, tc.err != nil && tc.err != errAny && !errors.Is(err, tc.err):
			t.Errorf("SplitURI(%q) = %q, %q, %v; want error %v", tc.uri, bucket, key, err, tc.err)
		}
	}
}

var errAny = errors.New("any error")

// Object URIs built by a store split back into a bucket URL and key that
// name the same object, whatever characters a valid key holds.
func TestURIRoundTrip(t *testing.T) {
	t.Setenv("MINIO_ENDPOINT", "127.0.0.1:1") // minio:// needs one; nothing is contacted
	dir := filepath.Join(t.TempDir(), "dir #1?%")
	stores := []Store{
		&s3Store{bucket: "b"},
		&s3Store{bucket: "b", prefix: "some/pre fix"},
		&minioStore{bucket: "b"},
		&fileStore{dir: dir},
	}
	keys := []string{"k", "a b/c.json", "x#y?z%41", "ünï/文件", "a..b", "100%"}
	for _, st := range stores {
		for _, key := range keys {
			uri := st.URI(key)
			bucket, k, err := SplitURI(uri)
			if err != nil {
				t.Errorf("SplitURI(%q): %v", uri, err)
				continue
			}
			again, err := Open(t.Context(), bucket)
			if err != nil {
				t.Errorf("SplitURI(%q) = %q: Open: %v", uri, bucket, err)
				continue
			}
			if got := again.URI(k); got != uri {
				t.Errorf("SplitURI(%q) = %q, %q, which names %q", uri, bucket, k, got)
			}
		}
	}
}

func TestOpenURL(t *testing.T) {
	for _, u := range []string{"", "ftp://h/b", "file://otherhost/x", "s3://", "s3:///prefix"} {
		if st, err := Open(t.Context(), u); err == nil {
			t.Errorf("Open(%q) = %T, want an error", u, st)
		}
	}
	dir := t.TempDir()
	for _, u := range []string{dir, "file://" + dir, "file://localhost" + dir} {
		st, err := Open(t.Context(), u)
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		if got, want := st.URI("k"), "file://"+dir+"/k"; got != want {
			t.Errorf("Open(%q).URI(k) = %q, want %q", u, got, want)
		}
	}
}

// A download cut short fails and leaves dst as it was: the runner must never
// inspect a truncated image.
func TestDownloadURIShort(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			w.Write([]byte("whole"))
			return
		}
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("half"))
		// The handler returns: the connection closes 96 bytes short.
	}))
	defer srv.Close()
	dir := t.TempDir()
	dst := filepath.Join(dir, "image")
	if err := os.WriteFile(dst, []byte("previous"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := DownloadURI(t.Context(), srv.URL+"/short?X-Amz-Signature=secret", dst); err == nil {
		t.Fatal("short download succeeded")
	} else if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error leaks the signature: %v", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "previous" {
		t.Fatalf("dst after a failed download: %q", got)
	}
	if n, err := DownloadURI(t.Context(), srv.URL+"/ok", dst); err != nil || n != 5 {
		t.Fatalf("DownloadURI = %d, %v", n, err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "whole" {
		t.Fatalf("dst = %q", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("leftovers in %s: %v", dir, entries)
	}
}
