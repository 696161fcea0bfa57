package profile

import (
	"context"
	"fmt"
	"strings"

	"guestkit.io/batch/internal/guestconf"
)

// sysctlSpec is a rule on one kernel parameter. kernelDefault is only
// reported: an unset key fails whatever the default (see rule).
type sysctlSpec struct {
	id, key, want, kernelDefault string
	title                        string
	sev                          Severity
	cisU, cisR                   string
	pci                          []string
	ipv6                         bool
}

// sysctlSpecs' CIS items are those CaC's control files map the same rule
// to. fs.suid_dumpable is Debian 12 1.5.3 "Ensure core dumps are
// restricted"; the RHEL 9 benchmark has no such item (its 1.5.3 and 1.5.4
// are systemd-coredump's ProcessSizeMax and Storage), so it cites none.
func sysctlSpecs() []sysctlSpec {
	net := []string{"1.4.3", "1.4.5"}
	return []sysctlSpec{
		{"sysctl_net_ipv4_ip_forward", "net.ipv4.ip_forward", "0", "0", "IPv4 forwarding is disabled", SeverityMedium, "3.3.1", "3.3.1", net, false},
		{"sysctl_net_ipv4_conf_all_accept_redirects", "net.ipv4.conf.all.accept_redirects", "0", "1", "ICMP redirects are not accepted (all interfaces)", SeverityMedium, "3.3.5", "3.3.5", net, false},
		{"sysctl_net_ipv4_conf_default_accept_redirects", "net.ipv4.conf.default.accept_redirects", "0", "1", "ICMP redirects are not accepted (new interfaces)", SeverityMedium, "3.3.5", "3.3.5", net, false},
		{"sysctl_net_ipv6_conf_all_accept_redirects", "net.ipv6.conf.all.accept_redirects", "0", "1", "IPv6 ICMP redirects are not accepted (all interfaces)", SeverityMedium, "3.3.5", "3.3.5", net, true},
		{"sysctl_net_ipv6_conf_default_accept_redirects", "net.ipv6.conf.default.accept_redirects", "0", "1", "IPv6 ICMP redirects are not accepted (new interfaces)", SeverityMedium, "3.3.5", "3.3.5", net, true},
		{"sysctl_net_ipv4_conf_all_send_redirects", "net.ipv4.conf.all.send_redirects", "0", "1", "ICMP redirects are not sent", SeverityMedium, "3.3.2", "3.3.2", net, false},
		{"sysctl_net_ipv4_conf_all_accept_source_route", "net.ipv4.conf.all.accept_source_route", "0", "0", "Source-routed packets are not accepted", SeverityMedium, "3.3.8", "3.3.8", net, false},
		{"sysctl_net_ipv4_conf_all_rp_filter", "net.ipv4.conf.all.rp_filter", "1", "0", "Strict reverse-path filtering (all interfaces)", SeverityMedium, "3.3.7", "3.3.7", net, false},
		{"sysctl_net_ipv4_conf_default_rp_filter", "net.ipv4.conf.default.rp_filter", "1", "0", "Strict reverse-path filtering (new interfaces)", SeverityMedium, "3.3.7", "3.3.7", net, false},
		{"sysctl_net_ipv4_tcp_syncookies", "net.ipv4.tcp_syncookies", "1", "1", "TCP SYN cookies are enabled", SeverityMedium, "3.3.10", "3.3.10", net, false},
		{"sysctl_kernel_randomize_va_space", "kernel.randomize_va_space", "2", "2", "Full address space layout randomisation", SeverityMedium, "1.5.1", "1.5.1", []string{"3.3.1.1"}, false},
		{"sysctl_fs_suid_dumpable", "fs.suid_dumpable", "0", "0", "SUID programs do not dump core", SeverityMedium, "1.5.3", "", []string{"3.3.1.1"}, false},
	}
}

