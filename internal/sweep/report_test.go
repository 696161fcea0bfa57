package sweep

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
)

const (
	sda1 = "/dev/sda1"
	sda2 = "/dev/sda2"
)

var (
	start  = time.Date(2026, 3, 2, 1, 30, 0, 0, time.UTC)
	finish = time.Date(2026, 3, 2, 3, 10, 0, 0, time.UTC)
)

func rule(id string, sev profile.Severity, st profile.Status) profile.RuleResult {
	return profile.RuleResult{ID: id, Title: "title of " + id, Severity: sev, Status: st, Profiles: []string{"security"}}
}

func root(name string, rules ...profile.RuleResult) runner.RootProfile {
	return runner.RootProfile{Root: name, Report: &profile.Report{Schema: profile.ReportSchema, Results: rules}}
}

// profileResult is a completed guestkit.profile result with the runner's
// own data type, so that a change of its JSON shows here.
func profileResult(t *testing.T, jobID string, noncompliant bool, roots ...runner.RootProfile) *result.Result {
	t.Helper()
	data, err := json.Marshal(&runner.ProfileData{Profiles: roots, Noncompliant: noncompliant})
	if err != nil {
		t.Fatal(err)
	}
	code := result.ExitCompleted
	if noncompliant {
		code = result.ExitNoncompliant
	}
	return &result.Result{
		APIVersion: result.APIVersion, JobID: jobID, Operation: "guestkit.profile",
		Status: result.StatusCompleted, ExitCode: code, Data: data,
	}
}

func errorResult(jobID string, status result.Status, code result.Code, phase result.Phase, msg string) *result.Result {
	e := &result.Error{Code: code, Message: msg, Phase: phase}
	return &result.Result{
		APIVersion: result.APIVersion, JobID: jobID, Operation: "guestkit.profile",
		Status: status, ExitCode: result.ExitCodeFor(status, e, false), Error: e,
	}
}

// sweepOf plans keys (and skips what is not an image) for date.
func sweepOf(t *testing.T, date string, keys ...string) ([]Planned, []SkippedImage, map[string]string) {
	t.Helper()
	planned, skipped, err := Specs(date, objects(keys...), bucket(t), Options{Profiles: []string{"security", "hardening"}, CreatedAt: created})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, p := range planned {
		ids[p.ImageKey] = p.Job.JobID
	}
	return planned, skipped, ids
}

func intp(n int) *int { return &n }

func withImage(r *result.Result, img *result.Image) *result.Result {
	r.Image = img
	return r
}

