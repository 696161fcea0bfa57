package inspect

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/guestconf"
)

func kernelsWith(cmdline string) *Kernels { return &Kernels{Cmdline: cmdline} }

// enabledUnit makes a unit file and the link `systemctl enable` writes.
func enabledUnit(name, target string) fstest.MapFS {
	return fstest.MapFS{
		"usr/lib/systemd/system/" + name:                  file("[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=" + target + "\n"),
		"etc/systemd/system/" + target + ".wants/" + name: link("/usr/lib/systemd/system/" + name),
	}
}

func TestReadCloudInit(t *testing.T) {
	cfgs := fstest.MapFS{
		"etc/cloud/cloud.cfg":                             file("users: [default]\ndatasource_list: [NoCloud, ConfigDrive, None]\n"),
		"etc/cloud/cloud.cfg.d/90_dpkg.cfg":               file("# to update this file, run dpkg-reconfigure cloud-init\ndatasource_list: [ NoCloud, None ]\n"),
		"etc/cloud/cloud.cfg.d/99-local.cfg":              file("datasource_list:\n  - ConfigDrive\n"),
		"etc/cloud/cloud.cfg.d/05_log.cfg":                file("_log: []\n"),
		"etc/cloud/cloud.cfg.d/README":                    file("not read"),
		"etc/cloud/cloud.cfg.d/50-x.cfg.bak":              file("datasource_list: [Ec2]\n"),
		"usr/lib/systemd/system/cloud-init.service":       file("[Install]\nWantedBy=cloud-init.target\n"),
		"usr/lib/systemd/system/cloud-init-local.service": file("[Install]\nWantedBy=cloud-init.target\n"),
	}
	on := fstest.MapFS{
		"etc/systemd/system/cloud-init.target.wants/cloud-init.service":       link("/usr/lib/systemd/system/cloud-init.service"),
		"etc/systemd/system/cloud-init.target.wants/cloud-init-local.service": link("/usr/lib/systemd/system/cloud-init-local.service"),
	}
	cases := []struct {
		name        string
		fsys        fstest.MapFS
		pkgs        map[string]string
		k           *Kernels
		nilResult   bool
		disabled    bool
		datasources []string
		files       int
		version     string
		problem     string
	}{
		{name: "absent", fsys: fstest.MapFS{"etc/hostname": file("x")}, nilResult: true},
		{
			name: "later cloud.cfg.d file wins", fsys: merge(cfgs, on), pkgs: map[string]string{"cloud-init": "23.1.1-10"},
			datasources: []string{"ConfigDrive"}, files: 4, version: "23.1.1-10",
		},
		{name: "cloud-init.disabled", fsys: merge(cfgs, on, fstest.MapFS{"etc/cloud/cloud-init.disabled": file("")}), disabled: true, datasources: []string{"ConfigDrive"}, files: 4},
		{name: "kernel cmdline", fsys: merge(cfgs, on), k: kernelsWith("ro quiet cloud-init=disabled"), disabled: true, datasources: []string{"ConfigDrive"}, files: 4},
		{name: "units not enabled", fsys: cfgs, disabled: true, datasources: []string{"ConfigDrive"}, files: 4},
		{name: "target masked", fsys: merge(cfgs, on, fstest.MapFS{"etc/systemd/system/cloud-init.target": link("/dev/null")}), disabled: true, datasources: []string{"ConfigDrive"}, files: 4},
		{
			name:     "openrc script not in a runlevel",
			fsys:     fstest.MapFS{"usr/bin/cloud-init": file(""), "etc/init.d/cloud-init": file("")},
			disabled: true,
		},
		{
			name: "openrc script in a runlevel",
			fsys: fstest.MapFS{"usr/bin/cloud-init": file(""), "etc/init.d/cloud-init": file(""), "etc/runlevels/default/cloud-init": link("/etc/init.d/cloud-init")},
		},
		{
			name:        "bad yaml is a problem; the rest still counts",
			fsys:        merge(cfgs, on, fstest.MapFS{"etc/cloud/cloud.cfg.d/99-local.cfg": file("datasource_list: [\n")}),
			datasources: []string{"NoCloud", "None"}, files: 4, problem: "/etc/cloud/cloud.cfg.d/99-local.cfg",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newReader(c.fsys)
			ci := readCloudInit(r, c.pkgs, guestconf.NewSystemd(c.fsys), c.k)
			if c.nilResult {
				if ci != nil {
					t.Errorf("cloud-init = %s, want nil", asJSON(ci))
				}
				return
			}
			if ci == nil || !ci.Installed {
				t.Fatalf("cloud-init = %s", asJSON(ci))
			}
			if ci.Disabled != c.disabled || !slices.Equal(ci.Datasources, c.datasources) || len(ci.ConfigFiles) != c.files || ci.Version != c.version {
				t.Errorf("cloud-init = %s", asJSON(ci))
			}
			if c.files > 0 && (ci.ConfigFiles[0] != "/etc/cloud/cloud.cfg" || ci.ConfigFiles[1] != "/etc/cloud/cloud.cfg.d/05_log.cfg") {
				t.Errorf("config files out of order: %v", ci.ConfigFiles)
			}
			if c.problem == "" {
				noProblems(t, r)
			} else if len(r.problems) != 1 || r.problems[0].Path != c.problem {
				t.Errorf("problems = %s", asJSON(r.problems))
			}
		})
	}
}

