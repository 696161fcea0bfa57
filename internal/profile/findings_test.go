package profile

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"guestkit.io/batch/internal/profile/names"
)

// Fixtures for issue 14's findings 1-3: small in-memory guests, each with
// a pass tree and a fail tree that would have caught the bug.

// debGuest is a bare Debian 12 guest with files added and a known package
// list (pkgs nil means the list is unknown).
func debGuest(files fstest.MapFS, pkgs ...string) Target {
	m := overlay(fstest.MapFS{"etc/os-release": txt("ID=debian\nVERSION_ID=\"12\"\n")}, files)
	var list []Package
	if pkgs != nil {
		list = []Package{}
		for _, p := range pkgs {
			list = append(list, Package{Name: p, Version: "1.0-1"})
		}
	}
	return Target{FS: m, Packages: list}
}

func expect(t *testing.T, id string, tg Target, want Status, evidence ...string) {
	t.Helper()
	out := runRule(t, id, tg)
	text := evidenceText(out.Evidence)
	if out.Status != want {
		t.Errorf("%s: %s, want %s\n%s", id, out.Status, want, text)
		return
	}
	for _, e := range evidence {
		if !strings.Contains(text, e) {
			t.Errorf("%s: evidence lacks %q:\n%s", id, e, text)
		}
	}
}

// Finding 1: an unset sysctl key passed when the kernel default happened
// to be the wanted value (ip_forward, accept_source_route, syncookies,
// randomize_va_space, suid_dumpable).
func TestSysctlUnsetKeyFails(t *testing.T) {
	for _, sp := range sysctlSpecs() {
		bad := "1"
		if sp.want != "0" {
			bad = "0"
		}
		t.Run(sp.id, func(t *testing.T) {
			// No sysctl file at all.
			expect(t, sp.id, debGuest(nil), StatusFail,
				sp.key+" is not set in any sysctl file", "read: none, no sysctl file exists",
				"/etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d, /lib/sysctl.d",
				"kernel default "+sp.kernelDefault+" is not a persistent setting")
			// Files exist but none sets the key: they are named.
			expect(t, sp.id, debGuest(fstest.MapFS{
				"usr/lib/sysctl.d/50-default.conf": txt("kernel.sysrq = 0x01b6\n"),
				"etc/sysctl.conf":                  txt("# nothing\n"),
			}), StatusFail, "read: /usr/lib/sysctl.d/50-default.conf, /etc/sysctl.conf")
			// Set right, in any directory of the search path: pass, file:line.
			for _, dir := range []string{"etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d", "lib/sysctl.d"} {
				expect(t, sp.id, debGuest(fstest.MapFS{dir + "/60-cis.conf": txt("# cis\n" + sp.key + " = " + sp.want + "\n")}),
					StatusPass, "/"+dir+"/60-cis.conf:2 | "+sp.key+" = "+sp.want)
			}
			expect(t, sp.id, debGuest(fstest.MapFS{"etc/sysctl.conf": txt(sp.key + "=" + sp.want + "\n")}),
				StatusPass, "/etc/sysctl.conf:1 | "+sp.key+" = "+sp.want)
			// Set wrong: fail, file:line.
			expect(t, sp.id, debGuest(fstest.MapFS{"etc/sysctl.d/60-cis.conf": txt(sp.key + " = " + bad + "\n")}),
				StatusFail, "/etc/sysctl.d/60-cis.conf:1 | "+sp.key+" = "+bad)
			// systemd's order: files sorted by name across directories, so
			// /usr/lib/sysctl.d/70-x.conf is read after /etc/sysctl.d/60-cis.conf.
			expect(t, sp.id, debGuest(fstest.MapFS{
				"etc/sysctl.d/60-cis.conf":   txt(sp.key + " = " + sp.want + "\n"),
				"usr/lib/sysctl.d/70-x.conf": txt(sp.key + " = " + bad + "\n"),
			}), StatusFail, "/usr/lib/sysctl.d/70-x.conf:1 | "+sp.key+" = "+bad, "overridden by /usr/lib/sysctl.d/70-x.conf:1")
			// A file in /etc replaces the vendor file of the same name.
			expect(t, sp.id, debGuest(fstest.MapFS{
				"etc/sysctl.d/70-x.conf":     txt(sp.key + " = " + sp.want + "\n"),
				"usr/lib/sysctl.d/70-x.conf": txt(sp.key + " = " + bad + "\n"),
			}), StatusPass, "/etc/sysctl.d/70-x.conf:1")
			// /etc/sysctl.conf is read last and wins.
			expect(t, sp.id, debGuest(fstest.MapFS{
				"etc/sysctl.d/99-z.conf": txt(sp.key + " = " + sp.want + "\n"),
				"etc/sysctl.conf":        txt(sp.key + " = " + bad + "\n"),
			}), StatusFail, "/etc/sysctl.conf:1 | "+sp.key+" = "+bad)
		})
	}
}

