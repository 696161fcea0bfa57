package profile

import (
	"context"
	"regexp"
	"strings"

	"guestkit.io/batch/internal/guestconf"
)

func truthy(v string) bool {
	switch strings.ToLower(strings.Trim(strings.TrimSpace(v), `"`)) {
	case "1", "yes", "true", "on", "enable", "enabled":
		return true
	}
	return false
}

// dnfMainGPGCheck: gpgcheck in [main] of dnf.conf (or yum.conf); dnf's
// built-in default is off.
func dnfMainGPGCheck(_ context.Context, e *Env) Outcome {
	for _, f := range []string{"etc/dnf/dnf.conf", "etc/yum.conf"} {
		data, err := guestconf.ReadFile(e.FS(), f)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return readFailure(err)
		}
		var win *guestconf.INIEntry
		for _, en := range guestconf.ParseINI(data, guestconf.Abs(f)) {
			if en.Section == "main" && en.Key == "gpgcheck" {
				x := en
				win = &x
			}
		}
		if win == nil {
			return fail(Evidence{File: guestconf.Abs(f), Note: "no gpgcheck in [main]: dnf's default is not to check signatures"})
		}
		return decide(truthy(win.Value), at(win.Source, "gpgcheck="+win.Value, "want gpgcheck=1"))
	}
	return fail(note("neither /etc/dnf/dnf.conf nor /etc/yum.conf exists: dnf's default is not to check signatures"))
}

// repoGPGCheck fails on any repository with gpgcheck off. No repository
// file is a pass, as in SSG's ensure_gpgcheck_never_disabled (its OVAL
// wants no "gpgcheck=0" line to exist in /etc/yum.repos.d/*.repo) and CIS
// RHEL 9 1.2.1.2 "Ensure gpgcheck is globally activated", which CaC maps to
// both gpgcheck rules (1.2.1.3 is repo_gpgcheck, a Level 2 Manual item): a
// repository without gpgcheck inherits [main], which
// ensure_gpgcheck_globally_activated checks.
func repoGPGCheck(_ context.Context, e *Env) Outcome {
	var files []string
	for _, p := range []string{"/etc/yum.repos.d/*.repo", "/etc/zypp/repos.d/*.repo"} {
		m, err := guestconf.Glob(e.FS(), p)
		if err != nil {
			return readFailure(err)
		}
		files = append(files, m...)
	}
	var bad []Evidence
	repos := 0
	for _, f := range files {
		data, err := guestconf.ReadFile(e.FS(), f)
		if err != nil {
			return readFailure(err)
		}
		sections := map[string]bool{}
		for _, en := range guestconf.ParseINI(data, guestconf.Abs(f)) {
			sections[en.Section] = true
			if en.Key == "gpgcheck" && !truthy(en.Value) {
				bad = append(bad, at(en.Source, "["+en.Section+"] gpgcheck="+en.Value, "packages from this repository are not signature-checked"))
			}
		}
		repos += len(sections)
	}
	if len(bad) > 0 {
		return fail(bad...)
	}
	if len(files) == 0 {
		return pass(note("no repository files in /etc/yum.repos.d or /etc/zypp/repos.d"))
	}
	return pass(note("%d repositories in %d files; none sets gpgcheck off", repos, len(files)))
}

// aptConfFiles lists apt.conf and apt.conf.d files the way apt does:
// names of [A-Za-z0-9_.-] only, backup and disabled files ignored.
func aptConfFiles(e *Env, dir string, suffixes ...string) ([]string, error) {
	ents, err := guestconf.ReadDir(e.FS(), dir)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	okName := regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	ignored := regexp.MustCompile(`(~|\.disabled|\.bak|\.dpkg-[a-z]+|\.ucf-[a-z]+|\.save|\.orig|\.distUpgrade)$`)
	var out []string
	for _, en := range ents {
		n := en.Name()
		if en.IsDir() || !okName.MatchString(n) || ignored.MatchString(n) {
			continue
		}
		if len(suffixes) > 0 {
			match := false
			for _, s := range suffixes {
				match = match || strings.HasSuffix(n, s)
			}
			if !match {
				continue
			}
		}
		out = append(out, dir+"/"+n)
	}
	return out, nil
}