func TestReadMachineID(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef"
	cases := []struct {
		name    string
		fsys    fstest.MapFS
		want    string
		problem string
	}{
		{"valid", fstest.MapFS{"etc/machine-id": file(id + "\n")}, id, ""},
		{"uninitialized", fstest.MapFS{"etc/machine-id": file("uninitialized\n")}, "uninitialized", ""},
		{"empty (golden image)", fstest.MapFS{"etc/machine-id": file("")}, "", ""},
		{"dbus copy", fstest.MapFS{"var/lib/dbus/machine-id": file(id)}, id, ""},
		{"absent", fstest.MapFS{}, "", ""},
		{"garbage", fstest.MapFS{"etc/machine-id": file("hello\x00\xff" + strings.Repeat("a", 100))}, "", "not a machine ID"},
		{"upper case", fstest.MapFS{"etc/machine-id": file(strings.ToUpper(id))}, "", "not a machine ID"},
		{"too large", fstest.MapFS{"etc/machine-id": file(strings.Repeat("a", maxMachineID+1))}, "", guest.ErrTooLarge.Error()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newReader(c.fsys)
			if got := readMachineID(r); got != c.want {
				t.Errorf("machine-id = %q, want %q", got, c.want)
			}
			if c.problem == "" {
				noProblems(t, r)
			} else if len(r.problems) != 1 || !strings.Contains(r.problems[0].Message, c.problem) {
				t.Errorf("problems = %s, want %q", asJSON(r.problems), c.problem)
			}
		})
	}
}

