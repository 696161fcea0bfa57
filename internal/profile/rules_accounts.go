package profile

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"guestkit.io/batch/internal/guestconf"
	"guestkit.io/batch/internal/profile/names"
)

type passwdEntry struct {
	Name, Password string
	UID            int
	guestconf.Source
}

// passwdFile parses /etc/passwd; lines with fewer than 4 fields are
// skipped, a bad UID is -1.
func (e *Env) passwdFile() ([]passwdEntry, error) {
	return e.passwd.get(func() ([]passwdEntry, error) {
		ents, err := guestconf.ReadAccounts(e.FS(), "etc/passwd")
		if err != nil {
			return nil, err
		}
		var out []passwdEntry
		for _, a := range ents {
			f := a.Fields
			if len(f) < 4 || f[0] == "" {
				continue
			}
			uid, err := strconv.Atoi(f[2])
			if err != nil {
				uid = -1
			}
			out = append(out, passwdEntry{Name: f[0], Password: f[1], UID: uid, Source: a.Source})
		}
		return out, nil
	})
}

// loginDefsInt decides a numeric login.defs setting.
func loginDefsInt(key string, def int, ok func(int) bool, want string) func(context.Context, *Env) Outcome {
	return func(_ context.Context, e *Env) Outcome {
		d, err := guestconf.ParseLoginDefs(e.FS())
		if err != nil {
			if isNotExist(err) {
				return fail(Evidence{File: "/etc/login.defs", Note: fmt.Sprintf("login.defs does not exist; shadow-utils then uses %d for %s; want %s", def, key, want)})
			}
			return readFailure(err)
		}
		kv, found := d.Get(key)
		if !found {
			return decide(ok(def), Evidence{File: d.File, Value: key + " (unset)", Note: fmt.Sprintf("not set; default %d applies; want %s", def, want)})
		}
		n, err := strconv.Atoi(kv.Value)
		if err != nil {
			return fail(at(kv.Source, key+" "+kv.Value, "not a number; want "+want))
		}
		return decide(ok(n), at(kv.Source, key+" "+kv.Value, "want "+want))
	}
}

// passMaxDaysAtMost is PASS_MAX_DAYS in /etc/login.defs between 1 and
// max: CIS 5.4.1.1 asks 365, PCI-DSS 8.3.9 90; one parser for both.
func passMaxDaysAtMost(ctx context.Context, e *Env, max int) Outcome {
	return loginDefsInt("PASS_MAX_DAYS", 99999, func(n int) bool { return n >= 1 && n <= max }, fmt.Sprintf("1-%d", max))(ctx, e)
}

// shadowMaxDays decides field 5 (maximum password age) of every
// /etc/shadow entry with a usable password, as CaC's
// accounts_password_set_max_life_existing does (the password field does
// not start with ! or *): it must be set and between 1 and max. An unset
// field means the password never expires. The hash never goes into
// evidence.
func shadowMaxDays(e *Env, max int) Outcome {
	ents, err := guestconf.ReadAccounts(e.FS(), "etc/shadow")
	if err != nil {
		if isNotExist(err) {
			return notChecked("/etc/shadow does not exist; see accounts_password_all_shadowed")
		}
		return readFailure(err)
	}
	var bad []Evidence
	n := 0
	for _, a := range ents {
		f := a.Fields
		if len(f) < 5 || f[0] == "" || strings.HasPrefix(f[1], "!") || strings.HasPrefix(f[1], "*") {
			continue
		}
		n++
		days, err := strconv.Atoi(f[4])
		switch {
		case f[4] == "":
			bad = append(bad, Evidence{File: a.File, Line: a.Line, Value: f[0] + " max days (unset)", Note: fmt.Sprintf("the password never expires; want 1-%d (chage --maxdays)", max)})
		case err != nil || days < 1 || days > max:
			bad = append(bad, Evidence{File: a.File, Line: a.Line, Value: f[0] + " max days " + f[4], Note: fmt.Sprintf("want 1-%d", max)})
		}
	}
	if len(bad) > 0 {
		return fail(bad...)
	}
	return pass(Evidence{File: "/etc/shadow", Note: fmt.Sprintf("%d accounts with a password, each with a maximum age of %d days or less", n, max)})
}

