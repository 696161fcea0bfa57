package inventory

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/pkgversion"
	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/sweep"
)

func TestRangeContains(t *testing.T) {
	for _, c := range []struct {
		format pkgversion.Format
		rng    string
		in     []string
		out    []string
	}{
		// dpkg: the epoch outweighs everything, ~ sorts before the release,
		// the revision is compared after the upstream version.
		{pkgversion.Deb, ">=3.0.0,<3.0.15",
			[]string{"3.0.0", "3.0.13-1~deb12u1", "3.0.15~rc1-1", "3.0.14-1+deb12u2"},
			[]string{"3.0.15-1", "3.0.15", "1:3.0.2-1", "2.9.9-9", "3.0.0~beta1-1"}},
		{pkgversion.Deb, ">=1:3.0.0", []string{"1:3.0.0", "1:3.0.2-1", "2:0.1"}, []string{"3.5.0-1", "9.9"}},
		{pkgversion.Deb, "3.0.13-1~deb12u1", []string{"3.0.13-1~deb12u1", "0:3.0.13-1~deb12u1"}, []string{"3.0.13-1"}},
		{pkgversion.Deb, "!=3.0.13-1", []string{"3.0.13-2"}, []string{"3.0.13-1"}},
		// rpm: a missing epoch is 0, so 1:3.0.7 is newer than 3.0.15;
		// ~ sorts before the release.
		{pkgversion.RPM, ">=3.0.0,<3.0.15",
			[]string{"3.0.7-27.el9", "3.0.15~beta1-1.el9", "3.0.0"},
			[]string{"1:3.0.7-27.el9", "3.0.15-1.el9", "3.0.15"}},
		{pkgversion.RPM, ">=1:3.0.0,<1:3.0.15", []string{"1:3.0.7-27.el9"}, []string{"3.0.7-27.el9", "1:3.0.15-1"}},
		{pkgversion.RPM, ">3.0.7-27.el9", []string{"3.0.7-28.el9", "3.0.7-27.el9_4"}, []string{"3.0.7-27.el9", "3.0.7-26.el9"}},
		// apk: _rc before the release, -rN after it.
		{pkgversion.APK, ">=3.0.0,<3.0.15",
			[]string{"3.0.14-r3", "3.0.15_rc1-r0", "3.0.0"},
			[]string{"3.0.15-r1", "3.1.4-r0", "2.9.9-r9"}},
		{pkgversion.APK, "<=3.3.2-r0", []string{"3.3.2-r0", "3.3.1-r5"}, []string{"3.3.2-r1"}},
		{pkgversion.Deb, "", []string{"anything", "1:2"}, nil},
	} {
		r, err := ParseRange(c.rng)
		if err != nil {
			t.Fatalf("%q: %v", c.rng, err)
		}
		for _, v := range c.in {
			if ok, err := r.Contains(c.format, v); !ok || err != nil {
				t.Errorf("%s %q: %s should be in the range (%v)", c.format, c.rng, v, err)
			}
		}
		for _, v := range c.out {
			if ok, err := r.Contains(c.format, v); ok || err != nil {
				t.Errorf("%s %q: %s should not be in the range (%v)", c.format, c.rng, v, err)
			}
		}
	}
	r, _ := ParseRange("<2")
	if _, err := r.Contains("pacman", "1.0-1"); !errors.Is(err, pkgversion.ErrFormat) {
		t.Errorf("pacman: %v", err)
	}
	if r, err := ParseRange(" >= 3.0.0 , < 3.0.15 "); err != nil || r.String() != ">= 3.0.0 , < 3.0.15" || len(r.conds) != 2 || r.conds[1] != (condition{"<", "3.0.15"}) {
		t.Errorf("spaces: %+v %v", r, err)
	}
	for _, bad := range []string{">=", "3.0,,4", "<3.0 4.0", "=>3.0", "<<3", strings.Repeat("1", 2000)} {
		if _, err := ParseRange(bad); err == nil {
			t.Errorf("ParseRange(%q) accepted", bad)
		}
	}
}

// fleet is a sweep of six images, with results as the runner writes them
// (runner.ProfileData: the inspect.Report and one profile report per
// root).
type fleet struct {
	report  *sweep.Report
	results map[string]*result.Result
}