func TestReadGuestTools(t *testing.T) {
	fsys := merge(
		fstest.MapFS{
			// Debian's qemu-guest-agent.service has no [Install]: udev starts it.
			"usr/lib/systemd/system/qemu-guest-agent.service":                   file("[Unit]\nBindsTo=dev-virtio\\x2dports-org.qemu.guest_agent.0.device\n[Service]\nExecStart=/usr/sbin/qemu-ga\n"),
			"usr/lib/systemd/system/spice-vdagentd.service":                     file("[Install]\nWantedBy=multi-user.target\n"),
			"etc/systemd/system/spice-vdagentd.service":                         link("/dev/null"),
			"etc/systemd/system/multi-user.target.wants/spice-vdagentd.service": link("/usr/lib/systemd/system/spice-vdagentd.service"),
		},
		enabledUnit("open-vm-tools.service", "multi-user.target"),
		enabledUnit("snap.amazon-ssm-agent.amazon-ssm-agent.service", "multi-user.target"),
	)
	pkgs := map[string]string{"qemu-guest-agent": "1:7.2", "open-vm-tools": "2:12.2.0-1", "spice-vdagent": "0.22"}
	r := newReader(fsys)
	got := readGuestTools(r, pkgs, guestconf.NewSystemd(fsys))
	noProblems(t, r)
	want := []GuestTool{
		{Name: "qemu-guest-agent", Package: "qemu-guest-agent", Version: "1:7.2", Enabled: true},
		{Name: "open-vm-tools", Package: "open-vm-tools", Version: "2:12.2.0-1", Enabled: true},
		{Name: "spice-vdagent", Package: "spice-vdagent", Version: "0.22", Enabled: false},
		{Name: "amazon-ssm-agent", Enabled: true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("guest tools:\n got %s\nwant %s", asJSON(got), asJSON(want))
	}
}

func TestReadSecurityMAC(t *testing.T) {
	aaTree := merge(fstest.MapFS{
		"etc/apparmor.d/usr.sbin.ntpd":       file("profile ntpd {}"),
		"etc/apparmor.d/lsb_release":         file("profile lsb {}"),
		"etc/apparmor.d/usr.bin.man":         file("profile man {}"),
		"etc/apparmor.d/disable/usr.bin.man": link("../usr.bin.man"),
		"etc/apparmor.d/README":              file(""),
		"etc/apparmor.d/usr.bin.x.dpkg-old":  file(""),
		"etc/apparmor.d/.hidden":             file(""),
		"etc/apparmor.d/abstractions/base":   file(""),
		"etc/apparmor.d/local/usr.sbin.ntpd": file(""),
		"etc/apparmor.d/tunables/global":     file(""),
	}, enabledUnit("apparmor.service", "sysinit.target"))
	seTree := fstest.MapFS{"etc/selinux/config": file("# comment\nSELINUX=Enforcing\nSELINUXTYPE=targeted\n")}
	cases := []struct {
		name   string
		fsys   fstest.MapFS
		k      *Kernels
		se, aa string
	}{
		{"selinux enforcing", seTree, kernelsWith("ro quiet"), "configured=true mode=enforcing type=targeted kdis=false", "nil"},
		{"selinux=0 on the cmdline", seTree, kernelsWith("ro selinux=1 selinux=0"), "configured=true mode=enforcing type=targeted kdis=true", "nil"},
		{"apparmor enabled", aaTree, kernelsWith("ro quiet"), "nil", "installed=true profiles=2 kdis=false enabled=true"},
		{"apparmor=0", aaTree, kernelsWith("ro apparmor=0"), "nil", "installed=true profiles=2 kdis=true enabled=false"},
		{"security=selinux", aaTree, kernelsWith("security=selinux"), "nil", "installed=true profiles=2 kdis=true enabled=false"},
		{"lsm without apparmor", aaTree, kernelsWith("lsm=landlock,yama,selinux"), "nil", "installed=true profiles=2 kdis=true enabled=false"},
		{"lsm with apparmor", aaTree, kernelsWith("lsm=landlock,apparmor"), "nil", "installed=true profiles=2 kdis=false enabled=true"},
		{"apparmor.service masked", merge(aaTree, fstest.MapFS{"etc/systemd/system/apparmor.service": link("/dev/null")}), nil, "nil", "installed=true profiles=2 kdis=false enabled=false"},
		{"apparmor.service absent", fstest.MapFS{"etc/apparmor.d/a": file("")}, nil, "nil", "installed=true profiles=1 kdis=false enabled=false"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newReader(c.fsys)
			sec := readSecurity(r, nil, guestconf.NewSystemd(c.fsys), c.k)
			noProblems(t, r)
			se, aa := "nil", "nil"
			if s := sec.SELinux; s != nil {
				se = "configured=" + bstr(s.Configured) + " mode=" + s.Mode + " type=" + s.Type + " kdis=" + bstr(s.KernelDisabled)
			}
			if a := sec.AppArmor; a != nil {
				aa = "installed=" + bstr(a.Installed) + " profiles=" + itoa(a.Profiles) + " kdis=" + bstr(a.KernelDisabled) + " enabled=" + bstr(a.Enabled)
			}
			if se != c.se || aa != c.aa {
				t.Errorf("selinux %s\n   want %s\napparmor %s\n    want %s", se, c.se, aa, c.aa)
			}
		})
	}
}