// pciPasswordMaxAge decides PCI-DSS v4.0.1 8.3.9 for passwords as the only
// factor: changed at least every 90 days, for new accounts (login.defs)
// and existing ones (/etc/shadow). 8.3.9's alternative, dynamic analysis
// of the account's security posture, cannot be seen offline: a fail says so.
func pciPasswordMaxAge(ctx context.Context, e *Env) Outcome {
	const max = 90
	defs := passMaxDaysAtMost(ctx, e, max)
	if defs.Status == StatusError {
		return defs
	}
	sh := shadowMaxDays(e, max)
	switch {
	case sh.Status == StatusError:
		return sh
	case defs.Status == StatusPass && sh.Status == StatusPass:
		return pass(append(defs.Evidence, sh.Evidence...)...)
	case defs.Status == StatusPass && sh.Status == StatusNotChecked:
		return Outcome{Status: StatusNotChecked, Evidence: append(defs.Evidence, sh.Evidence...)}
	}
	ev := append(defs.Evidence, sh.Evidence...)
	return fail(append(ev, note("PCI-DSS 8.3.9 also accepts dynamic analysis of each account's security posture instead of a 90-day change; that cannot be seen on a powered-off disk"))...)
}

// passMaxDays decides CIS 5.4.1.1 "Ensure password expiration is
// configured": PASS_MAX_DAYS 365 or less, and (the benchmark's /etc/shadow
// audit, $5 < 1) more than 0; unset means shadow-utils' 99999 and fails,
// as CaC's check, which needs the line. CaC's OVAL (\d+ <= 365) passes 0;
// CIS flags 0, so 0 fails here. -1 (no expiry) fails both.
func passMaxDays(ctx context.Context, e *Env) Outcome { return passMaxDaysAtMost(ctx, e, 365) }

// parseUmask reads an octal or symbolic ("u=rwx,g=rx,o=") umask. Classes
// a symbolic umask does not name keep the usual 022 bits.
func parseUmask(v string) (int, bool) {
	if n, err := strconv.ParseInt(v, 8, 32); err == nil {
		return int(n), true
	}
	mask := 0o022
	for _, part := range strings.Split(v, ",") {
		who, perms, ok := strings.Cut(part, "=")
		if !ok {
			return 0, false
		}
		allow := 0
		for _, p := range perms {
			switch p {
			case 'r':
				allow |= 4
			case 'w':
				allow |= 2
			case 'x':
				allow |= 1
			default:
				return 0, false
			}
		}
		if who == "a" {
			who = "ugo"
		}
		for _, w := range who {
			shift := strings.IndexRune("ogu", w) * 3
			if shift < 0 {
				return 0, false
			}
			mask = mask&^(7<<shift) | (7&^allow)<<shift
		}
	}
	return mask, true
}

// umaskStrict: 027 or stricter means group cannot write, others nothing.
func umaskStrict(m int) bool { return m&0o027 == 0o027 }

// umaskInFiles decides a umask rule over shell rc files: every umask line
// must be strict, and there must be at least one.
func umaskInFiles(e *Env, files []string) Outcome {
	umaskRe := regexp.MustCompile(`^\s*umask\s+([0-7]{3,4}|[ugoa=,rwx]+)\s*(?:[;#&|].*)?$`)
	var ev []Evidence
	found, weak := 0, false
	for _, f := range files {
		data, err := guestconf.ReadFile(e.FS(), f)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return readFailure(err)
		}
		for i, l := range strings.Split(string(data), "\n") {
			m := umaskRe.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			found++
			v, ok := parseUmask(m[1])
			src := guestconf.Source{File: guestconf.Abs(f), Line: i + 1}
			switch {
			case !ok:
				weak = true
				ev = append(ev, at(src, strings.TrimSpace(l), "umask not understood"))
			case !umaskStrict(v):
				weak = true
				ev = append(ev, at(src, strings.TrimSpace(l), fmt.Sprintf("umask %04o is weaker than 027", v)))
			default:
				ev = append(ev, at(src, strings.TrimSpace(l), "027 or stricter"))
			}
		}
	}
	if found == 0 {
		return fail(note("no umask set in %s; shells keep the weaker inherited umask (usually 022)", joinList(absAll(files))))
	}
	return decide(!weak, ev...)
}

