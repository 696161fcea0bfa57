package profile

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"guestkit.io/batch/internal/guestconf"
)

func sshdApplies() Applicability {
	return Applicability{When: whenInstalledOrFile("OpenSSH server",
		[]string{"openssh-server", "openssh"}, []string{"etc/ssh/sshd_config", "usr/sbin/sshd"})}
}

// sshdCheck describes a rule on one sshd keyword.
type sshdCheck struct {
	keyword string
	def     string // OpenSSH's built-in default
	// ok judges the lower-cased value and says why.
	ok func(v string) (bool, string)
}

// eval decides a sshd rule from the global (first) value. Settings in
// Match blocks do not change the global value; insecure ones are reported
// as evidence, and one in "Match all" fails the rule since it applies to
// every connection.
func (c sshdCheck) eval(_ context.Context, e *Env) Outcome {
	cfg, err := e.SSHD()
	var ev []Evidence
	var val string
	switch {
	case err != nil && !isNotExist(err):
		return readFailure(err)
	case err != nil:
		val = c.def
		ev = append(ev, Evidence{File: "/etc/ssh/sshd_config", Value: c.keyword + " " + c.def,
			Note: "sshd_config does not exist; sshd uses its built-in default"})
	default:
		if o, found := cfg.Effective(c.keyword); found {
			val = o.Value()
			ev = append(ev, at(o.Source, o.Keyword+" "+o.Value(), "first value wins"))
			for _, later := range cfg.All(c.keyword)[1:] {
				if !strings.EqualFold(later.Value(), o.Value()) {
					ev = append(ev, at(later.Source, later.Keyword+" "+later.Value(), "ignored: an earlier line already set "+c.keyword))
				}
			}
		} else {
			val = c.def
			ev = append(ev, Evidence{File: "/etc/ssh/sshd_config", Value: c.keyword + " " + c.def,
				Note: fmt.Sprintf("not set in %s; OpenSSH default applies", joinList(cfg.Files))})
		}
	}
	good, why := c.ok(strings.ToLower(val))
	if why != "" {
		ev[0].Note += "; " + why
	}
	if cfg != nil {
		for _, m := range cfg.MatchOverrides(c.keyword) {
			mok, mwhy := c.ok(strings.ToLower(m.Value()))
			if mok {
				continue
			}
			n := fmt.Sprintf("Match %s sets %s %s (%s); applies only to matching connections", m.Criteria, m.Keyword, m.Value(), mwhy)
			if m.Criteria == "all" {
				n = fmt.Sprintf("Match all sets %s %s (%s) for every connection", m.Keyword, m.Value(), mwhy)
				good = false
			}
			ev = append(ev, at(m.Source, m.Keyword+" "+m.Value(), n))
		}
	}
	return decide(good, ev...)
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
	// OpenSSH 9.x server default MACs: includes SHA-1 and 64-bit UMAC.
	defaultMACs = "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1"
	// OpenSSH 9.x defaults for ciphers and kex contain no weak algorithm.
	defaultCiphers = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com"
	defaultKex     = "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256"
)

