package profile

import (
	"strings"
	"testing"
	"testing/fstest"
)

// sshdCase is one fixture of sshd's effective configuration, built on the
// hardened Debian tree (openssh-server 1:9.2p1-2+deb12u3) with
// /etc/ssh/sshd_config and its drop-ins replaced by files.
type sshdCase struct {
	rule, name string
	files      fstest.MapFS
	// version replaces openssh-server's version; "-" removes the package,
	// "?" makes the package list unknown (no dpkg database).
	version  string
	format   string // package format when not deb
	want     Status
	evidence []string // substrings of the evidence text
}

func (c sshdCase) target(t *testing.T) Target {
	m, pkgs := baseTree(t, "deb")
	files := fstest.MapFS{"etc/ssh/sshd_config.d/10-banner.conf": nil}
	for k, v := range c.files {
		files[k] = v
	}
	tg := Target{FS: overlay(m, files)}
	switch c.version {
	case "?":
		tg.FS = overlay(tg.FS.(fstest.MapFS), fstest.MapFS{"var/lib/dpkg/status": nil})
		return tg
	}
	for _, p := range pkgs {
		if p.Name == "openssh-server" {
			switch c.version {
			case "-":
				continue
			case "":
			default:
				p.Version = c.version
			}
		}
		tg.Packages = append(tg.Packages, p)
	}
	if c.format != "" {
		tg.OS = OSInfo{Family: "rhel", PackageFormat: c.format}
	}
	return tg
}

func sshdMain(s string) fstest.MapFS {
	return fstest.MapFS{"etc/ssh/sshd_config": txtMode(s, 0o600, 0, 0)}
}

func sshdFiles(main string, more ...string) fstest.MapFS {
	m := sshdMain(main)
	for i := 0; i+1 < len(more); i += 2 {
		m[more[i]] = txt(more[i+1])
	}
	return m
}

