package inspect

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"

	"guestkit.io/batch/internal/guestconf"
)

// maxMachineID bounds the machine-id read: the file is 33 bytes.
const maxMachineID = 4096

var machineIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// cmdlineValue returns the last value of key= on the default boot entry's
// command line (the kernel uses the last), and whether key was there.
func cmdlineValue(k *Kernels, key string) (string, bool) {
	if k == nil {
		return "", false
	}
	v, found := "", false
	for _, a := range strings.Fields(k.Cmdline) {
		if n, val, ok := strings.Cut(a, "="); ok && n == key {
			v, found = strings.Trim(val, `"`), true
		}
	}
	return v, found
}

// unitState asks whether a unit exists and starts at boot, recording a
// read error as a problem of section.
func unitState(r *reader, units *guestconf.Systemd, section, name string) (found, enabled bool, st guestconf.UnitState) {
	st, err := units.Unit(name)
	if err != nil {
		r.problem(section, "/etc/systemd/system", fmt.Errorf("unit %s: %w", name, err))
		return false, false, st
	}
	return st.UnitFile != "" || st.Enabled, st.Enabled && !st.Masked, st
}

func readCloudInit(r *reader, pkgs map[string]string, units *guestconf.Systemd, k *Kernels) *CloudInit {
	c := &CloudInit{}
	v, pkg := pkgs["cloud-init"]
	c.Version = v
	var cfgs []string
	if r.exists("etc/cloud/cloud.cfg") {
		cfgs = append(cfgs, "etc/cloud/cloud.cfg")
	}
	cfgs = append(cfgs, r.glob("cloud-init", "etc/cloud/cloud.cfg.d/*.cfg")...)
	c.Installed = pkg || len(cfgs) > 0 || r.exists("usr/bin/cloud-init")
	if !c.Installed {
		return nil
	}
	// cloud.cfg, then cloud.cfg.d in name order: a later datasource_list
	// replaces an earlier one.
	for _, f := range cfgs {
		c.ConfigFiles = append(c.ConfigFiles, guestconf.Abs(f))
		data := r.read("cloud-init", f)
		if data == nil {
			continue
		}
		var doc struct {
			DatasourceList []string `json:"datasource_list"`
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			r.problem("cloud-init", guestconf.Abs(f), err)
			continue
		}
		if doc.DatasourceList != nil {
			c.Datasources = doc.DatasourceList
		}
	}
	v, _ = cmdlineValue(k, "cloud-init")
	c.Disabled = r.exists("etc/cloud/cloud-init.disabled") || v == "disabled"
	// Installed but never started: every stage's unit (or OpenRC script)
	// disabled or masked, or cloud-init.target masked.
	if _, _, st := unitState(r, units, "cloud-init", "cloud-init.target"); st.Masked {
		c.Disabled = true
	}
	anyFound, anyEnabled := false, false
	for _, u := range []string{"cloud-init-local.service", "cloud-init.service", "cloud-init-main.service", "cloud-init-network.service", "cloud-config.service", "cloud-final.service"} {
		found, enabled, st := unitState(r, units, "cloud-init", u)
		anyFound = anyFound || found || st.Masked || r.exists("etc/init.d/"+strings.TrimSuffix(u, ".service"))
		anyEnabled = anyEnabled || enabled
	}
	if anyFound && !anyEnabled {
		c.Disabled = true
	}
	return c
}

// readMachineID reads /etc/machine-id (or D-Bus's copy): 32 hex digits,
// "uninitialized" (systemd's first-boot marker) or empty (a golden image).
// Anything else is a problem, not reported.
func readMachineID(r *reader) string {
	for _, p := range []string{"etc/machine-id", "var/lib/dbus/machine-id"} {
		data, err := guestconf.ReadFileMax(r.fsys, p, maxMachineID)
		if err != nil {
			r.notExistOK("machine-id", p, err)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return ""
		}
		line, _, _ := strings.Cut(string(data), "\n")
		id := strings.TrimSpace(line)
		if id == "" || id == "uninitialized" || machineIDRe.MatchString(id) {
			return id
		}
		r.problem("machine-id", guestconf.Abs(p), errors.New("not a machine ID (32 lower-case hex digits)"))
		return ""
	}
	return ""
}

