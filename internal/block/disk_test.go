package block

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// memDisk is a Disk over data whose source checks what the Disk promises
// it: reads inside the disk, aligned, never empty.
func memDisk(t testing.TB, data []byte, align int64, cacheBytes int64) *Disk {
	d := &Disk{size: int64(len(data)), align: align, closeFn: func() error { return nil }}
	d.src = func(p []byte, off int64) error {
		end := off + int64(len(p))
		if len(p) == 0 || off < 0 || end > d.size || off%align != 0 || (end%align != 0 && end != d.size) {
			t.Errorf("source read of %d bytes at %d (align %d, size %d)", len(p), off, align, d.size)
			return errors.New("bad source read")
		}
		copy(p, data[off:])
		return nil
	}
	if cacheBytes > 0 {
		d.cache = newChunkCache(cacheBytes)
	}
	return d
}

// TestDiskReads compares random reads of every size, from several
// goroutines, with the bytes themselves, for caches that hold the disk,
// a few chunks, or none, and sizes that end inside a chunk.
func TestDiskReads(t *testing.T) {
	for _, size := range []int64{10*chunkSize + 512, 3 << 20, 1000 * 512} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*31 + i/chunkSize)
		}
		for _, cache := range []int64{-1, 3 * chunkSize, 64 << 20} {
			for _, align := range []int64{1, 512} {
				t.Run(fmt.Sprintf("size%d/cache%d/align%d", size, cache, align), func(t *testing.T) {
					d := memDisk(t, data, align, cache)
					var wg sync.WaitGroup
					for g := range 4 {
						wg.Add(1)
						go func() {
							defer wg.Done()
							rng := rand.New(rand.NewPCG(uint64(g), uint64(size)))
							for range 150 {
								off := rng.Int64N(size + 100)
								n := rng.IntN(3 * chunkSize)
								if rng.IntN(20) == 0 {
									n = largeRead + rng.IntN(chunkSize)
								}
								p := make([]byte, n)
								got, err := d.ReadAt(p, off)
								want := int(max(0, min(int64(n), size-off)))
								if got != want || (want < n && err != io.EOF) || (want == n && err != nil) {
									t.Errorf("ReadAt(%d at %d) = %d, %v; want %d", n, off, got, err, want)
									return
								}
								if !bytes.Equal(p[:got], data[off:off+int64(got)]) {
									t.Errorf("ReadAt(%d at %d): wrong bytes", n, off)
									return
								}
							}
						}()
					}
					wg.Wait()
					st := d.Stats()
					if st.Requests != 600 || st.Reads == 0 || (cache > 0) != (st.CacheHits > 0) {
						t.Errorf("stats %+v", st)
					}
					if d.cache != nil && d.cache.lru.Len() > d.cache.max {
						t.Errorf("cache holds %d chunks, more than %d", d.cache.lru.Len(), d.cache.max)
					}
				})
			}
		}
	}
}

// TestDiskCacheSavesReads: metadata-like reads (small, clustered) hit the
// cache; a missing run of chunks is one source read.
func TestDiskCacheSavesReads(t *testing.T) {
	data := make([]byte, 4<<20)
	d := memDisk(t, data, 1, 1<<20)
	for i := range 1000 {
		if _, err := d.ReadAt(make([]byte, 256), int64(i*512)%(512<<10)); err != nil {
			t.Fatal(err)
		}
	}
	if st := d.Stats(); st.Reads != 8 || st.BytesRead != 512<<10 || st.CacheMisses != 8 || st.CacheHits != 992 {
		t.Errorf("1000 small reads in 512 KiB: %+v, want 8 chunk reads", st)
	}
	if _, err := d.ReadAt(make([]byte, 5*chunkSize), 16*chunkSize+1); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.Reads != 9 || st.CacheMisses != 14 {
		t.Errorf("one read over 6 missing chunks: %+v, want one source read", st)
	}
	if _, err := d.ReadAt(make([]byte, 2<<20), 0); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.Reads != 10 || st.CacheMisses != 14 {
		t.Errorf("a large read: %+v, want it to pass the cache by", st)
	}
}

func TestRawDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.raw")
	data := bytes.Repeat([]byte("guest disk bytes"), 100_000)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Open(t.Context(), path, "raw", Options{CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if d.Size() != int64(len(data)) {
		t.Fatalf("size %d", d.Size())
	}
	p := make([]byte, 100)
	if n, err := d.ReadAt(p, 1000); n != 100 || err != nil || !bytes.Equal(p, data[1000:1100]) {
		t.Fatalf("read: %d, %v", n, err)
	}
	// The file shrinks under us: an error, not zeroes.
	if err := os.Truncate(path, 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadAt(p, 500_000); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read past the shrunk file: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadAt(p, 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("read after Close: %v", err)
	}
}