func app(name string, epoch int, version, release, arch string) inspect.Application {
	return inspect.Application{Name: name, Epoch: epoch, Version: version, Release: release, Arch: arch}
}

func osRoot(root, distro, product string, major, minor int, format string, apps ...inspect.Application) inspect.OS {
	return inspect.OS{Root: root, Type: "linux", Distro: distro, ProductName: product, MajorVersion: major, MinorVersion: minor, PackageFormat: format, Applications: apps}
}

func rules(root string, rr ...profile.RuleResult) runner.RootProfile {
	return runner.RootProfile{Root: root, Report: &profile.Report{Schema: profile.ReportSchema, Results: rr}}
}

func rr(id string, sev profile.Severity, st profile.Status) profile.RuleResult {
	return profile.RuleResult{ID: id, Title: "title of " + id, Severity: sev, Status: st}
}

func profileResult(t *testing.T, jobID string, oses []inspect.OS, roots ...runner.RootProfile) *result.Result {
	t.Helper()
	data, err := json.Marshal(&runner.ProfileData{Report: &inspect.Report{OperatingSystems: oses}, Profiles: roots})
	if err != nil {
		t.Fatal(err)
	}
	return &result.Result{APIVersion: result.APIVersion, JobID: jobID, Operation: "guestkit.profile", Status: result.StatusCompleted, Data: data}
}

const rootLogin = "sshd_disable_root_login"

func newFleet(t *testing.T) fleet {
	f := fleet{
		report:  &sweep.Report{APIVersion: sweep.APIVersion, Date: "2026-12-04"},
		results: map[string]*result.Result{},
	}
	add := func(key, job string, status sweep.Status, res *result.Result) {
		ir := sweep.ImageReport{ImageKey: key, JobID: job, ResultKey: store.ResultKey(job), Status: status}
		if status == sweep.StatusFailed {
			ir.Error = &sweep.ImageError{Code: "image_unreadable", Message: "no partition table"}
		}
		f.report.Images = append(f.report.Images, ir)
		if res != nil {
			f.results[ir.ResultKey] = res
		}
	}
	deb := osRoot("/dev/sda1", "debian", "Debian GNU/Linux 12 (bookworm)", 12, 7, "deb",
		app("openssl", 0, "3.0.13", "1~deb12u1", "amd64"), app("libssl3", 0, "3.0.13", "1~deb12u1", "amd64"), app("bash", 0, "5.2.15", "2+b7", "amd64"))
	add("images/web.qcow2", "j-web", sweep.StatusNoncompliant, profileResult(t, "j-web", []inspect.OS{deb},
		rules("/dev/sda1", rr(rootLogin, profile.SeverityHigh, profile.StatusFail), rr("sshd_set_max_auth_tries", profile.SeverityMedium, profile.StatusFail))))
	// libguestfs splits 3.0.15~rc1-1 as dpkg does not: at the first hyphen.
	debRC := osRoot("/dev/sda1", "debian", "Debian GNU/Linux 12 (bookworm)", 12, 7, "deb", app("openssl", 0, "3.0.15~rc1", "1", "amd64"))
	// A dual-boot disk: an epoch on the second root's openssl.
	debOld := osRoot("/dev/sdb1", "ubuntu", "Ubuntu 22.04.4 LTS", 22, 4, "deb", app("openssl", 1, "3.0.2", "0ubuntu1.15", "amd64"))
	add("images/dual.qcow2", "j-dual", sweep.StatusNoncompliant, profileResult(t, "j-dual", []inspect.OS{debRC, debOld},
		rules("/dev/sda1", rr(rootLogin, profile.SeverityHigh, profile.StatusPass)),
		rules("/dev/sdb1", rr(rootLogin, profile.SeverityHigh, profile.StatusFail), rr(rootLogin, profile.SeverityHigh, profile.StatusFail))))
	rhel := osRoot("/dev/rhel/root", "rhel", "Red Hat Enterprise Linux 9.4 (Plow)", 9, 4, "rpm",
		app("openssl", 1, "3.0.7", "27.el9", "x86_64"), app("openssl-libs", 1, "3.0.7", "27.el9", "x86_64"))
	add("prod/db.img", "j-db", sweep.StatusCompleted, profileResult(t, "j-db", []inspect.OS{rhel},
		rules("/dev/rhel/root", rr(rootLogin, profile.SeverityHigh, profile.StatusPass))))
	// libguestfs drops apk's r: 3.0.14-r3 comes as 3.0.14 and 3.
	alpine := osRoot("/dev/sda", "alpine", "Alpine Linux v3.19", 3, 19, "apk", app("openssl", 0, "3.0.14", "3", "x86_64"))
	add("images/edge.raw", "j-edge", sweep.StatusCompleted, profileResult(t, "j-edge", []inspect.OS{alpine}))
	arch := osRoot("/dev/sda2", "archlinux", "Arch Linux", 0, 0, "pacman", app("openssl", 0, "3.0.10", "1", "x86_64"))
	// Carried forward from an earlier night's result.
	add("images/arch.img", "j-arch-old", sweep.StatusCompleted, profileResult(t, "j-arch-old", []inspect.OS{arch}))
	f.report.Images[len(f.report.Images)-1].CarriedFrom = "2026-12-01"
	add("images/broken.vmdk", "j-broken", sweep.StatusFailed, nil)
	add("images/lost.qcow2", "j-lost", sweep.StatusCompleted, nil)
	// A result that is another job's: not this image's data.
	add("images/swapped.qcow2", "j-swapped", sweep.StatusCompleted, profileResult(t, "j-other", []inspect.OS{deb}))
	return f
}

