package cli_test

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"guestkit.io/batch/dispatcher/cli"
	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/inventory"
	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/result/resulttest"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/sweep"
	"guestkit.io/batch/internal/testenv"
)

// inventoryImage is one image of a fake night: its OS roots and rules, or
// the error its runner ended with, or no result at all.
type inventoryImage struct {
	key      string
	oses     []inspect.OS
	profiles []runner.RootProfile
	failed   *result.Error
	noResult bool
}

// putSweep plans a sweep of images on date as sweep does, writes each
// image's result as the runner writes it (runner.NewResult, ProfileData
// encoded, Finish; checked against the result schema), builds the report
// and stores it.
func putSweep(t *testing.T, st store.Store, date string, images []inventoryImage) *sweep.Report {
	t.Helper()
	ctx := t.Context()
	now := time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)
	var objs []store.Object
	for i, im := range images {
		objs = append(objs, store.Object{Key: im.key, Size: int64(1+i) << 20, ETag: "etag-" + im.key})
	}
	planned, _, err := sweep.Specs(date, objs, st, sweep.Options{Profiles: []string{"security"}, CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]*result.Result{}
	for _, p := range planned {
		var im inventoryImage
		for _, x := range images {
			if x.key == p.ImageKey {
				im = x
			}
		}
		if im.noResult {
			continue
		}
		res := runner.NewResult(p.Job.JobID, "test", now)
		res.Operation = "guestkit.profile"
		res.Image = &result.Image{URI: st.URI(p.ImageKey), FileSize: p.Image.Size, ETag: p.Image.ETag}
		noncompliant := false
		if im.failed != nil {
			res.Status, res.Error = result.StatusFailed, im.failed
		} else {
			pd := &runner.ProfileData{Report: &inspect.Report{OperatingSystems: im.oses}, Profiles: im.profiles}
			for _, rp := range im.profiles {
				for _, r := range rp.Results {
					noncompliant = noncompliant || r.Status == profile.StatusFail
				}
			}
			pd.Noncompliant = noncompliant
			if res.Data, err = json.Marshal(pd); err != nil {
				t.Fatal(err)
			}
			res.Status = result.StatusCompleted
		}
		res.Finish(now.Add(time.Minute), noncompliant)
		data, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		resulttest.Check(t, data)
		if err := st.Put(ctx, p.ResultKey, data); err != nil {
			t.Fatal(err)
		}
		results[p.Job.JobID] = res
	}
	rep := sweep.Build(sweep.BuildInput{Date: date, Prefix: "images/", Profiles: []string{"security"}, StartedAt: now, FinishedAt: now.Add(time.Hour), Planned: planned, Results: results})
	data, err := sweep.Encode(rep)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, sweep.ReportKey(date), data); err != nil {
		t.Fatal(err)
	}
	return rep
}

func debianRoot(openssl inspect.Application) inspect.OS {
	return inspect.OS{Root: "/dev/sda1", Type: "linux", Distro: "debian", ProductName: "Debian GNU/Linux 12 (bookworm)", MajorVersion: 12, MinorVersion: 7,
		PackageFormat: "deb", Applications: []inspect.Application{openssl, {Name: "bash", Version: "5.2.15", Release: "2+b7", Arch: "amd64"}}}
}

func rootRules(root string, rules ...profile.RuleResult) runner.RootProfile {
	return runner.RootProfile{Root: root, Report: &profile.Report{Schema: profile.ReportSchema, Results: rules}}
}