// ipv6Disabled reports IPv6 switched off by sysctl or the kernel command line.
func ipv6Disabled(e *Env) (bool, string) {
	if s, err := e.Sysctl(); err == nil {
		if a, _, ok := s.Lookup("net.ipv6.conf.all.disable_ipv6"); ok && a.Value == "1" {
			return true, fmt.Sprintf("IPv6 is disabled by %s (net.ipv6.conf.all.disable_ipv6 = 1)", a.Source)
		}
	}
	for _, c := range kernelCmdlines(e) {
		for _, arg := range strings.Fields(c.Value) {
			if arg == "ipv6.disable=1" {
				return true, fmt.Sprintf("IPv6 is disabled on the kernel command line (%s)", c.Source)
			}
		}
	}
	return false, ""
}

func (sp sysctlSpec) rule() Rule {
	r := Rule{
		ID: sp.id, Title: sp.title + " (" + sp.key + " = " + sp.want + ")", Severity: sp.sev,
		Applies:    onLinux(),
		References: References{CISDebian: sp.cisU, CISRHEL: sp.cisR, CISLevel: 1, ComplianceAsCode: sp.id, PCIDSS: sp.pci},
		Remediation: fmt.Sprintf("Set `%s = %s` in a file in /etc/sysctl.d/ and remove conflicting settings that are read later (/etc/sysctl.conf is read last).",
			sp.key, sp.want),
		Offline: fmt.Sprintf("The last %s line in systemd-sysctl's order (sysctl.d/*.conf in /etc, /run, /usr/local/lib, /usr/lib and /lib by file name, then /etc/sysctl.conf) must set %s; unset fails whatever the kernel default.",
			sp.key, sp.want),
		Profiles: []string{"hardening"},
		Eval: func(_ context.Context, e *Env) Outcome {
			s, err := e.Sysctl()
			if err != nil {
				return readFailure(err)
			}
			a, over, ok := s.Lookup(sp.key)
			if !ok {
				// CIS (3.3.x, 1.5.x audits: "is set in a file" as well as
				// the running value) and SSG (sysctl template; its test
				// line_not_there.fail.sh sets the right runtime value with
				// no file and expects fail) want the value persistent.
				// Offline only the files exist, so an unset key fails
				// even when the kernel default is the wanted value.
				return fail(note("%s is not set in any sysctl file (read: %s; searched %s); the kernel default %s is not a persistent setting (want %s)",
					sp.key, filesOrNone(s.Files), sysctlSearched, sp.kernelDefault, sp.want))
			}
			ev := []Evidence{at(a.Source, a.Key+" = "+a.Value, "the last assignment wins; want "+sp.want)}
			for _, o := range over {
				ev = append(ev, at(o.Source, o.Key+" = "+o.Value, "overridden by "+a.Source.String()))
			}
			return decide(a.Value == sp.want, ev...)
		},
	}
	if sp.ipv6 {
		r.Applies.When = func(e *Env) (bool, string) {
			off, why := ipv6Disabled(e)
			return !off, why
		}
	}
	return r
}

// sysctlSearched is where guestconf.ParseSysctl looks, in systemd's order.
const sysctlSearched = "/etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d, /lib/sysctl.d (*.conf, merged by name), then /etc/sysctl.conf"

func filesOrNone(f []string) string {
	if len(f) == 0 {
		return "none, no sysctl file exists"
	}
	return joinList(f)
}

// limitsCore finds the "* hard core N" line that wins in limits.conf and
// limits.d (read in that order; a later line for the same item wins).
func limitsCore(e *Env) Outcome {
	files := []string{"etc/security/limits.conf"}
	if more, err := guestconf.Glob(e.FS(), "/etc/security/limits.d/*.conf"); err == nil {
		files = append(files, more...)
	}
	var win *Evidence
	winVal := ""
	var ev []Evidence
	for _, f := range files {
		data, err := guestconf.ReadFile(e.FS(), f)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return readFailure(err)
		}
		for i, l := range strings.Split(string(data), "\n") {
			if c := strings.IndexByte(l, '#'); c >= 0 {
				l = l[:c]
			}
			fl := strings.Fields(l)
			if len(fl) != 4 || fl[0] != "*" || fl[2] != "core" || (fl[1] != "hard" && fl[1] != "-") {
				continue
			}
			if win != nil {
				ev = append(ev, Evidence{File: win.File, Line: win.Line, Value: win.Value, Note: "overridden by a later line"})
			}
			win = &Evidence{File: guestconf.Abs(f), Line: i + 1, Value: strings.Join(fl, " ")}
			winVal = fl[3]
		}
	}
	if win == nil {
		return fail(note("no `* hard core 0` in %s: users may raise their core size limit", joinList(absAll(files))))
	}
	win.Note = "want * hard core 0"
	return decide(winVal == "0", append([]Evidence{*win}, ev...)...)
}

