package profile

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"guestkit.io/batch/internal/guestconf"
)

// pamServices are the shared stacks every login service includes:
// Debian's common-* and RHEL's system-auth/password-auth.
func pamServices() []string {
	return []string{"common-auth", "common-password", "common-account", "common-session", "common-session-noninteractive", "system-auth", "password-auth"}
}

// pamLines reads the shared PAM stacks that exist; ok is false when none do.
func pamLines(e *Env) (lines []guestconf.PAMLine, files []string, err error) {
	for _, s := range pamServices() {
		ls, err := guestconf.ReadPAMStack(e.FS(), s)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return nil, nil, err
		}
		files = append(files, "/etc/pam.d/"+s)
		lines = append(lines, ls...)
	}
	return lines, files, nil
}

func pamApplies() Applicability {
	return Applicability{Families: []string{FamilyLinux}, When: func(e *Env) (bool, string) {
		for _, s := range pamServices() {
			if guestconf.Exists(e.FS(), "etc/pam.d/"+s) {
				return true, ""
			}
		}
		return false, "no shared PAM stack (/etc/pam.d/common-* or system-auth/password-auth)"
	}}
}

func pamLineText(l guestconf.PAMLine) string {
	return strings.TrimSpace(fmt.Sprintf("%s %s %s %s", l.Type, l.Control, l.Module, strings.Join(l.Args, " ")))
}

// noNullok passes when no shared stack line has nullok: CIS Debian 12
// v1.1.0 5.3.3.4.1 greps /etc/pam.d/common-{password,auth,account,session,
// session-noninteractive} for nullok and wants nothing returned, so the
// absence of the argument is what the benchmark accepts.
func noNullok(_ context.Context, e *Env) Outcome {
	lines, files, err := pamLines(e)
	if err != nil {
		return readFailure(err)
	}
	var bad []Evidence
	seen := map[guestconf.Source]bool{}
	for _, l := range lines {
		if seen[l.Source] {
			continue // reached through two includes
		}
		seen[l.Source] = true
		for _, a := range l.Args {
			if a == "nullok" || a == "nullok_secure" {
				bad = append(bad, at(l.Source, pamLineText(l), a+": accounts with an empty password can log in"))
			}
		}
	}
	if len(bad) > 0 {
		return fail(bad...)
	}
	return pass(note("no nullok argument in %s", joinList(files)))
}

// pwqualityMinlen finds the effective minlen: pwquality.conf.d/*.conf in
// order, then pwquality.conf (libpwquality reads the main file last), then
// minlen= on the pam_pwquality line, which overrides the files.
func pwqualityMinlen(_ context.Context, e *Env) Outcome {
	lines, files, err := pamLines(e)
	if err != nil {
		return readFailure(err)
	}
	var mod *guestconf.PAMLine
	for i, l := range lines {
		if l.Type == "password" && (l.ModuleName() == "pam_pwquality" || l.ModuleName() == "pam_cracklib") {
			mod = &lines[i]
			break
		}
	}
	if mod == nil {
		return fail(note("no pam_pwquality (or pam_cracklib) in the password stack of %s: only pam_unix's minimum length (6) applies", joinList(files)))
	}
	ev := []Evidence{at(mod.Source, pamLineText(*mod), "password quality module in use")}
	var win *Evidence
	val := ""
	if mod.ModuleName() == "pam_pwquality" {
		cfgs, err := guestconf.Glob(e.FS(), "/etc/security/pwquality.conf.d/*.conf")
		if err != nil {
			return readFailure(err)
		}
		for _, f := range append(cfgs, "etc/security/pwquality.conf") {
			data, err := guestconf.ReadFile(e.FS(), f)
			if err != nil {
				if isNotExist(err) {
					continue
				}
				return readFailure(err)
			}
			if kv, ok := guestconf.Last(guestconf.ParseEqualKV(data, guestconf.Abs(f)), "minlen", false); ok {
				x := at(kv.Source, "minlen = "+kv.Value, "")
				win, val = &x, kv.Value
			}
		}
	}
	if v, ok := mod.Arg("minlen"); ok {
		x := at(mod.Source, "minlen="+v, "module argument overrides the configuration files")
		win, val = &x, v
	}
	if win == nil {
		return fail(append(ev, note("minlen not set; the default 8 is less than 14"))...)
	}
	n, err := strconv.Atoi(val)
	win.Note = strings.TrimPrefix(win.Note+"; want 14 or more", "; ")
	ev = append(ev, *win)
	return decide(err == nil && n >= 14, ev...)
}

