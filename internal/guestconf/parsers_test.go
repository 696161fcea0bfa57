package guestconf

import (
	"errors"
	"io/fs"
	"slices"
	"testing"
	"testing/fstest"
)

func TestSSHDIncludeFirstWinsAndMatch(t *testing.T) {
	fsys := fstest.MapFS{
		"etc/ssh/sshd_config": file(`# Debian-style
Include /etc/ssh/sshd_config.d/*.conf
permitrootlogin no
X11Forwarding=yes
Ciphers "aes256-gcm@openssh.com,aes128-ctr" # comment
Include extra/*.conf
Match User alice
	PermitRootLogin yes
	Include in-match.conf
Match all
	MaxAuthTries 10
`),
		"etc/ssh/sshd_config.d/50-cloud.conf":   file("PasswordAuthentication yes\n"),
		"etc/ssh/sshd_config.d/10-planted.conf": file("PermitRootLogin yes\nMatch Address 10.0.0.0/8\nX11Forwarding no\n"),
		"etc/ssh/extra/a.conf":                  file("X11Forwarding no\nPasswordAuthentication no\n"),
		"etc/ssh/in-match.conf":                 file("PermitEmptyPasswords yes\n"),
	}
	c, err := ParseSSHD(fsys)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := c.Effective("PermitRootLogin")
	if !ok || o.Value() != "yes" || o.File != "/etc/ssh/sshd_config.d/10-planted.conf" || o.Line != 1 {
		t.Errorf("PermitRootLogin = %+v (the include comes first)", o)
	}
	if o, _ := c.Effective("x11forwarding"); o.Value() != "yes" || o.Line != 4 {
		t.Errorf("X11Forwarding = %+v: Match inside the include must end with its file", o)
	}
	if o, _ := c.Effective("Ciphers"); o.Value() != "aes256-gcm@openssh.com,aes128-ctr" {
		t.Errorf("Ciphers = %q", o.Args)
	}
	if o, _ := c.Effective("PasswordAuthentication"); o.Value() != "yes" || o.File != "/etc/ssh/sshd_config.d/50-cloud.conf" {
		t.Errorf("PasswordAuthentication = %+v", o)
	}
	if len(c.All("PermitRootLogin")) != 2 {
		t.Errorf("All = %+v", c.All("PermitRootLogin"))
	}
	mo := c.MatchOverrides("PermitRootLogin")
	if len(mo) != 1 || mo[0].Criteria != "User alice" || mo[0].Line != 8 {
		t.Errorf("Match overrides = %+v", mo)
	}
	if m := c.MatchOverrides("PermitEmptyPasswords"); len(m) != 1 || m[0].Criteria != "User alice" || m[0].File != "/etc/ssh/in-match.conf" {
		t.Errorf("include inside Match = %+v", m)
	}
	if _, ok := c.Effective("PermitEmptyPasswords"); ok {
		t.Error("an include inside Match leaked into the global config")
	}
	if m := c.MatchOverrides("MaxAuthTries"); len(m) != 1 || m[0].Criteria != "all" {
		t.Errorf("Match all = %+v", m)
	}
	if len(c.Files) != 5 {
		t.Errorf("files = %v", c.Files)
	}
}