// ask plans, "reads" the fleet's results as the CLI does, and answers.
func (f fleet) ask(t *testing.T, q Query) *Answer {
	t.Helper()
	if err := q.Check(); err != nil {
		t.Fatal(err)
	}
	images := Plan(f.report, q.Prefix)
	for i := range images {
		if !images[i].NeedsRead() {
			continue
		}
		res := f.results[images[i].ResultKey]
		if res == nil {
			images[i].SetReadError(fmt.Errorf("read result %s: %w", images[i].ResultKey, store.ErrNotFound))
			continue
		}
		Read(&images[i], res, q)
	}
	return Ask(q, f.report, images)
}

func pkgRows(a *Answer) []string {
	var out []string
	for _, r := range a.Packages {
		out = append(out, r.ImageKey+" "+r.Root+" "+r.Distro+"/"+r.OSVersion+"/"+r.PackageFormat+" "+r.Name+"="+r.Version+" "+r.Arch+" "+r.CarriedFrom)
	}
	return out
}

func missingKeys(a *Answer) []string {
	var out []string
	for _, m := range a.Missing {
		out = append(out, m.ImageKey+": "+m.Reason)
	}
	return out
}

func TestPackageQuery(t *testing.T) {
	f := newFleet(t)
	wantMissing := []string{
		"images/broken.vmdk: sweep status failed: image_unreadable: no partition table",
		"images/lost.qcow2: result not found: deleted since the sweep?",
		`images/swapped.qcow2: the result at results/j-swapped.json is for job "j-other"`,
	}
	a := f.ask(t, Query{Kind: KindPackage, Package: "openssl"})
	want := []string{
		"images/arch.img /dev/sda2 archlinux//pacman openssl=3.0.10-1 x86_64 2026-12-01",
		"images/dual.qcow2 /dev/sda1 debian/12.7/deb openssl=3.0.15~rc1-1 amd64 ",
		"images/dual.qcow2 /dev/sdb1 ubuntu/22.4/deb openssl=1:3.0.2-0ubuntu1.15 amd64 ",
		"images/edge.raw /dev/sda alpine/3.19/apk openssl=3.0.14-r3 x86_64 ",
		"images/web.qcow2 /dev/sda1 debian/12.7/deb openssl=3.0.13-1~deb12u1 amd64 ",
		"prod/db.img /dev/rhel/root rhel/9.4/rpm openssl=1:3.0.7-27.el9 x86_64 ",
	}
	if got := pkgRows(a); !slices.Equal(got, want) {
		t.Errorf("openssl:\n got %q\nwant %q", got, want)
	}
	if a.Images != 8 || a.Matched != 5 || !slices.Equal(missingKeys(a), wantMissing) || len(a.Warnings) != 0 {
		t.Errorf("images %d matched %d missing %q warnings %q", a.Images, a.Matched, missingKeys(a), a.Warnings)
	}

	rng, _ := ParseRange(">=3.0.0,<3.0.15")
	a = f.ask(t, Query{Kind: KindPackage, Package: "openssl", Versions: rng})
	want = []string{
		// 3.0.15~rc1 is before 3.0.15; Ubuntu's 1:3.0.2 is after it (epoch).
		"images/dual.qcow2 /dev/sda1 debian/12.7/deb openssl=3.0.15~rc1-1 amd64 ",
		"images/edge.raw /dev/sda alpine/3.19/apk openssl=3.0.14-r3 x86_64 ",
		"images/web.qcow2 /dev/sda1 debian/12.7/deb openssl=3.0.13-1~deb12u1 amd64 ",
	}
	if got := pkgRows(a); !slices.Equal(got, want) {
		t.Errorf("openssl %s:\n got %q\nwant %q", rng, got, want)
	}
	if a.Matched != 3 || len(a.Warnings) != 1 || !strings.Contains(a.Warnings[0], `package format "pacman"`) || !strings.Contains(a.Warnings[0], "images/arch.img (openssl 3.0.10-1)") {
		t.Errorf("matched %d, warnings %q", a.Matched, a.Warnings)
	}
	if a.Query.Version != ">=3.0.0,<3.0.15" || a.Sweep.Report != "sweeps/2026-12-04/report.json" {
		t.Errorf("query %+v sweep %+v", a.Query, a.Sweep)
	}

	// The prefix restricts the images, the missing ones too.
	rng, _ = ParseRange(">=1:3.0.0")
	a = f.ask(t, Query{Kind: KindPackage, Package: "openssl", Versions: rng, Prefix: "prod/"})
	if got := pkgRows(a); a.Images != 1 || len(a.Missing) != 0 || !slices.Equal(got, []string{"prod/db.img /dev/rhel/root rhel/9.4/rpm openssl=1:3.0.7-27.el9 x86_64 "}) {
		t.Errorf("prod/ openssl >=1:3.0.0: %d images, missing %q, rows %q", a.Images, missingKeys(a), got)
	}

	a = f.ask(t, Query{Kind: KindPackage, Package: "telnetd"})
	if a.Packages == nil || len(a.Packages) != 0 || a.Matched != 0 {
		t.Errorf("telnetd: %+v", a.Packages)
	}
}

