package profile

import (
	"strings"
	"testing"
	"testing/fstest"
)

// Rules that passed on an absent file or a built-in default the cited
// benchmark does not accept (issue 14, point 2): a pass tree and a fail
// tree each, on the hardened Debian tree.
func TestAbsentOrDefaultNotAccepted(t *testing.T) {
	const grubCfg = "boot/grub/grub.cfg"
	grub := func(linux string) *fstest.MapFile {
		return txtMode("set superusers=\"root\"\npassword_pbkdf2 root grub.pbkdf2.x\nmenuentry 'Debian' {\n\tlinux /boot/vmlinuz ro "+linux+"\n}\n", 0o600, 0, 0)
	}
	cases := []ruleCase{
		// CIS 2.4.1.2 / SSG file_permissions template (all_exist).
		{rule: "file_permissions_crontab", name: "present 0600 (pass)", want: StatusPass, evidence: "/etc/crontab | 0600"},
		{rule: "file_permissions_crontab", name: "absent with cron installed (fail)", files: fstest.MapFS{"etc/crontab": nil}, want: StatusFail, evidence: "does not exist while cron is in use"},
		// CIS 5.1.1 / SSG file_permissions_sshd_config (all_exist).
		{rule: "file_permissions_sshd_config", name: "present 0600 (pass)", want: StatusPass, evidence: "/etc/ssh/sshd_config | 0600"},
		{rule: "file_permissions_sshd_config", name: "absent with sshd installed (fail)", files: fstest.MapFS{"etc/ssh/sshd_config": nil}, want: StatusFail, evidence: "does not exist while sshd is installed"},
		// CIS 5.3.3.1.1: deny = 1-5 in faillock.conf.
		{rule: "accounts_passwords_pam_faillock_deny", name: "deny = 5 (pass)", want: StatusPass, evidence: "deny = 5"},
		{rule: "accounts_passwords_pam_faillock_deny", name: "deny unset, default 3 (fail)", files: fstest.MapFS{"etc/security/faillock.conf": txt("unlock_time = 900\n")}, want: StatusFail, evidence: "built-in default (3) is not accepted"},
		{rule: "accounts_passwords_pam_faillock_deny", name: "pam_tally2 without deny (fail)",
			files: fstest.MapFS{"etc/pam.d/common-auth": txt("auth required pam_tally2.so onerr=fail\nauth [success=1 default=ignore] pam_unix.so\n")},
			want:  StatusFail, evidence: "pam_tally2 without deny= never locks"},
		// CIS 1.3.1.2 / SSG grub2_enable_apparmor: apparmor=1 security=apparmor.
		{rule: "apparmor_configured", name: "both arguments on every linux line (pass)", want: StatusPass, evidence: "apparmor=1 security=apparmor on every kernel command line of the boot entries"},
		{rule: "apparmor_configured", name: "kernel default only (fail)",
			files: fstest.MapFS{grubCfg: grub("quiet"), "etc/default/grub": txt("GRUB_CMDLINE_LINUX=\"quiet\"\n")},
			want:  StatusFail, evidence: "lacks apparmor=1 and security=apparmor (the boot entries)"},
		{rule: "apparmor_configured", name: "grub.cfg not regenerated: the boot entry decides (fail)",
			files: fstest.MapFS{grubCfg: grub("apparmor=1 quiet")},
			want:  StatusFail, evidence: "lacks security=apparmor"},
		{rule: "apparmor_configured", name: "no grub.cfg: GRUB_CMDLINE_LINUX appended in grub.d (pass)",
			files: fstest.MapFS{grubCfg: nil, "etc/default/grub": txt("GRUB_CMDLINE_LINUX=\"audit=1\"\n"),
				"etc/default/grub.d/50-apparmor.cfg": txt("GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX apparmor=1 security=apparmor\"\n")},
			want: StatusPass, evidence: "of GRUB_CMDLINE_LINUX"},
		{rule: "apparmor_configured", name: "no grub.cfg: GRUB_CMDLINE_LINUX without them (fail)",
			files: fstest.MapFS{grubCfg: nil, "etc/default/grub": txt("GRUB_CMDLINE_LINUX=\"audit=1\"\n")},
			want:  StatusFail, evidence: "/etc/default/grub:1"},
		{rule: "apparmor_configured", name: "no kernel command line at all (notchecked)",
			files: fstest.MapFS{grubCfg: nil, "etc/default/grub": nil},
			want:  StatusNotChecked, evidence: "no kernel command line found"},
	}
	for _, c := range cases {
		t.Run(c.rule+"/"+c.name, func(t *testing.T) {
			out := runRule(t, c.rule, c.target(t))
			text := evidenceText(out.Evidence)
			if out.Status != c.want {
				t.Fatalf("status %s, want %s\n%s", out.Status, c.want, text)
			}
			if !strings.Contains(text, c.evidence) {
				t.Errorf("evidence lacks %q:\n%s", c.evidence, text)
			}
		})
	}
}