func TestSSHDErrors(t *testing.T) {
	if _, err := ParseSSHD(fstest.MapFS{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	loop := fstest.MapFS{"etc/ssh/sshd_config": file("Include sshd_config\n")}
	if _, err := ParseSSHD(loop); err == nil {
		t.Error("self-include did not fail")
	}
}

func TestSysctlPrecedence(t *testing.T) {
	fsys := fstest.MapFS{
		"usr/lib/sysctl.d/50-default.conf": file("net.ipv4.conf.default.rp_filter = 2\nnet.ipv4.conf.*.rp_filter = 2\n-net.ipv4.conf.all.rp_filter\nkernel.randomize_va_space=1\n"),
		"lib/sysctl.d/50-default.conf":     file("net.ipv4.ip_forward = 1\n"), // shadowed by basename
		"etc/sysctl.d/60-fwd.conf":         file("net/ipv4/ip_forward = 1\n"),
		"run/sysctl.d/70-x.conf":           file("; comment\n-kernel.randomize_va_space = 2\n"),
		"etc/sysctl.d/99-sysctl.conf":      link("../sysctl.conf"),
		"etc/sysctl.conf":                  file("net.ipv4.ip_forward=0\nnet.ipv4.conf.eth0.rp_filter=1\n"),
		"usr/lib/sysctl.d/80-masked.conf":  file("fs.suid_dumpable = 2\n"),
		"etc/sysctl.d/80-masked.conf":      link("/dev/null"),
	}
	s, err := ParseSysctl(fsys)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/usr/lib/sysctl.d/50-default.conf", "/etc/sysctl.d/60-fwd.conf", "/run/sysctl.d/70-x.conf", "/etc/sysctl.conf"}
	if !slices.Equal(s.Files, want) {
		t.Errorf("files = %v, want %v", s.Files, want)
	}
	a, over, ok := s.Lookup("net.ipv4.ip_forward")
	if !ok || a.Value != "0" || a.File != "/etc/sysctl.conf" || len(over) != 1 || over[0].File != "/etc/sysctl.d/60-fwd.conf" {
		t.Errorf("ip_forward = %+v over %+v", a, over)
	}
	if a, _, _ := s.Lookup("kernel/randomize_va_space"); a.Value != "2" || !a.IgnoreErrors {
		t.Errorf("randomize = %+v", a)
	}
	if _, _, ok := s.Lookup("net.ipv4.conf.all.rp_filter"); ok {
		t.Error("excluded key got the glob value")
	}
	if a, _, _ := s.Lookup("net.ipv4.conf.lo.rp_filter"); a.Value != "2" || a.Line != 2 {
		t.Errorf("glob = %+v", a)
	}
	if a, _, _ := s.Lookup("net.ipv4.conf.eth0.rp_filter"); a.Value != "1" {
		t.Errorf("explicit beats glob: %+v", a)
	}
	if _, _, ok := s.Lookup("fs.suid_dumpable"); ok {
		t.Error("masked file was read")
	}
	if NormalizeSysctlKey("net/ipv4/conf/eth0.1/rp_filter") != "net.ipv4.conf.eth0/1.rp_filter" {
		t.Error("slash normalisation")
	}
}

func TestSystemdUnits(t *testing.T) {
	fsys := fstest.MapFS{
		"lib":                                link("usr/lib"),
		"usr/lib/systemd/system/ssh.service": file("[Service]\nExecStart=/usr/sbin/sshd\n[Install]\nWantedBy=multi-user.target\nAlias=sshd.service\n"),
		"etc/systemd/system/sshd.service":    link("/lib/systemd/system/ssh.service"),
		"etc/systemd/system/multi-user.target.wants/ssh.service":     link("/lib/systemd/system/ssh.service"),
		"usr/lib/systemd/system/auditd.service":                      file("[Install]\nWantedBy=multi-user.target\n"),
		"etc/systemd/system/sysinit.target.requires/auditd.service":  link("/usr/lib/systemd/system/auditd.service"),
		"usr/lib/systemd/system/telnet.socket":                       file("[Socket]\n"),
		"etc/systemd/system/sockets.target.wants/telnet.socket":      link("/usr/lib/systemd/system/telnet.socket"),
		"etc/systemd/system/telnet.socket":                           link("/dev/null"),
		"usr/lib/systemd/system/cups.service":                        file("[Install]\nWantedBy=multi-user.target\n"),
		"usr/lib/systemd/system/timers.target.wants/fstrim.timer":    link("../fstrim.timer"),
		"usr/lib/systemd/system/fstrim.timer":                        file(""),
		"usr/lib/systemd/system/chrony.service":                      file("[Install]\nAlias=chronyd.service\n"),
		"etc/systemd/system/multi-user.target.wants/chronyd.service": link("/usr/lib/systemd/system/chrony.service"),
		"etc/rc2.d/S01xinetd":                                        link("../init.d/xinetd"),
		"etc/init.d/xinetd":                                          file("#!/bin/sh\n"),
		"usr/lib/systemd/system/tmp.mount":                           file("[Mount]\nOptions=mode=1777,strictatime,nosuid,nodev\n"),
		"etc/systemd/system/tmp.mount.d/10-x.conf":                   file("[Mount]\nOptions=mode=1777,nosuid,nodev,noexec\n"),
	}
	sd := NewSystemd(fsys)
	check := func(name string, enabled, masked bool) UnitState {
		t.Helper()
		st, err := sd.Unit(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Enabled != enabled || st.Masked != masked {
			t.Errorf("%s: enabled=%v masked=%v, want %v %v (%+v)", name, st.Enabled, st.Masked, enabled, masked, st)
		}
		return st
	}
	st := check("ssh.service", true, false)
	if st.UnitFile != "/usr/lib/systemd/system/ssh.service" || !slices.Contains(st.Names, "sshd.service") {
		t.Errorf("ssh: %+v", st)
	}
	if st := check("sshd.service", true, false); !slices.Contains(st.Names, "ssh.service") {
		t.Errorf("alias name: %+v", st)
	}
	check("auditd.service", true, false)
	if st := check("telnet.socket", false, true); st.Evidence[0].File != "/etc/systemd/system/telnet.socket" {
		t.Errorf("mask evidence: %+v", st)
	}
	check("cups.service", false, false)
	check("fstrim.timer", true, false)
	check("chrony.service", true, false)
	check("xinetd.service", true, false)
	check("nothing.service", false, false)
	v, err := UnitValues(fsys, "tmp.mount", "Mount", "Options")
	if err != nil || len(v) != 2 || v[1].File != "/etc/systemd/system/tmp.mount.d/10-x.conf" {
		t.Errorf("UnitValues = %+v, %v", v, err)
	}
}