// aptOption is one assignment of apt.conf syntax, with its full name.
type aptOption struct {
	name, value string
	line        int
}

// parseAptConf flattens apt.conf syntax: "A::B "v";" and nested
// "A { B "v"; };" both give name A::B. Comments: //, /* */ and # lines.
func parseAptConf(s string) []aptOption {
	var out []aptOption
	var scope []string
	var words []string
	line, wordLine := 1, 1
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case strings.HasPrefix(s[i:], "//") || (c == '#' && len(words) == 0):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return out
			}
			line += strings.Count(s[i:i+2+end], "\n")
			i += end + 4
		case c == '"':
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				return out
			}
			if len(words) == 0 {
				wordLine = line
			}
			words = append(words, s[i+1:i+1+end])
			line += strings.Count(s[i:i+1+end], "\n")
			i += end + 2
		case c == '{':
			if len(words) > 0 {
				scope = append(scope, words[0])
			} else {
				scope = append(scope, "")
			}
			words = nil
			i++
		case c == '}':
			if len(scope) > 0 {
				scope = scope[:len(scope)-1]
			}
			words = nil
			i++
		case c == ';':
			if len(words) >= 1 {
				name := strings.Join(append(append([]string{}, scope...), words[0]), "::")
				val := ""
				if len(words) > 1 {
					val = words[1]
				}
				out = append(out, aptOption{name: name, value: val, line: wordLine})
			}
			words = nil
			i++
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n{};\"", rune(s[j])) {
				j++
			}
			if len(words) == 0 {
				wordLine = line
			}
			words = append(words, s[i:j])
			i = j
		}
	}
	return out
}

// aptDisallowUnauthenticated passes when no apt.conf file allows
// unauthenticated packages: apt's built-in default refuses them, and both
// SSG's apt_conf_disallow_unauthenticated (no "AllowUnauthenticated true"
// may exist in /etc/apt/apt.conf.d) accepts the default, so absent files
// pass. No CIS item is cited: Debian 12 1.2.1.2 "Ensure package manager
// repositories are configured" is Manual (not scored) and CaC maps no rule
// to it.
func aptDisallowUnauthenticated(_ context.Context, e *Env) Outcome {
	files := []string{"etc/apt/apt.conf"}
	more, err := aptConfFiles(e, "etc/apt/apt.conf.d")
	if err != nil {
		return readFailure(err)
	}
	files = append(files, more...)
	risky := []string{"apt::get::allowunauthenticated", "acquire::allowinsecurerepositories", "acquire::allowdowngradetoinsecurerepositories"}
	var bad []Evidence
	read := 0
	for _, f := range files {
		data, err := guestconf.ReadFile(e.FS(), f)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return readFailure(err)
		}
		read++
		for _, o := range parseAptConf(string(data)) {
			for _, r := range risky {
				if strings.EqualFold(o.name, r) && truthy(o.value) {
					bad = append(bad, Evidence{File: guestconf.Abs(f), Line: o.line, Value: o.name + " \"" + o.value + "\"", Note: "apt installs packages without a valid signature"})
				}
			}
		}
	}
	if len(bad) > 0 {
		return fail(bad...)
	}
	return pass(note("%d apt configuration files read; none allows unauthenticated or insecure repositories", read))
}