func TestBuild(t *testing.T) {
	planned, skipped, id := sweepOf(t, "2026-03-02",
		"vms/a.qcow2", "vms/b.img", "vms/c.raw", "vms/d.vmdk", "vms/e.vdi", "vms/f", "vms/g.vhdx", "vms/h.vhd", "vms/i.img", "vms/a.qcow2.sha256")
	results := map[string]*result.Result{
		// Two roots; sshd_disable_root_login fails on both (two findings),
		// file_integrity is listed twice on sda2 (one finding).
		id["vms/a.qcow2"]: profileResult(t, id["vms/a.qcow2"], true,
			root(sda1,
				rule("sshd_disable_root_login", profile.SeverityHigh, profile.StatusFail),
				rule("no_empty_passwords_etc_shadow", profile.SeverityCritical, profile.StatusFail),
				rule("sysctl_kernel_randomize_va_space", profile.SeverityMedium, profile.StatusPass),
				rule("file_permissions_unauthorized_suid", profile.SeverityMedium, profile.StatusNotChecked),
				rule("banner", profile.SeverityInfo, profile.StatusFail),
			),
			root(sda2,
				rule("sshd_disable_root_login", profile.SeverityHigh, profile.StatusFail),
				rule("file_integrity", profile.SeverityMedium, profile.StatusFail),
				rule("file_integrity", profile.SeverityMedium, profile.StatusFail),
				rule("service_cups_disabled", profile.SeverityLow, profile.StatusNotApplicable),
			),
		),
		id["vms/b.img"]: profileResult(t, id["vms/b.img"], false,
			root(sda1, rule("sshd_disable_root_login", profile.SeverityHigh, profile.StatusPass),
				rule("cramfs", profile.SeverityLow, profile.StatusFail),
				// Windows rules on a Linux root: counted apart, once each.
				rule("windows_smb1_server_disabled", profile.SeverityHigh, profile.StatusNotApplicable),
				rule("windows_smb1_server_disabled", profile.SeverityHigh, profile.StatusNotApplicable),
				rule("windows_guest_account_disabled", profile.SeverityMedium, profile.StatusNotApplicable))),
		id["vms/c.raw"]:  errorResult(id["vms/c.raw"], result.StatusFailed, result.CodeInfrastructure, result.PhaseFetch, "GET s3://images/vms/c.raw: connection reset"),
		id["vms/d.vmdk"]: errorResult(id["vms/d.vmdk"], result.StatusTimeout, result.CodeTimeout, result.PhaseProfile, "timeout_seconds (3600) expired"),
		id["vms/e.vdi"]:  errorResult(id["vms/e.vdi"], result.StatusRejected, result.CodeImageCorrupt, result.PhaseProbe, "qcow2 header: bad magic"),
		// vms/f: no result at all.
		id["vms/g.vhdx"]: profileResult(t, "someone-else", false, root(sda1)),
		id["vms/h.vhd"]:  {APIVersion: result.APIVersion, JobID: id["vms/h.vhd"], Status: result.StatusCompleted, Data: json.RawMessage(`{"profile_reports":"nope"}`)},
		id["vms/i.img"]:  {APIVersion: result.APIVersion, JobID: id["vms/i.img"], Status: result.StatusFailed, ExitCode: 5},
		"unrelated-job":  errorResult("unrelated-job", result.StatusFailed, result.CodeInternal, result.PhaseSpec, "ignored"),
	}
	r := Build(BuildInput{
		Date: "2026-03-02", Prefix: "vms/", Profiles: []string{"security", "hardening"},
		StartedAt: start, FinishedAt: finish,
		Planned: planned, Skipped: skipped, Results: results,
	})

	want := []ImageReport{
		{
			ImageKey: "vms/a.qcow2", Status: StatusNoncompliant, ExitCode: intp(2),
			Roots:    []string{sda1, sda2},
			Findings: profile.SeverityCounts{Critical: 1, High: 2, Medium: 1, Info: 1},
			FailedRules: []FailedRule{
				{"banner", profile.SeverityInfo, sda1, "title of banner"},
				{"file_integrity", profile.SeverityMedium, sda2, "title of file_integrity"},
				{"no_empty_passwords_etc_shadow", profile.SeverityCritical, sda1, "title of no_empty_passwords_etc_shadow"},
				{"sshd_disable_root_login", profile.SeverityHigh, sda1, "title of sshd_disable_root_login"},
				{"sshd_disable_root_login", profile.SeverityHigh, sda2, "title of sshd_disable_root_login"},
			},
			NotApplicable: 1,
		},
		{
			ImageKey: "vms/b.img", Status: StatusCompleted, ExitCode: intp(0), Roots: []string{sda1},
			Findings:      profile.SeverityCounts{Low: 1},
			FailedRules:   []FailedRule{{"cramfs", profile.SeverityLow, sda1, "title of cramfs"}},
			NotApplicable: 2,
		},
		{
			ImageKey: "vms/c.raw", Status: StatusFailed, ExitCode: intp(5),
			Error: &ImageError{Code: "infrastructure", Message: "GET s3://images/vms/c.raw: connection reset", Phase: "fetch"},
		},
		{
			ImageKey: "vms/d.vmdk", Status: StatusTimeout, ExitCode: intp(6),
			Error: &ImageError{Code: "timeout", Message: "timeout_seconds (3600) expired", Phase: "profile"},
		},
		{
			ImageKey: "vms/e.vdi", Status: StatusRejected, ExitCode: intp(4),
			Error: &ImageError{Code: "image_corrupt", Message: "qcow2 header: bad magic", Phase: "probe"},
		},
		{ImageKey: "vms/f", Status: StatusMissing},
		{
			ImageKey: "vms/g.vhdx", Status: StatusInvalid, ExitCode: intp(0),
			Error: &ImageError{Code: CodeResultInvalid, Message: `the result is for job "someone-else"`},
		},
		{
			ImageKey: "vms/h.vhd", Status: StatusInvalid, ExitCode: intp(0),
			Error: &ImageError{Code: CodeResultInvalid, Message: "data is not a profile report: json: cannot unmarshal string into Go struct field profileData.profile_reports of type []struct { Root string \"json:\\\"root\\\"\"; *profile.Report }"},
		},
		{
			ImageKey: "vms/i.img", Status: StatusFailed, ExitCode: intp(5),
			Error: &ImageError{Code: "unknown", Message: "the result has no error"},
		},
	}
	if len(r.Images) != len(want) {
		t.Fatalf("%d images, want %d", len(r.Images), len(want))
	}
	for i, w := range want {
		w.JobID = id[w.ImageKey]
		w.ResultKey = "results/" + w.JobID + ".json"
		w.Roots = nonNil(w.Roots)
		w.FailedRules = nonNil(w.FailedRules)
		w.Identity = &ImageIdentity{Size: 1 << 30}
		if w.ImageKey == "vms/h.vhd" {
			// The decoder's wording is not ours to pin down.
			if g := r.Images[i].Error; g == nil || !strings.HasPrefix(g.Message, "data is not a profile report: ") {
				t.Errorf("vms/h.vhd: error %+v", g)
			}
			w.Error = r.Images[i].Error
		}
		if got := r.Images[i]; !reflect.DeepEqual(got, w) {
			t.Errorf("image %d:\n got %s\nwant %s", i, js(got), js(w))
		}
	}

	wantTotals := Totals{
		Images: 9, Skipped: 1, Read: 9,
		ByStatus:      StatusCounts{Completed: 1, Noncompliant: 1, Failed: 2, Timeout: 1, Rejected: 1, Missing: 1, Invalid: 2},
		Findings:      profile.SeverityCounts{Critical: 1, High: 2, Medium: 1, Low: 1, Info: 1},
		NotApplicable: 3,
	}
	if r.Totals != wantTotals {
		t.Errorf("totals %s, want %s", js(r.Totals), js(wantTotals))
	}
	if r.APIVersion != APIVersion || r.Date != "2026-03-02" || r.Prefix != "vms/" || !r.StartedAt.Equal(start) || !r.FinishedAt.Equal(finish) {
		t.Errorf("header %s %s %s %s %s", r.APIVersion, r.Date, r.Prefix, r.StartedAt, r.FinishedAt)
	}
	if len(r.Skipped) != 1 || r.Skipped[0].Key != "vms/a.qcow2.sha256" {
		t.Errorf("skipped %+v", r.Skipped)
	}
	if c := r.Changes; c.PreviousDate != "" || len(c.NewImages)+len(c.GoneImages)+len(c.Images) != 0 {
		t.Errorf("changes without a previous sweep: %s", js(c))
	}
}

