package profile

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"guestkit.io/batch/internal/guestconf"
)

// ruleCase is one table fixture: a hardened tree with a few files changed
// (nil removes a file) and packages added or dropped.
type ruleCase struct {
	rule, name string
	base       string // "deb" (debian-hardened, the default) or "rhel"
	files      fstest.MapFS
	add, drop  []string // package names
	want       Status
	evidence   string // substring of the evidence text
}

var (
	treeOnce  sync.Once
	treeCache map[string]fstest.MapFS
	treePkgs  map[string][]Package
)

func baseTree(t testing.TB, base string) (fstest.MapFS, []Package) {
	treeOnce.Do(func() {
		treeCache, treePkgs = map[string]fstest.MapFS{}, map[string][]Package{}
		for short, name := range map[string]string{"deb": "debian-hardened", "rhel": "rhel-hardened"} {
			m, p := loadTree(t, name)
			if p == nil {
				var err error
				if p, err = guestconf.ReadDpkgStatus(m); err != nil {
					t.Fatal(err)
				}
			}
			treeCache[short], treePkgs[short] = m, p
		}
	})
	if base == "" {
		base = "deb"
	}
	return treeCache[base], treePkgs[base]
}

func (c ruleCase) target(t testing.TB) Target {
	m, pkgs := baseTree(t, c.base)
	var out []Package
	for _, p := range pkgs {
		if !slices.Contains(c.drop, p.Name) {
			out = append(out, p)
		}
	}
	for _, a := range c.add {
		out = append(out, Package{Name: a, Version: "1.0"})
	}
	return Target{FS: overlay(m, c.files), Packages: out}
}

// sshdFirst puts lines into a drop-in read before everything else, so
// they win over the hardened settings (first value wins).
func sshdFirst(lines string) fstest.MapFS {
	return fstest.MapFS{"etc/ssh/sshd_config.d/00-test.conf": txt(lines + "\n")}
}

// minimalSSHD replaces sshd_config with one that sets almost nothing.
func minimalSSHD(lines string) fstest.MapFS {
	return fstest.MapFS{"etc/ssh/sshd_config": txtMode("UsePAM yes\n"+lines, 0o600, 0, 0)}
}

func sysctlCases() []ruleCase {
	var out []ruleCase
	for _, sp := range sysctlSpecs() {
		bad := "1"
		if sp.want == "1" || sp.want == "2" {
			bad = "0"
		}
		out = append(out, ruleCase{rule: sp.id, name: "later file sets " + bad,
			files: fstest.MapFS{"etc/sysctl.d/99-zz-test.conf": txt("# test\n" + sp.key + " = " + bad + "\n")},
			want:  StatusFail, evidence: "/etc/sysctl.d/99-zz-test.conf:2 | " + sp.key + " = " + bad})
	}
	return out
}