// guestTools are hypervisor and cloud agents: package names and the units
// that run them.
func guestTools() []struct {
	name        string
	pkgs, units []string
} {
	return []struct {
		name        string
		pkgs, units []string
	}{
		{"qemu-guest-agent", []string{"qemu-guest-agent"}, []string{"qemu-guest-agent.service"}},
		{"open-vm-tools", []string{"open-vm-tools"}, []string{"open-vm-tools.service", "vmtoolsd.service"}},
		{"hyperv-daemons", []string{"hyperv-daemons", "hyperv-daemons-license", "hypervkvpd"}, []string{"hv-kvp-daemon.service", "hypervkvpd.service"}},
		{"virtualbox-guest-additions", []string{"virtualbox-guest-utils", "virtualbox-guest-additions-iso"}, []string{"virtualbox-guest-utils.service", "vboxadd-service.service"}},
		{"xen-guest-agent", []string{"xe-guest-utilities", "xen-guest-agent"}, []string{"xe-linux-distribution.service", "xen-guest-agent.service"}},
		{"spice-vdagent", []string{"spice-vdagent"}, []string{"spice-vdagentd.service", "spice-vdagentd.socket"}},
		{"azure-linux-agent", []string{"walinuxagent", "WALinuxAgent"}, []string{"walinuxagent.service", "waagent.service"}},
		{"google-guest-agent", []string{"google-guest-agent"}, []string{"google-guest-agent.service"}},
		{"amazon-ssm-agent", []string{"amazon-ssm-agent"}, []string{"amazon-ssm-agent.service", "snap.amazon-ssm-agent.amazon-ssm-agent.service"}},
	}
}

// readGuestTools finds agents by package or unit. Enabled: a unit starts
// at boot; a static unit (no [Install] section) counts, since udev or a
// dependency starts it (qemu-guest-agent on Debian starts when its
// virtio port appears).
func readGuestTools(r *reader, pkgs map[string]string, units *guestconf.Systemd) []GuestTool {
	var out []GuestTool
	for _, t := range guestTools() {
		tool := GuestTool{Name: t.name}
		for _, p := range t.pkgs {
			if v, ok := pkgs[p]; ok {
				tool.Package, tool.Version = p, v
				break
			}
		}
		unitFound := false
		for _, u := range t.units {
			found, enabled, st := unitState(r, units, "guest-tools", u)
			unitFound = unitFound || found
			if enabled || (st.UnitFile != "" && !st.Masked && isStatic(r, u)) {
				tool.Enabled = true
			}
		}
		if tool.Package != "" || unitFound {
			out = append(out, tool)
		}
	}
	return out
}

// isStatic reports a unit file without install information.
func isStatic(r *reader, unit string) bool {
	for _, k := range []string{"WantedBy", "RequiredBy", "UpheldBy", "Alias", "Also"} {
		vals, err := guestconf.UnitValues(r.fsys, unit, "Install", k)
		if err != nil || len(vals) > 0 {
			return false
		}
	}
	return true
}

func readSecurity(r *reader, pkgs map[string]string, units *guestconf.Systemd, k *Kernels) *Security {
	sec := &Security{}
	if data := r.read("security", "etc/selinux/config"); data != nil {
		se := &SELinux{Configured: true, Source: "/etc/selinux/config"}
		for _, kv := range guestconf.ParseEqualKV(data, "/etc/selinux/config") {
			switch kv.Key {
			case "SELINUX":
				se.Mode = strings.ToLower(kv.Value)
			case "SELINUXTYPE":
				se.Type = kv.Value
			}
		}
		v, _ := cmdlineValue(k, "selinux")
		se.KernelDisabled = v == "0"
		sec.SELinux = se
	}
	sec.AppArmor = readAppArmor(r, pkgs, units, k)
	sec.Firewall = readFirewall(r, pkgs, units)
	sec.SSH = readSSH(r, pkgs, units)
	return sec
}