func TestBuildInvalidResults(t *testing.T) {
	planned, _, id := sweepOf(t, "2026-03-02", "a.img")
	j := id["a.img"]
	tests := []struct {
		name string
		res  *result.Result
		want string
	}{
		{"api version", &result.Result{APIVersion: "guestkit.io/result/v2", JobID: j, Status: result.StatusCompleted}, `api_version "guestkit.io/result/v2", want "guestkit.io/result/v1"`},
		{"inspect", &result.Result{APIVersion: result.APIVersion, JobID: j, Operation: "guestkit.inspect", Status: result.StatusCompleted}, `the result is of operation "guestkit.inspect", want guestkit.profile`},
		{"status", &result.Result{APIVersion: result.APIVersion, JobID: j, Status: "cancelled"}, `unknown status "cancelled"`},
		{"no data", &result.Result{APIVersion: result.APIVersion, JobID: j, Status: result.StatusCompleted}, "completed without data"},
		{"null data", &result.Result{APIVersion: result.APIVersion, JobID: j, Status: result.StatusCompleted, Data: json.RawMessage("null")}, "completed without data"},
		{"no roots", profileResult(t, j, false), "completed without profile_reports"},
		{"empty root", &result.Result{APIVersion: result.APIVersion, JobID: j, Status: result.StatusCompleted, Data: json.RawMessage(`{"profile_reports":[{"root":"/dev/sda1"}]}`)}, `profile report of root "/dev/sda1" is empty`},
		// objects() lists every image at 1 GiB; the planned ETag is set below.
		{"another image's size", withImage(profileResult(t, j, false), &result.Image{URI: "x", FileSize: 512}), "the result read an image of 512 bytes, not the 1073741824-byte object planned"},
		{"another image's etag", withImage(profileResult(t, j, false), &result.Image{URI: "x", FileSize: 1 << 30, ETag: "forged"}), "the result read object forged, not e-planned as planned"},
	}
	planned[0].Image.ETag = "e-planned"
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Build(BuildInput{Date: "2026-03-02", Planned: planned, Results: map[string]*result.Result{j: tc.res}})
			img := r.Images[0]
			if img.Status != StatusInvalid || img.Error == nil || img.Error.Code != CodeResultInvalid || img.Error.Message != tc.want {
				t.Errorf("got %s, want invalid: %s", js(img), tc.want)
			}
			if r.Totals.ByStatus.Invalid != 1 {
				t.Errorf("totals %s", js(r.Totals))
			}
		})
	}

	// A nil result is missing, not dropped.
	r := Build(BuildInput{Date: "2026-03-02", Planned: planned, Results: map[string]*result.Result{j: nil}})
	if r.Images[0].Status != StatusMissing || r.Totals.ByStatus.Missing != 1 || r.Totals.Images != 1 {
		t.Errorf("nil result: %s", js(r))
	}

	// Long messages are cut on a rune boundary.
	long := strings.Repeat("é", 600)
	r = Build(BuildInput{Date: "2026-03-02", Planned: planned, Results: map[string]*result.Result{
		j: errorResult(j, result.StatusFailed, result.CodeInternal, result.PhaseInspect, long),
	}})
	if m := r.Images[0].Error.Message; m != strings.Repeat("é", 512)+"…" {
		t.Errorf("message of %d bytes: %q", len(m), m)
	}
}