func ruleCases() []ruleCase {
	wants := "etc/systemd/system/multi-user.target.wants/"
	cases := []ruleCase{
		// sshd
		{rule: "sshd_disable_root_login", name: "prohibit-password", files: sshdFirst("PermitRootLogin prohibit-password"), want: StatusFail, evidence: "00-test.conf:1 | PermitRootLogin prohibit-password"},
		{rule: "sshd_disable_root_login", name: "unset uses default", files: minimalSSHD(""), want: StatusFail, evidence: "OpenSSH default applies"},
		{rule: "sshd_disable_root_login", name: "Match User fails (CIS: not incorrectly configured in a match block)", files: fstest.MapFS{"etc/ssh/sshd_config": txtMode("PermitRootLogin no\nMatch User alice\n  PermitRootLogin yes\n", 0o600, 0, 0)}, want: StatusFail, evidence: "Match User alice sets PermitRootLogin yes"},
		{rule: "sshd_disable_root_login", name: "Match all fails", files: fstest.MapFS{"etc/ssh/sshd_config": txtMode("PermitRootLogin no\nMatch all\n  PermitRootLogin yes\n", 0o600, 0, 0)}, want: StatusFail, evidence: "Match all sets PermitRootLogin yes"},
		{rule: "sshd_disable_root_login", name: "no config but package: defaults", files: fstest.MapFS{"etc/ssh/sshd_config": nil, "etc/ssh/sshd_config.d/10-banner.conf": nil}, want: StatusFail, evidence: "sshd_config does not exist"},
		{rule: "sshd_disable_root_login", name: "no sshd at all", files: fstest.MapFS{"etc/ssh/sshd_config": nil, "etc/ssh/sshd_config.d/10-banner.conf": nil, "usr/sbin/sshd": nil}, drop: []string{"openssh-server"}, want: StatusNotApplicable, evidence: "OpenSSH server not installed"},
		{rule: "sshd_disable_empty_passwords", name: "yes", files: sshdFirst("PermitEmptyPasswords yes"), want: StatusFail, evidence: "PermitEmptyPasswords yes"},
		{rule: "sshd_disable_empty_passwords", name: "unset is the secure default", files: minimalSSHD(""), want: StatusPass, evidence: "OpenSSH default applies"},
		{rule: "sshd_set_max_auth_tries", name: "6", files: sshdFirst("MaxAuthTries 6"), want: StatusFail, evidence: "6 is more than 4"},
		{rule: "sshd_disable_x11_forwarding", name: "yes (keyword=value)", files: sshdFirst("x11forwarding=yes"), want: StatusFail, evidence: "x11forwarding yes"},
		{rule: "sshd_use_strong_ciphers", name: "+cbc", files: sshdFirst("Ciphers +aes128-cbc"), want: StatusFail, evidence: "weak: aes128-cbc"},
		{rule: "sshd_use_strong_ciphers", name: "default", files: minimalSSHD(""), want: StatusPass, evidence: "OpenSSH default applies"},
		{rule: "sshd_use_strong_macs", name: "default has sha1", files: minimalSSHD(""), want: StatusFail, evidence: "weak: umac-64-etm@openssh.com"},
		{rule: "sshd_use_strong_macs", name: "hmac-sha1", files: sshdFirst("MACs hmac-sha2-256,hmac-sha1"), want: StatusFail, evidence: "weak: hmac-sha1"},
		{rule: "sshd_use_strong_kex", name: "group14-sha1", files: sshdFirst("KexAlgorithms curve25519-sha256,diffie-hellman-group14-sha1"), want: StatusFail, evidence: "weak: diffie-hellman-group14-sha1"},
		{rule: "sshd_disable_rhosts", name: "no", files: sshdFirst("IgnoreRhosts no"), want: StatusFail, evidence: "IgnoreRhosts no"},
		{rule: "sshd_disable_host_auth", name: "yes", files: sshdFirst("HostbasedAuthentication yes"), want: StatusFail},
		{rule: "sshd_set_idle_timeout", name: "0", files: sshdFirst("ClientAliveInterval 0"), want: StatusFail, evidence: "0 disables"},
		{rule: "sshd_set_idle_timeout", name: "10m", files: sshdFirst("ClientAliveInterval 10m"), want: StatusFail, evidence: "600s"},
		{rule: "sshd_set_keepalive", name: "0", files: sshdFirst("ClientAliveCountMax 0"), want: StatusFail},
		{rule: "sshd_do_not_permit_user_env", name: "yes", files: sshdFirst("PermitUserEnvironment yes"), want: StatusFail},
		{rule: "sshd_set_loglevel_info", name: "QUIET", files: sshdFirst("LogLevel QUIET"), want: StatusFail},
		{rule: "sshd_set_login_grace_time", name: "2m", files: sshdFirst("LoginGraceTime 2m"), want: StatusFail},
		{rule: "file_permissions_sshd_config", name: "0644", files: fstest.MapFS{"etc/ssh/sshd_config": txtMode("PermitRootLogin no\n", 0o644, 0, 0)}, want: StatusFail, evidence: "more permissive than 0600"},
		{rule: "CIS-SSH-001", name: "prohibit-password is fine for the worker", files: sshdFirst("PermitRootLogin prohibit-password"), want: StatusPass},
		{rule: "CIS-SSH-002", name: "yes", files: sshdFirst("PasswordAuthentication yes"), want: StatusFail, evidence: "PasswordAuthentication yes"},
		{rule: "CIS-SSH-002", name: "default yes", files: minimalSSHD(""), want: StatusFail, evidence: "OpenSSH default applies"},

		// login.defs and shells
		{rule: "accounts_maximum_age_login_defs", name: "missing login.defs", files: fstest.MapFS{"etc/login.defs": nil}, want: StatusFail, evidence: "login.defs does not exist"},
		{rule: "accounts_minimum_age_login_defs", name: "0", files: fstest.MapFS{"etc/login.defs": txt("PASS_MIN_DAYS 0\n")}, want: StatusFail, evidence: "/etc/login.defs:1 | PASS_MIN_DAYS 0"},
		{rule: "accounts_password_warn_age_login_defs", name: "unset", files: fstest.MapFS{"etc/login.defs": txt("# nothing\n")}, want: StatusFail, evidence: "not set"},
		{rule: "accounts_umask_etc_login_defs", name: "022", files: fstest.MapFS{"etc/login.defs": txt("UMASK 022\n")}, want: StatusFail, evidence: "UMASK 022"},
		{rule: "accounts_umask_etc_profile", name: "profile.d sets 022", files: fstest.MapFS{"etc/profile.d/zz.sh": txt("umask 022\n")}, want: StatusFail, evidence: "/etc/profile.d/zz.sh:1 | umask 022"},
		{rule: "accounts_umask_etc_profile", name: "symbolic strict", files: fstest.MapFS{"etc/profile": txt("umask u=rwx,g=rx,o=\n")}, want: StatusPass},
		{rule: "accounts_umask_etc_profile", name: "none set", files: fstest.MapFS{"etc/profile": txt("export PATH\n")}, want: StatusFail, evidence: "no umask set"},
		{rule: "accounts_umask_etc_bashrc", name: "022", files: fstest.MapFS{"etc/bash.bashrc": txt("umask 022\n")}, want: StatusFail},
		{rule: "accounts_password_all_shadowed", name: "hash in passwd", files: fstest.MapFS{"etc/passwd": txt("root:x:0:0::/root:/bin/bash\nold:$1$abc$def:1002:1002::/:/bin/sh\n")}, want: StatusFail, evidence: "/etc/passwd:2 | old | password hash"},
		{rule: "account_unique_id", name: "dup 1000", files: fstest.MapFS{"etc/passwd": txt("root:x:0:0::/root:/bin/bash\na:x:1000:1000::/:/bin/sh\nb:x:1000:1000::/:/bin/sh\n")}, want: StatusFail, evidence: "same UID as a"},

		// files
		{rule: "file_permissions_etc_passwd", name: "0666", files: fstest.MapFS{"etc/passwd": txtMode("root:x:0:0::/root:/bin/sh\n", 0o666, 0, 0)}, want: StatusFail, evidence: "0666"},
		{rule: "file_permissions_etc_group", name: "not root", files: fstest.MapFS{"etc/group": txtMode("root:x:0:\n", 0o644, 5, 0)}, want: StatusFail, evidence: "owner uid 5"},
		{rule: "file_permissions_etc_shadow", name: "debian 0644", files: fstest.MapFS{"etc/shadow": txtMode("root:*:1::::::\n", 0o644, 0, 42)}, want: StatusFail, evidence: "more permissive than 0640"},
		{rule: "file_permissions_etc_shadow", name: "rhel 0640", base: "rhel", files: fstest.MapFS{"etc/shadow": txtMode("root:*:1::::::\n", 0o640, 0, 0)}, want: StatusFail, evidence: "more permissive than 0000"},
		{rule: "file_permissions_etc_shadow", name: "owners unknown", files: fstest.MapFS{"etc/shadow": &fstest.MapFile{Data: []byte("root:*:1::::::\n"), Mode: 0o640, Sys: struct{}{}}}, want: StatusNotChecked, evidence: "does not report owners"},
		{rule: "file_permissions_unauthorized_world_writable", name: "0666 file", files: fstest.MapFS{"opt/app/data.db": txtMode("x", 0o666, 0, 0)}, want: StatusFail, evidence: "/opt/app/data.db"},
		{rule: "dir_perms_world_writable_sticky_bits", name: "0777 dir", files: fstest.MapFS{"srv/drop": dirMode(0o777)}, want: StatusFail, evidence: "/srv/drop"},
		{rule: "file_permissions_unauthorized_suid", name: "stray SUID (dpkg)", files: fstest.MapFS{"usr/local/bin/rootshell": txtMode("#!", 0o755|fs.ModeSetuid, 0, 0)}, want: StatusFail, evidence: "/usr/local/bin/rootshell | 4755 | SUID file not owned by any package per dpkg"},
		{rule: "file_permissions_unauthorized_suid", name: "stray SUID (rpm allowlist)", base: "rhel", files: fstest.MapFS{"opt/x/helper": txtMode("#!", 0o755|fs.ModeSetuid, 0, 0)}, want: StatusFail, evidence: "built-in allowlist"},
		{rule: "file_permissions_unauthorized_suid", name: "rpm allowlist passes and says so", base: "rhel", want: StatusPass, evidence: "rpm database is not read"},
		{rule: "file_permissions_unauthorized_sgid", name: "stray SGID", files: fstest.MapFS{"usr/local/bin/g": txtMode("#!", 0o755|fs.ModeSetgid, 0, 0)}, want: StatusFail, evidence: "/usr/local/bin/g | 2755"},
		{rule: "file_permissions_crontab", name: "0644", files: fstest.MapFS{"etc/crontab": txtMode("", 0o644, 0, 0)}, want: StatusFail},
		{rule: "file_cron_allow_exists", name: "missing", files: fstest.MapFS{"etc/cron.allow": nil}, want: StatusFail, evidence: "does not exist"},

		// sysctl defaults and core dumps
		{rule: "sysctl_net_ipv4_conf_all_accept_redirects", name: "unset: kernel default 1", files: fstest.MapFS{"etc/sysctl.d/60-cis.conf": nil}, want: StatusFail, evidence: "kernel default 1"},
		{rule: "sysctl_net_ipv4_ip_forward", name: "unset: kernel default 0 is not persistent", files: fstest.MapFS{"etc/sysctl.d/60-cis.conf": nil}, want: StatusFail, evidence: "kernel default 0 is not a persistent setting"},
		{rule: "sysctl_net_ipv4_conf_default_rp_filter", name: "systemd default 2 wins without our file", files: fstest.MapFS{"etc/sysctl.d/60-cis.conf": nil}, want: StatusFail, evidence: "/usr/lib/sysctl.d/50-default.conf:3"},
		{rule: "sysctl_net_ipv4_ip_forward", name: "slash key in sysctl.conf read last", files: fstest.MapFS{"etc/sysctl.conf": txt("net/ipv4/ip_forward=1\n")}, want: StatusFail, evidence: "/etc/sysctl.conf:1"},
		{rule: "disable_users_coredumps", name: "unlimited in limits.d", files: fstest.MapFS{"etc/security/limits.d/zz.conf": txt("*  hard  core  unlimited\n")}, want: StatusFail, evidence: "/etc/security/limits.d/zz.conf:1"},
		{rule: "disable_users_coredumps", name: "missing", files: fstest.MapFS{"etc/security/limits.conf": nil}, want: StatusFail, evidence: "no `* hard core 0`"},
		{rule: "coredump_disable_storage", name: "external", files: fstest.MapFS{"etc/systemd/coredump.conf": txt("[Coredump]\nStorage=external\n")}, want: StatusFail, evidence: "Storage=external"},
		{rule: "coredump_disable_storage", name: "drop-in wins", base: "rhel", files: fstest.MapFS{"etc/systemd/coredump.conf.d/60-x.conf": txt("[Coredump]\nStorage=journal\n")}, want: StatusFail, evidence: "60-x.conf:2"},
		{rule: "coredump_disable_backtraces", name: "unset", files: fstest.MapFS{"etc/systemd/coredump.conf": txt("[Coredump]\nStorage=none\n")}, want: StatusFail, evidence: "default 1G"},

		// /tmp
		{rule: "partition_for_tmp", name: "no /tmp mount", files: fstest.MapFS{"etc/fstab": txt("UUID=1 / ext4 defaults 0 1\n")}, want: StatusFail, evidence: "tmp.mount is not enabled"},
		{rule: "mount_option_tmp_nodev", name: "not separate: n/a", files: fstest.MapFS{"etc/fstab": txt("UUID=1 / ext4 defaults 0 1\n")}, want: StatusNotApplicable, evidence: "see partition_for_tmp"},
		{rule: "mount_option_tmp_nodev", name: "fstab lacks nodev", files: fstest.MapFS{"etc/fstab": txt("tmpfs /tmp tmpfs noexec,nosuid 0 0\n")}, want: StatusFail, evidence: "/etc/fstab:1"},
		{rule: "mount_option_tmp_nosuid", name: "fstab lacks nosuid", files: fstest.MapFS{"etc/fstab": txt("tmpfs /tmp tmpfs noexec,nodev 0 0\n")}, want: StatusFail},
		{rule: "mount_option_tmp_noexec", name: "tmp.mount enabled, unit options", files: fstest.MapFS{"etc/fstab": txt("UUID=1 / ext4 defaults 0 1\n"), "etc/systemd/system/local-fs.target.wants/tmp.mount": symlink("/lib/systemd/system/tmp.mount")}, want: StatusFail, evidence: "/usr/lib/systemd/system/tmp.mount:7 | Options=mode=1777,strictatime,nosuid,nodev"},
		{rule: "mount_option_tmp_noexec", name: "tmp.mount drop-in adds noexec", files: fstest.MapFS{"etc/fstab": txt("UUID=1 / ext4 defaults 0 1\n"), "etc/systemd/system/local-fs.target.wants/tmp.mount": symlink("/lib/systemd/system/tmp.mount"), "etc/systemd/system/tmp.mount.d/cis.conf": txt("[Mount]\nOptions=mode=1777,nosuid,nodev,noexec\n")}, want: StatusPass, evidence: "/etc/systemd/system/tmp.mount.d/cis.conf:2"},
		{rule: "CIS-1.1.3", name: "tmpfs mode 0777", files: fstest.MapFS{"etc/fstab": txt("tmpfs /tmp tmpfs mode=0777,nodev 0 0\n")}, want: StatusFail, evidence: "tmpfs mode 0777"},
		{rule: "CIS-1.1.3", name: "on-disk /tmp 0777", files: fstest.MapFS{"etc/fstab": txt("UUID=1 / ext4 defaults 0 1\n"), "tmp": dirMode(0o777)}, want: StatusFail, evidence: "sticky bit missing"},

		// services and packages
		{rule: "package_audit_installed", name: "dropped", drop: []string{"auditd"}, want: StatusFail},
		{rule: "service_auditd_enabled", name: "not enabled", files: fstest.MapFS{wants + "auditd.service": nil}, want: StatusFail, evidence: "installed, not enabled"},
		{rule: "service_auditd_enabled", name: "masked", files: fstest.MapFS{"etc/systemd/system/auditd.service": symlink("/dev/null")}, want: StatusFail, evidence: "masked"},
		{rule: "host_firewall_enabled", name: "ufw ENABLED=no", files: fstest.MapFS{"etc/ufw/ufw.conf": txt("ENABLED=no\n")}, want: StatusFail, evidence: "ENABLED=no"},
		{rule: "host_firewall_enabled", name: "firewalld not enabled", base: "rhel", files: fstest.MapFS{wants + "firewalld.service": nil}, want: StatusFail, evidence: "firewalld.service"},
		{rule: "host_firewall_enabled", name: "nftables with rules", add: []string{"nftables"}, files: fstest.MapFS{"etc/ufw/ufw.conf": nil, "usr/lib/systemd/system/nftables.service": txt("[Unit]\n"), "etc/systemd/system/sysinit.target.wants/nftables.service": symlink("/lib/systemd/system/nftables.service"), "etc/nftables.conf": txt("table inet filter {\n  chain input {\n    type filter hook input priority 0; policy drop;\n  }\n}\n")}, want: StatusPass, evidence: "/etc/nftables.conf:3"},
		{rule: "service_avahi-daemon_disabled", name: "enabled", files: fstest.MapFS{wants + "avahi-daemon.service": symlink("/lib/systemd/system/avahi-daemon.service")}, want: StatusFail, evidence: "avahi-daemon.service"},
		{rule: "service_cups_disabled", name: "enabled", base: "rhel", files: fstest.MapFS{wants + "cups.service": symlink("/usr/lib/systemd/system/cups.service")}, want: StatusFail},
		{rule: "package_rsh-server_removed", name: "installed", add: []string{"rsh-server"}, want: StatusFail, evidence: "rsh-server 1.0"},
		{rule: "package_tftp-server_removed", name: "installed", add: []string{"tftpd-hpa"}, want: StatusFail},
		{rule: "package_telnet_removed", name: "installed", add: []string{"telnet"}, want: StatusFail},
		{rule: "package_rsh_removed", name: "installed", add: []string{"rsh-client"}, want: StatusFail},
		{rule: "package_audit_installed", name: "package list unknown", base: "rhel", want: StatusNotChecked, evidence: "package list not given"},
		{rule: "service_telnet_disabled", name: "telnet.socket enabled", files: fstest.MapFS{"usr/lib/systemd/system/telnet.socket": txt("[Socket]\n"), "etc/systemd/system/sockets.target.wants/telnet.socket": symlink("/lib/systemd/system/telnet.socket")}, want: StatusFail, evidence: "telnet.socket"},
		{rule: "service_rsh_disabled", name: "xinetd login", add: []string{"xinetd"}, files: fstest.MapFS{"etc/xinetd.d/rlogin": txt("service login\n{\n\tdisable = no\n\tserver = /usr/sbin/in.rlogind\n}\n")}, want: StatusFail, evidence: "/etc/xinetd.d/rlogin:1 | service login"},
		{rule: "service_rsh_disabled", name: "xinetd login disabled", add: []string{"xinetd"}, files: fstest.MapFS{"etc/xinetd.d/rlogin": txt("service login\n{\n\tdisable = yes\n}\n")}, want: StatusPass},
		{rule: "service_tftp_disabled", name: "tftpd-hpa enabled", files: fstest.MapFS{"usr/lib/systemd/system/tftpd-hpa.service": txt("[Unit]\n"), wants + "tftpd-hpa.service": symlink("/lib/systemd/system/tftpd-hpa.service")}, want: StatusFail},
		{rule: "accounts_password_max_age_90_days", name: "admin's maximum age 90", files: fstest.MapFS{"etc/shadow": txtMode("root:*:19700:1:365:7:::\nadmin:$6$salt$hash:19700:1:90:7:::\n", 0o640, 0, 42)}, want: StatusPass, evidence: "1 accounts with a password"},
		{rule: "accounts_password_max_age_90_days", name: "admin's maximum age 365 (CIS)", want: StatusFail, evidence: "admin max days 365 | want 1-90"},
		{rule: "time_sync_configured", name: "nothing enabled", files: fstest.MapFS{wants + "chrony.service": nil, "etc/systemd/system/chronyd.service": nil}, want: StatusFail, evidence: "no time synchronisation daemon"},
		{rule: "time_sync_configured", name: "timesyncd fallback", files: fstest.MapFS{wants + "chrony.service": nil, "etc/systemd/system/systemd-timesyncd.service": nil, "etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service": symlink("/lib/systemd/system/systemd-timesyncd.service")}, want: StatusPass, evidence: "compiled-in fallback"},
		{rule: "time_sync_configured", name: "ntpsec with a server", files: fstest.MapFS{wants + "chrony.service": nil, "etc/systemd/system/chronyd.service": nil, "etc/chrony/chrony.conf": nil,
			"etc/ntpsec/ntp.conf": txt("driftfile /var/lib/ntpsec/ntp.drift\npool 0.debian.pool.ntp.org iburst\n"), "usr/lib/systemd/system/ntpsec.service": txt("[Unit]\n"),
			wants + "ntpsec.service": symlink("/lib/systemd/system/ntpsec.service")}, want: StatusPass, evidence: "/etc/ntpsec/ntp.conf:2 | pool 0.debian.pool.ntp.org iburst"},
		{rule: "chronyd_specify_remote_server", name: "no sources", files: fstest.MapFS{"etc/chrony/chrony.conf": txt("confdir /etc/chrony/conf.d\nsourcedir /etc/chrony/sources.d\n")}, want: StatusFail, evidence: "no server, pool"},
		{rule: "chronyd_specify_remote_server", name: "server in sourcedir", files: fstest.MapFS{"etc/chrony/chrony.conf": txt("sourcedir /etc/chrony/sources.d\n"), "etc/chrony/sources.d/corp.sources": txt("server ntp.corp.example iburst\n")}, want: StatusPass, evidence: "/etc/chrony/sources.d/corp.sources:1 | server ntp.corp.example iburst"},
		{rule: "chronyd_specify_remote_server", name: "pool in confdir", files: fstest.MapFS{"etc/chrony/chrony.conf": txt("confdir /etc/chrony/conf.d\n"), "etc/chrony/conf.d/pool.conf": txt("pool pool.example\n")}, want: StatusPass, evidence: "/etc/chrony/conf.d/pool.conf:1"},
		{rule: "package_aide_installed", name: "dropped", drop: []string{"aide"}, want: StatusFail},
		{rule: "aide_periodic_cron_checking", name: "no cron job", files: fstest.MapFS{"etc/cron.d/aide": nil}, want: StatusFail, evidence: "no cron job"},

		// boot
		{rule: "grub2_password", name: "no password", files: fstest.MapFS{"boot/grub/grub.cfg": txtMode("set default=0\n", 0o600, 0, 0)}, want: StatusFail, evidence: "no `set superusers=`"},
		{rule: "grub2_password", name: "rhel without user.cfg", base: "rhel", files: fstest.MapFS{"boot/grub2/user.cfg": nil}, want: StatusFail, evidence: "grub2-setpassword"},
		{rule: "grub2_password", name: "no grub", files: fstest.MapFS{"boot/grub/grub.cfg": nil}, want: StatusNotApplicable, evidence: "no GRUB configuration"},
		{rule: "file_permissions_grub2_cfg", name: "0444", files: fstest.MapFS{"boot/grub/grub.cfg": txtMode("set superusers=\"root\"\n", 0o444, 0, 0)}, want: StatusFail, evidence: "0444"},
		{rule: "selinux_state", name: "permissive", base: "rhel", files: fstest.MapFS{"etc/selinux/config": txt("SELINUX=permissive\nSELINUXTYPE=targeted\n")}, want: StatusFail, evidence: "/etc/selinux/config:1 | SELINUX=permissive"},
		{rule: "selinux_state", name: "selinux=0 in BLS entry", base: "rhel", files: fstest.MapFS{"boot/loader/entries/x.conf": txt("title x\noptions root=/dev/sda ro selinux=0\n")}, want: StatusFail, evidence: "/boot/loader/entries/x.conf:2 | selinux=0"},
		{rule: "selinux_state", name: "debian with SELinux configured applies", files: fstest.MapFS{"etc/selinux/config": txt("SELINUX=disabled\n")}, want: StatusFail, evidence: "SELINUX=disabled"},
		{rule: "selinux_policytype", name: "minimum", base: "rhel", files: fstest.MapFS{"etc/selinux/config": txt("SELINUX=enforcing\nSELINUXTYPE=minimum\n")}, want: StatusFail, evidence: "SELINUXTYPE=minimum"},
		{rule: "CIS-1.6.1.1", name: "disabled", base: "rhel", files: fstest.MapFS{"etc/selinux/config": txt("SELINUX=disabled\n")}, want: StatusFail},
		{rule: "CIS-1.6.1.1", name: "permissive is not disabled", base: "rhel", files: fstest.MapFS{"etc/selinux/config": txt("SELINUX=permissive\n")}, want: StatusPass},
		{rule: "apparmor_configured", name: "apparmor=0", files: fstest.MapFS{"etc/default/grub": txt("GRUB_CMDLINE_LINUX=\"quiet apparmor=0\"\n")}, want: StatusFail, evidence: "/etc/default/grub:1 | apparmor=0"},
		{rule: "apparmor_configured", name: "security=selinux in grub.cfg", files: fstest.MapFS{"boot/grub/grub.cfg": txtMode("set superusers=\"root\"\npassword_pbkdf2 root grub.pbkdf2.x\n\tlinux /vmlinuz ro security=selinux\n", 0o600, 0, 0)}, want: StatusFail, evidence: "/boot/grub/grub.cfg:3 | security=selinux"},
		{rule: "apparmor_configured", name: "not installed", drop: []string{"apparmor"}, want: StatusFail, evidence: "not installed"},
		{rule: "kernel_module_cramfs_disabled", name: "missing", files: fstest.MapFS{"etc/modprobe.d/cramfs.conf": nil}, want: StatusFail, evidence: "no `install cramfs /bin/false`"},
		{rule: "kernel_module_cramfs_disabled", name: "blacklist only, in /usr/lib", files: fstest.MapFS{"etc/modprobe.d/cramfs.conf": nil, "usr/lib/modprobe.d/cramfs.conf": txt("blacklist cramfs\n")}, want: StatusFail, evidence: "/usr/lib/modprobe.d/cramfs.conf:1 | blacklist cramfs"},
		{rule: "kernel_module_cramfs_disabled", name: "masked vendor file", files: fstest.MapFS{"etc/modprobe.d/cramfs.conf": symlink("/dev/null"), "usr/lib/modprobe.d/cramfs.conf": txt("install cramfs /bin/false\nblacklist cramfs\n")}, want: StatusFail},

		// PAM
		{rule: "accounts_password_pam_minlen", name: "8", files: fstest.MapFS{"etc/security/pwquality.conf": txt("minlen = 8\n")}, want: StatusFail, evidence: "/etc/security/pwquality.conf:1 | minlen = 8"},
		{rule: "accounts_password_pam_minlen", name: "main file read after .d", base: "rhel", files: fstest.MapFS{"etc/security/pwquality.conf": txt("minlen = 9\n")}, want: StatusFail, evidence: "/etc/security/pwquality.conf:1 | minlen = 9"},
		{rule: "accounts_password_pam_minlen", name: "module argument overrides", base: "rhel", files: fstest.MapFS{"etc/pam.d/system-auth": txt("password requisite pam_pwquality.so minlen=10\n")}, want: StatusFail, evidence: "minlen=10"},
		{rule: "accounts_password_pam_minlen", name: "no pam_pwquality", files: fstest.MapFS{"etc/pam.d/common-password": txt("password [success=1 default=ignore] pam_unix.so obscure\n")}, want: StatusFail, evidence: "no pam_pwquality"},
		{rule: "accounts_passwords_pam_faillock_deny", name: "deny 10", files: fstest.MapFS{"etc/security/faillock.conf": txt("deny = 10\n")}, want: StatusFail, evidence: "deny = 10"},
		{rule: "accounts_passwords_pam_faillock_deny", name: "no faillock", files: fstest.MapFS{"etc/pam.d/common-auth": txt("auth [success=1 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n")}, want: StatusFail, evidence: "no pam_faillock"},
		{rule: "accounts_passwords_pam_faillock_deny", name: "continued line", files: fstest.MapFS{"etc/pam.d/common-auth": txt("auth requisite pam_faillock.so \\\n  preauth deny=9\nauth [success=1 default=ignore] pam_unix.so\n")}, want: StatusFail, evidence: "/etc/pam.d/common-auth:1"},
		{rule: "no_empty_passwords", name: "rhel password-auth", base: "rhel", files: fstest.MapFS{"etc/pam.d/password-auth": txt("auth sufficient pam_unix.so nullok\n")}, want: StatusFail, evidence: "/etc/pam.d/password-auth:1"},

		// package signatures
		{rule: "ensure_gpgcheck_globally_activated", name: "gpgcheck=0", base: "rhel", files: fstest.MapFS{"etc/dnf/dnf.conf": txt("[main]\ngpgcheck=0\n")}, want: StatusFail, evidence: "/etc/dnf/dnf.conf:2 | gpgcheck=0"},
		{rule: "ensure_gpgcheck_globally_activated", name: "unset", base: "rhel", files: fstest.MapFS{"etc/dnf/dnf.conf": txt("[main]\nbest=True\n")}, want: StatusFail, evidence: "no gpgcheck"},
		{rule: "ensure_gpgcheck_never_disabled", name: "repo gpgcheck=0", base: "rhel", files: fstest.MapFS{"etc/yum.repos.d/epel.repo": txt("[epel]\nbaseurl=x\ngpgcheck=0\n")}, want: StatusFail, evidence: "/etc/yum.repos.d/epel.repo:3 | [epel] gpgcheck=0"},
		{rule: "apt_conf_disallow_unauthenticated", name: "flat", files: fstest.MapFS{"etc/apt/apt.conf.d/99unauth": txt("// test\nAPT::Get::AllowUnauthenticated \"true\";\n")}, want: StatusFail, evidence: "/etc/apt/apt.conf.d/99unauth:2"},
		{rule: "apt_conf_disallow_unauthenticated", name: "nested", files: fstest.MapFS{"etc/apt/apt.conf.d/99insecure": txt("Acquire\n{\n  AllowInsecureRepositories \"yes\";\n};\n")}, want: StatusFail, evidence: "/etc/apt/apt.conf.d/99insecure:3 | Acquire::AllowInsecureRepositories"},
		{rule: "apt_conf_disallow_unauthenticated", name: "backup file ignored", files: fstest.MapFS{"etc/apt/apt.conf.d/99unauth.dpkg-old": txt("APT::Get::AllowUnauthenticated \"true\";\n")}, want: StatusPass},
		{rule: "apt_sources_no_trusted", name: "trusted=yes", files: fstest.MapFS{"etc/apt/sources.list.d/vendor.list": txt("deb [arch=amd64 trusted=yes] http://repo.example/ stable main\n")}, want: StatusFail, evidence: "/etc/apt/sources.list.d/vendor.list:1"},
		{rule: "apt_sources_no_trusted", name: "deb822 Trusted", files: fstest.MapFS{"etc/apt/sources.list.d/vendor.sources": txt("Types: deb\nURIs: http://repo.example/\nSuites: stable\nTrusted: yes\n")}, want: StatusFail, evidence: "vendor.sources:4"},

		// legacy
		{rule: "CIS-FW-001", name: "no firewall config", files: fstest.MapFS{"etc/ufw/ufw.conf": nil, "etc/ufw": nil}, want: StatusFail, evidence: "no host firewall"},
		{rule: "CIS-FW-001", name: "openssh-server ufw profile only", drop: []string{"ufw"}, files: fstest.MapFS{"etc/ufw/ufw.conf": nil, "etc/ufw/applications.d/openssh-server": txt("[OpenSSH]\nports=22/tcp\n")}, want: StatusFail, evidence: "a directory is not a firewall"},
		{rule: "CIS-2.2.1", name: "vsftpd enabled", files: fstest.MapFS{"usr/lib/systemd/system/vsftpd.service": txt("[Unit]\n"), wants + "vsftpd.service": symlink("/lib/systemd/system/vsftpd.service")}, want: StatusFail, evidence: "vsftpd.service"},
	}
	return append(cases, sysctlCases()...)
}

