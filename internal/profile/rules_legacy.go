package profile

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"guestkit.io/batch/internal/guestconf"
)

// legacyRules are the seven checks of the earlier Rust guestkit worker's
// profile handler, under the ids its users already filter on. They keep
// the worker's intent and profile, but read the guest with the same
// parsers as every other rule (Include, first value wins, defaults), so
// they can disagree with the worker where it mis-read a file.
//
// Their ids are compatibility surface and stay, but several name CIS items
// of older benchmarks. Each was audited against CIS Debian 12 v1.1.0,
// Ubuntu 24.04 v1.0.0 and RHEL 9 v2.0.0 (numbering as in ComplianceAsCode's
// controls/cis_debian12.yml, cis_ubuntu2404.yml, cis_rhel9.yml): where the
// id's number still means the same check, the threshold follows it
// (CIS-5.4.1.1); where it does not, the title says which policy the rule
// checks and References cite only benchmarks the rule agrees with.
func legacyRules() []Rule {
	sshd := sshdApplies()
	return []Rule{
		{
			// Not a CIS item. It passes PermitRootLogin prohibit-password
			// (OpenSSH's default), which CIS 5.1.20 and sshd_disable_root_login
			// ("PermitRootLogin no") fail, so it cannot cite them; nor
			// sshd_disable_root_password_login, whose check wants exactly
			// prohibit-password and fails "no".
			ID: "CIS-SSH-001", Title: "SSH root login with a password is not allowed (guestkit worker policy, laxer than CIS 5.1.20 PermitRootLogin no)", Severity: SeverityHigh, Legacy: true,
			References:  References{},
			Offline:     "sshd's effective PermitRootLogin (sshd_config, Include files, sshd_config.d; else the installed OpenSSH's default) is no, prohibit-password, without-password or forced-commands-only.",
			Remediation: "Set `PermitRootLogin no` in /etc/ssh/sshd_config.",
			Profiles:    []string{"security"}, Applies: sshd,
			Eval: sshdCheck{"PermitRootLogin", "prohibit-password", func(v string) (bool, string) {
				if v == "yes" {
					return false, "root can log in with a password"
				}
				return true, ""
			}}.eval,
		},
		{
			// Not a CIS item: no CIS benchmark cited here, nor
			// ComplianceAsCode, requires PasswordAuthentication no.
			ID: "CIS-SSH-002", Title: "SSH password authentication is disabled (guestkit worker policy, not a CIS item)", Severity: SeverityMedium, Legacy: true,
			References:  References{},
			Offline:     "sshd's effective PasswordAuthentication (sshd_config, Include files, sshd_config.d; else OpenSSH's default yes) is no.",
			Remediation: "Set `PasswordAuthentication no` in /etc/ssh/sshd_config and use keys.",
			Profiles:    []string{"security"}, Applies: sshd,
			Eval: sshdCheck{"PasswordAuthentication", "yes", equals("no")}.eval,
		},
		{
			ID: "CIS-FW-001", Title: "A host firewall is configured (guestkit worker check)", Severity: SeverityMedium, Legacy: true,
			Applies:     onLinux(),
			References:  References{ComplianceAsCode: "service_ufw_enabled"},
			Offline:     "Decided as host_firewall_enabled: one firewall installed, enabled at boot and with rules to load; /etc/ufw existing is not enough.",
			Remediation: "Install and configure firewalld or ufw.",
			Profiles:    []string{"security"},
			// /etc/ufw existing is not a firewall: openssh-server ships
			// /etc/ufw/applications.d. The same check as host_firewall_enabled
			// (CIS 4.1.1/4.2.x/4.3.x/4.4.x: installed, enabled, with rules).
			Eval: firewallActive,
		},
		{
			// "Not disabled" (enforcing or permissive) is CIS RHEL 9 v2.0.0
			// 1.3.1.4 "Ensure the SELinux mode is not disabled" and CaC's
			// selinux_not_disabled (SELINUX=(enforcing|permissive) in
			// /etc/selinux/config); selinux_state wants enforcing, and PCI-DSS
			// 2.2.4 (necessary services only) says nothing of SELinux.
			ID: "CIS-1.6.1.1", Title: "SELinux is not disabled (guestkit worker check; CIS RHEL 9 1.3.1.4)", Severity: SeverityHigh, Legacy: true,
			References:  References{CISRHEL: "1.3.1.4", CISLevel: 1, ComplianceAsCode: "selinux_not_disabled"},
			Offline:     "SELINUX in /etc/selinux/config is enforcing or permissive, and no boot entry has selinux=0.",
			Remediation: "Enable SELinux in /etc/selinux/config (SELINUX=enforcing) and reboot.",
			Profiles:    []string{"compliance"}, Applies: selinuxApplies(),
			Eval: func(_ context.Context, e *Env) Outcome { return selinuxMode(e, true) },
		},
		{
			// The worker wanted <= 90 (PCI-DSS 8.3.9's figure), but CIS
			// 5.4.1.1 "Ensure password expiration is configured" says 365 or
			// less (var_accounts_maximum_age_login_defs=365 in CaC's CIS
			// controls): the cited benchmark wins, and 8.3.9 is no longer cited.
			ID: "CIS-5.4.1.1", Title: "Password maximum age is 365 days or less (guestkit worker check, CIS 5.4.1.1)", Severity: SeverityMedium, Legacy: true,
			Applies:     onLinux(),
			References:  References{CISDebian: "5.4.1.1", CISRHEL: "5.4.1.1", CISLevel: 1, ComplianceAsCode: "accounts_maximum_age_login_defs"},
			Offline:     "PASS_MAX_DAYS in /etc/login.defs is 1 to 365; unset fails.",
			Remediation: "Set PASS_MAX_DAYS to 365 or less in /etc/login.defs.",
			Profiles:    []string{"compliance"},
			Eval:        passMaxDays,
		},
		{
			// CIS 2.2.1 is "Ensure NIS Client is not installed" (Debian 12,
			// Ubuntu 24.04) and "Ensure ftp client is not installed" (RHEL 9):
			// not this check, which the title therefore names itself. PCI-DSS
			// 2.2.4 (only necessary services enabled) does cover it.
			ID: "CIS-2.2.1", Title: "No telnet, rsh, rlogin, tftp or vsftpd service is enabled (guestkit worker policy, not CIS 2.2.1)", Severity: SeverityMedium, Legacy: true,
			Applies:     onLinux(),
			References:  References{PCIDSS: []string{"2.2.4"}},
			Offline:     "No telnet, rsh, rlogin, tftp or vsftpd unit is enabled (systemd wants links) and no such entry is active in an installed inetd or xinetd's configuration.",
			Remediation: "Disable the service: systemctl disable <service>.",
			Profiles:    []string{"hardening"},
			Eval: networkServiceDisabled([]string{"telnet", "shell", "login", "tftp", "ftp"},
				"telnet.socket", "rsh.socket", "rlogin.socket", "tftp.socket", "tftp.service", "tftpd-hpa.service", "vsftpd.service"),
		},
		{
			// No current CIS 1.1.3 is this check; /tmp is one directory of
			// CIS 7.1.11 / dir_perms_world_writable_sticky_bits, which checks
			// every world-writable directory and would fail where this passes,
			// so it is not cited.
			ID: "CIS-1.1.3", Title: "/tmp has the sticky bit (guestkit worker policy, /tmp only; not a CIS item)", Severity: SeverityInfo, Legacy: true,
			Applies:     onLinux(),
			References:  References{},
			Offline:     "/tmp has the sticky bit: mode= of a tmpfs /tmp in /etc/fstab (default 1777), else the /tmp directory's own mode.",
			Remediation: "Verify /tmp permissions: chmod 1777 /tmp.",
			Profiles:    []string{"hardening"},
			Eval:        tmpSticky,
		},
	}
}

