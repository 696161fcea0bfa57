package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/profile/names"
	"guestkit.io/batch/internal/profile/tree"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/spec"
)

// The profile-* test images are the profile engine's guest trees
// (internal/profile/testdata/trees) made into disks by scripts/testimages.sh.
// TestProfileImages runs a guestkit.profile job on each with the real
// appliance, checks the planted findings and the clean hardened images, and
// compares every rule's status with profile.Evaluate on the same tree held
// in memory (fstest.MapFS, loaded as the profile unit tests load it): the
// libguestfs guest.FS must make the rules decide exactly as the in-memory
// one does.

const profileTrees = "../profile/testdata/trees"

// Rules that read the whole filesystem: on these small images they must be
// decided (pass), never notchecked because a bound was hit.
var walkRules = []string{"file_permissions_unauthorized_world_writable", "dir_perms_world_writable_sticky_bits",
	"file_permissions_unauthorized_suid", "file_permissions_unauthorized_sgid"}

// plantedFindings are the failures of debian-misconfigured with the evidence
// that names where each was planted (file:line | value), as
// internal/profile's TestMisconfiguredTree checks them on the tree.
var plantedFindings = []struct {
	id       string
	evidence []string
}{
	{"sshd_disable_root_login", []string{"/etc/ssh/sshd_config.d/50-cloud-init.conf:2 | PermitRootLogin yes", "/etc/ssh/sshd_config:4 | PermitRootLogin no | ignored"}},
	{"CIS-SSH-001", []string{"/etc/ssh/sshd_config.d/50-cloud-init.conf:2"}},
	{"no_empty_passwords_etc_shadow", []string{"/etc/shadow:8 | backdoor | password field is empty"}},
	{"accounts_no_uid_except_zero", []string{"/etc/passwd:9 | toor:0"}},
	{"account_unique_id", []string{"/etc/passwd"}},
	{"accounts_maximum_age_login_defs", []string{"/etc/login.defs:3 | PASS_MAX_DAYS 99999"}},
	{"CIS-5.4.1.1", []string{"/etc/login.defs:3 | PASS_MAX_DAYS 99999"}},
	{"accounts_password_max_age_90_days", []string{"/etc/login.defs:3 | PASS_MAX_DAYS 99999 | want 1-90"}},
	{"sysctl_net_ipv4_ip_forward", []string{"/etc/sysctl.d/90-forward.conf:2 | net.ipv4.ip_forward = 1", "/etc/sysctl.d/60-cis.conf:2 | net.ipv4.ip_forward = 0 | overridden"}},
	{"mount_option_tmp_noexec", []string{"/etc/fstab:3 | tmpfs /tmp tmpfs defaults,rw,nosuid,nodev,relatime,size=512M", "lacks noexec"}},
	{"service_telnet_disabled", []string{"/etc/inetd.conf:1 | telnet", "inetd starts telnet"}},
	{"CIS-2.2.1", []string{"/etc/inetd.conf:1"}},
	{"package_telnet-server_removed", []string{"telnetd 0.17+2.4-2"}},
	{"package_xinetd_removed", []string{"openbsd-inetd"}},
	{"no_empty_passwords", []string{"/etc/pam.d/common-auth:3 | auth [success=1 default=ignore] pam_unix.so nullok | nullok"}},
}

func TestProfileImages(t *testing.T) {
	var imgs []testImage
	for _, img := range images(t) {
		if strings.HasPrefix(img.Name, "profile-") {
			imgs = append(imgs, img)
		}
	}
	var names []string
	for _, img := range imgs {
		names = append(names, img.Name)
	}
	if want := []string{"profile-debian-hardened", "profile-debian-misconfigured", "profile-rhel-hardened"}; !slices.Equal(names, want) {
		t.Fatalf("MANIFEST lists profile images %v, want %v: rebuild with scripts/testimages.sh", names, want)
	}
	for _, img := range imgs {
		tree := strings.TrimPrefix(img.Name, "profile-")
		t.Run(tree, func(t *testing.T) {
			t.Parallel() // one TCG appliance is mostly one busy thread
			appliance := runner.Execute(context.Background(), profileJob(img, tree, 1800), nil, runner.Config{Version: "test", Accel: "auto", Backend: spec.BackendAppliance})
			checkProfileImage(t, img, tree, appliance)
			direct := runner.Execute(context.Background(), profileJob(img, tree, 1800), nil, runner.Config{Version: "test", Backend: spec.BackendDirect})
			checkProfileImage(t, img, tree, direct)
			compareBackends(t, appliance, direct)
		})
	}
}