func TestRuleFixtures(t *testing.T) {
	for _, c := range ruleCases() {
		t.Run(c.rule+"/"+c.name, func(t *testing.T) {
			tg := c.target(t)
			if c.rule == "package_audit_installed" && c.want == StatusNotChecked {
				tg.Packages = nil // rpm: not readable
			}
			out := runRule(t, c.rule, tg)
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

// TestEveryRuleHasPassAndFailFixture makes new rules come with fixtures:
// the table above and the named trees together must show every rule
// passing once and failing once.
func TestEveryRuleHasPassAndFailFixture(t *testing.T) {
	seen := map[string]map[Status]bool{}
	mark := func(id string, s Status) {
		if seen[id] == nil {
			seen[id] = map[Status]bool{}
		}
		seen[id][s] = true
	}
	for _, c := range ruleCases() {
		tg := c.target(t)
		if c.rule == "package_audit_installed" && c.want == StatusNotChecked {
			tg.Packages = nil
		}
		if out := runRule(t, c.rule, tg); out.Status == c.want {
			mark(c.rule, out.Status)
		}
	}
	for _, c := range windowsCases() {
		if out := runRule(t, c.rule, c.target(t)); out.Status == c.want {
			mark(c.rule, out.Status)
		}
	}
	for _, tree := range []string{"debian-hardened", "rhel-hardened", "debian-misconfigured"} {
		for _, r := range evalTree(t, tree).Results {
			mark(r.ID, r.Status)
		}
	}
	var missing []string
	for _, r := range Rules() {
		if !seen[r.ID][StatusPass] {
			missing = append(missing, r.ID+" (pass)")
		}
		if !seen[r.ID][StatusFail] {
			missing = append(missing, r.ID+" (fail)")
		}
	}
	if len(missing) > 0 {
		t.Errorf("rules without a fixture: %s", strings.Join(missing, ", "))
	}
}

func TestNotApplicableLogic(t *testing.T) {
	deb := ruleCase{}.target(t)
	rhel := ruleCase{base: "rhel"}.target(t)
	for _, c := range []struct {
		id   string
		tg   Target
		note string
	}{
		{"selinux_state", deb, "SELinux is not configured (no /etc/selinux/config) on a debian-family guest"},
		{"selinux_policytype", deb, "SELinux is not configured"},
		{"apparmor_configured", rhel, "rule is for debian, suse; guest family is rhel"},
		{"apt_sources_no_trusted", rhel, "guest family is rhel"},
		{"ensure_gpgcheck_globally_activated", deb, "guest family is debian"},
		{"sysctl_net_ipv6_conf_all_accept_redirects", rhel, "IPv6 is disabled by /etc/sysctl.d/99-cis.conf:11"},
	} {
		out := runRule(t, c.id, c.tg)
		if out.Status != StatusNotApplicable || !strings.Contains(evidenceText(out.Evidence), c.note) {
			t.Errorf("%s: %s %s, want notapplicable with %q", c.id, out.Status, evidenceText(out.Evidence), c.note)
		}
	}
	// Unknown family: family-bound rules cannot decide.
	unknown := Target{FS: fstest.MapFS{"etc/passwd": txt("root:x:0:0::/:/bin/sh\n")}, Packages: []Package{}}
	if out := runRule(t, "apparmor_configured", unknown); out.Status != StatusNotChecked {
		t.Errorf("unknown family: %s", out.Status)
	}
}

func TestUndecidableInputs(t *testing.T) {
	big := strings.Repeat("# padding\n", 500_000) // 5 MB > guest.DefaultMaxFile
	tg := ruleCase{files: fstest.MapFS{"etc/login.defs": txt(big)}}.target(t)
	out := runRule(t, "accounts_maximum_age_login_defs", tg)
	if out.Status != StatusNotChecked || !strings.Contains(evidenceText(out.Evidence), "/etc/login.defs") {
		t.Errorf("oversized file: %s %s", out.Status, evidenceText(out.Evidence))
	}
	dirAsFile := ruleCase{files: fstest.MapFS{"etc/login.defs": dirMode(0o755), "etc/login.defs/x": txt("")}}.target(t)
	if out := runRule(t, "accounts_minimum_age_login_defs", dirAsFile); out.Status != StatusError {
		t.Errorf("unreadable: %s %s", out.Status, evidenceText(out.Evidence))
	}
}

// modeWalkFS offers the ModeWalker fast path.
type modeWalkFS struct {
	fstest.MapFS
	calls *int
}

func (m modeWalkFS) WalkModes(ctx context.Context, root string, fn func(string, fs.FileMode) error) error {
	*m.calls++
	return fs.WalkDir(m.MapFS, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return fn(p, fi.Mode())
	})
}

func TestWalkBoundsAndFastPath(t *testing.T) {
	tg := ruleCase{files: fstest.MapFS{"proc/1/ww": txtMode("", 0o666, 0, 0)}}.target(t)
	rep, err := Evaluate(context.Background(), tg, Options{Profiles: []string{"security"}, WalkMaxEntries: 10})
	if err != nil {
		t.Fatal(err)
	}
	r := result(rep, "file_permissions_unauthorized_world_writable")
	if r.Status != StatusNotChecked || !strings.Contains(evidenceText(r.Evidence), "bound of 10 entries") {
		t.Errorf("bound: %s %s", r.Status, evidenceText(r.Evidence))
	}
	calls := 0
	tg.FS = modeWalkFS{tg.FS.(fstest.MapFS), &calls}
	rep, err = Evaluate(context.Background(), tg, Options{Profiles: []string{"security", "hardening"}})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("WalkModes called %d times, want once for all walk rules", calls)
	}
	if r := result(rep, "file_permissions_unauthorized_world_writable"); r.Status != StatusPass {
		t.Errorf("proc must be skipped: %s %s", r.Status, evidenceText(r.Evidence))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := walkGuest(ctx, tg.FS, 100, DefaultWalkTimeout)
	if w.Incomplete == "" {
		t.Error("cancelled walk reported complete")
	}
}

func TestEvaluateContractAndScores(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Evaluate(ctx, ruleCase{}.target(t), Options{})
	if err == nil || rep == nil || rep.Summary.ByStatus.NotChecked != rep.Summary.Total {
		t.Errorf("cancelled: err=%v summary=%+v", err, rep.Summary)
	}
	if _, err := Evaluate(context.Background(), ruleCase{}.target(t), Options{Profiles: []string{"nope"}}); err == nil {
		t.Error("unknown profile accepted")
	}
	if _, err := Evaluate(context.Background(), ruleCase{}.target(t), Options{SeverityThreshold: "severe"}); err == nil {
		t.Error("unknown threshold accepted")
	}
	// A panicking or evidence-less rule becomes an error, never a pass.
	env := newEnv(ruleCase{}.target(t), Options{})
	out := evalRule(context.Background(), Rule{ID: "x", Applies: onLinux(), Eval: func(context.Context, *Env) Outcome { panic("boom") }}, env)
	if out.Status != StatusError || !strings.Contains(out.Evidence[0].Note, "boom") {
		t.Errorf("panic: %+v", out)
	}
	out = evalRule(context.Background(), Rule{ID: "x", Applies: onLinux(), Eval: func(context.Context, *Env) Outcome { return Outcome{Status: StatusPass} }}, env)
	if out.Status != StatusError {
		t.Errorf("silent pass: %+v", out)
	}
}

func TestThresholdAndRemediation(t *testing.T) {
	m, _ := loadTree(t, "debian-misconfigured")
	tg := Target{FS: m}
	for _, c := range []struct {
		opts Options
		want bool
	}{
		{Options{}, true},
		{Options{SeverityThreshold: SeverityCritical}, true}, // two critical fails
		{Options{SeverityThreshold: SeverityNone}, false},
		{Options{SeverityThreshold: SeverityNone, FailOnCritical: true}, true},
		{Options{Profiles: []string{"hardening"}, SeverityThreshold: SeverityHigh}, false},
		{Options{Profiles: []string{"hardening"}, SeverityThreshold: SeverityMedium}, true},
	} {
		rep, err := Evaluate(context.Background(), tg, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Noncompliant != c.want {
			t.Errorf("%+v: noncompliant=%v", c.opts, rep.Noncompliant)
		}
		for _, r := range rep.Results {
			if r.Remediation != "" {
				t.Fatalf("remediation present without include_remediation")
			}
		}
	}
	rep, _ := Evaluate(context.Background(), tg, Options{IncludeRemediation: true, Profiles: []string{"security"}})
	if r := result(rep, "sshd_disable_root_login"); !strings.Contains(r.Remediation, "PermitRootLogin no") {
		t.Errorf("remediation = %q", r.Remediation)
	}
	sec := rep.Profiles[0]
	if sec.Name != "security" || sec.PassRate == nil || *sec.PassRate >= 1 || !sec.Noncompliant {
		t.Errorf("security score %+v", sec)
	}
	want := float64(sec.Counts.Pass) / float64(sec.Counts.Pass+sec.Counts.Fail)
	if *sec.PassRate != want {
		t.Errorf("pass rate %v, want %v", *sec.PassRate, want)
	}
}

func TestHardeningIndexWeights(t *testing.T) {
	rep := &Report{Threshold: SeverityMedium, Results: []RuleResult{
		{ID: "a", Severity: SeverityCritical, Status: StatusPass, Profiles: []string{"p"}},
		{ID: "b", Severity: SeverityHigh, Status: StatusFail, Profiles: []string{"p"}},
		{ID: "c", Severity: SeverityLow, Status: StatusPass, Profiles: []string{"p"}},
		{ID: "d", Severity: SeverityMedium, Status: StatusNotChecked, Profiles: []string{"p"}},
		{ID: "e", Severity: SeverityInfo, Status: StatusFail, Profiles: []string{"p"}},
	}}
	score(rep, []string{"p"})
	// (10+1) / (10+5+1) = 68.75 -> 69
	if rep.HardeningIndex != 69 {
		t.Errorf("index %d", rep.HardeningIndex)
	}
	if rep.Summary.FailedBySeverity.High != 1 || rep.Summary.FailedBySeverity.Info != 1 || !rep.Noncompliant {
		t.Errorf("summary %+v", rep.Summary)
	}
	if got := fmt.Sprintf("%.3f", *rep.Profiles[0].PassRate); got != "0.500" {
		t.Errorf("pass rate %s", got)
	}
}
