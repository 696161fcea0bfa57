package profile

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"guestkit.io/batch/internal/guestconf"
	"guestkit.io/batch/internal/pkgversion"
)

// sshdPackages are the packages that ship sshd (Debian, RHEL, SUSE and
// Alpine: openssh-server; Arch and older SUSE: openssh).
var sshdPackages = []string{"openssh-server", "openssh"}

// sshdBinaries are where distributions install sshd.
var sshdBinaries = []string{"usr/sbin/sshd", "usr/bin/sshd", "sbin/sshd"}

// sshdApplies applies the sshd rules when sshd is installed: its package,
// or an sshd binary installed by other means. With a known package list a
// leftover /etc/ssh/sshd_config is not a server (dpkg keeps a removed
// package's configuration until it is purged), so the rules are
// notapplicable, as CIS 5.1 ("if the SSH server is in use") and SSG's
// sshd rules (platform: package openssh-server) have it. With an unknown
// package list the configuration file still counts.
func sshdApplies() Applicability {
	return Applicability{Families: []string{FamilyLinux}, When: func(e *Env) (bool, string) {
		if _, ok := e.Installed(sshdPackages...); ok {
			return true, ""
		}
		for _, f := range sshdBinaries {
			if guestconf.Exists(e.FS(), f) {
				return true, ""
			}
		}
		if !e.PackagesKnown() {
			if guestconf.Exists(e.FS(), guestconf.SSHDConfigPath) {
				return true, ""
			}
			return false, fmt.Sprintf("OpenSSH server not found: none of %s exists and the package list is unknown",
				joinList(absAll(append(slices.Clone(sshdBinaries), guestconf.SSHDConfigPath))))
		}
		why := fmt.Sprintf("OpenSSH server not installed: no package %s and none of %s exists", joinList(sshdPackages), joinList(absAll(sshdBinaries)))
		if guestconf.Exists(e.FS(), guestconf.SSHDConfigPath) {
			why += "; /etc/ssh/sshd_config is left over from a removed package"
		}
		return false, why
	}}
}

// sshdVersion is the installed OpenSSH release.
type sshdVersion struct {
	known bool
	num   int    // major*100 + minor: 902 for 9.2p1
	label string // "OpenSSH 9.2", or why the version is unknown
	pkg   string // "openssh-server 1:9.2p1-2+deb12u3"
}