// checkProfileImage checks one backend's profile result on a profile-*
// image: rule by rule against the tree in memory, the planted findings,
// the clean images.
func checkProfileImage(t *testing.T, img testImage, tree string, res *result.Result) {
	t.Helper()
	t.Logf("%s: %s exit %d in %.1f s, timings %v", img.Name, res.Status, res.ExitCode, res.DurationSeconds, res.Timings)
	if res.Status != result.StatusCompleted {
		t.Fatalf("status %s, error %+v", res.Status, res.Error)
	}
	var data runner.ProfileData
	if err := json.Unmarshal(res.Data, &data); err != nil {
		t.Fatalf("result data: %v", err)
	}
	got := profileRoot(t, img, &data)
	want := evaluateTree(t, tree)
	compareRuleByRule(t, got, want)

	wantExit := result.ExitCompleted
	if tree == "debian-misconfigured" {
		wantExit = result.ExitNoncompliant
	}
	if res.ExitCode != wantExit || data.Noncompliant != (wantExit == result.ExitNoncompliant) {
		t.Errorf("exit %d noncompliant %v, want exit %d", res.ExitCode, data.Noncompliant, wantExit)
	}
	for _, id := range walkRules {
		if r := ruleResult(got, id); r.Status != profile.StatusPass {
			t.Errorf("%s: %s, want pass (a filesystem-wide rule on a small image)\n%s", id, r.Status, evidenceText(r.Evidence))
		}
	}
	switch tree {
	case "debian-misconfigured":
		checkPlanted(t, got)
	case "debian-hardened":
		checkHardened(t, got, "debian", []string{"selinux_state", "selinux_policytype", "CIS-1.6.1.1"}, []string{"apparmor_configured"})
	case "rhel-hardened":
		checkHardened(t, got, "rhel", []string{"apparmor_configured"}, []string{"selinux_state", "selinux_policytype", "CIS-1.6.1.1"})
		// The packages come from the image's rpm database, through
		// inspection: package rules are decided, not notchecked.
		for id, pkg := range map[string]string{"package_audit_installed": "audit 3.1.2-2.el9", "package_aide_installed": "aide 0.16-100.el9"} {
			r := ruleResult(got, id)
			if r.Status != profile.StatusPass || !strings.Contains(evidenceText(r.Evidence), pkg) {
				t.Errorf("%s: %s, want pass naming %q\n%s", id, r.Status, pkg, evidenceText(r.Evidence))
			}
		}
	}
}

// profilesFor are the profiles a tree is profiled with: every one, but
// the hardened trees follow CIS, whose 5.4.1.1 allows 365 days (admin and
// ops have it), and PCI-DSS 8.3.9's 90 days fails them by design (as
// internal/profile's TestHardenedTreesHaveNoFailures says).
func profilesFor(tree string) []string {
	if strings.HasSuffix(tree, "-hardened") {
		return slices.DeleteFunc(names.All(), func(n string) bool { return n == names.PCIDSS })
	}
	return names.All()
}

func profileJob(img testImage, tree string, timeout int64) *spec.Job {
	return &spec.Job{
		Version: "1.0", JobID: "test-" + img.Name, Kind: "VMOperation", Operation: spec.OpProfile,
		Execution: &spec.Execution{TimeoutSeconds: &timeout},
		Payload: spec.Payload{Type: spec.OpProfile + ".v1", Data: &spec.Data{
			Image:    &spec.Image{Path: img.Path, Format: img.Format},
			Profiles: profilesFor(tree),
		}},
	}
}

// profileRoot checks the inspection against <name>.expected.json (one
// root, its device and distro) and returns the root's profile report.
func profileRoot(t *testing.T, img testImage, data *runner.ProfileData) *profile.Report {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(img.Path), img.Name+".expected.json"))
	if err != nil {
		t.Fatalf("ground truth: %v", err)
	}
	var truth struct {
		OS []struct {
			Root, Distro string
			Mountpoints  []struct{ Mountpoint, Device string }
		} `json:"operating_systems"`
	}
	if err := json.Unmarshal(raw, &truth); err != nil {
		t.Fatal(err)
	}
	if data.Report == nil || len(data.OperatingSystems) != 1 || len(truth.OS) != 1 || len(data.Profiles) != 1 {
		t.Fatalf("want one root, one profile report: data %+v, truth %+v", data.Report, truth.OS)
	}
	g, w := data.OperatingSystems[0], truth.OS[0]
	if g.Root != w.Root || g.Distro != w.Distro || data.Profiles[0].Root != w.Root {
		t.Errorf("root %s distro %s (profile report for %s), want %s %s", g.Root, g.Distro, data.Profiles[0].Root, w.Root, w.Distro)
	}
	// Every filesystem of the fstab is mounted: rules see /boot and /tmp too.
	var gm, wm []string
	for _, m := range g.Mountpoints {
		gm = append(gm, m.Path+"="+m.Device)
	}
	for _, m := range w.Mountpoints {
		wm = append(wm, m.Mountpoint+"="+m.Device)
	}
	slices.Sort(gm)
	slices.Sort(wm)
	if !slices.Equal(gm, wm) {
		t.Errorf("mountpoints %v, want %v", gm, wm)
	}
	for _, p := range data.Problems {
		if p.Section == "mount" {
			t.Errorf("mount problem: %+v", p)
		} else {
			t.Logf("problem: %+v", p)
		}
	}
	rep := data.Profiles[0].Report
	if rep == nil {
		t.Fatal("no profile report")
	}
	return rep
}

