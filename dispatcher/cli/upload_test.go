package cli_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/testenv"
)

// TestUploadCommand runs `upload` on a temporary image against a real
// MinIO, through s3:// (one PUT: the store attests the sha256) and
// minio:// (forced multipart: only the sidecar carries it), and checks the
// printed lines and the objects.
func TestUploadCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO")
	}
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	data := make([]byte, 6<<20+3)
	rand.Read(data)
	file := filepath.Join(t.TempDir(), "web.raw")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s, m5 := sha256.Sum256(data), md5.Sum(data)
	sum := hex.EncodeToString(s[:])
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	check := func(t *testing.T, bucketURL, key string, r run, attest string) {
		t.Helper()
		st, err := store.Open(ctx, bucketURL)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"uploaded " + file + " to " + st.URI(key),
			"key:     " + key,
			"size:    " + "6291459",
			"sha256:  " + sum,
			"store:   " + attest,
			"sidecar: " + st.URI(key+".sha256"),
		}
		for _, w := range want {
			if !strings.Contains(r.stdout, w+"\n") {
				t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
			}
		}
		got, err := st.Get(ctx, key, 7<<20)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("object: %d bytes, %v", len(got), err)
		}
		side, err := st.Get(ctx, key+".sha256", 1024)
		if err != nil || string(side) != sum+"  web.raw\n" {
			t.Fatalf("sidecar %q, %v", side, err)
		}
	}

	t.Run("s3-single", func(t *testing.T) {
		b := m.NewBucket(t)
		r := dispatcher(t, "upload", file, "s3://"+b+"/images/web.raw")
		if r.code != 0 {
			t.Fatalf("upload: %+v", r)
		}
		check(t, "s3://"+b, "images/web.raw", r, "sha256 "+sum)
		if !strings.Contains(r.stdout, "etag:    "+hex.EncodeToString(m5[:])+"\n") {
			t.Errorf("stdout lacks the single-PUT ETag:\n%s", r.stdout)
		}
	})
	t.Run("minio-multipart-in-bucket", func(t *testing.T) {
		b := m.NewBucket(t)
		t.Setenv("GUESTKIT_UPLOAD_MAX_SINGLE_PUT_MIB", "5")
		r := dispatcher(t, "--bucket", "minio://"+b, "upload", "--part-size-mib", "5", file, "images/web.raw")
		if r.code != 0 {
			t.Fatalf("upload: %+v", r)
		}
		check(t, "minio://"+b, "images/web.raw", r, "no sha256 (the sidecar carries it)")
		if !strings.Contains(r.stdout, "-2\n") {
			t.Errorf("stdout lacks a 2-part ETag:\n%s", r.stdout)
		}
	})
	t.Run("errors", func(t *testing.T) {
		b := m.NewBucket(t)
		if r := dispatcher(t, "upload", filepath.Join(t.TempDir(), "none.raw"), "s3://"+b+"/x.raw"); r.code != 64 {
			t.Errorf("missing file: %+v", r)
		}
		if r := dispatcher(t, "upload", "--part-size-mib", "1", file, "s3://"+b+"/x.raw"); r.code != 64 || !strings.Contains(r.stderr, "part-size-mib") {
			t.Errorf("tiny part size: %+v", r)
		}
		if r := dispatcher(t, "upload", file, "s3://"+b+"/a/../x.raw"); r.code != 3 || !strings.Contains(r.stderr, "invalid object key") {
			t.Errorf("bad key: %+v", r)
		}
		if r := dispatcher(t, "upload", file, "https://example.invalid/x.raw?X-Amz-Signature=secret"); r.code != 3 || strings.Contains(r.stderr, "secret") {
			t.Errorf("http URL: %+v", r)
		}
	})
}
