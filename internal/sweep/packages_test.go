package sweep

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/store"
)

func TestPackageChanges(t *testing.T) {
	sec := []string{"security"}
	keys := []string{"vms/a.img", "vms/b.img", "vms/c.img", "vms/failed.img"}
	objs := func() []store.Object {
		var out []store.Object
		for _, k := range keys {
			out = append(out, obj(k, "", "", 100)) // no ETag: everything is read
		}
		return out
	}
	p1 := planNight(t, "2026-03-01", sec, objs()...)
	res1 := map[string]*result.Result{}
	for _, p := range p1 {
		if p.ImageKey == "vms/failed.img" {
			continue // missing the first night
		}
		r := pkgResult(t, p.Job.JobID, ruleset,
			app("openssl", "3.0.13", "1~deb12u1", "amd64", 0),
			app("bash", "5.2.15", "2+b2", "amd64", 0),
			app("telnetd", "0.17", "49", "amd64", 0),
			// Two versions of one package side by side (rpm kernels).
			app("kernel", "6.1.0", "1", "amd64", 0),
			app("kernel", "6.1.0", "2", "amd64", 0),
			// An epoch, which the full version must keep.
			app("libc-bin", "2.36", "9", "amd64", 1),
		)
		res1[p.Job.JobID] = r
	}
	night1 := Build(BuildInput{Date: "2026-03-01", Profiles: sec, Planned: p1, Results: res1, RulesetVersion: ruleset})
	if a := imageOf(t, night1, "vms/a.img"); a.Packages != 6 {
		t.Errorf("vms/a.img has %d packages, want 6", a.Packages)
	}

	p2 := planNight(t, "2026-03-02", sec, objs()...)
	res2 := map[string]*result.Result{}
	for _, p := range p2 {
		switch p.ImageKey {
		case "vms/a.img", "vms/b.img":
			// openssl upgraded, telnetd removed, kernel -3 installed beside
			// -2 (-1 removed), curl added, libc-bin's epoch unchanged.
			res2[p.Job.JobID] = pkgResult(t, p.Job.JobID, ruleset,
				app("openssl", "3.0.15", "1~deb12u1", "amd64", 0),
				app("bash", "5.2.15", "2+b2", "amd64", 0),
				app("kernel", "6.1.0", "2", "amd64", 0),
				app("kernel", "6.1.0", "3", "amd64", 0),
				app("curl", "7.88.1", "10", "amd64", 0),
				app("libc-bin", "2.36", "9", "amd64", 1),
			)
		case "vms/c.img":
			res2[p.Job.JobID] = pkgResult(t, p.Job.JobID, ruleset,
				app("openssl", "3.0.13", "1~deb12u1", "amd64", 0),
				app("bash", "5.2.15", "2+b2", "amd64", 0),
				app("telnetd", "0.17", "49", "amd64", 0),
				app("kernel", "6.1.0", "1", "amd64", 0),
				app("kernel", "6.1.0", "2", "amd64", 0),
				app("libc-bin", "2.37", "1", "amd64", 1),
			)
		case "vms/failed.img":
			res2[p.Job.JobID] = pkgResult(t, p.Job.JobID, ruleset)
		}
	}
	// The previous packages, as the dispatcher reads them.
	prevPkgs := map[string][]PackageRef{}
	for _, img := range night1.Images {
		if r := res1[img.JobID]; r != nil {
			pkgs, err := ResultPackages(img, r)
			if err != nil {
				t.Fatal(err)
			}
			prevPkgs[img.ResultKey] = pkgs
		}
	}
	if _, err := ResultPackages(imageOf(t, night1, "vms/a.img"), res1[imageOf(t, night1, "vms/b.img").JobID]); err == nil || !strings.Contains(err.Error(), "is for job") {
		t.Errorf("another image's result: %v", err)
	}
	night2 := Build(BuildInput{Date: "2026-03-02", Profiles: sec, Planned: p2, Results: res2, Previous: night1, RulesetVersion: ruleset, PreviousPackages: prevPkgs})

	wantA := &PackageDiff{
		Added:   []PackageRef{{"curl", "7.88.1-10", "amd64", sda1}, {"kernel", "6.1.0-3", "amd64", sda1}},
		Removed: []PackageRef{{"kernel", "6.1.0-1", "amd64", sda1}, {"telnetd", "0.17-49", "amd64", sda1}},
		Changed: []PackageChange{{"openssl", "amd64", sda1, "3.0.13-1~deb12u1", "3.0.15-1~deb12u1"}},
	}
	wantC := &PackageDiff{
		Added: []PackageRef{}, Removed: []PackageRef{},
		Changed: []PackageChange{{"libc-bin", "amd64", sda1, "1:2.36-9", "1:2.37-1"}},
	}
	for _, ch := range night2.Changes.Images {
		var want *PackageDiff
		switch ch.ImageKey {
		case "vms/a.img", "vms/b.img":
			want = wantA
		case "vms/c.img":
			want = wantC
		case "vms/failed.img":
			want = nil // missing the night before: no diff
		}
		if !reflect.DeepEqual(ch.Packages, want) {
			t.Errorf("%s packages:\n got %s\nwant %s", ch.ImageKey, js(ch.Packages), js(want))
		}
	}
	two := []string{"vms/a.img", "vms/b.img"}
	wantFleet := []FleetPackageChange{
		{Name: "curl", Arch: "amd64", Kind: "added", To: "7.88.1-10", Images: 2, ImageKeys: two},
		{Name: "kernel", Arch: "amd64", Kind: "added", To: "6.1.0-3", Images: 2, ImageKeys: two},
		{Name: "kernel", Arch: "amd64", Kind: "removed", From: "6.1.0-1", Images: 2, ImageKeys: two},
		{Name: "openssl", Arch: "amd64", Kind: "changed", From: "3.0.13-1~deb12u1", To: "3.0.15-1~deb12u1", Images: 2, ImageKeys: two},
		{Name: "telnetd", Arch: "amd64", Kind: "removed", From: "0.17-49", Images: 2, ImageKeys: two},
		{Name: "libc-bin", Arch: "amd64", Kind: "changed", From: "1:2.36-9", To: "1:2.37-1", Images: 1, ImageKeys: []string{"vms/c.img"}},
	}
	if !reflect.DeepEqual(night2.Changes.Packages, wantFleet) {
		t.Errorf("fleet:\n got %s\nwant %s", js(night2.Changes.Packages), js(wantFleet))
	}

	md := string(Markdown(night2))
	for _, s := range []string{
		"## Package changes",
		"- `openssl:amd64` `3.0.13-1~deb12u1` → `3.0.15-1~deb12u1` on 2 images",
		"- lost `telnetd:amd64` `0.17-49` on 2 images",
		"- gained `curl:amd64` `7.88.1-10` on 2 images",
		"`vms/c.img`: 1 changed, 0 added, 0 removed\n- `libc-bin:amd64` `1:2.36-9` → `1:2.37-1` on `/dev/sda1`",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
}

func TestPackageDiffBounds(t *testing.T) {
	var old, cur []PackageRef
	for i := range MaxPackageDiff + 5 {
		cur = append(cur, PackageRef{Name: "p" + itoa(i), Version: "1", Arch: "amd64", Root: sda1})
	}
	d := bounded(diffPackages(old, cur))
	if len(d.Added) != MaxPackageDiff || d.Omitted != 5 {
		t.Errorf("%d added, %d omitted", len(d.Added), d.Omitted)
	}
	// Fleet counts keep at most MaxFleetImageKeys keys, but count them all.
	tally := fleetTally{}
	for i := range MaxFleetImageKeys + 3 {
		tally.add("vms/"+itoa(100+i)+".img", PackageDiff{Added: []PackageRef{{"telnetd", "0.17", "amd64", sda1}, {"telnetd", "0.17", "amd64", "/dev/sda2"}}})
	}
	l := tally.list()
	if len(l) != 1 || l[0].Images != MaxFleetImageKeys+3 || len(l[0].ImageKeys) != MaxFleetImageKeys || l[0].ImageKeys[0] != "vms/100.img" {
		t.Errorf("fleet %s", js(l))
	}

	// Markdown says how many more.
	r := &Report{Date: "2026-03-02", Changes: Changes{
		PreviousDate: "2026-03-01", Images: []ImageChange{{ImageKey: "vms/a.img", Comparable: true, Packages: d}}, Packages: l,
	}}
	if md := string(Markdown(r)); !strings.Contains(md, "- and 985 more\n") {
		t.Errorf("markdown does not bound the list:\n%s", md)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
