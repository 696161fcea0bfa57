package inspect

import (
	"errors"
	"io/fs"
	"strings"

	"sigs.k8s.io/yaml"

	"guestkit.io/batch/internal/guestconf"
)

func readCloudInit(r *reader, pkgs map[string]string, k *Kernels) *CloudInit {
	c := &CloudInit{}
	v, pkg := pkgs["cloud-init"]
	c.Version = v
	cfgs := []string{}
	if r.exists("etc/cloud/cloud.cfg") {
		cfgs = append(cfgs, "etc/cloud/cloud.cfg")
	}
	cfgs = append(cfgs, r.glob("cloud-init", "etc/cloud/cloud.cfg.d/*.cfg")...)
	c.Installed = pkg || len(cfgs) > 0 || r.exists("usr/bin/cloud-init")
	if !c.Installed {
		return nil
	}
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
			c.Datasources = doc.DatasourceList // later files override earlier
		}
	}
	c.Disabled = r.exists("etc/cloud/cloud-init.disabled") ||
		(k != nil && strings.Contains(" "+k.Cmdline+" ", " cloud-init=disabled "))
	return c
}

func readMachineID(r *reader) string {
	id := strings.TrimSpace(string(r.read("machine-id", "etc/machine-id")))
	if len(id) > 64 {
		id = id[:64]
	}
	return id
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
			st, err := units.Unit(u)
			if err != nil {
				continue
			}
			if st.UnitFile != "" {
				unitFound = true
			}
			if st.Enabled && !st.Masked {
				tool.Enabled = true
			}
		}
		if tool.Package != "" || unitFound {
			out = append(out, tool)
		}
	}
	return out
}

func readSecurity(r *reader, pkgs map[string]string, units *guestconf.Systemd, k *Kernels) *Security {
	cmdline := ""
	if k != nil {
		cmdline = " " + k.Cmdline + " "
	}
	sec := &Security{}
	// SELinux
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
		se.KernelDisabled = strings.Contains(cmdline, " selinux=0 ")
		sec.SELinux = se
	}
	// AppArmor
	if _, ok := pkgs["apparmor"]; ok || r.exists("etc/apparmor.d") {
		aa := &AppArmor{Installed: true}
		ents, _ := guestconf.ReadDir(r.fsys, "etc/apparmor.d")
		for _, e := range ents {
			if e.Type().IsRegular() {
				aa.Profiles++
			}
		}
		aa.KernelDisabled = strings.Contains(cmdline, " apparmor=0 ") || strings.Contains(cmdline, " security=selinux ")
		st, err := units.Unit("apparmor.service")
		aa.Enabled = !aa.KernelDisabled && (err != nil || !st.Masked)
		sec.AppArmor = aa
	}
	sec.Firewall = readFirewall(r, pkgs, units)
	sec.SSH = readSSH(r, pkgs, units)
	return sec
}

func readFirewall(r *reader, pkgs map[string]string, units *guestconf.Systemd) *Firewall {
	enabled := func(u string) bool {
		st, err := units.Unit(u)
		return err == nil && st.Enabled && !st.Masked
	}
	if data := r.read("security", "etc/ufw/ufw.conf"); data != nil {
		fw := &Firewall{Kind: "ufw", Source: "/etc/ufw/ufw.conf"}
		for _, kv := range guestconf.ParseEqualKV(data, "/etc/ufw/ufw.conf") {
			if kv.Key == "ENABLED" {
				fw.Enabled = strings.EqualFold(kv.Value, "yes")
			}
		}
		for _, kv := range guestconf.ParseEqualKV(r.read("security", "etc/default/ufw"), "/etc/default/ufw") {
			if kv.Key == "DEFAULT_INPUT_POLICY" {
				fw.Default = kv.Value
			}
		}
		return fw
	}
	if _, ok := pkgs["firewalld"]; ok || r.exists("etc/firewalld/firewalld.conf") {
		fw := &Firewall{Kind: "firewalld", Enabled: enabled("firewalld.service"), Source: "firewalld.service"}
		for _, kv := range guestconf.ParseEqualKV(r.read("security", "etc/firewalld/firewalld.conf"), "/etc/firewalld/firewalld.conf") {
			if kv.Key == "DefaultZone" {
				fw.Default = kv.Value
			}
		}
		return fw
	}
	for _, c := range []struct{ kind, unit, pkg string }{
		{"nftables", "nftables.service", "nftables"},
		{"iptables", "iptables.service", "iptables-services"},
		{"iptables", "netfilter-persistent.service", "netfilter-persistent"},
	} {
		if enabled(c.unit) {
			return &Firewall{Kind: c.kind, Enabled: true, Source: c.unit}
		}
	}
	return &Firewall{Kind: "none"}
}

// sshdReported are the sshd keywords the report shows, the ones security
// reviews ask about. Profile rules read the full configuration.
func sshdReported() []string {
	return []string{"port", "listenaddress", "permitrootlogin", "passwordauthentication", "pubkeyauthentication",
		"permitemptypasswords", "kbdinteractiveauthentication", "challengeresponseauthentication", "usepam",
		"x11forwarding", "allowtcpforwarding", "maxauthtries", "clientaliveinterval", "clientalivecountmax",
		"logingracetime", "loglevel", "ciphers", "macs", "kexalgorithms", "allowusers", "allowgroups",
		"denyusers", "denygroups", "ignorerhosts", "hostbasedauthentication", "protocol", "banner", "subsystem"}
}

func readSSH(r *reader, pkgs map[string]string, units *guestconf.Systemd) *SSH {
	_, pkg := pkgs["openssh-server"]
	if !pkg && !r.exists(guestconf.SSHDConfigPath) {
		return nil
	}
	s := &SSH{Installed: true}
	for _, u := range []string{"ssh.service", "sshd.service", "ssh.socket", "sshd.socket"} {
		if st, err := units.Unit(u); err == nil && st.Enabled && !st.Masked {
			s.Enabled = true
		}
	}
	if !s.Enabled && r.exists("etc/runlevels/default/sshd") {
		s.Enabled = true // OpenRC
	}
	cfg, err := guestconf.ParseSSHD(r.fsys)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.problem("ssh", "/"+guestconf.SSHDConfigPath, err)
		}
		return s
	}
	s.Files = cfg.Files
	s.Settings = map[string]string{}
	for _, k := range sshdReported() {
		if o, ok := cfg.Effective(k); ok {
			s.Settings[k] = o.Value()
		}
	}
	return s
}

func readFstab(r *reader) []guestconf.FstabEntry {
	ents, err := guestconf.ParseFstab(r.fsys)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.problem("fstab", "/etc/fstab", err)
		}
		return nil
	}
	return ents
}