// installedSSHD reads the OpenSSH release from the package list, splitting
// the package version by its package manager's rules.
func installedSSHD(e *Env) sshdVersion {
	p, ok := e.Installed(sshdPackages...)
	if !ok {
		if !e.PackagesKnown() {
			return sshdVersion{label: "the OpenSSH version is unknown: the package list is not available"}
		}
		return sshdVersion{label: "the OpenSSH version is unknown: sshd is not installed by a package"}
	}
	f := pkgversion.Format(e.OS().PackageFormat)
	up := p.Version
	if v, err := pkgversion.Parse(f, p.Version); err == nil {
		up = v.Version
	} else if i := strings.IndexByte(up, ':'); i >= 0 { // unknown format: drop an epoch
		up = up[i+1:]
	}
	m := sshdRelease.FindStringSubmatch(up)
	if m == nil {
		return sshdVersion{label: fmt.Sprintf("the OpenSSH version is unknown: package %s version %q is not an OpenSSH release", p.Name, p.Version)}
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return sshdVersion{known: true, num: major*100 + minor,
		label: fmt.Sprintf("OpenSSH %d.%d", major, minor), pkg: p.Name + " " + p.Version}
}

var sshdRelease = regexp.MustCompile(`^(\d+)\.(\d+)`)

// sshdDefault is a compiled-in default of sshd from release since
// (major*100+minor) on, until the next entry.
type sshdDefault struct {
	since int
	value string
}

func (d sshdDefault) release() string {
	if d.since == 0 {
		return "every release"
	}
	return fmt.Sprintf("OpenSSH %d.%d and later", d.since/100, d.since%100)
}

// sshdDefaults lists keyword's compiled-in default by release, read from
// servconf.c fill_default_server_options and myproposal.h
// (KEX_SERVER_ENCRYPT, KEX_SERVER_MAC, KEX_SERVER_KEX) of each release and
// the release notes (7.0: "PermitRootLogin ... changed from yes to
// prohibit-password"; 6.7: CBC and arcfour ciphers no longer offered by
// sshd; 8.2: diffie-hellman-group14-sha1 dropped from the default KEX).
// A keyword not listed here has had the same default (fallback) in every
// release since 6.6: MaxAuthTries 6, X11Forwarding no, IgnoreRhosts yes,
// HostbasedAuthentication no, PermitEmptyPasswords no, PasswordAuthentication
// yes, PermitUserEnvironment no, ClientAliveInterval 0, ClientAliveCountMax
// 3, LoginGraceTime 120, LogLevel INFO.
func sshdDefaults(keyword, fallback string) []sshdDefault {
	switch strings.ToLower(keyword) {
	case "permitrootlogin":
		return []sshdDefault{{0, "yes"}, {700, "prohibit-password"}}
	case "ciphers":
		return []sshdDefault{
			{0, "aes128-ctr,aes192-ctr,aes256-ctr,arcfour256,arcfour128,aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-cbc,3des-cbc,blowfish-cbc,cast128-cbc,aes192-cbc,aes256-cbc,arcfour,rijndael-cbc@lysator.liu.se"},
			{607, "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com"},
			{1000, "chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr"},
		}
	case "macs":
		// hmac-sha1 and umac-64 in every release (and MD5 before 6.7).
		return []sshdDefault{{0, defaultMACs}}
	case "kexalgorithms":
		return []sshdDefault{
			{0, "curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group-exchange-sha1,diffie-hellman-group14-sha1,diffie-hellman-group1-sha1"},
			{607, "curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group14-sha1"},
			{703, "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256,diffie-hellman-group14-sha1"},
			{802, "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256"},
			{900, defaultKex},
			{909, "sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,mlkem768x25519-sha256,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256"},
			{1000, "mlkem768x25519-sha256,sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521"},
		}
	}
	return []sshdDefault{{0, fallback}}
}

// defaultsFor returns the default in force for v, or every default when
// the version is unknown.
func defaultsFor(list []sshdDefault, v sshdVersion) []sshdDefault {
	if !v.known {
		return list
	}
	cur := list[0]
	for _, d := range list {
		if d.since <= v.num {
			cur = d
		}
	}
	return []sshdDefault{cur}
}

// sshdCheck describes a rule on one sshd keyword.
type sshdCheck struct {
	keyword string
	def     string // OpenSSH's built-in default where it never changed (see sshdDefaults)
	// ok judges the lower-cased value and says why.
	ok func(v string) (bool, string)
}

// verdict of one value: pass, fail, or undecided (depends on an unknown
// default).
type sshdVerdict int

const (
	sshdPass sshdVerdict = iota
	sshdUndecided
	sshdFail // a fail anywhere outweighs an undecided value elsewhere
)

// judge decides a value as written. For algorithm lists the +, - and ^
// modifiers are applied to the installed release's default list (all
// releases' when the version is unknown: undecided if they disagree).
func (c sshdCheck) judge(val string, defs []sshdDefault) (sshdVerdict, string) {
	v := strings.ToLower(val)
	if !isAlgKeyword(c.keyword) || v == "" || !strings.ContainsAny(v[:1], "+-^") {
		if ok, why := c.ok(v); !ok {
			return sshdFail, why
		}
		return sshdPass, ""
	}
	return c.judgeAll(defs, func(d sshdDefault) string { return expandAlgs(v, d.value) })
}

// judgeAll judges the value each default gives; they must agree.
func (c sshdCheck) judgeAll(defs []sshdDefault, value func(sshdDefault) string) (sshdVerdict, string) {
	var first sshdVerdict
	var firstWhy string
	for i, d := range defs {
		ok, why := c.ok(strings.ToLower(value(d)))
		got := sshdPass
		if !ok {
			got = sshdFail
		}
		if i == 0 {
			first, firstWhy = got, why
		} else if got != first {
			return sshdUndecided, "releases differ"
		}
	}
	return first, firstWhy
}

func isAlgKeyword(k string) bool {
	switch strings.ToLower(k) {
	case "ciphers", "macs", "kexalgorithms":
		return true
	}
	return false
}

// expandAlgs applies sshd's list modifiers (kex_assemble_names): +list
// appends to the default, ^list prepends, -list removes the patterns
// (wildcards * and ?) from the default.
func expandAlgs(v, def string) string {
	d := strings.Split(def, ",")
	switch v[0] {
	case '+':
		return strings.Join(append(d, strings.Split(v[1:], ",")...), ",")
	case '^':
		return v[1:] + "," + def
	case '-':
		pats := strings.Split(v[1:], ",")
		var out []string
		for _, a := range d {
			if !slices.ContainsFunc(pats, func(p string) bool { m, _ := path.Match(p, a); return m }) {
				out = append(out, a)
			}
		}
		return strings.Join(out, ",")
	}
	return v
}

// eval decides a sshd rule on sshd's effective configuration, as CIS 5.1
// audits it with `sshd -T`: Include expanded, the first value of a keyword
// wins, and a keyword no file sets takes the compiled-in default of the
// installed OpenSSH release (a default the benchmark accepts passes, one it
// does not fails; when the release is unknown and releases differ, the
// rule is notchecked).
//
// Match blocks do not change the global value, but sshd applies a matching
// block's value to that connection (`sshd -T -C user=...`). CIS 5.1 asks,
// where Match is used, to run the audit with those connection parameters
// and "verify the setting is not incorrectly configured in a match block";
// SSG's sshd_lineinfile OVAL requires every line setting the keyword to
// have the wanted value. So a Match block that sets a value the rule does
// not accept fails it, whichever users or hosts it names; its criteria are
// in the evidence.
func (c sshdCheck) eval(_ context.Context, e *Env) Outcome {
	cfg, err := e.SSHD()
	if err != nil && !isNotExist(err) {
		return readFailure(err)
	}
	ver := installedSSHD(e)
	defs := defaultsFor(sshdDefaults(c.keyword, c.def), ver)
	var ev []Evidence
	var verdict sshdVerdict
	var why string
	o, found := guestconf.SSHDOption{}, false
	if cfg != nil {
		o, found = cfg.Effective(c.keyword)
	}
	if found {
		verdict, why = c.judge(o.Value(), defs)
		ev = append(ev, at(o.Source, o.Keyword+" "+o.Value(), "first value wins"))
		for _, later := range cfg.All(c.keyword)[1:] {
			if !strings.EqualFold(later.Value(), o.Value()) {
				ev = append(ev, at(later.Source, later.Keyword+" "+later.Value(), "ignored: an earlier line already set "+c.keyword))
			}
		}
	} else {
		verdict, why = c.judgeAll(defs, func(d sshdDefault) string { return d.value })
		ev = append(ev, c.defaultEvidence(cfg, defs, ver))
	}
	if why != "" {
		ev[0].Note += "; " + why
	}
	if cfg != nil {
		for _, m := range cfg.MatchOverrides(c.keyword) {
			mv, mwhy := c.judge(m.Value(), defs)
			if mv == sshdPass {
				continue
			}
			n := fmt.Sprintf("Match %s sets %s %s (%s): connections matching it get that value (sshd -T -C), which CIS 5.1 and SSG do not accept",
				m.Criteria, m.Keyword, m.Value(), mwhy)
			if strings.EqualFold(m.Criteria, "all") {
				n = fmt.Sprintf("Match all sets %s %s (%s) for every connection", m.Keyword, m.Value(), mwhy)
			}
			ev = append(ev, at(m.Source, m.Keyword+" "+m.Value(), n))
			verdict = max(verdict, mv)
		}
	}
	switch verdict {
	case sshdPass:
		return pass(ev...)
	case sshdFail:
		return fail(ev...)
	}
	return Outcome{Status: StatusNotChecked, Evidence: append(ev, note("%s is decided by the default of the installed OpenSSH release: %s", c.keyword, ver.label))}
}

// defaultEvidence says that no file sets the keyword and which default
// applies.
func (c sshdCheck) defaultEvidence(cfg *guestconf.SSHDConfig, defs []sshdDefault, ver sshdVersion) Evidence {
	where := "not set in " + guestconf.Abs(guestconf.SSHDConfigPath)
	if cfg == nil {
		where = "sshd_config does not exist (sshd refuses to start without it; it exits when its configuration file is missing), so the built-in defaults are what an empty file gives"
	} else if len(cfg.Files) > 1 {
		where = "not set in " + joinList(cfg.Files)
	}
	ev := Evidence{File: "/" + guestconf.SSHDConfigPath}
	if len(defs) == 1 {
		d := defs[0]
		ev.Value = c.keyword + " " + d.value
		if ver.known {
			ev.Note = fmt.Sprintf("%s; the OpenSSH default applies: %s's default is %s (package %s)", where, ver.label, d.value, ver.pkg)
		} else {
			ev.Note = fmt.Sprintf("%s; the OpenSSH default applies: %s's default is %s (%s, which does not change it)", where, d.release(), d.value, ver.label)
		}
		return ev
	}
	var vals []string
	for i, d := range defs {
		r := d.release()
		if d.since == 0 && i+1 < len(defs) {
			r = fmt.Sprintf("before OpenSSH %d.%d", defs[i+1].since/100, defs[i+1].since%100)
		}
		vals = append(vals, r+": "+d.value)
	}
	ev.Value = c.keyword + " (default)"
	ev.Note = fmt.Sprintf("%s; the OpenSSH default applies, but %s; defaults by release: %s", where, ver.label, strings.Join(vals, " | "))
	return ev
}

func equals(want string) func(string) (bool, string) {
	return func(v string) (bool, string) {
		if v == want {
			return true, ""
		}
		return false, "must be " + want
	}
}

func intAtMost(max int) func(string) (bool, string) {
	return func(v string) (bool, string) {
		n, err := strconv.Atoi(v)
		if err != nil {
			return false, "not a number"
		}
		if n > max {
			return false, fmt.Sprintf("%d is more than %d", n, max)
		}
		return true, ""
	}
}

// sshdSeconds parses sshd's time format ("300", "5m", "1h30m").
func sshdSeconds(v string) (int, bool) {
	total, cur := 0, -1
	mult := map[byte]int{'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= '0' && c <= '9':
			if cur < 0 {
				cur = 0
			}
			cur = cur*10 + int(c-'0')
		case mult[c] > 0 && cur >= 0:
			total += cur * mult[c]
			cur = -1
		default:
			return 0, false
		}
	}
	if cur >= 0 {
		total += cur
	}
	return total, v != ""
}