// faillockDeny finds deny= for pam_faillock: faillock.conf, overridden by
// module arguments; without pam_faillock (or pam_tally2) nothing locks.
func faillockDeny(_ context.Context, e *Env) Outcome {
	lines, files, err := pamLines(e)
	if err != nil {
		return readFailure(err)
	}
	var mods []guestconf.PAMLine
	for _, l := range lines {
		if l.Type == "auth" && (l.ModuleName() == "pam_faillock" || l.ModuleName() == "pam_tally2") {
			mods = append(mods, l)
		}
	}
	if len(mods) == 0 {
		return fail(note("no pam_faillock in the auth stack of %s: failed logins never lock an account", joinList(files)))
	}
	ev := []Evidence{at(mods[0].Source, pamLineText(mods[0]), "account lockout module in use")}
	deny, from := "", Evidence{}
	if mods[0].ModuleName() == "pam_faillock" {
		data, err := guestconf.ReadFile(e.FS(), "etc/security/faillock.conf")
		if err != nil && !isNotExist(err) {
			return readFailure(err)
		}
		if kv, ok := guestconf.Last(guestconf.ParseEqualKV(data, "/etc/security/faillock.conf"), "deny", false); ok {
			deny, from = kv.Value, at(kv.Source, "deny = "+kv.Value, "")
		}
	}
	for _, m := range mods {
		if v, ok := m.Arg("deny"); ok {
			deny, from = v, at(m.Source, pamLineText(m), "deny="+v+" on the module line overrides faillock.conf")
		}
	}
	// An unset deny is not accepted: CIS Debian 12 v1.1.0 5.3.3.1.1 audits
	// `grep -Pi '^\h*deny\h*=\h*[1-5]\b' /etc/security/faillock.conf`
	// (the line must exist), and pam_tally2's default is no lockout.
	if deny == "" {
		why := "pam_faillock's built-in default (3) is not accepted: CIS 5.3.3.1.1 wants deny = 1-5 set in /etc/security/faillock.conf"
		if mods[0].ModuleName() == "pam_tally2" {
			why = "pam_tally2 without deny= never locks an account"
		}
		return fail(append(ev, note("deny not set in /etc/security/faillock.conf or on the module line; %s", why))...)
	}
	n, err := strconv.Atoi(deny)
	from.Note = strings.TrimPrefix(from.Note+"; want 1-5 (0 never locks)", "; ")
	return decide(err == nil && n >= 1 && n <= 5, append(ev, from)...)
}

func pamRules() []Rule {
	comp, sec := []string{"compliance"}, []string{"security"}
	return []Rule{
		{
			ID: "no_empty_passwords", Title: "PAM does not accept empty passwords (no nullok)", Severity: SeverityHigh,
			References:  References{CISDebian: "5.3.3.4.1", CISRHEL: "5.3.3.4.1", CISLevel: 1, ComplianceAsCode: "no_empty_passwords", PCIDSS: []string{"2.2.2", "8.3.1"}},
			Offline:     "No pam_unix line of the shared PAM stacks (/etc/pam.d/common-* on Debian, system-auth and password-auth on RHEL) has nullok.",
			Remediation: "Remove nullok from pam_unix lines in /etc/pam.d/common-* (Debian: pam-auth-update) or system-auth/password-auth (RHEL: authselect).",
			Profiles:    sec,
			Applies:     pamApplies(),
			Eval:        noNullok,
		},
		{
			ID: "accounts_password_pam_minlen", Title: "Passwords are at least 14 characters (pam_pwquality minlen)", Severity: SeverityMedium,
			References:  References{CISDebian: "5.3.3.2.2", CISRHEL: "5.3.3.2.2", CISLevel: 1, ComplianceAsCode: "accounts_password_pam_minlen", PCIDSS: []string{"8.3.6"}},
			Offline:     "The effective pam_pwquality minlen (pwquality.conf.d/*.conf, pwquality.conf, then the PAM line's minlen=) is 14 or more.",
			Remediation: "Install libpam-pwquality (Debian) and set `minlen = 14` in /etc/security/pwquality.conf or a file in pwquality.conf.d/.",
			Profiles:    comp,
			Applies:     pamApplies(),
			Eval:        pwqualityMinlen,
		},
		{
			ID: "accounts_passwords_pam_faillock_deny", Title: "Accounts lock after at most 5 failed logins (pam_faillock deny)", Severity: SeverityMedium,
			References:  References{CISDebian: "5.3.3.1.1", CISRHEL: "5.3.3.1.1", CISLevel: 1, ComplianceAsCode: "accounts_passwords_pam_faillock_deny", PCIDSS: []string{"8.3.4"}},
			Offline:     "pam_faillock is in the shared PAM stacks and its deny (faillock.conf, overridden by the module's deny=) is 1 to 5.",
			Remediation: "Enable pam_faillock (Debian: pam-auth-update --enable faillock; RHEL: authselect enable-feature with-faillock) and set `deny = 5` in /etc/security/faillock.conf.",
			Profiles:    comp,
			Applies:     pamApplies(),
			Eval:        faillockDeny,
		},
	}
}