func accountRules() []Rule {
	comp := []string{"compliance"}
	sec := []string{"security"}
	return []Rule{
		{
			// PCI-DSS 8.3.9 wants 90 days (CaC's pcidss_4 control sets
			// var_accounts_maximum_age_login_defs=90), which 365 contradicts:
			// not cited; accounts_password_max_age_90_days checks it.
			ID: "accounts_maximum_age_login_defs", Title: "Password maximum age is 365 days or less (PASS_MAX_DAYS)", Severity: SeverityMedium,
			Applies:     onLinux(),
			References:  References{CISDebian: "5.4.1.1", CISRHEL: "5.4.1.1", CISLevel: 1, ComplianceAsCode: "accounts_maximum_age_login_defs"},
			Offline:     "PASS_MAX_DAYS in /etc/login.defs is 1 to 365; unset (shadow-utils' 99999) fails.",
			Remediation: "Set `PASS_MAX_DAYS 365` (or less) in /etc/login.defs and apply it to existing users with chage --maxdays.",
			Profiles:    comp,
			Eval:        passMaxDays,
		},
		{
			// PCI-DSS v4.0.1 8.3.9: passwords as the only factor are changed
			// at least every 90 days. CaC's pcidss_4 control maps it to
			// accounts_maximum_age_login_defs with
			// var_accounts_maximum_age_login_defs=90 and to
			// accounts_password_set_max_life_existing; the first id is the CIS
			// 365-day rule's, so this rule names the second. In pci-dss only:
			// 90 days contradicts CIS 5.4.1.1, and the seed profiles must not
			// fail an image hardened to CIS.
			ID: "accounts_password_max_age_90_days", Title: "Passwords expire after at most 90 days (login.defs and existing accounts)", Severity: SeverityMedium,
			Applies:     onLinux(),
			References:  References{ComplianceAsCode: "accounts_password_set_max_life_existing", PCIDSS: []string{"8.3.9"}},
			Offline:     "PASS_MAX_DAYS in /etc/login.defs is 1 to 90, and every /etc/shadow entry with a usable password (not ! or *) has a maximum age of 1 to 90 days; unset fails.",
			Remediation: "Set `PASS_MAX_DAYS 90` in /etc/login.defs and run `chage --maxdays 90 USER` for every account with a password, unless the account's security posture is analysed dynamically (PCI-DSS 8.3.9).",
			Profiles:    []string{names.PCIDSS},
			Eval:        pciPasswordMaxAge,
		},
		{
			// CIS 5.4.1.2 "Ensure minimum password days is configured" is
			// Level 2 - Server in the Debian 12, Ubuntu 24.04 and RHEL 9
			// benchmarks. Debian 12 and Ubuntu 24.04 title it Manual, RHEL 9
			// Automated; CaC maps this very rule to it in all three, so
			// OpenSCAP's CIS profiles score it and it is cited.
			ID: "accounts_minimum_age_login_defs", Title: "Password minimum age is at least 1 day (PASS_MIN_DAYS)", Severity: SeverityMedium,
			Applies:     onLinux(),
			References:  References{CISDebian: "5.4.1.2", CISRHEL: "5.4.1.2", CISLevel: 2, ComplianceAsCode: "accounts_minimum_age_login_defs"},
			Offline:     "PASS_MIN_DAYS in /etc/login.defs is 1 or more; unset fails.",
			Remediation: "Set `PASS_MIN_DAYS 1` in /etc/login.defs.",
			Profiles:    comp,
			Eval:        loginDefsInt("PASS_MIN_DAYS", 0, func(n int) bool { return n >= 1 }, "1 or more"),
		},
		{
			ID: "accounts_password_warn_age_login_defs", Title: "Password expiry warning is at least 7 days (PASS_WARN_AGE)", Severity: SeverityLow,
			Applies:     onLinux(),
			References:  References{CISDebian: "5.4.1.3", CISRHEL: "5.4.1.3", CISLevel: 1, ComplianceAsCode: "accounts_password_warn_age_login_defs"},
			Offline:     "PASS_WARN_AGE in /etc/login.defs is 7 or more; unset fails.",
			Remediation: "Set `PASS_WARN_AGE 7` in /etc/login.defs.",
			Profiles:    comp,
			Eval:        loginDefsInt("PASS_WARN_AGE", -1, func(n int) bool { return n >= 7 }, "7 or more"),
		},
		{
			ID: "accounts_umask_etc_login_defs", Title: "Default umask in login.defs is 027 or stricter", Severity: SeverityMedium,
			Applies:     onLinux(),
			References:  References{CISDebian: "5.4.3.3", CISRHEL: "5.4.3.3", CISLevel: 1, ComplianceAsCode: "accounts_umask_etc_login_defs"},
			Offline:     "UMASK in /etc/login.defs is 027 or stricter; unset fails.",
			Remediation: "Set `UMASK 027` in /etc/login.defs.",
			Profiles:    comp,
			Eval: func(_ context.Context, e *Env) Outcome {
				d, err := guestconf.ParseLoginDefs(e.FS())
				if err != nil {
					if isNotExist(err) {
						return fail(Evidence{File: "/etc/login.defs", Note: "login.defs does not exist; the default umask 022 applies"})
					}
					return readFailure(err)
				}
				kv, ok := d.Get("UMASK")
				if !ok {
					return fail(Evidence{File: d.File, Value: "UMASK (unset)", Note: "not set; default 022 is weaker than 027"})
				}
				v, err := strconv.ParseInt(kv.Value, 8, 32)
				if err != nil {
					return fail(at(kv.Source, "UMASK "+kv.Value, "not an octal umask"))
				}
				return decide(umaskStrict(int(v)), at(kv.Source, "UMASK "+kv.Value, "want 027 or stricter"))
			},
		},
		{
			ID: "accounts_umask_etc_profile", Title: "Login shells set umask 027 or stricter (/etc/profile, /etc/profile.d)", Severity: SeverityMedium,
			References:  References{CISDebian: "5.4.3.3", CISRHEL: "5.4.3.3", CISLevel: 1, ComplianceAsCode: "accounts_umask_etc_profile"},
			Offline:     "The umask set in /etc/profile and /etc/profile.d/*.sh is 027 or stricter; notapplicable without /etc/profile.",
			Remediation: "Add `umask 027` to /etc/profile (or a file in /etc/profile.d) and remove weaker umask lines.",
			Profiles:    comp,
			Applies: Applicability{Families: []string{FamilyLinux}, When: func(e *Env) (bool, string) {
				if guestconf.Exists(e.FS(), "etc/profile") {
					return true, ""
				}
				return false, "/etc/profile does not exist"
			}},
			Eval: func(_ context.Context, e *Env) Outcome {
				files := []string{"etc/profile"}
				if more, err := guestconf.Glob(e.FS(), "/etc/profile.d/*.sh"); err == nil {
					files = append(files, more...)
				}
				return umaskInFiles(e, files)
			},
		},
		{
			ID: "accounts_umask_etc_bashrc", Title: "Interactive bash sets umask 027 or stricter (/etc/bash.bashrc, /etc/bashrc)", Severity: SeverityLow,
			References:  References{CISDebian: "5.4.3.3", CISRHEL: "5.4.3.3", CISLevel: 1, ComplianceAsCode: "accounts_umask_etc_bashrc"},
			Offline:     "The umask set in /etc/bash.bashrc (Debian) or /etc/bashrc (RHEL) is 027 or stricter.",
			Remediation: "Set `umask 027` in /etc/bash.bashrc (Debian, SUSE) or /etc/bashrc (RHEL), replacing weaker umask lines.",
			Profiles:    comp,
			Applies: Applicability{Families: []string{FamilyLinux}, When: func(e *Env) (bool, string) {
				if guestconf.Exists(e.FS(), "etc/bash.bashrc") || guestconf.Exists(e.FS(), "etc/bashrc") {
					return true, ""
				}
				return false, "neither /etc/bash.bashrc nor /etc/bashrc exists"
			}},
			Eval: func(_ context.Context, e *Env) Outcome {
				return umaskInFiles(e, []string{"etc/bash.bashrc", "etc/bashrc"})
			},
		},
		{
			ID: "no_empty_passwords_etc_shadow", Title: "No account has an empty password in /etc/shadow", Severity: SeverityCritical,
			Applies:     onLinux(),
			References:  References{CISDebian: "7.2.2", CISRHEL: "7.2.2", CISLevel: 1, ComplianceAsCode: "no_empty_passwords_etc_shadow", PCIDSS: []string{"2.2.2", "8.3.1"}},
			Offline:     "No /etc/shadow entry has an empty password field.",
			Remediation: "Lock the accounts (`passwd -l NAME`) or give them a password.",
			Profiles:    sec,
			Eval: func(_ context.Context, e *Env) Outcome {
				ents, err := guestconf.ReadAccounts(e.FS(), "etc/shadow")
				if err != nil {
					if isNotExist(err) {
						return notChecked("/etc/shadow does not exist; see accounts_password_all_shadowed")
					}
					return readFailure(err)
				}
				var bad []Evidence
				n := 0
				for _, a := range ents {
					f := a.Fields
					if len(f) < 2 || f[0] == "" {
						continue
					}
					n++
					if f[1] == "" {
						// Never put the hash field into evidence; here it is empty.
						bad = append(bad, Evidence{File: a.File, Line: a.Line, Value: f[0], Note: "password field is empty: login without a password"})
					}
				}
				if len(bad) > 0 {
					return fail(bad...)
				}
				return pass(Evidence{File: "/etc/shadow", Note: fmt.Sprintf("%d accounts, none with an empty password field", n)})
			},
		},
		{
			ID: "accounts_no_uid_except_zero", Title: "Only root has UID 0", Severity: SeverityCritical,
			Applies:     onLinux(),
			References:  References{CISDebian: "5.4.2.1", CISRHEL: "5.4.2.1", CISLevel: 1, ComplianceAsCode: "accounts_no_uid_except_zero", PCIDSS: []string{"8.2.1"}},
			Offline:     "Only root has UID 0 in /etc/passwd.",
			Remediation: "Give the other UID 0 accounts their own UID, or remove them.",
			Profiles:    sec,
			Eval: func(_ context.Context, e *Env) Outcome {
				pw, err := e.passwdFile()
				if err != nil {
					return readFailure(err)
				}
				var bad []Evidence
				for _, p := range pw {
					if p.UID == 0 && p.Name != "root" {
						bad = append(bad, at(p.Source, p.Name+":0", "a second superuser account"))
					}
				}
				if len(bad) > 0 {
					return fail(bad...)
				}
				return pass(Evidence{File: "/etc/passwd", Note: fmt.Sprintf("%d accounts; UID 0 only for root", len(pw))})
			},
		},
		{
			// CIS 7.2.1's audit flags every account whose /etc/passwd field
			// is not "x" (awk -F: '($2 != "x")'); CaC's OVAL also accepts
			// "*" (^[x*]$). The CIS text is followed: "*" fails here, a known
			// difference with OpenSCAP.
			ID: "accounts_password_all_shadowed", Title: "All password hashes are in /etc/shadow", Severity: SeverityHigh,
			Applies:     onLinux(),
			References:  References{CISDebian: "7.2.1", CISRHEL: "7.2.1", CISLevel: 1, ComplianceAsCode: "accounts_password_all_shadowed", PCIDSS: []string{"8.3.2"}},
			Offline:     "Every /etc/passwd password field is x; a hash, *, ! or an empty field there fails.",
			Remediation: "Run pwconv to move password hashes from /etc/passwd to /etc/shadow.",
			Profiles:    sec,
			Eval: func(_ context.Context, e *Env) Outcome {
				pw, err := e.passwdFile()
				if err != nil {
					return readFailure(err)
				}
				var bad []Evidence
				for _, p := range pw {
					if p.Password != "x" {
						what := "password hash stored in world-readable /etc/passwd"
						switch p.Password {
						case "":
							what = "empty password field in /etc/passwd: login without a password"
						case "*", "!", "!!":
							what = "password field is " + p.Password + ", not x: the account does not use /etc/shadow"
						}
						bad = append(bad, at(p.Source, p.Name, what))
					}
				}
				if len(bad) > 0 {
					return fail(bad...)
				}
				return pass(Evidence{File: "/etc/passwd", Note: fmt.Sprintf("%d accounts, every password field is x", len(pw))})
			},
		},
		{
			ID: "account_unique_id", Title: "No two accounts share a UID", Severity: SeverityMedium,
			Applies: onLinux(),
			// CIS RHEL 9 v2.0.0 numbers it 7.2.4 (its 7.2.5 is duplicate GIDs).
			References:  References{CISDebian: "7.2.5", CISRHEL: "7.2.4", CISLevel: 1, ComplianceAsCode: "account_unique_id", PCIDSS: []string{"8.2.1"}},
			Offline:     "No UID appears twice in /etc/passwd.",
			Remediation: "Give every account its own UID (usermod -u) and fix file ownership.",
			Profiles:    sec,
			Eval: func(_ context.Context, e *Env) Outcome {
				pw, err := e.passwdFile()
				if err != nil {
					return readFailure(err)
				}
				first := map[int]passwdEntry{}
				var bad []Evidence
				for _, p := range pw {
					if q, dup := first[p.UID]; dup && p.UID >= 0 {
						bad = append(bad, at(p.Source, fmt.Sprintf("%s:%d", p.Name, p.UID), fmt.Sprintf("same UID as %s (line %d)", q.Name, q.Line)))
						continue
					}
					first[p.UID] = p
				}
				if len(bad) > 0 {
					return fail(bad...)
				}
				return pass(Evidence{File: "/etc/passwd", Note: fmt.Sprintf("%d accounts, all UIDs unique", len(pw))})
			},
		},
	}
}