// readAppArmor counts the profiles loaded at boot: regular files at the top
// of /etc/apparmor.d that apparmor_parser does not skip and that are not
// linked from disable/.
func readAppArmor(r *reader, pkgs map[string]string, units *guestconf.Systemd, k *Kernels) *AppArmor {
	const dir = "etc/apparmor.d"
	if _, ok := pkgs["apparmor"]; !ok && !r.exists(dir) {
		return nil
	}
	aa := &AppArmor{Installed: true}
	disabled := map[string]bool{}
	if ents, err := guestconf.ReadDir(r.fsys, dir+"/disable"); err == nil {
		for _, e := range ents {
			disabled[e.Name()] = true
		}
	}
	ents, err := guestconf.ReadDir(r.fsys, dir)
	if err != nil {
		r.notExistOK("security", dir, err)
	}
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && !disabled[n] && !ignoredConfig(n) && n != "README" && !strings.HasSuffix(n, ".md") {
			aa.Profiles++
		}
	}
	// apparmor=0, or another major LSM chosen by security= or left out of lsm=.
	if v, ok := cmdlineValue(k, "apparmor"); ok && v == "0" {
		aa.KernelDisabled = true
	}
	if v, ok := cmdlineValue(k, "security"); ok && v != "" && v != "apparmor" {
		aa.KernelDisabled = true
	}
	if v, ok := cmdlineValue(k, "lsm"); ok && !strings.Contains(","+v+",", ",apparmor,") {
		aa.KernelDisabled = true
	}
	_, enabled, _ := unitState(r, units, "security", "apparmor.service")
	aa.Enabled = enabled && !aa.KernelDisabled
	return aa
}

// readFirewall reports the firewall that starts at boot: the first enabled
// of ufw, firewalld, nftables and iptables; else an installed but disabled
// ufw or firewalld; else "none".
func readFirewall(r *reader, pkgs map[string]string, units *guestconf.Systemd) *Firewall {
	var installed *Firewall
	note := func(fw *Firewall) *Firewall {
		if fw.Enabled {
			return fw
		}
		if installed == nil {
			installed = fw
		}
		return nil
	}
	if data := r.read("security", "etc/ufw/ufw.conf"); data != nil {
		fw := &Firewall{Kind: "ufw", Source: "/etc/ufw/ufw.conf"}
		if kv, ok := guestconf.Last(guestconf.ParseEqualKV(data, fw.Source), "ENABLED", false); ok {
			fw.Enabled = strings.EqualFold(kv.Value, "yes")
		}
		// ENABLED=yes does nothing if ufw.service does not run.
		if found, enabled, st := unitState(r, units, "security", "ufw.service"); (found || st.Masked) && !enabled {
			fw.Enabled = false
		}
		if kv, ok := guestconf.Last(guestconf.ParseEqualKV(r.read("security", "etc/default/ufw"), "/etc/default/ufw"), "DEFAULT_INPUT_POLICY", false); ok {
			fw.Default = strings.ToLower(kv.Value)
		}
		if fw := note(fw); fw != nil {
			return fw
		}
	}
	if _, ok := pkgs["firewalld"]; ok || r.exists("etc/firewalld") || r.exists("usr/lib/firewalld") {
		_, enabled, _ := unitState(r, units, "security", "firewalld.service")
		fw := &Firewall{Kind: "firewalld", Enabled: enabled, Source: "firewalld.service", Default: "public"}
		if kv, ok := guestconf.Last(guestconf.ParseEqualKV(r.read("security", "etc/firewalld/firewalld.conf"), "/etc/firewalld/firewalld.conf"), "DefaultZone", false); ok && kv.Value != "" {
			fw.Default = kv.Value
		}
		if fw := note(fw); fw != nil {
			return fw
		}
	}
	for _, c := range []struct{ kind, unit, rules string }{
		{"nftables", "nftables.service", "etc/nftables.conf"},
		{"nftables", "nftables.service", "etc/sysconfig/nftables.conf"},
		{"iptables", "iptables.service", "etc/sysconfig/iptables"},
		{"iptables", "netfilter-persistent.service", "etc/iptables/rules.v4"},
	} {
		if _, enabled, _ := unitState(r, units, "security", c.unit); enabled {
			return &Firewall{Kind: c.kind, Enabled: true, Source: c.unit, Default: inputPolicy(r, c.rules)}
		}
	}
	if installed != nil {
		return installed
	}
	return &Firewall{Kind: "none"}
}