// algList checks an algorithm list, honouring the +, - and ^ modifiers
// against the default list. allowed (when non-nil) is the set every
// resulting algorithm must be in; deniedCSV lists algorithms that must not be.
func algList(def, allowedCSV, deniedCSV string) func(string) (bool, string) {
	var allowed, denied []string
	if allowedCSV != "" {
		allowed = strings.Split(allowedCSV, ",")
	}
	if deniedCSV != "" {
		denied = strings.Split(deniedCSV, ",")
	}
	return func(v string) (bool, string) {
		var list []string
		switch {
		case strings.HasPrefix(v, "+"):
			list = append(strings.Split(def, ","), strings.Split(v[1:], ",")...)
		case strings.HasPrefix(v, "^"):
			list = append(strings.Split(v[1:], ","), strings.Split(def, ",")...)
		case strings.HasPrefix(v, "-"):
			list = strings.Split(def, ",") // removing never adds a weak one
		default:
			list = strings.Split(v, ",")
		}
		var bad []string
		for _, a := range list {
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
			References{CISDebian: "5.1.20", CISRHEL: "5.1.20", PCIDSS: []string{"2.2.6", "8.2.2"}},
			sshdCheck{"PermitRootLogin", "prohibit-password", equals("no")},
			"Set `PermitRootLogin no` in /etc/ssh/sshd_config (before any Include that sets it, since the first value wins)."},
		{"sshd_disable_empty_passwords", "SSH refuses empty passwords", SeverityHigh,
			References{CISDebian: "5.1.19", CISRHEL: "5.1.19", PCIDSS: []string{"2.2.2", "8.3.1"}},
			sshdCheck{"PermitEmptyPasswords", "no", equals("no")},
			"Set `PermitEmptyPasswords no` in /etc/ssh/sshd_config."},
		{"sshd_set_max_auth_tries", "SSH MaxAuthTries is 4 or less", SeverityMedium,
			References{CISDebian: "5.1.16", CISRHEL: "5.1.16", PCIDSS: []string{"2.2.6"}},
			sshdCheck{"MaxAuthTries", "6", intAtMost(4)},
			"Set `MaxAuthTries 4` in /etc/ssh/sshd_config."},
		{"sshd_disable_x11_forwarding", "SSH X11 forwarding is disabled", SeverityMedium,
			References{CISDebian: "5.1.8", CISRHEL: "5.1.10", PCIDSS: []string{"2.2.6"}},
			sshdCheck{"X11Forwarding", "no", equals("no")},
			"Set `X11Forwarding no` (or `DisableForwarding yes`) in /etc/ssh/sshd_config."},
		{"sshd_use_strong_ciphers", "SSH uses only strong ciphers", SeverityMedium,
			References{CISDebian: "5.1.6", CISRHEL: "5.1.4", PCIDSS: []string{"2.2.7", "4.2.1"}},
			sshdCheck{"Ciphers", defaultCiphers, algList(defaultCiphers, strongCiphers, "")},
			"Set `Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr`."},
		{"sshd_use_strong_macs", "SSH uses only strong MACs", SeverityMedium,
			References{CISDebian: "5.1.15", CISRHEL: "5.1.6", PCIDSS: []string{"2.2.7", "4.2.1"}},
			sshdCheck{"MACs", defaultMACs, algList(defaultMACs, strongMACs, "")},
			"Set `MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-512,hmac-sha2-256`; OpenSSH's default list includes hmac-sha1 and umac-64."},
		{"sshd_use_strong_kex", "SSH uses no SHA-1 key exchange", SeverityMedium,
			References{CISDebian: "5.1.12", CISRHEL: "5.1.5", PCIDSS: []string{"2.2.7", "4.2.1"}},
			sshdCheck{"KexAlgorithms", defaultKex, algList(defaultKex, "", weakKex)},
			"Remove diffie-hellman-group1-sha1, diffie-hellman-group14-sha1 and diffie-hellman-group-exchange-sha1 from KexAlgorithms."},
		{"sshd_disable_rhosts", "SSH ignores .rhosts files", SeverityMedium,
			References{CISDebian: "5.1.11", CISRHEL: "5.1.13", PCIDSS: []string{"2.2.6"}},
			sshdCheck{"IgnoreRhosts", "yes", equals("yes")},
			"Set `IgnoreRhosts yes` in /etc/ssh/sshd_config."},
		{"sshd_disable_host_auth", "SSH host-based authentication is disabled", SeverityMedium,
			References{CISDebian: "5.1.10", CISRHEL: "5.1.12", PCIDSS: []string{"2.2.6"}},
			sshdCheck{"HostbasedAuthentication", "no", equals("no")},
			"Set `HostbasedAuthentication no` in /etc/ssh/sshd_config."},
		{"sshd_set_idle_timeout", "SSH idle sessions time out (ClientAliveInterval 1-300s)", SeverityMedium,
			References{CISDebian: "5.1.7", CISRHEL: "5.1.9", PCIDSS: []string{"8.2.8"}},
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
			References{CISDebian: "5.1.7", CISRHEL: "5.1.9", PCIDSS: []string{"8.2.8"}},
			sshdCheck{"ClientAliveCountMax", "3", func(v string) (bool, string) {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > 3 {
					return false, "must be 1, 2 or 3"
				}
				return true, ""
			}},
			"Set `ClientAliveCountMax 3` (or less, but not 0) in /etc/ssh/sshd_config."},
		{"sshd_do_not_permit_user_env", "SSH does not let users set environment options", SeverityMedium,
			References{CISDebian: "5.1.21", CISRHEL: "5.1.21", PCIDSS: []string{"2.2.6"}},
			sshdCheck{"PermitUserEnvironment", "no", equals("no")},
			"Set `PermitUserEnvironment no` in /etc/ssh/sshd_config."},
		{"sshd_set_loglevel_info", "SSH LogLevel is INFO or VERBOSE", SeverityLow,
			References{CISDebian: "5.1.14", CISRHEL: "5.1.15", PCIDSS: []string{"10.2.1"}},
			sshdCheck{"LogLevel", "info", func(v string) (bool, string) {
				if v == "info" || v == "verbose" {
					return true, ""
				}
				return false, "must be INFO or VERBOSE"
			}},
			"Set `LogLevel VERBOSE` (or INFO) in /etc/ssh/sshd_config."},
		{"sshd_set_login_grace_time", "SSH LoginGraceTime is 60 seconds or less", SeverityLow,
			References{CISDebian: "5.1.13", CISRHEL: "5.1.14", PCIDSS: []string{"2.2.6"}},
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
		d.refs.ComplianceAsCode = d.id
		out = append(out, Rule{
			ID: d.id, Title: d.title, Severity: d.sev, References: d.refs, Applies: sshdApplies(),
			Remediation: d.fix, Profiles: sec, Eval: d.check.eval,
		})
	}
	out = append(out, Rule{
		ID: "file_permissions_sshd_config", Title: "/etc/ssh/sshd_config is mode 0600 and owned by root", Severity: SeverityMedium,
		References: References{CISDebian: "5.1.1", CISRHEL: "5.1.1", ComplianceAsCode: "file_permissions_sshd_config", PCIDSS: []string{"2.2.6"}},
		Applies:    sshdApplies(), Profiles: sec,
		Remediation: "chown root:root /etc/ssh/sshd_config && chmod 0600 /etc/ssh/sshd_config",
		Eval: func(_ context.Context, e *Env) Outcome {
			return checkPerms(e, guestconf.SSHDConfigPath, 0o600, []uint32{0}, func() Outcome {
				return pass(Evidence{File: "/etc/ssh/sshd_config", Note: "file does not exist (sshd runs on defaults); nothing to protect"})
			})
		},
	})
	return out
}
