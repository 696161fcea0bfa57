package profile

import (
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// benchmarkBoundaryCases pin the thresholds of the legacy and account
// rules to the benchmark text they cite (issue 14, finding 4): a pass and a
// fail tree at each boundary.
func benchmarkBoundaryCases() []ruleCase {
	loginDefs := func(s string) fstest.MapFS { return fstest.MapFS{"etc/login.defs": txt(s)} }
	passwd := func(second string) fstest.MapFS {
		return fstest.MapFS{"etc/passwd": txt("root:x:0:0::/root:/bin/bash\nsvc:" + second + ":999:999::/:/usr/sbin/nologin\n")}
	}
	var cases []ruleCase
	// CIS 5.4.1.1: 365 or less, more than 0; unset is 99999.
	for _, id := range []string{"CIS-5.4.1.1", "accounts_maximum_age_login_defs"} {
		cases = append(cases,
			ruleCase{rule: id, name: "365 passes", files: loginDefs("PASS_MAX_DAYS 365\n"), want: StatusPass, evidence: "/etc/login.defs:1 | PASS_MAX_DAYS 365"},
			ruleCase{rule: id, name: "366 fails", files: loginDefs("PASS_MAX_DAYS 366\n"), want: StatusFail, evidence: "PASS_MAX_DAYS 366"},
			ruleCase{rule: id, name: "91 passes (the worker's 90 was not CIS)", files: loginDefs("PASS_MAX_DAYS 91\n"), want: StatusPass},
			ruleCase{rule: id, name: "1 passes", files: loginDefs("PASS_MAX_DAYS 1\n"), want: StatusPass},
			ruleCase{rule: id, name: "0 fails", files: loginDefs("PASS_MAX_DAYS 0\n"), want: StatusFail, evidence: "want 1-365"},
			ruleCase{rule: id, name: "-1 fails", files: loginDefs("PASS_MAX_DAYS -1\n"), want: StatusFail},
			ruleCase{rule: id, name: "unset fails", files: loginDefs("PASS_MIN_DAYS 1\n"), want: StatusFail, evidence: "default 99999"},
		)
	}
	return append(cases,
		// CIS 5.4.1.2 / 5.4.1.3.
		ruleCase{rule: "accounts_minimum_age_login_defs", name: "1 passes", files: loginDefs("PASS_MIN_DAYS 1\n"), want: StatusPass},
		ruleCase{rule: "accounts_minimum_age_login_defs", name: "unset fails", files: loginDefs("# none\n"), want: StatusFail, evidence: "default 0"},
		ruleCase{rule: "accounts_password_warn_age_login_defs", name: "7 passes", files: loginDefs("PASS_WARN_AGE 7\n"), want: StatusPass},
		ruleCase{rule: "accounts_password_warn_age_login_defs", name: "6 fails", files: loginDefs("PASS_WARN_AGE 6\n"), want: StatusFail, evidence: "PASS_WARN_AGE 6"},
		// CIS 5.4.3.3: 027 or more restrictive.
		ruleCase{rule: "accounts_umask_etc_login_defs", name: "027 passes", files: loginDefs("UMASK 027\n"), want: StatusPass},
		ruleCase{rule: "accounts_umask_etc_login_defs", name: "077 passes", files: loginDefs("UMASK 077\n"), want: StatusPass},
		ruleCase{rule: "accounts_umask_etc_login_defs", name: "023 fails", files: loginDefs("UMASK 023\n"), want: StatusFail},
		// CIS 7.2.1: every /etc/passwd password field is x.
		ruleCase{rule: "accounts_password_all_shadowed", name: "x passes", files: passwd("x"), want: StatusPass, evidence: "every password field is x"},
		ruleCase{rule: "accounts_password_all_shadowed", name: "* fails (CIS: $2 != \"x\")", files: passwd("*"), want: StatusFail, evidence: "/etc/passwd:2 | svc | password field is *, not x"},
		// CIS RHEL 9 1.3.1.4 / selinux_not_disabled.
		ruleCase{rule: "CIS-1.6.1.1", name: "enforcing passes", base: "rhel", files: fstest.MapFS{"etc/selinux/config": txt("SELINUX=enforcing\n")}, want: StatusPass},
		ruleCase{rule: "CIS-1.6.1.1", name: "no SELINUX line fails", base: "rhel", files: fstest.MapFS{"etc/selinux/config": txt("SELINUXTYPE=targeted\n")}, want: StatusFail, evidence: "no SELINUX= line"},
		// The worker's own policies: unchanged verdicts.
		ruleCase{rule: "CIS-SSH-001", name: "yes fails", files: sshdFirst("PermitRootLogin yes"), want: StatusFail, evidence: "root can log in with a password"},
		ruleCase{rule: "CIS-SSH-001", name: "no passes", files: sshdFirst("PermitRootLogin no"), want: StatusPass},
		ruleCase{rule: "CIS-SSH-002", name: "no passes", files: sshdFirst("PasswordAuthentication no"), want: StatusPass},
		ruleCase{rule: "CIS-1.1.3", name: "on-disk /tmp 1777 passes", files: fstest.MapFS{"etc/fstab": txt("UUID=1 / ext4 defaults 0 1\n"), "tmp": dirMode(0o777 | fs.ModeSticky)}, want: StatusPass},
	)
}

func TestBenchmarkBoundaries(t *testing.T) {
	for _, c := range benchmarkBoundaryCases() {
		t.Run(c.rule+"/"+c.name, func(t *testing.T) {
			out := runRule(t, c.rule, c.target(t))
			text := evidenceText(out.Evidence)
			if out.Status != c.want {
				t.Fatalf("status %s, want %s\n%s", out.Status, c.want, text)
			}
			if c.evidence != "" && !strings.Contains(text, c.evidence) {
				t.Errorf("evidence lacks %q:\n%s", c.evidence, text)
			}
		})
	}
}

// TestLegacyReferences: a legacy rule cites only what it agrees with, and
// one whose id's CIS number means another check says so in its title.
func TestLegacyReferences(t *testing.T) {
	want := map[string]References{
		"CIS-SSH-001": {},
		"CIS-SSH-002": {},
		"CIS-1.6.1.1": {CISRHEL: "1.3.1.4", CISLevel: 1, ComplianceAsCode: "selinux_not_disabled"},
		"CIS-5.4.1.1": {CISDebian: "5.4.1.1", CISRHEL: "5.4.1.1", CISLevel: 1, ComplianceAsCode: "accounts_maximum_age_login_defs"},
		"CIS-2.2.1":   {PCIDSS: []string{"2.2.4"}},
		"CIS-1.1.3":   {},
	}
	for _, r := range Rules() {
		w, ok := want[r.ID]
		if !ok {
			continue
		}
		got := r.References
		if got.CISDebian != w.CISDebian || got.CISRHEL != w.CISRHEL || got.CISLevel != w.CISLevel || got.ComplianceAsCode != w.ComplianceAsCode || !slices.Equal(got.PCIDSS, w.PCIDSS) {
			t.Errorf("%s references %+v, want %+v", r.ID, got, w)
		}
		if w.CISDebian == "" && w.CISRHEL == "" && !strings.Contains(r.Title, "policy") && !strings.Contains(r.Title, "CIS RHEL 9") {
			t.Errorf("%s: title %q does not say which policy it checks", r.ID, r.Title)
		}
	}
	for _, r := range Rules() {
		if r.ID == "accounts_maximum_age_login_defs" && slices.Contains(r.References.PCIDSS, "8.3.9") {
			t.Errorf("%s cites PCI-DSS 8.3.9 (90 days) but checks 365", r.ID)
		}
	}
}