// Algorithm lists. Strong sets follow CIS 5.1.6/5.1.12/5.1.15 and PCI 2.2.7.
const (
	strongCiphers = "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr"
	strongMACs    = "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-512,hmac-sha2-256,umac-128@openssh.com"
	weakKex       = "diffie-hellman-group1-sha1,diffie-hellman-group14-sha1,diffie-hellman-group-exchange-sha1"
	// OpenSSH's server default MACs (6.7 to 10.x): includes SHA-1 and 64-bit UMAC.
	defaultMACs = "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1"
	// OpenSSH 9.x defaults for ciphers (6.7 to 9.9) and kex (9.0 to 9.8);
	// sshdDefaults has every release's.
	defaultCiphers = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com"
	defaultKex     = "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256"
)

// algList checks an algorithm list (modifiers already applied, see
// expandAlgs). allowed (when non-nil) is the set every algorithm must be
// in; deniedCSV lists algorithms that must not be.
func algList(allowedCSV, deniedCSV string) func(string) (bool, string) {
	var allowed, denied []string
	if allowedCSV != "" {
		allowed = strings.Split(allowedCSV, ",")
	}
	if deniedCSV != "" {
		denied = strings.Split(deniedCSV, ",")
	}
	return func(v string) (bool, string) {
		var bad []string
		for _, a := range strings.Split(v, ",") {
			a = strings.TrimSpace(a)
			if a == "" || slices.Contains(bad, a) {
				continue
			}
			if (allowed != nil && !slices.Contains(allowed, a)) || slices.Contains(denied, a) {
				bad = append(bad, a)
			}
		}
		if len(bad) > 0 {
			return false, "weak: " + strings.Join(bad, ",")
		}
		return true, ""
	}
}

