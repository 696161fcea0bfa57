//go:build bench

package benchsweep

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/sweep"
	"guestkit.io/batch/internal/sweep/sweeptest"
	"guestkit.io/batch/internal/testenv"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// night is what one sweep cost.
type night struct {
	jobs, results     int
	bytes             int64
	wall              time.Duration
	read, carried, ok int
}

func TestBenchSweep(t *testing.T) {
	n := envInt("GUESTKIT_BENCH_SWEEP_IMAGES", 300)
	changedPct := envInt("GUESTKIT_BENCH_SWEEP_CHANGED", 10)
	parallel := envInt("GUESTKIT_BENCH_SWEEP_PARALLEL", 2)
	bin := t.TempDir()
	for _, c := range []string{"dispatcher", "runner"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, "guestkit-"+c), "guestkit.io/batch/"+c)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", c, err, out)
		}
	}
	m := testenv.StartMinIO(t)
	b := m.NewBucket(t)
	bucket := "s3://" + b
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	env := os.Environ()
	for k, v := range m.Env() {
		env = append(env, k+"="+v)
		t.Setenv(k, v)
	}
	st, err := store.Open(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	put := func(i int, openssl string) {
		p := filepath.Join(dir, fmt.Sprintf("%d.img", i))
		sweeptest.DebianImage(t, p, fmt.Sprintf("host-%d", i),
			sweeptest.Package{Name: "openssl", Version: openssl}, sweeptest.Package{Name: "bash", Version: "5.2.15-2+b2"})
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Put(ctx, fmt.Sprintf("images/vm-%04d.img", i), data); err != nil {
			t.Fatal(err)
		}
		os.Remove(p)
	}
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer func() { <-sem; wg.Done() }(); put(i, "3.0.13-1~deb12u1") }()
	}
	wg.Wait()
	t.Logf("%d images of %d KiB made and uploaded in %s", n, sweeptest.ImageSize>>10, time.Since(start).Round(time.Millisecond))

	sweepOn := func(date string, extra ...string) night {
		args := append([]string{"--bucket", bucket, "--log-level", "warn", "sweep", "--runner", filepath.Join(bin, "guestkit-runner"), "--backend", "direct",
			"--images", "images/", "--profiles", "security", "--date", date, "--interval", "1s", "--parallel", strconv.Itoa(parallel), "--progress", "never"}, extra...)
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "guestkit-dispatcher"), args...)
		cmd.Env = env
		began := time.Now()
		out, err := cmd.CombinedOutput()
		wall := time.Since(began)
		if err != nil {
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Fatalf("sweep %s: %v\n%s", date, err, tail(out))
			}
		}
		nt := night{wall: wall}
		cl := m.Client(t)
		for o := range cl.ListObjects(ctx, b, minio.ListObjectsOptions{Prefix: store.SweepSpecsPrefix + date + "/", Recursive: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			nt.jobs++
		}
		for o := range cl.ListObjects(ctx, b, minio.ListObjectsOptions{Prefix: "results/sweep-" + date + "-", Recursive: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			data, err := st.Get(ctx, o.Key, result.MaxSize)
			if err != nil {
				t.Fatal(err)
			}
			var r result.Result
			if err := json.Unmarshal(data, &r); err != nil {
				t.Fatal(err)
			}
			nt.results++
			if r.Image != nil && r.Image.Fetch != nil {
				nt.bytes += r.Image.Fetch.Bytes
			}
		}
		data, err := st.Get(ctx, sweep.ReportKey(date), sweep.MaxReportSize)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := sweep.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		nt.read, nt.carried = rep.Totals.Read, rep.Totals.Carried
		nt.ok = rep.Totals.ByStatus.Completed + rep.Totals.ByStatus.Noncompliant
		return nt
	}

	seed := sweepOn("2026-12-01")
	t.Logf("seed sweep: %d jobs, %d images profiled, %s", seed.jobs, seed.ok, seed.wall.Round(time.Millisecond))
	changed := n * changedPct / 100
	for i := range changed {
		put(i*(n/max(changed, 1)), "3.0.15-1~deb12u1")
	}
	inc := sweepOn("2026-12-02")
	full := sweepOn("2026-12-03", "--full")
	ratio := func(a, b float64) string {
		if b == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.3f", a/b)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nbench-sweep %s: %d images (%d KiB raw ext4 each), %d changed (%d%%), local executor --parallel %d, direct backend\n",
		time.Now().UTC().Format(time.DateOnly), n, sweeptest.ImageSize>>10, changed, changedPct, parallel)
	fmt.Fprintf(&sb, "%-12s %8s %8s %8s %14s %10s\n", "sweep", "jobs", "read", "carried", "bytes read", "wall")
	for _, r := range []struct {
		name string
		nt   night
	}{{"incremental", inc}, {"full", full}} {
		fmt.Fprintf(&sb, "%-12s %8d %8d %8d %14d %10s\n", r.name, r.nt.jobs, r.nt.read, r.nt.carried, r.nt.bytes, r.nt.wall.Round(time.Millisecond))
	}
	fmt.Fprintf(&sb, "incremental/full: jobs %s, bytes %s, wall %s\n",
		ratio(float64(inc.jobs), float64(full.jobs)), ratio(float64(inc.bytes), float64(full.bytes)), ratio(inc.wall.Seconds(), full.wall.Seconds()))
	t.Log(sb.String())
	if inc.ok != n || full.ok != n || inc.jobs != changed || full.jobs != n {
		t.Errorf("unexpected: incremental %+v, full %+v (want %d jobs then %d, every image profiled)", inc, full, changed, n)
	}
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