var (
	// nftInput finds an input hook's policy: "type filter hook input priority 0; policy drop;".
	nftInput = regexp.MustCompile(`hook\s+input\b[^}]*?\bpolicy\s+(\w+)`)
	// iptInput is iptables-save's chain header ":INPUT DROP [0:0]".
	iptInput = regexp.MustCompile(`(?m)^:INPUT\s+(\w+)`)
)

// inputPolicy reads the default policy of the input chain from a rules
// file, or "" when it cannot tell.
func inputPolicy(r *reader, name string) string {
	data := r.read("security", name)
	for _, re := range []*regexp.Regexp{nftInput, iptInput} {
		if m := re.FindSubmatch(data); m != nil {
			return strings.ToLower(string(m[1]))
		}
	}
	return ""
}

// sshdReported are the sshd keywords the report shows, the ones security
// reviews ask about. Profile rules read the full configuration.
func sshdReported() []string {
	return []string{"port", "listenaddress", "permitrootlogin", "passwordauthentication", "pubkeyauthentication",
		"permitemptypasswords", "kbdinteractiveauthentication", "challengeresponseauthentication", "usepam",
		"x11forwarding", "allowtcpforwarding", "maxauthtries", "clientaliveinterval", "clientalivecountmax",
		"logingracetime", "loglevel", "ciphers", "macs", "kexalgorithms", "allowusers", "allowgroups",
		"denyusers", "denygroups", "ignorerhosts", "hostbasedauthentication", "protocol", "banner", "subsystem",
		"authorizedkeysfile", "authorizedkeyscommand"}
}

// sshdCumulative are keywords sshd accumulates over lines rather than
// taking the first.
func sshdCumulative(k string) bool {
	switch k {
	case "port", "listenaddress", "allowusers", "allowgroups", "denyusers", "denygroups", "subsystem":
		return true
	}
	return false
}

// readSSH reports sshd's effective global settings (the first value wins;
// a drop-in included before the main file's line overrides it) and
// whether sshd starts at boot under systemd, SysV or OpenRC.
func readSSH(r *reader, pkgs map[string]string, units *guestconf.Systemd) *SSH {
	_, pkg := pkgs["openssh-server"]
	if !pkg && !r.exists(guestconf.SSHDConfigPath) && !r.exists("usr/sbin/sshd") {
		return nil
	}
	s := &SSH{Installed: true}
	for _, u := range []string{"ssh.service", "sshd.service", "ssh.socket", "sshd.socket"} {
		if _, enabled, _ := unitState(r, units, "ssh", u); enabled {
			s.Enabled = true
		}
	}
	cfg, err := guestconf.ParseSSHD(r.fsys)
	if err != nil {
		r.notExistOK("ssh", guestconf.SSHDConfigPath, err)
		return s
	}
	s.Files = cfg.Files
	s.Settings = map[string]string{}
	for _, k := range sshdReported() {
		if sshdCumulative(k) {
			var vals []string
			for _, o := range cfg.All(k) {
				vals = append(vals, o.Value())
			}
			if len(vals) > 0 {
				s.Settings[k] = strings.Join(vals, ", ")
			}
		} else if o, ok := cfg.Effective(k); ok {
			s.Settings[k] = o.Value()
		}
	}
	return s
}

func readFstab(r *reader) []guestconf.FstabEntry {
	ents, err := guestconf.ParseFstab(r.fsys)
	if err != nil {
		r.notExistOK("fstab", "etc/fstab", err)
		return nil
	}
	return ents
}