func TestReadFirewall(t *testing.T) {
	ufw := fstest.MapFS{
		"etc/ufw/ufw.conf": file("# /etc/ufw/ufw.conf\nENABLED=yes\nLOGLEVEL=low\n"),
		"etc/default/ufw":  file("IPV6=yes\nDEFAULT_INPUT_POLICY=\"DROP\"\n"),
	}
	cases := []struct {
		name string
		fsys fstest.MapFS
		pkgs map[string]string
		want Firewall
	}{
		{"ufw enabled", merge(ufw, enabledUnit("ufw.service", "multi-user.target")), nil,
			Firewall{Kind: "ufw", Enabled: true, Source: "/etc/ufw/ufw.conf", Default: "drop"}},
		{"ufw ENABLED=no, firewalld runs", merge(ufw, enabledUnit("ufw.service", "multi-user.target"), enabledUnit("firewalld.service", "multi-user.target"),
			fstest.MapFS{"etc/ufw/ufw.conf": file("ENABLED=no\n"), "etc/firewalld/firewalld.conf": file("DefaultZone=drop\n")}), nil,
			Firewall{Kind: "firewalld", Enabled: true, Source: "firewalld.service", Default: "drop"}},
		{"ufw ENABLED=yes but ufw.service masked", merge(ufw, enabledUnit("ufw.service", "multi-user.target"), fstest.MapFS{"etc/systemd/system/ufw.service": link("/dev/null")}), nil,
			Firewall{Kind: "ufw", Enabled: false, Source: "/etc/ufw/ufw.conf", Default: "drop"}},
		{"ufw without systemd units (config decides)", ufw, nil,
			Firewall{Kind: "ufw", Enabled: true, Source: "/etc/ufw/ufw.conf", Default: "drop"}},
		{"firewalld installed, not enabled, default zone", fstest.MapFS{"usr/lib/systemd/system/firewalld.service": file("[Install]\nWantedBy=multi-user.target\n")}, map[string]string{"firewalld": "1.3.4"},
			Firewall{Kind: "firewalld", Enabled: false, Source: "firewalld.service", Default: "public"}},
		{"nftables", merge(enabledUnit("nftables.service", "sysinit.target"), fstest.MapFS{"etc/nftables.conf": file("table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\n")}), nil,
			Firewall{Kind: "nftables", Enabled: true, Source: "nftables.service", Default: "drop"}},
		{"disabled firewalld loses to enabled nftables", merge(enabledUnit("nftables.service", "sysinit.target"), fstest.MapFS{"etc/firewalld/firewalld.conf": file("DefaultZone=public\n")}), nil,
			Firewall{Kind: "nftables", Enabled: true, Source: "nftables.service"}},
		{"iptables-services", merge(enabledUnit("iptables.service", "basic.target"), fstest.MapFS{"etc/sysconfig/iptables": file("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n")}), nil,
			Firewall{Kind: "iptables", Enabled: true, Source: "iptables.service", Default: "accept"}},
		{"nftables installed but disabled is none", fstest.MapFS{"usr/lib/systemd/system/nftables.service": file(""), "etc/nftables.conf": file("")}, map[string]string{"nftables": "1.0.6"},
			Firewall{Kind: "none"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newReader(c.fsys)
			got := readFirewall(r, c.pkgs, guestconf.NewSystemd(c.fsys))
			noProblems(t, r)
			if *got != c.want {
				t.Errorf("firewall = %+v, want %+v", *got, c.want)
			}
		})
	}
}