func coredumpApplies() Applicability {
	return Applicability{Families: []string{FamilyLinux}, When: whenInstalledOrFile("systemd-coredump",
		[]string{"systemd-coredump"},
		[]string{"etc/systemd/coredump.conf", "usr/lib/systemd/coredump.conf", "usr/lib/systemd/systemd-coredump", "lib/systemd/systemd-coredump"})}
}

func coredumpSetting(key, want, def string) func(context.Context, *Env) Outcome {
	return func(_ context.Context, e *Env) Outcome {
		v, found, err := guestconf.SystemdConfigValue(e.FS(), "coredump.conf", "Coredump", key)
		if err != nil {
			return readFailure(err)
		}
		if !found {
			return decide(def == want, note("%s not set in coredump.conf or its drop-ins; default %s applies (want %s)", key, def, want))
		}
		return decide(strings.EqualFold(v.Value, want), at(v.Source, key+"="+v.Value, "the last assignment wins; want "+want))
	}
}

func sysctlRules() []Rule {
	var out []Rule
	for _, sp := range sysctlSpecs() {
		out = append(out, sp.rule())
	}
	hard := []string{"hardening"}
	out = append(out,
		Rule{
			ID: "disable_users_coredumps", Title: "Users cannot dump core (* hard core 0)", Severity: SeverityMedium,
			Applies:     onLinux(),
			References:  References{CISDebian: "1.5.3", CISLevel: 1, ComplianceAsCode: "disable_users_coredumps", PCIDSS: []string{"3.3.1.1"}},
			Offline:     "The winning `* hard core` line of /etc/security/limits.conf and limits.d/*.conf is 0.",
			Remediation: "Add `* hard core 0` to /etc/security/limits.conf or a file in /etc/security/limits.d/.",
			Profiles:    hard,
			Eval:        func(_ context.Context, e *Env) Outcome { return limitsCore(e) },
		},
		// Debian 12 1.5.3 covers systemd-coredump too: its remediation sets
		// Storage=none and ProcessSizeMax=0 when systemd-coredump is
		// installed (CaC maps only the limits and sysctl rules there); RHEL 9
		// splits them into 1.5.4 (Storage) and 1.5.3 (ProcessSizeMax).
		Rule{
			ID: "coredump_disable_storage", Title: "systemd-coredump stores no core dumps (Storage=none)", Severity: SeverityMedium,
			References:  References{CISDebian: "1.5.3", CISRHEL: "1.5.4", CISLevel: 1, ComplianceAsCode: "coredump_disable_storage", PCIDSS: []string{"3.3.1.1"}},
			Offline:     "Storage= in /etc/systemd/coredump.conf and its coredump.conf.d drop-ins is none; unset (external) fails.",
			Remediation: "Set `Storage=none` in the [Coredump] section of /etc/systemd/coredump.conf (or a drop-in in /etc/systemd/coredump.conf.d/).",
			Profiles:    hard,
			Applies:     coredumpApplies(),
			Eval:        coredumpSetting("Storage", "none", "external"),
		},
		Rule{
			ID: "coredump_disable_backtraces", Title: "systemd-coredump processes no core dumps (ProcessSizeMax=0)", Severity: SeverityLow,
			References:  References{CISDebian: "1.5.3", CISRHEL: "1.5.3", CISLevel: 1, ComplianceAsCode: "coredump_disable_backtraces", PCIDSS: []string{"3.3.1.1"}},
			Offline:     "ProcessSizeMax= in /etc/systemd/coredump.conf and its coredump.conf.d drop-ins is 0; unset (1G) fails.",
			Remediation: "Set `ProcessSizeMax=0` in the [Coredump] section of /etc/systemd/coredump.conf.",
			Profiles:    hard,
			Applies:     coredumpApplies(),
			Eval:        coredumpSetting("ProcessSizeMax", "0", "1G"),
		},
	)
	return out
}