// evaluateTree is profile.Evaluate on the tree in memory, with the
// options the runner uses for the job.
func evaluateTree(t *testing.T, tree string) *profile.Report {
	t.Helper()
	m, pkgs := loadProfileTree(t, tree)
	po := profileJob(testImage{}, tree, 1).ProfileOptions()
	sev, err := profile.ParseSeverity(po.SeverityThreshold)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := profile.Evaluate(context.Background(), profile.Target{FS: m, Packages: pkgs}, profile.Options{
		Profiles: po.Profiles, SeverityThreshold: sev, FailOnCritical: po.FailOnCritical, IncludeRemediation: po.IncludeRemediation,
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// compareRuleByRule requires the same rules with the same statuses and the
// same evidence. Only the filesystem-wide rules may word their evidence
// differently: the walk also counts what the image adds (lost+found, the
// ELF and rpm files libguestfs needs), so their entry counts differ; their
// findings (file, line, value) must still be the same.
func compareRuleByRule(t *testing.T, got, want *profile.Report) {
	t.Helper()
	ids := func(r *profile.Report) []string {
		var out []string
		for _, x := range r.Results {
			out = append(out, x.ID)
		}
		return out
	}
	if !slices.Equal(ids(got), ids(want)) {
		t.Fatalf("rules differ:\nimage  %v\nmemory %v", ids(got), ids(want))
	}
	diffs := 0
	for i, g := range got.Results {
		w := want.Results[i]
		if g.Status != w.Status {
			t.Errorf("%s: %s on the image, %s in memory\nimage:\n%s\nmemory:\n%s", g.ID, g.Status, w.Status, evidenceText(g.Evidence), evidenceText(w.Evidence))
			continue
		}
		if gt, wt := evidenceText(g.Evidence), evidenceText(w.Evidence); gt != wt {
			if !slices.Contains(walkRules, g.ID) || findingsText(g.Evidence) != findingsText(w.Evidence) {
				t.Errorf("%s (%s): other evidence on the image:\n%s\nin memory:\n%s", g.ID, g.Status, gt, wt)
			} else {
				diffs++
				t.Logf("%s (%s): evidence differs\nimage:  %s\nmemory: %s", g.ID, g.Status, strings.TrimSpace(gt), strings.TrimSpace(wt))
			}
		}
	}
	if got.Summary != want.Summary || got.Noncompliant != want.Noncompliant || got.HardeningIndex != want.HardeningIndex {
		t.Errorf("summary %+v noncompliant %v index %d; in memory %+v %v %d", got.Summary, got.Noncompliant, got.HardeningIndex,
			want.Summary, want.Noncompliant, want.HardeningIndex)
	}
	t.Logf("%d rules, same statuses on the image and in memory; %d filesystem-wide rules count other entries; summary %+v", len(got.Results), diffs, got.Summary.ByStatus)
}

// checkPlanted: every planted finding fails with evidence naming where it
// was planted, every finding the trees' README lists is among the failures,
// and nothing else fails.
func checkPlanted(t *testing.T, rep *profile.Report) {
	t.Helper()
	allowed := []string{}
	for _, c := range plantedFindings {
		allowed = append(allowed, c.id)
		r := ruleResult(rep, c.id)
		text := evidenceText(r.Evidence)
		if r.Status != profile.StatusFail {
			t.Errorf("planted %s: %s, want fail\n%s", c.id, r.Status, text)
			continue
		}
		for _, want := range c.evidence {
			if !strings.Contains(text, want) {
				t.Errorf("planted %s: evidence lacks %q:\n%s", c.id, want, text)
			}
		}
	}
	failedFiles := map[string]bool{}
	for _, r := range rep.Results {
		if r.Status != profile.StatusFail {
			continue
		}
		if !slices.Contains(allowed, r.ID) {
			t.Errorf("unexpected failure %s:\n%s", r.ID, evidenceText(r.Evidence))
		}
		for _, e := range r.Evidence {
			failedFiles[e.File] = true
		}
	}
	items := readmeFindings(t)
	for i, files := range items {
		if !slices.ContainsFunc(files, func(f string) bool { return failedFiles[f] }) {
			t.Errorf("README planted finding %d (files %v): no failing rule names any of them", i+1, files)
		}
	}
	if !rep.Noncompliant || rep.Summary.FailedBySeverity.Critical == 0 {
		t.Errorf("noncompliant %v, failed by severity %+v", rep.Noncompliant, rep.Summary.FailedBySeverity)
	}
	t.Logf("%d planted findings in the README, %d failing rules, all with their evidence", len(items), rep.Summary.ByStatus.Fail)
}

// checkHardened: no failure; the MAC rules of the other family are
// notapplicable (saying why), those of the guest's family are decided.
func checkHardened(t *testing.T, rep *profile.Report, family string, notApplicable, applicable []string) {
	t.Helper()
	if rep.OS.Family != family {
		t.Errorf("family %q, want %s", rep.OS.Family, family)
	}
	for _, r := range rep.Results {
		if r.Status == profile.StatusFail {
			t.Errorf("hardened %s fails %s:\n%s", family, r.ID, evidenceText(r.Evidence))
		}
	}
	for _, id := range notApplicable {
		r := ruleResult(rep, id)
		if r.Status != profile.StatusNotApplicable || !strings.Contains(evidenceText(r.Evidence), family) {
			t.Errorf("%s on %s: %s, want notapplicable naming the family\n%s", id, family, r.Status, evidenceText(r.Evidence))
		}
	}
	for _, id := range applicable {
		if r := ruleResult(rep, id); r.Status != profile.StatusPass {
			t.Errorf("%s on %s: %s, want pass\n%s", id, family, r.Status, evidenceText(r.Evidence))
		}
	}
	if rep.Noncompliant || rep.Summary.ByStatus.Fail != 0 || rep.HardeningIndex != 100 {
		t.Errorf("noncompliant %v index %d summary %+v", rep.Noncompliant, rep.HardeningIndex, rep.Summary)
	}
}

// readmeFindings reads the numbered "Planted findings" list of the trees'
// README: for each item, the absolute paths it names in backquotes.
func readmeFindings(t *testing.T) [][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(profileTrees, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, list, ok := strings.Cut(string(data), "Planted findings")
	if !ok {
		t.Fatal("trees README: no \"Planted findings\" section")
	}
	item := regexp.MustCompile(`^\d+\. `)
	path := regexp.MustCompile("`(/[^`\\s]*)`")
	var items [][]string
	var text []string
	flush := func() {
		if text == nil {
			return
		}
		var files []string
		for _, m := range path.FindAllStringSubmatch(strings.Join(text, " "), -1) {
			files = append(files, m[1])
		}
		if len(files) == 0 {
			t.Errorf("trees README: planted finding %q names no file", strings.Join(text, " "))
		}
		items = append(items, files)
		text = nil
	}
	for _, l := range strings.Split(list, "\n") {
		switch {
		case item.MatchString(l):
			flush()
			text = []string{l}
		case text != nil && strings.HasPrefix(l, "   ") && strings.TrimSpace(l) != "":
			text = append(text, l)
		case text != nil:
			flush()
		}
	}
	flush()
	if len(items) < 8 {
		t.Fatalf("trees README lists %d planted findings, want at least 8", len(items))
	}
	return items
}

func ruleResult(rep *profile.Report, id string) profile.RuleResult {
	for _, r := range rep.Results {
		if r.ID == id {
			return r
		}
	}
	return profile.RuleResult{ID: id, Status: "missing"}
}

// evidenceText flattens evidence as internal/profile's tests do.
func evidenceText(ev []profile.Evidence) string {
	var b strings.Builder
	for _, e := range ev {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(" | " + e.Value + " | " + e.Note + "\n")
	}
	return b.String()
}

// findingsText is the evidence without its notes.
func findingsText(ev []profile.Evidence) string {
	var b strings.Builder
	for _, e := range ev {
		fmt.Fprintf(&b, "%s:%d %s\n", e.File, e.Line, e.Value)
	}
	return b.String()
}

// loadProfileTree reads one of internal/profile's trees with the loader its
// unit tests use.
func loadProfileTree(t *testing.T, name string) (fstest.MapFS, []profile.Package) {
	t.Helper()
	m, pkgs, err := tree.Load(filepath.Join(profileTrees, name))
	if err != nil {
		t.Fatalf("tree %s: %v", name, err)
	}
	return m, pkgs
}