// tmpSticky: a tmpfs /tmp gets its mode from mode= (default 1777); an
// on-disk /tmp has the directory's own mode.
func tmpSticky(_ context.Context, e *Env) Outcome {
	tm, err := findTmpMount(e)
	if err != nil {
		return readFailure(err)
	}
	if tm.separate && (strings.Contains(tm.ev.Value, "tmpfs") || strings.HasPrefix(tm.ev.Value, "Options=")) {
		mode := "1777"
		for _, o := range tm.options {
			if strings.HasPrefix(o, "mode=") {
				mode = strings.TrimPrefix(o, "mode=")
			}
		}
		ev := tm.ev
		ev.Note += "; tmpfs mode " + mode
		return decide(len(mode) == 4 && (mode[0]-'0')&1 == 1, ev)
	}
	fi, err := guestconf.Stat(e.FS(), "tmp")
	if err != nil {
		if isNotExist(err) {
			return fail(Evidence{File: "/tmp", Note: "does not exist and is not mounted"})
		}
		return readFailure(err)
	}
	ev := Evidence{File: "/tmp", Value: modeString(fi.Mode()) + " " + ownerString(fi)}
	if !fi.IsDir() {
		ev.Note = "not a directory"
		return fail(ev)
	}
	sticky := fi.Mode()&fs.ModeSticky != 0
	ev.Note = fmt.Sprintf("sticky bit %s", map[bool]string{true: "set", false: "missing"}[sticky])
	return decide(sticky, ev)
}
