package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"guestkit.io/batch/dispatcher/cli"
	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/sweep"
	"guestkit.io/batch/internal/sweep/sweeptest"
	"guestkit.io/batch/internal/testenv"
)

// TestIncrementalSweep sweeps tiny Debian images in a real MinIO with the
// real runner (direct backend, no VM) four nights running: the second
// night reads only the image that changed (one spec, one result) and
// carries the others' results with their date; its report lists the
// package changes. The third carries everything, twice-carried images
// keeping their first date; --full reads everything again.
func TestIncrementalSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real runner and MinIO")
	}
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	runner := buildRunner(t)
	b := m.NewBucket(t)
	bucket := "s3://" + b
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	put := func(key, salt string, pkgs ...sweeptest.Package) {
		t.Helper()
		p := filepath.Join(dir, salt+".img")
		sweeptest.DebianImage(t, p, salt, pkgs...)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Put(ctx, key, data); err != nil {
			t.Fatal(err)
		}
	}
	base := []sweeptest.Package{{Name: "openssl", Version: "3.0.13-1~deb12u1"}, {Name: "bash", Version: "5.2.15-2+b2"}}
	put("images/a.img", "a", base...)
	put("images/b.img", "b", base...)
	put("images/c.img", "c", base...)

	sweepOn := func(date string, extra ...string) *sweep.Report {
		t.Helper()
		args := append([]string{"--bucket", bucket, "sweep", "--runner", runner, "--backend", "direct", "--images", "images/",
			"--profiles", "security", "--date", date, "--interval", "1s", "--parallel", "2"}, extra...)
		r := dispatcher(t, args...)
		if r.code != 0 && r.code != cli.ExitNoncompliant {
			t.Fatalf("sweep %s: exit %d\n%s\n%s", date, r.code, r.stdout, r.stderr)
		}
		data, err := st.Get(ctx, sweep.ReportKey(date), sweep.MaxReportSize)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := sweep.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if rep.RulesetVersion != profile.RulesetVersion() {
			t.Errorf("%s: ruleset %q, want %q", date, rep.RulesetVersion, profile.RulesetVersion())
		}
		for _, img := range rep.Images {
			if img.Status != sweep.StatusCompleted && img.Status != sweep.StatusNoncompliant || img.Packages != 2 && img.Packages != 3 || img.RulesetVersion != rep.RulesetVersion {
				t.Errorf("%s: image %+v", date, img)
			}
		}
		md, err := st.Get(ctx, sweep.MarkdownKey(date), 1<<20)
		if err != nil || !strings.Contains(r.stdout, string(md)) {
			t.Errorf("%s: markdown %v", date, err)
		}
		return rep
	}
	// jobs counts the specs a night submitted and the results its jobs
	// wrote: what a night launched and read.
	jobs := func(date string) (specs, results int) {
		t.Helper()
		for o := range m.Client(t).ListObjects(ctx, b, minio.ListObjectsOptions{Prefix: store.SweepSpecsPrefix + date + "/", Recursive: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			specs++
		}
		for o := range m.Client(t).ListObjects(ctx, b, minio.ListObjectsOptions{Prefix: "results/sweep-" + date + "-", Recursive: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			results++
		}
		return specs, results
	}
	byKey := func(r *sweep.Report) map[string]sweep.ImageReport {
		out := map[string]sweep.ImageReport{}
		for _, img := range r.Images {
			out[img.ImageKey] = img
		}
		return out
	}

	n1 := sweepOn("2026-12-01")
	if n1.Totals.Read != 3 || n1.Totals.Carried != 0 {
		t.Fatalf("night 1 totals %+v", n1.Totals)
	}
	if s, r := jobs("2026-12-01"); s != 3 || r != 3 {
		t.Fatalf("night 1: %d specs, %d results", s, r)
	}
	first := byKey(n1)
	for k, img := range first {
		if img.Identity == nil || img.Identity.ETag == "" || img.Identity.Size != sweeptest.ImageSize || img.CarriedFrom != "" {
			t.Errorf("night 1 %s: %+v", k, img)
		}
	}

	// Overnight c gets openssl 3.0.15 and telnetd.
	put("images/c.img", "c", sweeptest.Package{Name: "openssl", Version: "3.0.15-1~deb12u1"}, base[1], sweeptest.Package{Name: "telnetd", Version: "0.17-49"})
	n2 := sweepOn("2026-12-02")
	if n2.Totals.Read != 1 || n2.Totals.Carried != 2 {
		t.Fatalf("night 2 totals %+v", n2.Totals)
	}
	if s, r := jobs("2026-12-02"); s != 1 || r != 1 {
		t.Errorf("night 2: %d specs, %d results, want 1 and 1 (c only)", s, r)
	}
	second := byKey(n2)
	for _, k := range []string{"images/a.img", "images/b.img"} {
		if img := second[k]; img.CarriedFrom != "2026-12-01" || img.ResultKey != first[k].ResultKey || img.JobID != first[k].JobID {
			t.Errorf("night 2 %s not carried from night 1: %+v", k, img)
		}
	}
	if c := second["images/c.img"]; c.CarriedFrom != "" || !strings.HasPrefix(c.JobID, "sweep-2026-12-02-") || c.Packages != 3 {
		t.Errorf("night 2 c: %+v", c)
	}
	var fleet []string
	for _, p := range n2.Changes.Packages {
		fleet = append(fleet, p.Kind+" "+p.Name+" "+p.From+">"+p.To+" "+strings.Join(p.ImageKeys, ","))
	}
	// One image each: sorted by name.
	want := []string{"changed openssl 3.0.13-1~deb12u1>3.0.15-1~deb12u1 images/c.img", "added telnetd >0.17-49 images/c.img"}
	if strings.Join(fleet, "|") != strings.Join(want, "|") {
		t.Errorf("night 2 fleet changes %q, want %q", fleet, want)
	}
	md, _ := st.Get(ctx, sweep.MarkdownKey("2026-12-02"), 1<<20)
	if !strings.Contains(string(md), "## Package changes") || !strings.Contains(string(md), "gained `telnetd:amd64` `0.17-49` on 1 image") {
		t.Errorf("night 2 markdown:\n%s", md)
	}

	// Night 3: nothing changed; a and b are carried twice and keep night
	// 1's date and result, c carries night 2's.
	n3 := sweepOn("2026-12-03")
	if s, r := jobs("2026-12-03"); s != 0 || r != 0 || n3.Totals.Carried != 3 {
		t.Errorf("night 3: %d specs, %d results, totals %+v", s, r, n3.Totals)
	}
	third := byKey(n3)
	if a := third["images/a.img"]; a.CarriedFrom != "2026-12-01" || a.ResultKey != first["images/a.img"].ResultKey {
		t.Errorf("night 3 a: %+v", a)
	}
	if c := third["images/c.img"]; c.CarriedFrom != "2026-12-02" || c.ResultKey != second["images/c.img"].ResultKey {
		t.Errorf("night 3 c: %+v", c)
	}

	// --full reads every image again.
	n4 := sweepOn("2026-12-04", "--full")
	if s, r := jobs("2026-12-04"); s != 3 || r != 3 || n4.Totals.Read != 3 || n4.Totals.Carried != 0 || !n4.Full {
		t.Errorf("full night: %d specs, %d results, totals %+v, full %v", s, r, n4.Totals, n4.Full)
	}
}
