package integration

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"guestkit.io/batch/internal/remote"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/testenv"
)

// TestMinIO reads an object of a real MinIO server through presigned
// URLs: random ranges against the bytes uploaded, the identity against
// Stat, an overwrite mid-run (MinIO answers If-Match with 412), and an
// expiry (MinIO's own 403), with and without Refresh.
func TestMinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO")
	}
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bucket := m.NewBucket(t)
	if err := m.Client(t).EnableVersioning(ctx, bucket); err != nil {
		t.Fatalf("versioning: %v", err)
	}
	st, err := store.Open(ctx, "minio://"+bucket)
	if err != nil {
		t.Fatal(err)
	}
	const key = "img/disk.raw"
	data := randomBytes(8<<20+4321, 20)
	if err := st.Put(ctx, key, data); err != nil {
		t.Fatal(err)
	}
	stat, err := st.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	presign := func(ttl time.Duration) string {
		u, err := st.PresignGet(ctx, key, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	opts := remote.Options{BlockSize: 64 << 10, Attempts: 3, Backoff: 10 * time.Millisecond,
		Pin: remote.Identity{ETag: stat.ETag, Size: stat.Size}}

	t.Run("ranges", func(t *testing.T) {
		o, err := remote.Open(ctx, presign(time.Minute), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		id := o.Identity()
		if id.ETag != stat.ETag || id.Size != int64(len(data)) || id.VersionID == "" || !id.LastModified.Equal(stat.LastModified.Truncate(time.Second)) {
			t.Errorf("Identity %+v; Stat %+v", id, stat)
		}
		r := rand.New(rand.NewPCG(1, 2))
		for range 200 {
			off := r.Int64N(int64(len(data)))
			p := make([]byte, 1+r.IntN(256<<10))
			n, err := o.ReadAt(p, off)
			want := data[off:min(off+int64(len(p)), int64(len(data)))]
			if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], want) {
				t.Fatalf("ReadAt(%d, %d) = %d, %v; bytes equal: %v", len(p), off, n, err, bytes.Equal(p[:n], want))
			}
		}
		st := o.Stats()
		if st.Retries != 0 || st.Requests == 0 || st.BytesFetched > int64(len(data))+(1<<20) {
			t.Errorf("Stats %+v", st)
		}
		t.Logf("200 random reads: %+v", st)
	})

	t.Run("changed", func(t *testing.T) {
		o, err := remote.Open(ctx, presign(time.Minute), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		if _, err := o.ReadAt(make([]byte, 4096), 1<<20); err != nil {
			t.Fatal(err)
		}
		other := randomBytes(len(data), 21)
		if err := st.Put(ctx, key, other); err != nil {
			t.Fatal(err)
		}
		defer st.Put(ctx, key, data)
		n, err := o.ReadAt(make([]byte, 4096), 5<<20)
		if n != 0 || !errors.Is(err, remote.ErrChanged) || !strings.Contains(err.Error(), "412 Precondition Failed") {
			t.Fatalf("ReadAt after an overwrite = %d, %v; want ErrChanged from a 412", n, err)
		}
		if _, err := io.Copy(io.Discard, o.Reader(ctx)); !errors.Is(err, remote.ErrChanged) {
			t.Errorf("Reader after an overwrite: %v, want ErrChanged", err)
		}
	})

	t.Run("expired", func(t *testing.T) {
		if err := st.Put(ctx, key, data); err != nil {
			t.Fatal(err)
		}
		stat, _ := st.Stat(ctx, key)
		opts := opts
		opts.Pin = remote.Identity{ETag: stat.ETag, Size: stat.Size}
		o, err := remote.Open(ctx, presign(time.Second), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		time.Sleep(2100 * time.Millisecond)
		n, err := o.ReadAt(make([]byte, 4096), 3<<20)
		if n != 0 || !errors.Is(err, remote.ErrExpired) || strings.Contains(err.Error(), "X-Amz-Signature") {
			t.Fatalf("ReadAt after the expiry = %d, %v; want ErrExpired", n, err)
		}
		// What remote's fault server sends as MinIO's expiry (minioExpired).
		if want := "403 Forbidden AccessDenied (Request has expired)"; !strings.Contains(err.Error(), want) {
			t.Errorf("MinIO's expiry %q does not read %q: update remote's minioExpired", err, want)
		}
		opts.Refresh = func(ctx context.Context) (string, error) { return st.PresignGet(ctx, key, time.Minute) }
		o2, err := remote.Open(ctx, presign(time.Second), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer o2.Close()
		time.Sleep(2100 * time.Millisecond)
		p := make([]byte, 100000)
		if _, err := o2.ReadAt(p, 3<<20); err != nil || !bytes.Equal(p, data[3<<20:3<<20+100000]) {
			t.Fatalf("ReadAt with Refresh: %v", err)
		}
		if st := o2.Stats(); st.Refreshes != 1 {
			t.Errorf("%d refreshes, want 1", st.Refreshes)
		}
	})
}

// randomBytes is a deterministic random object: any misplaced byte shows.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
