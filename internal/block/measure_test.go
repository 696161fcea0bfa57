package block

import (
	"context"
	"io"
	"os"
	"slices"
	"testing"
	"time"
)

// TestMeasureServers is the short program behind the package comment's
// startup figures: rounds alternate between the servers, and each phase
// (Open to the first read, a whole-disk read, Close) is timed alone.
// It runs only with GUESTKIT_BLOCK_MEASURE=1.
//
//	GUESTKIT_BLOCK_MEASURE=1 GUESTKIT_TEST_IMAGES=~/.cache/guestkit-batch/images go test -run=MeasureServers -v ./internal/block
func TestMeasureServers(t *testing.T) {
	if os.Getenv("GUESTKIT_BLOCK_MEASURE") == "" {
		t.Skip("a measurement, not a test: set GUESTKIT_BLOCK_MEASURE=1")
	}
	dir := testImages(t)
	image := dir + "/debian.qcow2" // 200 MiB, 1.7 MiB of it allocated
	const rounds = 30
	type phases struct{ open, read, close []time.Duration }
	res := map[serverKind]*phases{serverQSD: {}, serverQemuNBD: {}}
	p := make([]byte, 4096)
	for i := range rounds {
		for _, s := range servers {
			start := time.Now()
			d, err := Open(context.Background(), image, "qcow2", Options{server: s.kind})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.ReadAt(p, 0); err != nil {
				t.Fatal(err)
			}
			r := res[s.kind]
			r.open = append(r.open, time.Since(start))
			if i%5 == 0 {
				start = time.Now()
				if _, err := io.Copy(io.Discard, io.NewSectionReader(d, 0, d.Size())); err != nil {
					t.Fatal(err)
				}
				r.read = append(r.read, time.Since(start))
			}
			start = time.Now()
			d.Close()
			r.close = append(r.close, time.Since(start))
		}
	}
	q := func(ds []time.Duration, f float64) time.Duration {
		slices.Sort(ds)
		return ds[int(f*float64(len(ds)-1))].Round(10 * time.Microsecond)
	}
	for _, s := range servers {
		r := res[s.kind]
		t.Logf("%-20s open+first read: median %v p90 %v; whole 200 MiB disk: median %v; close: median %v p90 %v",
			s.name, q(r.open, .5), q(r.open, .9), q(r.read, .5), q(r.close, .5), q(r.close, .9))
	}
}