func TestReadSSH(t *testing.T) {
	debian := merge(fstest.MapFS{
		"etc/ssh/sshd_config":                      file("Include /etc/ssh/sshd_config.d/*.conf\nPort 22\nPermitRootLogin no\nPasswordAuthentication no\nAllowUsers alice\nMatch User bob\n  PasswordAuthentication yes\n"),
		"etc/ssh/sshd_config.d/50-cloud-init.conf": file("PermitRootLogin yes\nPort 2222\nAllowUsers bob\n"),
		"etc/systemd/system/sshd.service":          link("/usr/lib/systemd/system/ssh.service"),
	}, enabledUnit("ssh.service", "multi-user.target"))
	cases := []struct {
		name      string
		fsys      fstest.MapFS
		pkgs      map[string]string
		nilResult bool
		enabled   bool
		settings  map[string]string
		files     []string
		problem   string
	}{
		{
			name: "debian: drop-in included first wins; cumulative keywords joined; Match kept out", fsys: debian, enabled: true,
			settings: map[string]string{"port": "2222, 22", "permitrootlogin": "yes", "passwordauthentication": "no", "allowusers": "bob, alice"},
			files:    []string{"/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/50-cloud-init.conf"},
		},
		{
			name: "masked", fsys: merge(debian, fstest.MapFS{"etc/systemd/system/ssh.service": link("/dev/null"), "etc/systemd/system/sshd.service": link("/dev/null")}),
			settings: map[string]string{"port": "2222, 22", "permitrootlogin": "yes", "passwordauthentication": "no", "allowusers": "bob, alice"},
			files:    []string{"/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/50-cloud-init.conf"},
		},
		{
			name:    "alpine openrc",
			fsys:    fstest.MapFS{"etc/ssh/sshd_config": file("PermitRootLogin prohibit-password\n"), "etc/runlevels/default/sshd": link("/etc/init.d/sshd"), "etc/init.d/sshd": file("")},
			enabled: true, settings: map[string]string{"permitrootlogin": "prohibit-password"}, files: []string{"/etc/ssh/sshd_config"},
		},
		{
			name:    "sysv",
			fsys:    fstest.MapFS{"etc/ssh/sshd_config": file(""), "etc/rc2.d/S02ssh": link("../init.d/ssh")},
			enabled: true, settings: map[string]string{}, files: []string{"/etc/ssh/sshd_config"},
		},
		{name: "package without config", fsys: fstest.MapFS{}, pkgs: map[string]string{"openssh-server": "9.2"}},
		{name: "not installed", fsys: fstest.MapFS{"etc/ssh/ssh_config": file("")}, nilResult: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newReader(c.fsys)
			s := readSSH(r, c.pkgs, guestconf.NewSystemd(c.fsys))
			if c.nilResult {
				if s != nil {
					t.Errorf("ssh = %s, want nil", asJSON(s))
				}
				return
			}
			if s == nil || !s.Installed || s.Enabled != c.enabled || !slices.Equal(s.Files, c.files) {
				t.Fatalf("ssh = %s", asJSON(s))
			}
			if len(s.Settings) != len(c.settings) {
				t.Errorf("settings = %v, want %v", s.Settings, c.settings)
			}
			for k, v := range c.settings {
				if s.Settings[k] != v {
					t.Errorf("%s = %q, want %q", k, s.Settings[k], v)
				}
			}
			noProblems(t, r)
		})
	}
	// An unreadable include is a problem, not a crash or a silent default.
	fsys := hugeFS{MapFS: fstest.MapFS{"etc/ssh/sshd_config": file("Include /etc/ssh/big.conf\n"), "etc/ssh/big.conf": file("")}, name: "etc/ssh/big.conf", t: t}
	r := newReader(fsys)
	if s := readSSH(r, nil, guestconf.NewSystemd(fsys)); s == nil || s.Settings != nil {
		t.Errorf("ssh = %s", asJSON(s))
	}
	if len(r.problems) != 1 || r.problems[0].Section != "ssh" || !strings.Contains(r.problems[0].Message, guest.ErrTooLarge.Error()) {
		t.Errorf("problems = %s", asJSON(r.problems))
	}
}

func TestReadFstab(t *testing.T) {
	r := newReader(fstest.MapFS{"etc/fstab": file("# <file system> <mount point> <type> <options> <dump> <pass>\nUUID=abc / ext4 errors=remount-ro 0 1\n/dev/sdb1 /mnt/my\\040data xfs defaults,noexec\n/swapfile none swap sw 0 0\n")})
	ents := readFstab(r)
	noProblems(t, r)
	if len(ents) != 3 || ents[0].MountPoint != "/" || ents[0].Pass != 1 || ents[1].MountPoint != "/mnt/my data" || !ents[1].HasOption("noexec") || ents[2].Type != "swap" || ents[1].Line != 3 {
		t.Errorf("fstab = %s", asJSON(ents))
	}
	r = newReader(fstest.MapFS{})
	if ents := readFstab(r); ents != nil {
		t.Errorf("absent fstab = %v", ents)
	}
	noProblems(t, r)
	r = newReader(fstest.MapFS{"etc/fstab/x": file("")})
	if ents := readFstab(r); ents != nil || len(r.problems) != 1 || r.problems[0].Path != "/etc/fstab" {
		t.Errorf("fstab dir: %v %s", ents, asJSON(r.problems))
	}
}

func bstr(b bool) string { return strconv.FormatBool(b) }

func itoa(n int) string { return strconv.Itoa(n) }