func TestOSQuery(t *testing.T) {
	a := newFleet(t).ask(t, Query{Kind: KindOS})
	var got []string
	for _, d := range a.Distributions {
		got = append(got, d.Distro+" "+d.OSVersion+" "+strings.Join(d.ProductNames, ";")+" "+strings.Join(d.ImageKeys, ","))
		if d.Images != len(d.ImageKeys) {
			t.Errorf("%s: images %d, keys %v", d.Distro, d.Images, d.ImageKeys)
		}
	}
	want := []string{
		"debian 12.7 Debian GNU/Linux 12 (bookworm) images/dual.qcow2,images/web.qcow2",
		"alpine 3.19 Alpine Linux v3.19 images/edge.raw",
		"archlinux  Arch Linux images/arch.img",
		"rhel 9.4 Red Hat Enterprise Linux 9.4 (Plow) prod/db.img",
		"ubuntu 22.4 Ubuntu 22.04.4 LTS images/dual.qcow2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("distributions:\n got %q\nwant %q", got, want)
	}
	if a.Matched != 5 || len(a.Missing) != 3 || a.Packages != nil || a.FailedRules != nil {
		t.Errorf("matched %d missing %d", a.Matched, len(a.Missing))
	}
}

func TestFailedRuleQuery(t *testing.T) {
	f := newFleet(t)
	a := f.ask(t, Query{Kind: KindFailedRule, Rule: rootLogin})
	var got []string
	for _, r := range a.FailedRules {
		got = append(got, r.ImageKey+" "+r.Root+" "+r.Distro+" "+r.ID+" "+string(r.Severity)+" "+r.Title)
	}
	want := []string{
		// Listed twice on the root, reported once.
		"images/dual.qcow2 /dev/sdb1 ubuntu sshd_disable_root_login high title of sshd_disable_root_login",
		"images/web.qcow2 /dev/sda1 debian sshd_disable_root_login high title of sshd_disable_root_login",
	}
	if !slices.Equal(got, want) || a.Matched != 2 || len(a.Missing) != 3 || len(a.Warnings) != 0 {
		t.Errorf("failed %s:\n got %q\nwant %q\nmatched %d missing %d warnings %q", rootLogin, got, want, a.Matched, len(a.Missing), a.Warnings)
	}
	a = f.ask(t, Query{Kind: KindFailedRule, Rule: "sshd_disable_root_logn"})
	if len(a.FailedRules) != 0 || len(a.Warnings) != 1 || !strings.Contains(a.Warnings[0], "no image evaluated rule") {
		t.Errorf("a typo: %+v %q", a.FailedRules, a.Warnings)
	}
}