func sshRules() []Rule {
	sec := []string{"security"}
	type def struct {
		id, title string
		sev       Severity
		refs      References
		check     sshdCheck
		fix       string
	}
	defs := []def{
		{"sshd_disable_root_login", "SSH root login is disabled", SeverityHigh,
			References{CISDebian: "5.1.20", CISRHEL: "5.1.20", CISLevel: 1, PCIDSS: []string{"2.2.6", "8.2.2"}},
			sshdCheck{"PermitRootLogin", "prohibit-password", equals("no")},
			"Set `PermitRootLogin no` in /etc/ssh/sshd_config (before any Include that sets it, since the first value wins)."},
		{"sshd_disable_empty_passwords", "SSH refuses empty passwords", SeverityHigh,
			References{CISDebian: "5.1.19", CISRHEL: "5.1.19", CISLevel: 1, PCIDSS: []string{"2.2.2", "8.3.1"}},
			sshdCheck{"PermitEmptyPasswords", "no", equals("no")},
			"Set `PermitEmptyPasswords no` in /etc/ssh/sshd_config."},
		{"sshd_set_max_auth_tries", "SSH MaxAuthTries is 4 or less", SeverityMedium,
			References{CISDebian: "5.1.16", CISRHEL: "5.1.16", CISLevel: 1, PCIDSS: []string{"2.2.6"}},
			sshdCheck{"MaxAuthTries", "6", intAtMost(4)},
			"Set `MaxAuthTries 4` in /etc/ssh/sshd_config."},
		// No CIS item: CIS Debian 12 5.1.8 and RHEL 9 5.1.10 are "Ensure
		// sshd DisableForwarding is enabled" (Level 2, CaC
		// sshd_disable_forwarding), which also forbids agent, TCP and
		// stream-local forwarding; X11Forwarding no alone does not meet it.
		{"sshd_disable_x11_forwarding", "SSH X11 forwarding is disabled", SeverityMedium,
			References{PCIDSS: []string{"2.2.6"}},
			sshdCheck{"X11Forwarding", "no", equals("no")},
			"Set `X11Forwarding no` (or `DisableForwarding yes`) in /etc/ssh/sshd_config."},
		{"sshd_use_strong_ciphers", "SSH uses only strong ciphers", SeverityMedium,
			References{CISDebian: "5.1.6", CISRHEL: "5.1.4", CISLevel: 1, PCIDSS: []string{"2.2.7", "4.2.1"}},
			sshdCheck{"Ciphers", defaultCiphers, algList(strongCiphers, "")},
			"Set `Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr`."},
		{"sshd_use_strong_macs", "SSH uses only strong MACs", SeverityMedium,
			References{CISDebian: "5.1.15", CISRHEL: "5.1.6", CISLevel: 1, PCIDSS: []string{"2.2.7", "4.2.1"}},
			sshdCheck{"MACs", defaultMACs, algList(strongMACs, "")},
			"Set `MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-512,hmac-sha2-256`; OpenSSH's default list includes hmac-sha1 and umac-64."},
		{"sshd_use_strong_kex", "SSH uses no SHA-1 key exchange", SeverityMedium,
			References{CISDebian: "5.1.12", CISRHEL: "5.1.5", CISLevel: 1, PCIDSS: []string{"2.2.7", "4.2.1"}},
			sshdCheck{"KexAlgorithms", defaultKex, algList("", weakKex)},
			"Remove diffie-hellman-group1-sha1, diffie-hellman-group14-sha1 and diffie-hellman-group-exchange-sha1 from KexAlgorithms."},
		{"sshd_disable_rhosts", "SSH ignores .rhosts files", SeverityMedium,
			References{CISDebian: "5.1.11", CISRHEL: "5.1.13", CISLevel: 1, PCIDSS: []string{"2.2.6"}},
			sshdCheck{"IgnoreRhosts", "yes", equals("yes")},
			"Set `IgnoreRhosts yes` in /etc/ssh/sshd_config."},
		// ComplianceAsCode's rule is linux_os/guide/services/ssh/ssh_server/
		// disable_host_auth (no sshd_ prefix); CIS Debian 12 v1.1.0 5.1.10 and
		// RHEL 9 5.1.12 map to it in CaC's controls.
		{"sshd_disable_host_auth", "SSH host-based authentication is disabled", SeverityMedium,
			References{CISDebian: "5.1.10", CISRHEL: "5.1.12", CISLevel: 1, ComplianceAsCode: "disable_host_auth", PCIDSS: []string{"2.2.6"}},
			sshdCheck{"HostbasedAuthentication", "no", equals("no")},
			"Set `HostbasedAuthentication no` in /etc/ssh/sshd_config."},
		{"sshd_set_idle_timeout", "SSH idle sessions time out (ClientAliveInterval 1-300s)", SeverityMedium,
			References{CISDebian: "5.1.7", CISRHEL: "5.1.9", CISLevel: 1, PCIDSS: []string{"8.2.8"}},
			sshdCheck{"ClientAliveInterval", "0", func(v string) (bool, string) {
				n, ok := sshdSeconds(v)
				if !ok {
					return false, "not a time"
				}
				if n < 1 || n > 300 {
					return false, fmt.Sprintf("%ds is not between 1 and 300 (0 disables the timeout)", n)
				}
				return true, ""
			}},
			"Set `ClientAliveInterval 300` (or less) in /etc/ssh/sshd_config."},
		{"sshd_set_keepalive", "SSH ClientAliveCountMax is 1-3", SeverityLow,
			References{CISDebian: "5.1.7", CISRHEL: "5.1.9", CISLevel: 1, PCIDSS: []string{"8.2.8"}},
			sshdCheck{"ClientAliveCountMax", "3", func(v string) (bool, string) {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > 3 {
					return false, "must be 1, 2 or 3"
				}
				return true, ""
			}},
			"Set `ClientAliveCountMax 3` (or less, but not 0) in /etc/ssh/sshd_config."},
		{"sshd_do_not_permit_user_env", "SSH does not let users set environment options", SeverityMedium,
			References{CISDebian: "5.1.21", CISRHEL: "5.1.21", CISLevel: 1, PCIDSS: []string{"2.2.6"}},
			sshdCheck{"PermitUserEnvironment", "no", equals("no")},
			"Set `PermitUserEnvironment no` in /etc/ssh/sshd_config."},
		{"sshd_set_loglevel_info", "SSH LogLevel is INFO or VERBOSE", SeverityLow,
			References{CISDebian: "5.1.14", CISRHEL: "5.1.15", CISLevel: 1, PCIDSS: []string{"10.2.1"}},
			sshdCheck{"LogLevel", "info", func(v string) (bool, string) {
				if v == "info" || v == "verbose" {
					return true, ""
				}
				return false, "must be INFO or VERBOSE"
			}},
			"Set `LogLevel VERBOSE` (or INFO) in /etc/ssh/sshd_config."},
		{"sshd_set_login_grace_time", "SSH LoginGraceTime is 60 seconds or less", SeverityLow,
			References{CISDebian: "5.1.13", CISRHEL: "5.1.14", CISLevel: 1, PCIDSS: []string{"2.2.6"}},
			sshdCheck{"LoginGraceTime", "120", func(v string) (bool, string) {
				n, ok := sshdSeconds(v)
				if !ok || n < 1 || n > 60 {
					return false, "must be between 1 and 60 seconds"
				}
				return true, ""
			}},
			"Set `LoginGraceTime 60` in /etc/ssh/sshd_config."},
	}
	var out []Rule
	for _, d := range defs {
		if d.refs.ComplianceAsCode == "" {
			d.refs.ComplianceAsCode = d.id
		}
		out = append(out, Rule{
			ID: d.id, Title: d.title, Severity: d.sev, References: d.refs, Applies: sshdApplies(),
			Remediation: d.fix, Profiles: sec, Eval: d.check.eval,
			Offline: sshdOffline(d.check.keyword, d.title),
		})
	}
	out = append(out, Rule{
		ID: "file_permissions_sshd_config", Title: "/etc/ssh/sshd_config is mode 0600 and owned by root", Severity: SeverityMedium,
		References: References{CISDebian: "5.1.1", CISRHEL: "5.1.1", CISLevel: 1, ComplianceAsCode: "file_permissions_sshd_config", PCIDSS: []string{"2.2.6"}},
		Applies:    sshdApplies(), Profiles: sec,
		Remediation: "chown root:root /etc/ssh/sshd_config && chmod 0600 /etc/ssh/sshd_config",
		Offline:     "The inode of /etc/ssh/sshd_config: mode 0600 or stricter, owner root; a missing file fails while sshd is installed.",
		Eval: func(_ context.Context, e *Env) Outcome {
			// sshd is installed (sshdApplies): a missing sshd_config fails.
			// SSG's file_permissions_sshd_config requires the file (template
			// file_permissions, missing_file_pass unset: all_exist) and CIS
			// 5.1.1 audits its mode; sshd itself will not start without it.
			return checkPerms(e, guestconf.SSHDConfigPath, 0o600, []uint32{0}, func() Outcome {
				return fail(Evidence{File: "/etc/ssh/sshd_config", Note: "does not exist while sshd is installed: sshd will not start, and CIS 5.1.1 and SSG need the file with mode 0600"})
			})
		},
	})
	return out
}

// sshdOffline is the Offline text of an sshd_config keyword rule.
func sshdOffline(keyword, title string) string {
	return "sshd's effective " + keyword + ": /etc/ssh/sshd_config, its Include files and sshd_config.d/*.conf (first value wins, Match blocks aside), else the installed OpenSSH release's default; passes when " + lowerFirst(title) + "."
}

// lowerFirst lowers a title's first letter for use mid-sentence, but not an
// acronym's ("SSH root login ...").
func lowerFirst(title string) string {
	if len(title) > 1 && title[1] >= 'A' && title[1] <= 'Z' {
		return title
	}
	return strings.ToLower(title[:1]) + title[1:]
}