func TestChanges(t *testing.T) {
	prevPlanned, _, pid := sweepOf(t, "2026-03-01",
		"vms/a.img", "vms/b.img", "vms/c.img", "vms/d.img", "vms/e.img", "vms/old.img", "vms/same.img")
	prev := Build(BuildInput{
		Date: "2026-03-01", Profiles: []string{"security", "hardening"}, Planned: prevPlanned,
		Results: map[string]*result.Result{
			pid["vms/a.img"]: profileResult(t, pid["vms/a.img"], true, root(sda1,
				rule("r1", profile.SeverityHigh, profile.StatusFail),
				rule("r2", profile.SeverityMedium, profile.StatusFail),
				rule("r3", profile.SeverityLow, profile.StatusFail),
				rule("r5", profile.SeverityCritical, profile.StatusFail),
				rule("r6", profile.SeverityLow, profile.StatusFail),
				rule("r7", profile.SeverityLow, profile.StatusFail),
			)),
			pid["vms/b.img"]:    errorResult(pid["vms/b.img"], result.StatusTimeout, result.CodeTimeout, result.PhaseProfile, "expired"),
			pid["vms/c.img"]:    profileResult(t, pid["vms/c.img"], true, root(sda1, rule("r1", profile.SeverityHigh, profile.StatusFail))),
			pid["vms/d.img"]:    profileResult(t, pid["vms/d.img"], true, root(sda1, rule("r1", profile.SeverityHigh, profile.StatusFail))),
			pid["vms/e.img"]:    profileResult(t, pid["vms/e.img"], true, root(sda1, rule("r1", profile.SeverityHigh, profile.StatusFail))),
			pid["vms/old.img"]:  profileResult(t, pid["vms/old.img"], false, root(sda1)),
			pid["vms/same.img"]: profileResult(t, pid["vms/same.img"], true, root(sda1, rule("r1", profile.SeverityHigh, profile.StatusFail))),
		},
	})

	planned, _, id := sweepOf(t, "2026-03-02",
		"vms/a.img", "vms/b.img", "vms/c.img", "vms/d.img", "vms/e.img", "vms/new.img", "vms/same.img")
	cur := Build(BuildInput{
		Date: "2026-03-02", Profiles: []string{"hardening", "security"}, Planned: planned, Previous: prev,
		Results: map[string]*result.Result{
			// r1 passes, r2 still fails, r3 is notchecked, r4 is new, r5
			// is no longer evaluated, r6 does not apply, r7 is error.
			id["vms/a.img"]: profileResult(t, id["vms/a.img"], true, root(sda1,
				rule("r1", profile.SeverityHigh, profile.StatusPass),
				rule("r2", profile.SeverityMedium, profile.StatusFail),
				rule("r3", profile.SeverityLow, profile.StatusNotChecked),
				rule("r4", profile.SeverityHigh, profile.StatusFail),
				rule("r6", profile.SeverityLow, profile.StatusNotApplicable),
				rule("r7", profile.SeverityLow, profile.StatusError),
			)),
			id["vms/b.img"]: profileResult(t, id["vms/b.img"], false, root(sda1)),
			// vms/c.img: missing now.
			id["vms/d.img"]:    errorResult(id["vms/d.img"], result.StatusRejected, result.CodeImageCorrupt, result.PhaseProbe, "bad"),
			id["vms/e.img"]:    profileResult(t, id["vms/e.img"], false, root(sda2, rule("r1", profile.SeverityHigh, profile.StatusPass))),
			id["vms/new.img"]:  profileResult(t, id["vms/new.img"], false, root(sda1)),
			id["vms/same.img"]: profileResult(t, id["vms/same.img"], true, root(sda1, rule("r1", profile.SeverityHigh, profile.StatusFail))),
		},
	})

	empty := []FailedRule{}
	fr := func(id string, sev profile.Severity) FailedRule { return FailedRule{id, sev, sda1, "title of " + id} }
	want := Changes{
		PreviousDate: "2026-03-01",
		NewImages:    []string{"vms/new.img"},
		GoneImages:   []string{"vms/old.img"},
		Images: []ImageChange{
			{
				ImageKey: "vms/a.img", Comparable: true,
				NewFailures: []FailedRule{fr("r4", profile.SeverityHigh)},
				Resolved:    []FailedRule{fr("r1", profile.SeverityHigh), fr("r5", profile.SeverityCritical), fr("r6", profile.SeverityLow)},
				Undecided:   []FailedRule{fr("r3", profile.SeverityLow), fr("r7", profile.SeverityLow)},
			},
			{ImageKey: "vms/b.img", Reason: "not comparable: 2026-03-01: timeout (timeout)", NewFailures: empty, Resolved: empty, Undecided: empty},
			{ImageKey: "vms/c.img", Reason: "not comparable: 2026-03-02: missing (no result at results/" + id["vms/c.img"] + ".json)", NewFailures: empty, Resolved: empty, Undecided: empty},
			{ImageKey: "vms/d.img", Reason: "not comparable: 2026-03-02: rejected (image_corrupt)", NewFailures: empty, Resolved: empty, Undecided: empty},
			{ImageKey: "vms/e.img", Reason: "not comparable: OS roots changed from /dev/sda1 to /dev/sda2", NewFailures: empty, Resolved: empty, Undecided: empty},
			{ImageKey: "vms/same.img", Comparable: true, NewFailures: empty, Resolved: empty, Undecided: empty},
		},
		Packages: []FleetPackageChange{},
	}
	if !reflect.DeepEqual(cur.Changes, want) {
		t.Errorf("changes:\n got %s\nwant %s", js(cur.Changes), js(want))
	}

	// Both sides unusable: both reasons, nothing resolved.
	both := Build(BuildInput{Date: "2026-03-03", Profiles: []string{"security", "hardening"}, Planned: sweepPlanned(t, "2026-03-03", "vms/b.img"), Previous: prev})
	if got := both.Changes.Images[0]; got.Comparable || got.Reason != "not comparable: 2026-03-01: timeout (timeout); 2026-03-03: missing (no result at "+both.Images[0].ResultKey+")" || len(got.Resolved) != 0 {
		t.Errorf("both unusable: %s", js(got))
	}
}