// aptSourcesNotTrusted fails on a source marked trusted or allow-insecure;
// with no sources at all nothing is installed unsigned, so it passes.
func aptSourcesNotTrusted(_ context.Context, e *Env) Outcome {
	files := []string{"etc/apt/sources.list"}
	more, err := aptConfFiles(e, "etc/apt/sources.list.d", ".list", ".sources")
	if err != nil {
		return readFailure(err)
	}
	files = append(files, more...)
	var bad []Evidence
	n := 0
	for _, f := range files {
		data, err := guestconf.ReadFile(e.FS(), f)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return readFailure(err)
		}
		for i, l := range strings.Split(string(data), "\n") {
			t := strings.TrimSpace(l)
			if t == "" || t[0] == '#' {
				continue
			}
			src := guestconf.Source{File: guestconf.Abs(f), Line: i + 1}
			if strings.HasSuffix(f, ".sources") {
				k, v, ok := strings.Cut(t, ":")
				if ok && (strings.EqualFold(k, "Trusted") || strings.EqualFold(k, "Allow-Insecure")) && truthy(v) {
					bad = append(bad, at(src, t, "signature checking disabled for this source"))
				}
				if ok && strings.EqualFold(k, "Types") {
					n++
				}
				continue
			}
			if !strings.HasPrefix(t, "deb") {
				continue
			}
			n++
			if o, c := strings.Index(t, "["), strings.Index(t, "]"); o >= 0 && c > o {
				for _, opt := range strings.Fields(t[o+1 : c]) {
					k, v, _ := strings.Cut(opt, "=")
					if (k == "trusted" || k == "allow-insecure") && truthy(v) {
						bad = append(bad, at(src, t, opt+": signature checking disabled for this source"))
					}
				}
			}
		}
	}
	if len(bad) > 0 {
		return fail(bad...)
	}
	return pass(note("%d apt sources; none is marked trusted=yes or allow-insecure=yes", n))
}

func packageRules() []Rule {
	sec := []string{"security"}
	return []Rule{
		{
			ID: "ensure_gpgcheck_globally_activated", Title: "dnf/yum checks package signatures (gpgcheck=1 in [main])", Severity: SeverityHigh,
			References:  References{CISRHEL: "1.2.1.2", CISLevel: 1, ComplianceAsCode: "ensure_gpgcheck_globally_activated", PCIDSS: []string{"6.3.3"}},
			Offline:     "gpgcheck in [main] of /etc/dnf/dnf.conf (or /etc/yum.conf) is on; unset (dnf's default off) fails.",
			Remediation: "Set `gpgcheck=1` in the [main] section of /etc/dnf/dnf.conf.",
			Profiles:    sec,
			Applies:     Applicability{Families: []string{"rhel"}},
			Eval:        dnfMainGPGCheck,
		},
		{
			ID: "ensure_gpgcheck_never_disabled", Title: "No repository disables package signature checking (gpgcheck=0)", Severity: SeverityHigh,
			References:  References{CISRHEL: "1.2.1.2", CISLevel: 1, ComplianceAsCode: "ensure_gpgcheck_never_disabled", PCIDSS: []string{"6.3.3"}},
			Offline:     "No repository in /etc/yum.repos.d/*.repo (or dnf.conf) sets gpgcheck off.",
			Remediation: "Remove `gpgcheck=0` from the .repo files in /etc/yum.repos.d (or /etc/zypp/repos.d) and import the repository's key.",
			Profiles:    sec,
			Applies:     Applicability{Families: []string{"rhel", "suse"}},
			Eval:        repoGPGCheck,
		},
		{
			ID: "apt_conf_disallow_unauthenticated", Title: "apt does not allow unauthenticated packages or insecure repositories", Severity: SeverityHigh,
			References:  References{ComplianceAsCode: "apt_conf_disallow_unauthenticated", PCIDSS: []string{"6.3.3"}},
			Offline:     "No file of /etc/apt/apt.conf and apt.conf.d sets APT::Get::AllowUnauthenticated or Acquire::AllowInsecureRepositories true; apt's default refuses them.",
			Remediation: "Remove APT::Get::AllowUnauthenticated, Acquire::AllowInsecureRepositories and Acquire::AllowDowngradeToInsecureRepositories from /etc/apt/apt.conf(.d).",
			Profiles:    sec,
			Applies:     Applicability{Families: []string{"debian"}},
			Eval:        aptDisallowUnauthenticated,
		},
		{
			ID: "apt_sources_no_trusted", Title: "No apt source skips signature checking ([trusted=yes])", Severity: SeverityHigh,
			References:  References{PCIDSS: []string{"6.3.3"}},
			Offline:     "No source in /etc/apt/sources.list, sources.list.d/*.list or *.sources is marked trusted=yes or allow-insecure=yes.",
			Remediation: "Remove [trusted=yes] (and Trusted: yes in .sources files) and install the repository's signing key with signed-by=.",
			Profiles:    sec,
			Applies:     Applicability{Families: []string{"debian"}},
			Eval:        aptSourcesNotTrusted,
		},
	}
}
