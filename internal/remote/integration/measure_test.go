package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"guestkit.io/batch/internal/direct"
	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/remote"
)

// access is one ReadAt of the direct reader.
type access struct{ off, n int64 }

// recorder is a raw image file that records every read.
type recorder struct {
	f     *os.File
	size  int64
	mu    sync.Mutex
	trace []access
}

func (r *recorder) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.trace = append(r.trace, access{off, int64(len(p))})
	r.mu.Unlock()
	return r.f.ReadAt(p, off)
}

func (r *recorder) Size() int64 { return r.size }

// TestMeasure is the measurement behind remote's BlockSize and
// ReadaheadMax defaults. For each inspectable test image (other formats
// converted to raw first, as the NBD export would present them), it
// records the direct reader's reads during a full inspection of the file,
// then replays them against an Object served by a local HTTP server
// (http.ServeContent, with an ETag) for several settings, and prints bytes
// fetched, requests and an estimate of the time on a network of 20 ms
// round trips at 100 MB/s. Last, it inspects the image through an Object
// with the defaults and checks the report equals the file's.
//
//	GUESTKIT_MEASURE=1 GUESTKIT_TEST_IMAGES=~/.cache/guestkit-batch/images go test -run=Measure -v ./internal/remote/integration
func TestMeasure(t *testing.T) {
	if os.Getenv("GUESTKIT_MEASURE") == "" || testing.Short() {
		t.Skip("a measurement: set GUESTKIT_MEASURE=1")
	}
	dir := os.Getenv("GUESTKIT_TEST_IMAGES")
	manifest, err := os.ReadFile(filepath.Join(dir, "MANIFEST"))
	if err != nil {
		t.Fatalf("no test images: %v", err)
	}
	type setting struct{ bs, ra int64 }
	var settings []setting
	for _, bs := range []int64{4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20} {
		for _, ra := range []int64{-1, 1 << 20, 4 << 20} {
			settings = append(settings, setting{bs, ra})
		}
	}
	type total struct{ bytes, reqs, size int64 }
	totals := make([]total, len(settings))
	sc := bufio.NewScanner(strings.NewReader(string(manifest)))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) < 4 || strings.HasPrefix(f[0], "#") || f[3] != "ok" {
			continue
		}
		name, file, format := f[0], filepath.Join(dir, f[1]), f[2]
		if strings.HasPrefix(name, "debian-") && name != "debian-raw" {
			continue // the same disk as debian in another format
		}
		raw := file
		if format != "raw" {
			raw = filepath.Join(t.TempDir(), name+".raw")
			if out, err := exec.Command("qemu-img", "convert", "-f", format, "-O", "raw", file, raw).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img convert %s: %v\n%s", file, err, out)
			}
		}
		fh, err := os.Open(raw)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := fh.Stat()
		rec := &recorder{f: fh, size: fi.Size()}
		want := inspectReport(t, rec)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"`+name+`"`)
			http.ServeContent(w, r, "", fi.ModTime(), fh)
		}))
		var reqs, bytes int64
		for _, a := range rec.trace {
			bytes += a.n
		}
		reqs = int64(len(rec.trace))
		t.Logf("%s: %d MiB, the reader asked %d reads, %d KiB (%.2f%%)", name, rec.size>>20, reqs, bytes>>10, 100*float64(bytes)/float64(rec.size))
		for i, s := range settings {
			o, err := remote.Open(t.Context(), srv.URL, remote.Options{BlockSize: s.bs, ReadaheadMax: s.ra})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range rec.trace {
				if _, err := o.ReadAt(make([]byte, a.n), a.off); err != nil && a.off+a.n <= rec.size {
					t.Fatalf("replay: %v", err)
				}
			}
			st := o.Stats()
			o.Close()
			totals[i].bytes += st.BytesFetched
			totals[i].reqs += st.Requests
			totals[i].size += rec.size
			t.Logf("  block %4d KiB readahead %5s: %6d requests %8d KiB fetched (%.2f%% of the image), est. %5.2f s",
				s.bs>>10, raName(s.ra), st.Requests, st.BytesFetched>>10, 100*float64(st.BytesFetched)/float64(rec.size), estimate(st))
		}
		// End to end: the inspection through an Object reports what the file does.
		o, err := remote.Open(t.Context(), srv.URL, remote.Options{})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		got := inspectReport(t, o)
		st := o.Stats()
		o.Close()
		if got != want {
			t.Errorf("%s: the report through HTTP differs from the file's", name)
		}
		t.Logf("  defaults end to end: %d requests, %d KiB, %.2f%%, %v locally", st.Requests, st.BytesFetched>>10,
			100*float64(st.BytesFetched)/float64(rec.size), time.Since(start).Round(time.Millisecond))
		srv.Close()
		fh.Close()
	}
	t.Log("all images:")
	for i, s := range settings {
		tt := totals[i]
		t.Logf("  block %4d KiB readahead %5s: %6d requests %8d KiB (%.2f%%), est. %5.2f s", s.bs>>10, raName(s.ra),
			tt.reqs, tt.bytes>>10, 100*float64(tt.bytes)/float64(tt.size), estimate(remote.Stats{Requests: tt.reqs, BytesFetched: tt.bytes}))
	}
}

func raName(ra int64) string {
	if ra < 0 {
		return "none"
	}
	return fmt.Sprintf("%dM", ra>>20)
}

// estimate is a sequential reader's time on a 20 ms, 100 MB/s network.
func estimate(st remote.Stats) float64 {
	return float64(st.Requests)*0.020 + float64(st.BytesFetched)/100e6
}

// inspectReport runs the direct backend's whole inspection and returns the
// report as JSON.
func inspectReport(t *testing.T, d interface {
	ReadAt([]byte, int64) (int, error)
	Size() int64
}) string {
	t.Helper()
	ctx := context.Background()
	b, err := direct.Open(ctx, d, direct.Options{})
	if err != nil {
		t.Fatalf("direct: %v", err)
	}
	defer b.Close()
	rep, err := inspect.Run(ctx, b, inspect.Options{}, nil)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	js, _ := json.Marshal(rep)
	return string(js)
}
