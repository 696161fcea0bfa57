package sweep

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/store"
)

const ruleset = "1-00112233445566ff"

// app is a libguestfs application: the version split at the first hyphen.
func app(name, version, release, arch string, epoch int) inspect.Application {
	return inspect.Application{Name: name, Epoch: epoch, Version: version, Release: release, Arch: arch}
}

// pkgResult is a completed profile result of one Debian root with apps,
// written with the runner's own data type.
func pkgResult(t *testing.T, jobID, rulesetVersion string, apps ...inspect.Application) *result.Result {
	t.Helper()
	data, err := json.Marshal(&runner.ProfileData{
		Report: &inspect.Report{OperatingSystems: []inspect.OS{{
			Root: sda1, Type: "linux", Distro: "debian", PackageFormat: "deb", Applications: apps,
		}}},
		Profiles:       []runner.RootProfile{root(sda1, rule("r1", profile.SeverityHigh, profile.StatusFail))},
		Noncompliant:   true,
		RulesetVersion: rulesetVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &result.Result{
		APIVersion: result.APIVersion, JobID: jobID, Operation: "guestkit.profile",
		Status: result.StatusCompleted, ExitCode: result.ExitNoncompliant, Data: data,
	}
}

// planNight plans objs for date with profiles.
func planNight(t *testing.T, date string, profiles []string, objs ...store.Object) []Planned {
	t.Helper()
	planned, _, err := Specs(date, objs, bucket(t), Options{Profiles: profiles, CreatedAt: created})
	if err != nil {
		t.Fatal(err)
	}
	return planned
}

func obj(key, etag, version string, size int64) store.Object {
	return store.Object{Key: key, ETag: etag, VersionID: version, Size: size}
}

func TestCarry(t *testing.T) {
	sec := []string{"security", "hardening"}
	first := []store.Object{
		obj("vms/same.img", "e1", "", 100),
		obj("vms/etag.img", "e2", "", 100),
		obj("vms/size.img", "e3", "", 100),
		obj("vms/version.img", "e4", "v1", 100),
		obj("vms/failed.img", "e5", "", 100),
		obj("vms/old-runner.img", "e6", "", 100),
		obj("vms/missing.img", "e7", "", 100),
		obj("vms/file-store.img", "", "", 100),
	}
	p1 := planNight(t, "2026-03-01", sec, first...)
	res := map[string]*result.Result{}
	for _, p := range p1 {
		switch p.ImageKey {
		case "vms/failed.img":
			res[p.Job.JobID] = errorResult(p.Job.JobID, result.StatusFailed, result.CodeInternal, result.PhaseInspect, "boom")
		case "vms/old-runner.img":
			res[p.Job.JobID] = pkgResult(t, p.Job.JobID, "")
		case "vms/missing.img":
		default:
			res[p.Job.JobID] = pkgResult(t, p.Job.JobID, ruleset, app("bash", "5.2.15", "3", "amd64", 0))
		}
	}
	night1 := Build(BuildInput{Date: "2026-03-01", Profiles: sec, Planned: p1, Results: res, RulesetVersion: ruleset})

	second := []store.Object{
		obj("vms/same.img", "e1", "", 100),
		obj("vms/etag.img", "e2-new", "", 100),
		obj("vms/size.img", "e3", "", 101),
		obj("vms/version.img", "e4", "v2", 100),
		obj("vms/failed.img", "e5", "", 100),
		obj("vms/old-runner.img", "e6", "", 100),
		obj("vms/missing.img", "e7", "", 100),
		obj("vms/file-store.img", "", "", 100),
		obj("vms/new.img", "e9", "", 100),
	}
	p2 := planNight(t, "2026-03-02", sec, second...)
	opts := CarryOptions{Profiles: []string{"hardening", "security"}, RulesetVersion: ruleset}
	want := map[string]string{
		"vms/same.img":       "",
		"vms/etag.img":       "ETag changed",
		"vms/size.img":       "size changed (100, now 101 bytes)",
		"vms/version.img":    "version id changed",
		"vms/failed.img":     "previous status failed",
		"vms/old-runner.img": "the previous result has no ruleset version",
		"vms/missing.img":    "previous status missing",
		"vms/file-store.img": "the store gives no ETag or version id to compare",
		"vms/new.img":        "new image",
	}
	prevOf := func(key string) *ImageReport {
		for _, img := range night1.Images {
			if img.ImageKey == key {
				return &img
			}
		}
		return nil
	}
	for _, p := range p2 {
		if got := CarryReason(p, night1, prevOf(p.ImageKey), opts); got != want[p.ImageKey] {
			t.Errorf("%s: reason %q, want %q", p.ImageKey, got, want[p.ImageKey])
		}
	}
	carried := Carry(p2, night1, opts)
	if _, ok := carried["vms/same.img"]; !ok || len(carried) != 1 {
		t.Fatalf("carried %s", js(carried))
	}

	// Options of the whole sweep: every image is read.
	for name, o := range map[string]CarryOptions{
		"full":      {Profiles: sec, RulesetVersion: ruleset, Full: true},
		"profiles":  {Profiles: []string{"security"}, RulesetVersion: ruleset},
		"ruleset":   {Profiles: sec, RulesetVersion: "2-00112233445566ff"},
		"threshold": {Profiles: sec, RulesetVersion: ruleset, SeverityThreshold: "high"},
	} {
		if got := Carry(p2, night1, o); len(got) != 0 {
			t.Errorf("%s: carried %d images, want none", name, len(got))
		}
	}
	// The spec default and "medium" are the same threshold.
	if got := Carry(p2, night1, CarryOptions{Profiles: sec, RulesetVersion: ruleset, SeverityThreshold: "medium"}); len(got) != 1 {
		t.Errorf("threshold medium: carried %d images, want 1", len(got))
	}
	if got := Carry(p2, nil, opts); len(got) != 0 {
		t.Errorf("no previous sweep: carried %d", len(got))
	}

	// Night 2 carries vms/same.img; every other image is read again.
	res2 := map[string]*result.Result{}
	for _, p := range p2 {
		if _, ok := carried[p.ImageKey]; !ok {
			res2[p.Job.JobID] = pkgResult(t, p.Job.JobID, ruleset, app("bash", "5.2.15", "3", "amd64", 0))
		}
	}
	night2 := Build(BuildInput{Date: "2026-03-02", Profiles: sec, Planned: p2, Results: res2, Previous: night1, RulesetVersion: ruleset, Carried: carried})
	same := imageOf(t, night2, "vms/same.img")
	before := imageOf(t, night1, "vms/same.img")
	if same.CarriedFrom != "2026-03-01" || same.ResultKey != before.ResultKey || same.JobID != before.JobID ||
		same.RulesetVersion != ruleset || same.Packages != 1 || !reflect.DeepEqual(same.FailedRules, before.FailedRules) {
		t.Errorf("carried image:\n%s\nfirst read:\n%s", js(same), js(before))
	}
	if night2.Totals.Carried != 1 || night2.Totals.Read != 8 || night2.Totals.ByStatus.Noncompliant != 9 {
		t.Errorf("night 2 totals %s", js(night2.Totals))
	}
	if et := imageOf(t, night2, "vms/etag.img"); et.CarriedFrom != "" || !strings.HasPrefix(et.JobID, "sweep-2026-03-02-") || et.Identity.ETag != "e2-new" {
		t.Errorf("re-read image %s", js(et))
	}
	// A carried image's changes: comparable, nothing new, no package change.
	for _, ch := range night2.Changes.Images {
		if ch.ImageKey == "vms/same.img" && (!ch.Comparable || len(ch.NewFailures)+len(ch.Resolved) != 0 || ch.Packages == nil || len(ch.Packages.Changed) != 0) {
			t.Errorf("carried image change %s", js(ch))
		}
	}

	// Night 3: carried twice keeps the date of the night that read it, and
	// its result.
	p3 := planNight(t, "2026-03-03", sec, second...)
	carried3 := Carry(p3, night2, opts)
	if _, ok := carried3["vms/same.img"]; !ok {
		t.Fatalf("night 3 carried %s", js(carried3))
	}
	night3 := Build(BuildInput{Date: "2026-03-03", Profiles: sec, Planned: p3, Results: map[string]*result.Result{}, Previous: night2, RulesetVersion: ruleset, Carried: carried3})
	if s3 := imageOf(t, night3, "vms/same.img"); s3.CarriedFrom != "2026-03-01" || s3.ResultKey != before.ResultKey {
		t.Errorf("carried twice: %s", js(s3))
	}
	// Every image re-read in night 2 with an unchanged object is carried in
	// night 3 (etag, size and version are stable now); failed, missing and
	// old-runner images were re-read with a ruleset, so they carry too.
	if len(carried3) != 8 {
		t.Errorf("night 3 carried %d images, want 8 (all but the file store's): %v", len(carried3), keysOf(carried3))
	}
	// The encoded report reads back with the new fields.
	data, err := Encode(night3)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(data)
	if err != nil || !reflect.DeepEqual(back.Images, night3.Images) {
		t.Errorf("round trip: %v", err)
	}
}

func imageOf(t *testing.T, r *Report, key string) ImageReport {
	t.Helper()
	for _, img := range r.Images {
		if img.ImageKey == key {
			return img
		}
	}
	t.Fatalf("no image %s in %s", key, r.Date)
	return ImageReport{}
}

func keysOf(m map[string]ImageReport) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