func TestQueryCheck(t *testing.T) {
	rng, _ := ParseRange("<1")
	for _, q := range []Query{
		{Kind: KindPackage},
		{Kind: KindPackage, Package: "a b"},
		{Kind: KindFailedRule},
		{Kind: KindOS, Versions: rng},
		{Kind: "size"},
	} {
		if q.Check() == nil {
			t.Errorf("%+v accepted", q)
		}
	}
}

// TestOutputs: the JSON has exactly the kind's list, CSV parses back with
// the missing column, the table's cells cannot break the columns or drive
// a terminal.
func TestOutputs(t *testing.T) {
	f := newFleet(t)
	rng, _ := ParseRange("<3.0.15")
	a := f.ask(t, Query{Kind: KindPackage, Package: "openssl", Versions: rng})

	var js bytes.Buffer
	if err := WriteJSON(&js, a); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range doc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"api_version", "images", "matched", "missing", "packages", "query", "sweep", "warnings"}; !slices.Equal(keys, want) {
		t.Errorf("JSON keys %v, want %v", keys, want)
	}
	var back Answer
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || !reflect.DeepEqual(back.Packages, a.Packages) || back.APIVersion != APIVersion {
		t.Errorf("JSON round trip: %v", err)
	}
	if strings.Contains(js.String(), `"carried_from"`) || strings.Contains(js.String(), `"distributions"`) {
		t.Errorf("JSON has an empty carried_from or another kind's list:\n%s", js.String())
	}

	var cb bytes.Buffer
	if err := WriteCSV(&cb, a); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&cb).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs[0], csvHeader[KindPackage]) || len(recs) != 1+len(a.Packages)+len(a.Missing) {
		t.Fatalf("CSV: %q", recs)
	}
	if r := recs[1]; r[0] != "images/dual.qcow2" || r[6] != "3.0.15~rc1-1" || r[10] != "" {
		t.Errorf("CSV row 1: %q", r)
	}
	if r := recs[len(recs)-1]; r[0] != "images/swapped.qcow2" || r[8] != "results/j-swapped.json" || !strings.Contains(r[10], "j-other") {
		t.Errorf("CSV missing row: %q", r)
	}

	// A hostile package version from a result.
	a.Packages[0].Version = "1.0\t\x1b[31mred\nline"
	a.Packages[0].Arch = strings.Repeat("x", 1000)
	var tb bytes.Buffer
	if err := WriteTable(&tb, a); err != nil {
		t.Fatal(err)
	}
	out := tb.String()
	if strings.Contains(out, "\x1b") || strings.Contains(out, "\t") || strings.Contains(out, strings.Repeat("x", maxCell+1)) {
		t.Errorf("table lets control characters or long cells through:\n%s", out)
	}
	for _, want := range []string{
		"IMAGE", "images/dual.qcow2", `"1.0\t\x1b[31mred\nline"`, "images/web.qcow2", "3.0.13-1~deb12u1",
		"NO READABLE RESULT", "images/broken.vmdk", "sweep status failed: image_unreadable",
		"warning: 1 packages named openssl", "3 of 8 images have openssl <3.0.15 (sweep 2026-12-04); 3 without a readable result",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
