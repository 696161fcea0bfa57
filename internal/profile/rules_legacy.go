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
func legacyRules() []Rule {
	sshd := sshdApplies()
	return []Rule{
		{
			ID: "CIS-SSH-001", Title: "SSH root login with a password is not allowed (guestkit worker check)", Severity: SeverityHigh, Legacy: true,
			References:  References{ComplianceAsCode: "sshd_disable_root_login"},
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
			ID: "CIS-SSH-002", Title: "SSH password authentication is disabled (guestkit worker check)", Severity: SeverityMedium, Legacy: true,
			References:  References{},
			Remediation: "Set `PasswordAuthentication no` in /etc/ssh/sshd_config and use keys.",
			Profiles:    []string{"security"}, Applies: sshd,
			Eval: sshdCheck{"PasswordAuthentication", "yes", equals("no")}.eval,
		},
		{
			ID: "CIS-FW-001", Title: "A host firewall is configured (guestkit worker check)", Severity: SeverityMedium, Legacy: true,
			References:  References{ComplianceAsCode: "service_firewalld_enabled"},
			Remediation: "Install and configure firewalld or ufw.",
			Profiles:    []string{"security"},
			Eval: func(_ context.Context, e *Env) Outcome {
				var found []Evidence
				for _, p := range []string{"etc/firewalld", "etc/ufw", "etc/iptables", "etc/nftables.conf", "etc/sysconfig/iptables", "etc/sysconfig/nftables.conf"} {
					if guestconf.Exists(e.FS(), p) {
						found = append(found, fileNote(p, "firewall configuration present"))
					}
				}
				if len(found) > 0 {
					return pass(append(found, note("configuration present; host_firewall_enabled checks that it starts at boot"))...)
				}
				return fail(note("no firewall configuration (/etc/firewalld, /etc/ufw, /etc/iptables, /etc/nftables.conf, /etc/sysconfig/iptables)"))
			},
		},
		{
			ID: "CIS-1.6.1.1", Title: "SELinux is not disabled (guestkit worker check)", Severity: SeverityHigh, Legacy: true,
			References:  References{ComplianceAsCode: "selinux_state", PCIDSS: []string{"2.2.4"}},
			Remediation: "Enable SELinux in /etc/selinux/config (SELINUX=enforcing) and reboot.",
			Profiles:    []string{"compliance"}, Applies: selinuxApplies(),
			Eval: func(_ context.Context, e *Env) Outcome { return selinuxMode(e, true) },
		},
		{
			ID: "CIS-5.4.1.1", Title: "Password maximum age is 90 days or less (guestkit worker check)", Severity: SeverityMedium, Legacy: true,
			References:  References{ComplianceAsCode: "accounts_maximum_age_login_defs", PCIDSS: []string{"8.3.9"}},
			Remediation: "Set PASS_MAX_DAYS to 90 or less in /etc/login.defs.",
			Profiles:    []string{"compliance"},
			Eval:        loginDefsInt("PASS_MAX_DAYS", 99999, func(n int) bool { return n >= 1 && n <= 90 }, "1-90"),
		},
		{
			ID: "CIS-2.2.1", Title: "No telnet, rsh, rlogin, tftp or vsftpd service is enabled (guestkit worker check)", Severity: SeverityMedium, Legacy: true,
			References:  References{PCIDSS: []string{"2.2.4"}},
			Remediation: "Disable the service: systemctl disable <service>.",
			Profiles:    []string{"hardening"},
			Eval: networkServiceDisabled([]string{"telnet", "shell", "login", "tftp", "ftp"},
				"telnet.socket", "rsh.socket", "rlogin.socket", "tftp.socket", "tftp.service", "tftpd-hpa.service", "vsftpd.service"),
		},
		{
			ID: "CIS-1.1.3", Title: "/tmp has the sticky bit (guestkit worker check)", Severity: SeverityInfo, Legacy: true,
			References:  References{ComplianceAsCode: "dir_perms_world_writable_sticky_bits"},
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