// enabledUnit is a unit file in /usr/lib/systemd/system and its wants link.
func enabledUnit(unit, body string) fstest.MapFS {
	return fstest.MapFS{
		"usr/lib/systemd/system/" + unit:                     txt(body),
		"etc/systemd/system/multi-user.target.wants/" + unit: symlink("/usr/lib/systemd/system/" + unit),
	}
}

func merge(ms ...fstest.MapFS) fstest.MapFS {
	out := fstest.MapFS{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// Finding 2: /etc/ufw existing counted as a firewall (CIS-FW-001), and a
// unit enabled without its package or rules counted in host_firewall_enabled.
func TestFirewallCountsOnlyInstalledEnabledConfigured(t *testing.T) {
	const id = "host_firewall_enabled"
	sshUfwProfile := fstest.MapFS{"etc/ufw/applications.d/openssh-server": txt("[OpenSSH]\ntitle=Secure shell server\nports=22/tcp\n")}
	ufwOn := merge(enabledUnit("ufw.service", "[Unit]\nDescription=Uncomplicated firewall\n"),
		fstest.MapFS{"etc/ufw/ufw.conf": txt("# /etc/ufw/ufw.conf\nENABLED=yes\nLOGLEVEL=low\n")})
	nftRules := "#!/usr/sbin/nft -f\nflush ruleset\ntable inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n"
	nftOn := merge(enabledUnit("nftables.service", "[Service]\nExecStart=/usr/sbin/nft -f /etc/nftables.conf\n"))
	nppOn := enabledUnit("netfilter-persistent.service", "[Unit]\n")

	for _, c := range []struct {
		name     string
		tg       Target
		want     Status
		evidence []string
	}{
		// fail trees
		{"openssh-server's ufw profile only", debGuest(sshUfwProfile, "openssh-server"), StatusFail,
			[]string{"ufw | not counted: package ufw not installed", "/etc/ufw exists, but a directory is not a firewall", "no host firewall"}},
		{"ufw installed, ENABLED=no", debGuest(merge(ufwOn, fstest.MapFS{"etc/ufw/ufw.conf": txt("ENABLED=no\n")}), "ufw"), StatusFail,
			[]string{"/etc/ufw/ufw.conf:1 | ENABLED=no | ufw is off", "ENABLED=no in /etc/ufw/ufw.conf (want yes)"}},
		{"ufw installed, ENABLED=yes, unit not enabled", debGuest(merge(ufwOn, fstest.MapFS{"etc/systemd/system/multi-user.target.wants/ufw.service": nil}), "ufw"), StatusFail,
			[]string{"ufw.service installed, not enabled"}},
		{"ufw configured but package removed", debGuest(ufwOn, "openssh-server"), StatusFail,
			[]string{"package ufw not installed"}},
		{"firewalld enabled, package missing", debGuest(enabledUnit("firewalld.service", "[Unit]\n"), "openssh-server"), StatusFail,
			[]string{"firewalld | not counted: package firewalld not installed"}},
		{"firewalld installed, not enabled", debGuest(fstest.MapFS{"usr/lib/systemd/system/firewalld.service": txt("[Unit]\n")}, "firewalld"), StatusFail,
			[]string{"firewalld.service installed, not enabled"}},
		{"nftables: flush ruleset only", debGuest(merge(nftOn, fstest.MapFS{"etc/nftables.conf": txt("flush ruleset\n")}), "nftables"), StatusFail,
			[]string{"/etc/nftables.conf defines no table with a base chain"}},
		{"nftables: table without hooked chain", debGuest(merge(nftOn, fstest.MapFS{"etc/nftables.conf": txt("table inet filter {\n  chain c {\n  }\n}\n")}), "nftables"), StatusFail,
			[]string{"no table with a base chain"}},
		{"nftables: no ruleset", debGuest(nftOn, "nftables"), StatusFail, []string{"no ruleset: /etc/nftables.conf missing"}},
		{"nftables: not enabled", debGuest(fstest.MapFS{"etc/nftables.conf": txt(nftRules)}, "nftables"), StatusFail, []string{"nftables.service no unit file"}},
		{"iptables-persistent: empty rules.v4", debGuest(merge(nppOn, fstest.MapFS{"etc/iptables/rules.v4": txt("\n")}), "iptables-persistent", "netfilter-persistent"), StatusFail,
			[]string{"/etc/iptables/rules.v4 is empty"}},
		{"iptables-persistent: nat only", debGuest(merge(nppOn, fstest.MapFS{"etc/iptables/rules.v4": txt("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")}), "iptables-persistent", "netfilter-persistent"), StatusFail,
			[]string{"/etc/iptables/rules.v4 has no *filter table"}},
		{"nothing, package list unknown", debGuest(sshUfwProfile), StatusFail, []string{"no host firewall"}},
		// pass trees
		{"ufw installed, ENABLED=yes, unit enabled", debGuest(merge(sshUfwProfile, ufwOn), "ufw", "openssh-server"), StatusPass,
			[]string{"ufw 1.0-1 | package installed", "/etc/ufw/ufw.conf:2 | ENABLED=yes", "multi-user.target.wants/ufw.service", "firewalld | not counted: package firewalld not installed"}},
		{"firewalld installed and enabled", debGuest(enabledUnit("firewalld.service", "[Unit]\n"), "firewalld"), StatusPass,
			[]string{"firewalld 1.0-1 | package installed", "firewalld.service | enabled", "ufw | not counted"}},
		{"nftables installed, enabled, base chain", debGuest(merge(nftOn, fstest.MapFS{"etc/nftables.conf": txt(nftRules)}), "nftables"), StatusPass,
			[]string{"/etc/nftables.conf:5 | type filter hook input priority filter; policy drop;"}},
		{"nftables (RHEL): ExecStart file with include", debGuest(merge(
			enabledUnit("nftables.service", "[Service]\nExecStart=/sbin/nft -f /etc/sysconfig/nftables.conf\n"),
			fstest.MapFS{"etc/sysconfig/nftables.conf": txt("include \"/etc/nftables/*.nft\"\n"), "etc/nftables/main.nft": txt(nftRules)}), "nftables"), StatusPass,
			[]string{"/etc/nftables/main.nft:5"}},
		{"iptables-persistent with saved filter rules", debGuest(merge(nppOn, fstest.MapFS{"etc/iptables/rules.v4": txt("# saved\n*filter\n:INPUT DROP [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n")}), "iptables-persistent", "netfilter-persistent"), StatusPass,
			[]string{"/etc/iptables/rules.v4:2 | *filter"}},
		// undecided
		{"ufw on, package list unknown", debGuest(ufwOn), StatusNotChecked, []string{"ufw is enabled with rules, but the package list is unknown"}},
	} {
		t.Run(c.name, func(t *testing.T) { expect(t, id, c.tg, c.want, c.evidence...) })
	}
}

// Finding 3: a missing optional package failed twice (package rule and
// service rule); unwanted services pass when their package is absent.
func TestServiceRulesOfOptionalPackages(t *testing.T) {
	auditdOn := enabledUnit("auditd.service", "[Unit]\nDescription=Security Auditing Service\n")
	// No auditd: the package rule fails, the service rule is notapplicable.
	noAudit := debGuest(nil, "openssh-server")
	expect(t, "package_audit_installed", noAudit, StatusFail, "none of auditd, audit is installed")
	expect(t, "service_auditd_enabled", noAudit, StatusNotApplicable,
		"none of auditd, audit is installed (1 packages listed)", "reported once, by the package rule")
	rep, err := Evaluate(t.Context(), noAudit, Options{Profiles: []string{"compliance"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Status == StatusFail && r.ID == "service_auditd_enabled" {
			t.Errorf("missing auditd counted twice: %s", evidenceText(r.Evidence))
		}
	}
	// A unit link left behind does not make it applicable without the package.
	expect(t, "service_auditd_enabled", debGuest(auditdOn, "openssh-server"), StatusNotApplicable, "none of auditd, audit")
	// Installed: enabled passes, not enabled fails.
	expect(t, "service_auditd_enabled", debGuest(auditdOn, "auditd"), StatusPass, "multi-user.target.wants/auditd.service | auditd.service | enabled")
	expect(t, "service_auditd_enabled", debGuest(fstest.MapFS{"usr/lib/systemd/system/auditd.service": txt("[Unit]\n")}, "auditd"), StatusFail, "installed, not enabled")
	expect(t, "service_auditd_enabled", debGuest(merge(auditdOn, fstest.MapFS{"etc/systemd/system/auditd.service": symlink("/dev/null")}), "audit"), StatusFail, "masked")
	// Package list unknown: notchecked, never pass.
	expect(t, "service_auditd_enabled", debGuest(auditdOn), StatusNotChecked, "cannot tell whether the package is installed")
	expect(t, "package_audit_installed", debGuest(auditdOn), StatusNotChecked, "package list not given")

	for _, c := range []struct {
		id, pkg, unit string
	}{
		{"service_avahi-daemon_disabled", "avahi-daemon", "avahi-daemon.service"},
		{"service_avahi-daemon_disabled", "avahi-daemon", "avahi-daemon.socket"},
		{"service_cups_disabled", "cups", "cups.service"},
		{"service_cups_disabled", "cups-daemon", "cups.socket"},
		{"service_cups_disabled", "cups", "cups.path"},
	} {
		t.Run(c.id+"/"+c.unit, func(t *testing.T) {
			on := enabledUnit(c.unit, "[Unit]\n")
			dangling := fstest.MapFS{"etc/systemd/system/multi-user.target.wants/" + c.unit: symlink("/usr/lib/systemd/system/" + c.unit)}
			// fail trees: installed and enabled; a unit file enabled whatever the package list says.
			expect(t, c.id, debGuest(on, c.pkg), StatusFail, c.unit+" | enabled")
			expect(t, c.id, debGuest(on), StatusFail, c.unit+" | enabled")
			expect(t, c.id, debGuest(on, "openssh-server"), StatusFail, c.unit+" | enabled")
			// pass trees: not installed (CIS: "is not installed"); a link
			// left by the removed package; installed but not enabled.
			expect(t, c.id, debGuest(nil, "openssh-server"), StatusPass, "is installed")
			expect(t, c.id, debGuest(dangling, "openssh-server"), StatusPass, "enabled link without a unit file (left by the removed package): starts nothing")
			expect(t, c.id, debGuest(fstest.MapFS{"usr/lib/systemd/system/" + c.unit: txt("[Unit]\n")}, c.pkg), StatusPass, "package installed; its units are not enabled")
			// Unknown package list: only the units decide, and it says so.
			expect(t, c.id, debGuest(nil), StatusPass, "decided by the unit links alone")
			expect(t, c.id, debGuest(dangling), StatusFail, c.unit+" | enabled")
		})
	}
}

// PCI-DSS v4.0.1 8.3.9: passwords changed at least every 90 days, in
// login.defs and for every existing account with a password; the CIS
// 365-day rule shares the login.defs parser and keeps its own threshold.
func TestPCIPasswordMaxAge(t *testing.T) {
	const id = "accounts_password_max_age_90_days"
	shadow := func(max string) *fstest.MapFile {
		return txtMode("root:$6$salt$hash:19700:1:"+max+":7:::\ndaemon:*:19700:0:99999:7:::\nlocked:!$6$x$y:19700:0:99999:7:::\n", 0o640, 0, 42)
	}
	defs := func(n string) *fstest.MapFile {
		return txt("# login.defs\nPASS_MAX_DAYS\t" + n + "\nPASS_MIN_DAYS 1\n")
	}
	for _, c := range []struct {
		name     string
		files    fstest.MapFS
		want     Status
		evidence []string
	}{
		{"90 everywhere", fstest.MapFS{"etc/login.defs": defs("90"), "etc/shadow": shadow("90")}, StatusPass,
			[]string{"/etc/login.defs:2 | PASS_MAX_DAYS 90 | want 1-90", "1 accounts with a password, each with a maximum age of 90 days or less"}},
		{"CIS 365 in login.defs", fstest.MapFS{"etc/login.defs": defs("365"), "etc/shadow": shadow("90")}, StatusFail,
			[]string{"PASS_MAX_DAYS 365 | want 1-90", "dynamic analysis of each account's security posture", "cannot be seen on a powered-off disk"}},
		{"existing account never expires", fstest.MapFS{"etc/login.defs": defs("90"), "etc/shadow": shadow("")}, StatusFail,
			[]string{"/etc/shadow:1 | root max days (unset) | the password never expires", "dynamic analysis"}},
		{"existing account 99999", fstest.MapFS{"etc/login.defs": defs("60"), "etc/shadow": shadow("99999")}, StatusFail,
			[]string{"/etc/shadow:1 | root max days 99999 | want 1-90"}},
		{"no shadow", fstest.MapFS{"etc/login.defs": defs("90")}, StatusNotChecked, []string{"/etc/shadow does not exist"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tg := debGuest(c.files)
			expect(t, id, tg, c.want, c.evidence...)
			out := runRule(t, id, tg)
			for _, e := range out.Evidence {
				if strings.Contains(e.Value+e.Note, "$6$") {
					t.Errorf("evidence shows a hash: %+v", e)
				}
			}
		})
	}
	// The CIS rule is unchanged by the PCI threshold: 365 passes there.
	expect(t, "accounts_maximum_age_login_defs", debGuest(fstest.MapFS{"etc/login.defs": defs("365")}), StatusPass, "PASS_MAX_DAYS 365")
	for _, r := range Rules() {
		if r.ID == id && (slices.Contains(r.Profiles, names.CISLevel1Server) || slices.Contains(r.Profiles, names.Compliance) || !slices.Contains(r.Profiles, names.PCIDSS)) {
			t.Errorf("%s is in %v, want pci-dss only", id, r.Profiles)
		}
	}
}

// CIS Debian 12 4.1.1 / RHEL 9 4.1.2 and Debian 12 2.3.1.1 want a single
// firewall utility and a single time daemon in use.
func TestSingleFirewallAndTimeDaemon(t *testing.T) {
	ufwOn := merge(enabledUnit("ufw.service", "[Unit]\n"), fstest.MapFS{"etc/ufw/ufw.conf": txt("ENABLED=yes\n")})
	nftOn := merge(enabledUnit("nftables.service", "[Service]\nExecStart=/usr/sbin/nft -f /etc/nftables.conf\n"),
		fstest.MapFS{"etc/nftables.conf": txt("table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n")})
	expect(t, "host_firewall_enabled", debGuest(ufwOn, "ufw", "nftables"), StatusPass, "ufw is installed, enabled at boot and has rules")
	expect(t, "host_firewall_enabled", debGuest(merge(ufwOn, nftOn), "ufw", "nftables"), StatusFail,
		"ufw, nftables are all installed, enabled at boot and have rules", "single firewall configuration utility")
	// The worker's CIS-FW-001 cites no CIS item: two firewalls still pass.
	expect(t, "CIS-FW-001", debGuest(merge(ufwOn, nftOn), "ufw", "nftables"), StatusPass)

	chrony := merge(enabledUnit("chrony.service", "[Unit]\n"), fstest.MapFS{"etc/chrony/chrony.conf": txt("pool 2.debian.pool.ntp.org iburst\n")})
	timesyncd := enabledUnit("systemd-timesyncd.service", "[Unit]\n")
	expect(t, "time_sync_configured", debGuest(chrony, "chrony"), StatusPass, "pool 2.debian.pool.ntp.org iburst")
	expect(t, "time_sync_configured", debGuest(merge(chrony, timesyncd), "chrony", "systemd-timesyncd"), StatusFail,
		"chrony.service", "systemd-timesyncd.service", "2 time synchronisation daemons are enabled; CIS 2.3.1.1 wants a single one")
}