func TestSSHDEffective(t *testing.T) {
	const inc = "Include /etc/ssh/sshd_config.d/*.conf\n"
	cases := []sshdCase{
		// Include: drop-ins in glob (name) order, the first value wins.
		{rule: "sshd_disable_x11_forwarding", name: "include order: 10 before 20 (pass)",
			files: sshdFiles(inc+"X11Forwarding yes\n", "etc/ssh/sshd_config.d/20-b.conf", "X11Forwarding yes\n", "etc/ssh/sshd_config.d/10-a.conf", "X11Forwarding no\n"),
			want:  StatusPass, evidence: []string{"/etc/ssh/sshd_config.d/10-a.conf:1 | X11Forwarding no | first value wins", "20-b.conf:1 | X11Forwarding yes | ignored"}},
		{rule: "sshd_disable_x11_forwarding", name: "include order: 10 before 20 (fail)",
			files: sshdFiles(inc+"X11Forwarding no\n", "etc/ssh/sshd_config.d/20-b.conf", "X11Forwarding no\n", "etc/ssh/sshd_config.d/10-a.conf", "X11Forwarding yes\n"),
			want:  StatusFail, evidence: []string{"10-a.conf:1 | X11Forwarding yes | first value wins"}},
		// First value wins across the main file and included files.
		{rule: "sshd_set_max_auth_tries", name: "main file before Include wins (fail)",
			files: sshdFiles("MaxAuthTries 6\n"+inc, "etc/ssh/sshd_config.d/00-cis.conf", "MaxAuthTries 3\n"),
			want:  StatusFail, evidence: []string{"/etc/ssh/sshd_config:1 | MaxAuthTries 6", "00-cis.conf:1 | MaxAuthTries 3 | ignored"}},
		{rule: "sshd_set_max_auth_tries", name: "relative nested Include before main line wins (pass)",
			files: sshdFiles("Include sshd_config.d/*.conf\nMaxAuthTries 6\n", "etc/ssh/sshd_config.d/00-cis.conf", "Include cis/limits\n", "etc/ssh/cis/limits", "MaxAuthTries 3\n"),
			want:  StatusPass, evidence: []string{"/etc/ssh/cis/limits:1 | MaxAuthTries 3 | first value wins"}},
		// Match: the global value stands, a Match block setting an
		// unaccepted value fails (CIS: audit Match with -C; SSG: every line).
		{rule: "sshd_disable_x11_forwarding", name: "Match User with yes (fail)",
			files: sshdMain("X11Forwarding no\nMatch User backup\n  X11Forwarding yes\n"),
			want:  StatusFail, evidence: []string{"/etc/ssh/sshd_config:1 | X11Forwarding no", "sshd_config:3 | X11Forwarding yes | Match User backup sets X11Forwarding yes"}},
		{rule: "sshd_disable_x11_forwarding", name: "Match User with no (pass)",
			files: sshdMain("X11Forwarding no\nMatch User backup\n  X11Forwarding no\n  AllowTcpForwarding yes\n"),
			want:  StatusPass},
		{rule: "sshd_disable_root_login", name: "Include inside Match keeps the global value, fails on the block",
			files: sshdFiles("PermitRootLogin no\nMatch Address 10.0.0.0/8\n  Include extra.conf\n", "etc/ssh/extra.conf", "PermitRootLogin yes\n"),
			want:  StatusFail, evidence: []string{"/etc/ssh/sshd_config:1 | PermitRootLogin no | first value wins", "/etc/ssh/extra.conf:1 | PermitRootLogin yes | Match Address 10.0.0.0/8 sets"}},
		{rule: "sshd_disable_root_login", name: "a Match in an included file ends with that file",
			files: sshdFiles(inc+"PermitRootLogin no\n", "etc/ssh/sshd_config.d/50-x.conf", "Match User alice\n  PasswordAuthentication yes\n"),
			want:  StatusPass, evidence: []string{"/etc/ssh/sshd_config:2 | PermitRootLogin no"}},
		{rule: "sshd_disable_root_login", name: "Match ALL (any case) applies to every connection",
			files: sshdMain("PermitRootLogin no\nMatch ALL\n  PermitRootLogin prohibit-password\n"),
			want:  StatusFail, evidence: []string{"Match all sets PermitRootLogin prohibit-password"}},
		// Defaults of the installed release.
		{rule: "sshd_use_strong_kex", name: "unset, OpenSSH 9.2 default has no SHA-1 kex (pass)",
			files: sshdMain("UsePAM yes\n"),
			want:  StatusPass, evidence: []string{"not set in /etc/ssh/sshd_config; the OpenSSH default applies: OpenSSH 9.2's default is sntrup761x25519", "package openssh-server 1:9.2p1-2+deb12u3"}},
		{rule: "sshd_use_strong_kex", name: "unset, OpenSSH 7.4 default has group14-sha1 (fail)",
			files: sshdMain("UsePAM yes\n"), version: "1:7.4p1-10+deb9u7",
			want: StatusFail, evidence: []string{"OpenSSH 7.4's default is", "weak: diffie-hellman-group14-sha1"}},
		{rule: "sshd_use_strong_kex", name: "unset, version unknown: releases differ (notchecked)",
			files: sshdMain("UsePAM yes\n"), version: "?",
			want: StatusNotChecked, evidence: []string{"the package list is not available", "OpenSSH 8.2 and later:"}},
		{rule: "sshd_use_strong_ciphers", name: "unset, OpenSSH 8.7 (rpm) default (pass)",
			files: sshdMain("UsePAM yes\n"), version: "8.7p1-38.el9", format: "rpm",
			want: StatusPass, evidence: []string{"OpenSSH 8.7's default is chacha20-poly1305@openssh.com"}},
		{rule: "sshd_use_strong_ciphers", name: "unset, OpenSSH 6.6 default has CBC (fail)",
			files: sshdMain("UsePAM yes\n"), version: "1:6.6p1-2ubuntu2",
			want: StatusFail, evidence: []string{"OpenSSH 6.6's default is", "weak: arcfour256"}},
		{rule: "sshd_use_strong_macs", name: "-hmac-sha1*,umac-64* leaves a strong default (pass)",
			files: sshdMain("MACs -hmac-sha1*,umac-64*\n"),
			want:  StatusPass, evidence: []string{"MACs -hmac-sha1*,umac-64*"}},
		{rule: "sshd_use_strong_macs", name: "-hmac-sha1 keeps umac-64 (fail)",
			files: sshdMain("MACs -hmac-sha1\n"),
			want:  StatusFail, evidence: []string{"weak: umac-64-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com"}},
		{rule: "sshd_use_strong_kex", name: "+ modifier on an unknown version: releases differ (notchecked)",
			files: sshdMain("KexAlgorithms +diffie-hellman-group16-sha512\n"), version: "?",
			want: StatusNotChecked},
		{rule: "sshd_use_strong_kex", name: "+ modifier on OpenSSH 7.9 adds to a weak default (fail)",
			files: sshdMain("KexAlgorithms +diffie-hellman-group16-sha512\n"), version: "1:7.9p1-10+deb10u4",
			want: StatusFail, evidence: []string{"weak: diffie-hellman-group14-sha1"}},
		{rule: "CIS-SSH-001", name: "unset, OpenSSH 9.2 default prohibit-password (pass)",
			files: sshdMain("UsePAM yes\n"),
			want:  StatusPass, evidence: []string{"OpenSSH 9.2's default is prohibit-password"}},
		{rule: "CIS-SSH-001", name: "unset, OpenSSH 6.6 default yes (fail)",
			files: sshdMain("UsePAM yes\n"), version: "1:6.6p1-2ubuntu2",
			want: StatusFail, evidence: []string{"OpenSSH 6.6's default is yes", "root can log in with a password"}},
		{rule: "CIS-SSH-001", name: "unset, version unknown (notchecked)",
			files: sshdMain("UsePAM yes\n"), version: "?",
			want: StatusNotChecked, evidence: []string{"before OpenSSH 7.0: yes | OpenSSH 7.0 and later: prohibit-password"}},
		{rule: "sshd_disable_root_login", name: "unset, version unknown: every default fails (fail)",
			files: sshdMain("UsePAM yes\n"), version: "?",
			want: StatusFail, evidence: []string{"must be no"}},
		{rule: "sshd_disable_x11_forwarding", name: "unset, version unknown: the default never changed (pass)",
			files: sshdMain("UsePAM yes\n"), version: "?",
			want: StatusPass, evidence: []string{"every release's default is no (the OpenSSH version is unknown"}},
		{rule: "sshd_set_idle_timeout", name: "unset: ClientAliveInterval 0 (fail)",
			files: sshdMain("UsePAM yes\n"),
			want:  StatusFail, evidence: []string{"OpenSSH 9.2's default is 0", "0 disables"}},
		{rule: "sshd_set_login_grace_time", name: "unset: LoginGraceTime 120 (fail)",
			files: sshdMain("UsePAM yes\n"),
			want:  StatusFail, evidence: []string{"OpenSSH 9.2's default is 120"}},
		{rule: "sshd_disable_rhosts", name: "unset: IgnoreRhosts yes (pass)",
			files: sshdMain("UsePAM yes\n"),
			want:  StatusPass, evidence: []string{"OpenSSH 9.2's default is yes"}},
		// Installed or not.
		{rule: "sshd_disable_root_login", name: "package removed, config left behind (notapplicable)",
			files: fstest.MapFS{"etc/ssh/sshd_config": txt("PermitRootLogin yes\n"), "usr/sbin/sshd": nil}, version: "-",
			want: StatusNotApplicable, evidence: []string{"left over from a removed package"}},
		{rule: "sshd_disable_root_login", name: "package installed, config says yes (fail)",
			files: fstest.MapFS{"etc/ssh/sshd_config": txt("PermitRootLogin yes\n"), "usr/sbin/sshd": nil},
			want:  StatusFail},
		{rule: "sshd_disable_root_login", name: "package list unknown, config present: applies",
			files: fstest.MapFS{"etc/ssh/sshd_config": txt("PermitRootLogin yes\n"), "usr/sbin/sshd": nil}, version: "?",
			want: StatusFail},
		{rule: "sshd_disable_root_login", name: "binary without package: applies, version unknown",
			files: sshdMain("UsePAM yes\n"), version: "-",
			want: StatusFail, evidence: []string{"sshd is not installed by a package"}},
	}
	for _, c := range cases {
		t.Run(c.rule+"/"+c.name, func(t *testing.T) {
			out := runRule(t, c.rule, c.target(t))
			text := evidenceText(out.Evidence)
			if out.Status != c.want {
				t.Fatalf("status %s, want %s\n%s", out.Status, c.want, text)
			}
			for _, s := range c.evidence {
				if !strings.Contains(text, s) {
					t.Errorf("evidence lacks %q:\n%s", s, text)
				}
			}
		})
	}
}