// TestInventoryCommand stores two nights of a sweep in a real MinIO, as
// the sweep and the runner write them, and asks the fleet in each output
// format: which images have openssl in a vulnerable range, the OS
// distribution, which images failed sshd_disable_root_login; an older
// night with --date; and the images without a readable result, which are
// listed with the reason.
func TestInventoryCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO")
	}
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	bucket := "s3://" + m.NewBucket(t)
	st, err := store.Open(t.Context(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	if r := dispatcher(t, "--bucket", bucket, "inventory", "--os"); r.code != cli.ExitFailure || !strings.Contains(r.stderr, "no sweep report") {
		t.Errorf("no sweep yet: %+v", r)
	}

	rootLogin := func(st profile.Status) profile.RuleResult {
		return profile.RuleResult{ID: "sshd_disable_root_login", Title: "SSH root login is disabled", Severity: profile.SeverityHigh, Status: st}
	}
	before := putSweep(t, st, "2026-12-03", []inventoryImage{
		{key: "images/web.qcow2", oses: []inspect.OS{debianRoot(inspect.Application{Name: "openssl", Version: "3.0.11", Release: "1~deb12u2", Arch: "amd64"})},
			profiles: []runner.RootProfile{rootRules("/dev/sda1", rootLogin(profile.StatusFail))}},
		{key: "images/old.qcow2", oses: []inspect.OS{debianRoot(inspect.Application{Name: "openssl", Version: "3.0.9", Release: "1", Arch: "amd64"})},
			profiles: []runner.RootProfile{rootRules("/dev/sda1", rootLogin(profile.StatusPass))}},
	})
	rhel := inspect.OS{Root: "/dev/rhel/root", Type: "linux", Distro: "rhel", ProductName: "Red Hat Enterprise Linux 9.4 (Plow)", MajorVersion: 9, MinorVersion: 4, PackageFormat: "rpm",
		Applications: []inspect.Application{{Name: "openssl", Epoch: 1, Version: "3.0.7", Release: "27.el9", Arch: "x86_64"}}}
	alpine := inspect.OS{Root: "/dev/sda", Type: "linux", Distro: "alpine", ProductName: "Alpine Linux v3.19", MajorVersion: 3, MinorVersion: 19, PackageFormat: "apk",
		Applications: []inspect.Application{{Name: "openssl", Version: "3.1.7", Release: "0", Arch: "x86_64"}}}
	rep := putSweep(t, st, "2026-12-04", []inventoryImage{
		{key: "images/web.qcow2", oses: []inspect.OS{debianRoot(inspect.Application{Name: "openssl", Version: "3.0.13", Release: "1~deb12u1", Arch: "amd64"})},
			profiles: []runner.RootProfile{rootRules("/dev/sda1", rootLogin(profile.StatusFail))}},
		{key: "images/api.qcow2", oses: []inspect.OS{debianRoot(inspect.Application{Name: "openssl", Epoch: 1, Version: "3.0.2", Release: "1", Arch: "amd64"})},
			profiles: []runner.RootProfile{rootRules("/dev/sda1", rootLogin(profile.StatusPass))}},
		{key: "images/db.img", oses: []inspect.OS{rhel}, profiles: []runner.RootProfile{rootRules("/dev/rhel/root", rootLogin(profile.StatusFail))}},
		{key: "images/edge.raw", oses: []inspect.OS{alpine}, profiles: []runner.RootProfile{rootRules("/dev/sda", rootLogin(profile.StatusPass))}},
		{key: "images/broken.vmdk", failed: &result.Error{Code: result.CodeImageUnreadable, Message: "no partition table", Phase: result.PhaseInspect}},
		{key: "images/lost.qcow2", noResult: true},
		{key: "images/gone.qcow2", oses: []inspect.OS{alpine}, profiles: []runner.RootProfile{rootRules("/dev/sda")}},
		{key: "images/old.qcow2", noResult: true},
	})
	// An unchanged image whose result an incremental sweep carried
	// forward: its ResultKey is the night before's.
	carried := before.Images[0]
	for i, im := range rep.Images {
		if im.ImageKey == carried.ImageKey {
			rep.Images[i].Status, rep.Images[i].JobID, rep.Images[i].ResultKey, rep.Images[i].CarriedFrom = carried.Status, carried.JobID, carried.ResultKey, "2026-12-03"
		}
	}
	data, err := sweep.Encode(rep)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(t.Context(), sweep.ReportKey(rep.Date), data); err != nil {
		t.Fatal(err)
	}
	// A result deleted after the sweep: listed as missing, with the reason.
	var gone string
	for _, im := range rep.Images {
		if im.ImageKey == "images/gone.qcow2" {
			gone = im.ResultKey
		}
	}
	if err := st.Delete(t.Context(), gone); err != nil {
		t.Fatal(err)
	}

	// Which images have openssl >=3.0.0,<3.0.15, as a table: the Debian
	// epoch 1:3.0.2 and RHEL's 1:3.0.7 are newer than 3.0.15 for dpkg and
	// rpm; Alpine's 3.1.7-r0 is out of the range too.
	r := dispatcher(t, "--bucket", bucket, "inventory", "--package", "openssl", "--version", ">=3.0.0,<3.0.15")
	if r.code != 0 {
		t.Fatalf("package table: %+v", r)
	}
	t.Logf("inventory --package openssl --version '>=3.0.0,<3.0.15':\n%s", r.stdout)
	lines := strings.Split(r.stdout, "\n")
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "IMAGE ROOT OS PACKAGE VERSION ARCH" {
		t.Errorf("header %q", lines[0])
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "images/old.qcow2 /dev/sda1 debian 12.7 openssl 3.0.9-1 amd64" {
		t.Errorf("first row %q\n%s", lines[1], r.stdout)
	}
	if f := strings.Fields(lines[2]); strings.Join(f, " ") != "images/web.qcow2 /dev/sda1 debian 12.7 openssl 3.0.13-1~deb12u1 amd64" {
		t.Errorf("second row %q\n%s", lines[2], r.stdout)
	}
	for _, want := range []string{
		"NO READABLE RESULT", "images/broken.vmdk", "sweep status failed: image_unreadable: no partition table",
		"images/lost.qcow2", "sweep status missing: no result", "images/gone.qcow2", "result not found",
		"2 of 8 images have openssl >=3.0.0,<3.0.15 (sweep 2026-12-04); 3 without a readable result",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("package table lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, not := range []string{"3.0.2", "3.0.7", "3.1.7", "images/api.qcow2"} {
		if strings.Contains(r.stdout, not) {
			t.Errorf("package table has %q, out of the range:\n%s", not, r.stdout)
		}
	}

	// The same question with an rpm epoch in the bound, as JSON.
	r = dispatcher(t, "--bucket", bucket, "inventory", "--package", "openssl", "--version", ">=1:3.0.0,<1:3.0.15", "-o", "json")
	t.Logf("-o json:\n%s", r.stdout)
	var a inventory.Answer
	if err := json.Unmarshal([]byte(r.stdout), &a); r.code != 0 || err != nil {
		t.Fatalf("package json: %v %+v", err, r)
	}
	var got []string
	for _, p := range a.Packages {
		got = append(got, p.ImageKey+" "+p.PackageFormat+" "+p.Version+" "+p.ResultKey)
	}
	if strings.Join(got, "|") != "images/api.qcow2 deb 1:3.0.2-1 "+store.ResultKey(rep.Images[0].JobID)+"|images/db.img rpm 1:3.0.7-27.el9 "+store.ResultKey(rep.Images[2].JobID) {
		t.Errorf("json packages %q (images %+v)", got, rep.Images[:3])
	}
	if a.APIVersion != inventory.APIVersion || a.Sweep.Date != "2026-12-04" || a.Images != 8 || a.Matched != 2 || len(a.Missing) != 3 || a.Query.Version != ">=1:3.0.0,<1:3.0.15" {
		t.Errorf("json answer: %+v", a)
	}

	// The OS distribution as CSV, with the output chosen by its variable.
	t.Run("os-csv-by-env", func(t *testing.T) {
		t.Setenv("GUESTKIT_INVENTORY_OUTPUT", "csv")
		r = dispatcher(t, "--bucket", bucket, "inventory", "--os")
		recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
		if r.code != 0 || err != nil {
			t.Fatalf("os csv: %v %+v", err, r)
		}
		want := [][]string{
			{"distro", "os_version", "product_names", "images", "image_keys", "missing"},
			{"debian", "12.7", "Debian GNU/Linux 12 (bookworm)", "3", "images/api.qcow2 images/old.qcow2 images/web.qcow2", ""},
			{"alpine", "3.19", "Alpine Linux v3.19", "1", "images/edge.raw", ""},
			{"rhel", "9.4", "Red Hat Enterprise Linux 9.4 (Plow)", "1", "images/db.img", ""},
		}
		if len(recs) != len(want)+3 {
			t.Fatalf("os csv: %d records, want %d:\n%s", len(recs), len(want)+3, r.stdout)
		}
		for i, w := range want {
			if strings.Join(recs[i], ",") != strings.Join(w, ",") {
				t.Errorf("os csv row %d: %q, want %q", i, recs[i], w)
			}
		}
		if m := recs[len(want)]; m[4] != "images/broken.vmdk" || !strings.Contains(m[5], "image_unreadable") {
			t.Errorf("os csv missing row: %q", m)
		}
	})

	// Which images failed sshd_disable_root_login: table, CSV and JSON.
	r = dispatcher(t, "--bucket", bucket, "inventory", "--failed-rule", "sshd_disable_root_login", "-o", "table")
	for _, want := range []string{"images/db.img", "/dev/rhel/root", "rhel 9.4", "high", "SSH root login is disabled", "images/web.qcow2", "2 of 8 images failed sshd_disable_root_login"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("failed-rule table lacks %q:\n%s", want, r.stdout)
		}
	}
	r = dispatcher(t, "--bucket", bucket, "inventory", "--failed-rule", "sshd_disable_root_login", "-o", "csv", "--prefix", "images/w")
	recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if r.code != 0 || err != nil || len(recs) != 2 || recs[1][0] != "images/web.qcow2" || recs[1][4] != "sshd_disable_root_login" || recs[1][5] != "high" || recs[1][1] != "/dev/sda1" {
		t.Errorf("failed-rule csv with a prefix: %v %q", err, recs)
	}
	r = dispatcher(t, "--bucket", bucket, "inventory", "--failed-rule", "sshd_disable_root_login", "-o", "json")
	a = inventory.Answer{}
	if err := json.Unmarshal([]byte(r.stdout), &a); err != nil || len(a.FailedRules) != 2 || a.FailedRules[0].ImageKey != "images/db.img" || a.FailedRules[0].Severity != profile.SeverityHigh || a.Packages != nil {
		t.Errorf("failed-rule json: %v %s", err, r.stdout)
	}

	// The night before, by --date.
	r = dispatcher(t, "--bucket", bucket, "inventory", "--package", "openssl", "--date", "2026-12-03", "-o", "csv")
	recs, err = csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if r.code != 0 || err != nil || len(recs) != 3 || recs[2][0] != "images/web.qcow2" || recs[2][6] != "3.0.11-1~deb12u2" || recs[2][10] != "" {
		t.Errorf("--date 2026-12-03: %v %q", err, recs)
	}
	// The carried image answers from the night before's result, and says so.
	r = dispatcher(t, "--bucket", bucket, "inventory", "--package", "openssl", "--prefix", "images/old", "-o", "csv")
	recs, err = csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if want := []string{"images/old.qcow2", "/dev/sda1", "debian", "12.7", "deb", "openssl", "3.0.9-1", "amd64", carried.ResultKey, "2026-12-03", ""}; r.code != 0 || err != nil || len(recs) != 2 || strings.Join(recs[1], ",") != strings.Join(want, ",") {
		t.Errorf("carried image: %v %q, want %q", err, recs, want)
	}
	if r := dispatcher(t, "--bucket", bucket, "inventory", "--os", "--date", "2026-12-01"); r.code != cli.ExitFailure || !strings.Contains(r.stderr, "sweeps/2026-12-01/report.json") {
		t.Errorf("a date without a sweep: %+v", r)
	}

	// Usage errors.
	for _, args := range [][]string{
		{"inventory"},
		{"inventory", "--os", "--package", "openssl"},
		{"inventory", "--package", "openssl", "--version", ">=1.0 2.0"},
		{"inventory", "--os", "--version", "<2"},
		{"inventory", "--os", "-o", "xml"},
	} {
		if r := dispatcher(t, append([]string{"--bucket", bucket}, args...)...); r.code != cli.ExitUsage {
			t.Errorf("%q: exit %d, want %d\n%s", args, r.code, cli.ExitUsage, r.stderr)
		}
	}
}
