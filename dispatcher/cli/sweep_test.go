package cli_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"guestkit.io/batch/dispatcher/cli"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/sweep"
)

// testImages is where scripts/testimages.sh put the images; without it the
// test skips, except under CI=true.
func testImages(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the real runner")
	}
	dir := os.Getenv("GUESTKIT_TEST_IMAGES")
	if dir == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("GUESTKIT_TEST_IMAGES is not set (make test sets it)")
		}
		t.Skip("GUESTKIT_TEST_IMAGES not set")
	}
	return dir
}

func buildRunner(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "guestkit-runner")
	cmd := exec.Command("go", "build", "-o", bin, "guestkit.io/batch/runner")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build runner: %v\n%s", err, out)
	}
	return bin
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readReport(t *testing.T, bucket, date string) *sweep.Report {
	t.Helper()
	st, err := store.Open(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	data, err := st.Get(context.Background(), sweep.ReportKey(date), sweep.MaxReportSize)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sweep.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestNightlySweepOnRealImages runs two nightly sweeps with the real
// runner: the first finds the misconfigured image noncompliant; before the
// second, the image is fixed, and the report says which findings were
// resolved.
func TestNightlySweepOnRealImages(t *testing.T) {
	images := testImages(t)
	runner := buildRunner(t)
	bucket := filepath.Join(t.TempDir(), "bucket")
	copyFile(t, filepath.Join(images, "profile-debian-misconfigured.qcow2"), filepath.Join(bucket, "images", "web.qcow2"))
	copyFile(t, filepath.Join(images, "profile-debian-hardened.qcow2"), filepath.Join(bucket, "images", "db.qcow2"))
	writeFile(t, filepath.Join(bucket, "images"), "web.qcow2.sha256", "0000  web.qcow2\n")
	writeFile(t, filepath.Join(bucket, "images"), "README.txt", "our images\n")

	args := func(date string, extra ...string) []string {
		return append([]string{"--bucket", bucket, "sweep", "--runner", runner, "--images", "images/",
			"--profiles", "security,compliance", "--date", date, "--interval", "2s"}, extra...)
	}
	r := dispatcher(t, args("2026-11-21", "--fail-on-noncompliant")...)
	if r.code != cli.ExitNoncompliant {
		t.Fatalf("first sweep: exit %d, want 2 (noncompliant)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep := readReport(t, bucket, "2026-11-21")
	if rep.Totals.Images != 2 || rep.Totals.ByStatus.Noncompliant != 1 || rep.Totals.ByStatus.Completed != 1 || rep.Totals.Skipped != 2 {
		t.Fatalf("first report totals: %+v", rep.Totals)
	}
	byKey := map[string]sweep.ImageReport{}
	for _, im := range rep.Images {
		byKey[im.ImageKey] = im
	}
	web := byKey["images/web.qcow2"]
	var failed []string
	for _, f := range web.FailedRules {
		failed = append(failed, f.ID)
	}
	if web.Status != sweep.StatusNoncompliant || len(failed) == 0 {
		t.Fatalf("web: %s with %v", web.Status, failed)
	}
	if db := byKey["images/db.qcow2"]; db.Status != "completed" || len(db.FailedRules) != 0 {
		t.Errorf("db (hardened): %s with %d failed rules", db.Status, len(db.FailedRules))
	}
	if rep.Changes.PreviousDate != "" {
		t.Errorf("first sweep has a previous date %q", rep.Changes.PreviousDate)
	}
	if !strings.Contains(r.stdout, "images/web.qcow2") {
		t.Errorf("the markdown summary is not printed:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(bucket, "sweeps", "2026-11-21", "report.md")); err != nil {
		t.Error(err)
	}
	// The HTML page: its path printed (a folder bucket), the real
	// runner's evidence of web's failed rules on it.
	pagePath := filepath.Join(bucket, "sweeps", "2026-11-21", "report.html")
	if !strings.Contains(r.stdout, "HTML report: "+pagePath+"\n") {
		t.Errorf("the HTML report's path is not printed:\n%s", r.stdout)
	}
	if page, err := os.ReadFile(pagePath); err != nil {
		t.Error(err)
	} else if !strings.Contains(string(page), "<code>"+failed[0]+"</code>") || !strings.Contains(string(page), `<ul class="evidence">`) {
		t.Errorf("report.html lacks web's failed rule %s with its evidence", failed[0])
	}

	// The web server is fixed overnight.
	copyFile(t, filepath.Join(images, "profile-debian-hardened.qcow2"), filepath.Join(bucket, "images", "web.qcow2"))
	r = dispatcher(t, args("2026-11-22")...)
	if r.code != 0 {
		t.Fatalf("second sweep: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep = readReport(t, bucket, "2026-11-22")
	if rep.Changes.PreviousDate != "2026-11-21" || rep.Totals.ByStatus.Completed != 2 {
		t.Fatalf("second report: previous %q totals %+v", rep.Changes.PreviousDate, rep.Totals)
	}
	var resolved []string
	for _, ch := range rep.Changes.Images {
		if ch.ImageKey == "images/web.qcow2" {
			if !ch.Comparable || len(ch.NewFailures) != 0 {
				t.Errorf("web change: %+v", ch)
			}
			for _, f := range ch.Resolved {
				resolved = append(resolved, f.ID)
			}
		}
	}
	slices.Sort(resolved)
	slices.Sort(failed)
	if strings.Join(resolved, ",") != strings.Join(slices.Compact(failed), ",") {
		t.Errorf("resolved %v, want every rule that failed the night before %v", resolved, failed)
	}
}