func sweepPlanned(t *testing.T, date string, keys ...string) []Planned {
	p, _, _ := sweepOf(t, date, keys...)
	return p
}

func TestChangesProfilesChanged(t *testing.T) {
	prevPlanned, _, pid := sweepOf(t, "2026-03-01", "a.img")
	prev := Build(BuildInput{Date: "2026-03-01", Profiles: []string{"security", "compliance"}, Planned: prevPlanned,
		Results: map[string]*result.Result{pid["a.img"]: profileResult(t, pid["a.img"], true, root(sda1, rule("auditd", profile.SeverityHigh, profile.StatusFail)))}})
	planned, _, id := sweepOf(t, "2026-03-02", "a.img")
	cur := Build(BuildInput{Date: "2026-03-02", Profiles: []string{"security"}, Planned: planned, Previous: prev,
		Results: map[string]*result.Result{id["a.img"]: profileResult(t, id["a.img"], false, root(sda1))}})
	got := cur.Changes.Images[0]
	if got.Comparable || got.Reason != "not comparable: profiles changed from security, compliance to security" || len(got.Resolved) != 0 {
		t.Errorf("got %s", js(got))
	}
}

func TestEncodeDecode(t *testing.T) {
	planned, skipped, id := sweepOf(t, "2026-03-02", "vms/a.img", "vms/b.img", "vms/a.img.md5")
	r := Build(BuildInput{
		Date: "2026-03-02", Prefix: "vms/", Profiles: []string{"security"}, StartedAt: start, FinishedAt: finish,
		Planned: planned, Skipped: skipped,
		Results:  map[string]*result.Result{id["vms/a.img"]: profileResult(t, id["vms/a.img"], true, root(sda1, rule("r1", profile.SeverityHigh, profile.StatusFail)))},
		Previous: &Report{APIVersion: APIVersion, Date: "2026-03-01", Images: []ImageReport{{ImageKey: "vms/a.img", Status: StatusCompleted, Roots: []string{sda1}}}},
	})
	data, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("round trip:\n got %s\nwant %s", js(back), js(r))
	}
	// The wire form a reader relies on.
	for _, s := range []string{
		`"api_version": "guestkit.io/sweep-report/v1"`, `"date": "2026-03-02"`, `"started_at": "2026-03-02T01:30:00Z"`,
		`"by_status": {`, `"noncompliant": 1`, `"missing": 1`, `"status": "missing"`, `"failed_rules": []`,
		`"previous_date": "2026-03-01"`, `"new_images": [`, `"reason": "sidecar file (.md5), not a disk image"`,
	} {
		if !strings.Contains(string(data), s) {
			t.Errorf("encoded report lacks %s", s)
		}
	}

	bad := map[string]string{
		"other version": strings.Replace(string(data), APIVersion, "guestkit.io/sweep-report/v2", 1),
		"no version":    `{"date":"2026-03-02"}`,
		"unknown field": strings.Replace(string(data), `"prefix"`, `"surprise": 1, "prefix"`, 1),
		"trailing":      string(data) + "{}",
		"bad date":      strings.Replace(string(data), `"date": "2026-03-02"`, `"date": "yesterday"`, 1),
		"not json":      "<html>",
		"too large":     `{"api_version":"` + APIVersion + `","x":"` + strings.Repeat("a", MaxReportSize) + `"}`,
	}
	for name, doc := range bad {
		if _, err := Decode([]byte(doc)); !errors.Is(err, ErrCorruptReport) {
			t.Errorf("%s: error %v, want ErrCorruptReport", name, err)
		}
	}
	if _, err := Decode([]byte(bad["other version"])); err == nil || !strings.Contains(err.Error(), `api_version "guestkit.io/sweep-report/v2", want "guestkit.io/sweep-report/v1"`) {
		t.Errorf("other version: %v", err)
	}
	if _, err := Encode(&Report{APIVersion: APIVersion, Date: "2026-3-2"}); err == nil {
		t.Error("Encode accepted a bad date")
	}
}

func js(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
