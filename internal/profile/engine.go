package profile

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"time"

	"guestkit.io/batch/internal/profile/names"
)

// Options control an evaluation. The zero value is valid: the seed
// profiles, threshold medium, no remediation text.
type Options struct {
	// Profiles to evaluate; empty means security, compliance and hardening.
	Profiles []string `json:"profiles,omitempty"`
	// SeverityThreshold: a fail at or above it makes the report
	// noncompliant. Empty means medium; "none" means never by severity.
	SeverityThreshold Severity `json:"severity_threshold,omitempty"`
	// FailOnCritical: a critical fail is noncompliant whatever the threshold.
	FailOnCritical bool `json:"fail_on_critical,omitempty"`
	// IncludeRemediation: put remediation text into results.
	IncludeRemediation bool `json:"include_remediation,omitempty"`
	// WalkMaxEntries bounds the filesystem-wide walk (default 500000).
	WalkMaxEntries int `json:"walk_max_entries,omitempty"`
	// WalkTimeout bounds the walk's time (default 60s).
	WalkTimeout time.Duration `json:"walk_timeout,omitempty"`
}

// DefaultProfiles returns the profiles evaluated when Options.Profiles is
// empty: the seed profiles of the guestkit worker.
func DefaultProfiles() []string { return names.Defaults() }

func (o Options) walkMax() int {
	if o.WalkMaxEntries > 0 {
		return o.WalkMaxEntries
	}
	return DefaultWalkMaxEntries
}

func (o Options) walkTimeout() time.Duration {
	if o.WalkTimeout > 0 {
		return o.WalkTimeout
	}
	return DefaultWalkTimeout
}

func (o Options) threshold() Severity {
	if o.SeverityThreshold == "" {
		return SeverityMedium
	}
	return o.SeverityThreshold
}

// ErrOptions wraps every option validation error.
var ErrOptions = errors.New("invalid profile options")

// Validate checks the options against the registry.
func (o Options) Validate() error {
	if o.SeverityThreshold != "" && o.SeverityThreshold.Rank() == 0 {
		return fmt.Errorf("%w: unknown severity_threshold %q", ErrOptions, o.SeverityThreshold)
	}
	known := map[string]bool{}
	for _, p := range Profiles() {
		known[p.Name] = true
	}
	for _, p := range o.Profiles {
		if !known[p] {
			return fmt.Errorf("%w: unknown profile %q", ErrOptions, p)
		}
	}
	if o.WalkMaxEntries < 0 || o.WalkTimeout < 0 {
		return fmt.Errorf("%w: negative walk bound", ErrOptions)
	}
	return nil
}

// Evaluate runs the rules of the selected profiles against t. Each rule is
// evaluated once even when several profiles hold it. It returns an error
// only for invalid options or a nil FS. When ctx ends, the rules not yet
// evaluated are notchecked, and the report is returned with ctx.Err().
func Evaluate(ctx context.Context, t Target, opts Options) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if t.FS == nil {
		return nil, fmt.Errorf("%w: target has no filesystem", ErrOptions)
	}
	selected := opts.Profiles
	if len(selected) == 0 {
		selected = DefaultProfiles()
	}
	env := newEnv(t, opts)
	rep := &Report{
		Schema:         ReportSchema,
		OS:             env.OS(),
		Threshold:      opts.threshold(),
		FailOnCritical: opts.FailOnCritical,
		Results:        []RuleResult{},
		Profiles:       []ProfileScore{},
	}
	var ctxErr error
	for _, r := range Rules() {
		var in []string
		for _, p := range selected {
			if slices.Contains(r.Profiles, p) && !slices.Contains(in, p) {
				in = append(in, p)
			}
		}
		if len(in) == 0 {
			continue
		}
		var out Outcome
		if err := ctx.Err(); err != nil {
			ctxErr = err
			out = Outcome{Status: StatusNotChecked, Evidence: []Evidence{{Note: "evaluation stopped: " + err.Error()}}}
		} else {
			out = evalRule(ctx, r, env)
		}
		res := RuleResult{
			ID: r.ID, Title: r.Title, Severity: r.Severity, Status: out.Status,
			Profiles: in, References: r.References, Evidence: out.Evidence,
		}
		if opts.IncludeRemediation {
			res.Remediation = r.Remediation
		}
		rep.Results = append(rep.Results, res)
	}
	score(rep, selected)
	return rep, ctxErr
}

// evalRule applies applicability, runs Eval, and enforces the rule
// contract: no panic escapes, and no result comes without evidence.
func evalRule(ctx context.Context, r Rule, env *Env) (out Outcome) {
	defer func() {
		if p := recover(); p != nil {
			out = Outcome{Status: StatusError, Evidence: []Evidence{{Note: fmt.Sprintf("rule panicked: %v; %s", p, firstLines(debug.Stack(), 6))}}}
		}
	}()
	if o, ok := familyOutcome(r.Applies.Families, env.OS()); !ok {
		return o
	}
	if r.Applies.When != nil {
		if ok, why := r.Applies.When(env); !ok {
			return Outcome{Status: StatusNotApplicable, Evidence: []Evidence{{Note: why}}}
		}
	}
	out = r.Eval(ctx, env)
	if out.Status == "" {
		out.Status = StatusError
	}
	if len(out.Evidence) == 0 {
		if out.Status == StatusPass || out.Status == StatusFail {
			out = Outcome{Status: StatusError, Evidence: []Evidence{{Note: "rule returned " + string(out.Status) + " without evidence"}}}
		} else {
			out.Evidence = []Evidence{{Note: "no reason given"}}
		}
	}
	return out
}

// familyOutcome matches a rule's families with the guest's OS. It returns
// false and the outcome when the rule does not run: notapplicable on a
// guest of another OS (a Linux rule on Windows, or the reverse),
// notchecked when the guest's OS, or the family a rule needs, is unknown.
func familyOutcome(fams []string, os OSInfo) (Outcome, bool) {
	undecided := func(format string, a ...any) (Outcome, bool) {
		return Outcome{Status: StatusNotChecked, Evidence: []Evidence{note(format, a...)}}, false
	}
	switch {
	case len(fams) == 0:
		return Outcome{Status: StatusError, Evidence: []Evidence{note("the rule names no OS family")}}, false
	case os.Type == "" && os.Family == "":
		return undecided("the guest's OS is unknown (no /etc/os-release, no Windows system hive, none given); the rule is for %s", joinList(fams))
	case slices.Contains(fams, os.Family) && os.Family != "":
		return Outcome{}, true
	case os.Type == "linux" && slices.Contains(fams, FamilyLinux):
		return Outcome{}, true
	case os.Type == "linux" && os.Family == "" && !slices.Contains(fams, FamilyWindows):
		return undecided("the guest's Linux family is unknown (distro %q); the rule is for %s", os.Distro, joinList(fams))
	}
	guest := os.Family
	if guest == "" {
		guest = os.Type
	}
	why := fmt.Sprintf("rule is for %s; guest family is %s", joinList(fams), guest)
	if guest == FamilyWindows || slices.Contains(fams, FamilyWindows) {
		why += fmt.Sprintf(": a rule written for %s does not apply to a %s guest", joinList(fams), guest)
	}
	return Outcome{Status: StatusNotApplicable, Evidence: []Evidence{{Note: why}}}, false
}

func score(rep *Report, selected []string) {
	th := rep.Threshold
	isNoncompliant := func(r RuleResult) bool {
		if r.Status != StatusFail {
			return false
		}
		if rep.FailOnCritical && r.Severity == SeverityCritical {
			return true
		}
		return th != SeverityNone && r.Severity.Rank() >= th.Rank()
	}
	var got, possible int
	for _, r := range rep.Results {
		rep.Summary.Total++
		rep.Summary.ByStatus.add(r.Status)
		if r.Status == StatusFail {
			rep.Summary.FailedBySeverity.add(r.Severity)
		}
		if isNoncompliant(r) {
			rep.Noncompliant = true
		}
		if r.Status == StatusPass || r.Status == StatusFail {
			possible += r.Severity.Weight()
			if r.Status == StatusPass {
				got += r.Severity.Weight()
			}
		}
	}
	if possible > 0 {
		rep.HardeningIndex = int(math.Round(100 * float64(got) / float64(possible)))
	}
	byName := map[string]Profile{}
	for _, p := range Profiles() {
		byName[p.Name] = p
	}
	for _, name := range selected {
		if slices.ContainsFunc(rep.Profiles, func(s ProfileScore) bool { return s.Name == name }) {
			continue
		}
		ps := ProfileScore{Name: name, Title: byName[name].Title}
		for _, r := range rep.Results {
			if !slices.Contains(r.Profiles, name) {
				continue
			}
			ps.Rules++
			ps.Counts.add(r.Status)
			if isNoncompliant(r) {
				ps.Noncompliant = true
			}
		}
		ps.Applicable = ps.Rules - ps.Counts.NotApplicable
		if ps.Applicable == 0 {
			ps.Note = fmt.Sprintf("no rule of profile %s applies to %s", name, guestName(rep.OS))
		}
		if d := ps.Counts.Pass + ps.Counts.Fail; d > 0 {
			v := float64(ps.Counts.Pass) / float64(d)
			ps.PassRate = &v
		}
		rep.Profiles = append(rep.Profiles, ps)
	}
}

// guestName names the guest's OS in notes: its family, else its type.
func guestName(o OSInfo) string {
	switch {
	case o.Family != "":
		return o.Family
	case o.Type != "":
		return o.Type
	}
	return "this guest (OS unknown)"
}

// Profile is a named set of rules.
type Profile struct {
	Name        string   `json:"name"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Rules       []string `json:"rules"`
}

// profileInfo titles every name of package names, in its order
// (TestProfilesAreTheNames).
func profileInfo() []Profile {
	return []Profile{
		{Name: names.Security, Title: "Security", Description: "Exposure and access: sshd, accounts and passwords, sensitive file permissions, SUID and world-writable files, host firewall, package signatures, insecure network services; on Windows: RDP NLA, SMBv1, firewall profiles, Guest, automatic logon, stored credentials (LM hashes, WDigest, LSA protection), UAC, anonymous enumeration and the account policy."},
		{Name: names.Compliance, Title: "Compliance", Description: "Policy controls auditors ask for: password ageing and quality, account lockout, umask, MAC (SELinux/AppArmor), auditd, time synchronisation, file integrity (AIDE), cron access."},
		{Name: names.Hardening, Title: "Hardening", Description: "Attack-surface reduction: kernel parameters, core dumps, /tmp mount options, boot loader, kernel modules, cron permissions, unneeded services and packages; on Windows: RDP NLA, SMBv1, firewall profiles, credential protection, UAC, anonymous enumeration, lockout duration."},
		{Name: names.CISLevel1Server, Title: "CIS Level 1 Server (Debian/Ubuntu, RHEL and Windows Server)", Description: "Every rule mapped to a Level 1 - Server recommendation of the CIS Debian 12 (same numbers in Ubuntu 24.04) or RHEL 9 benchmarks, or a Level 1 - Member Server one of CIS Microsoft Windows Server 2022 v3.0.0."},
		{Name: names.CISLevel2Server, Title: "CIS Level 2 Server (Debian/Ubuntu, RHEL and Windows Server)", Description: "Every rule mapped to a Level 1 or Level 2 - Server recommendation of the CIS Debian 12 (same numbers in Ubuntu 24.04) or RHEL 9 benchmarks, or of CIS Microsoft Windows Server 2022 v3.0.0 (Member Server); Level 2 extends Level 1, as OpenSCAP's cis_level2_server profile does."},
		{Name: names.PCIDSS, Title: "PCI-DSS v4.0.1", Description: "Every rule mapped to a PCI-DSS v4.0.1 requirement."},
	}
}

// Profiles returns the profiles with their rule ids, in registry order.
func Profiles() []Profile {
	out := profileInfo()
	rules := Rules()
	for i := range out {
		for _, r := range rules {
			if slices.Contains(r.Profiles, out[i].Name) {
				out[i].Rules = append(out[i].Rules, r.ID)
			}
		}
	}
	return out
}

// Rules returns the rule registry, built fresh on each call.
func Rules() []Rule {
	var out []Rule
	for _, group := range [][]Rule{
		sshRules(), accountRules(), fileRules(), sysctlRules(), mountRules(),
		serviceRules(), bootRules(), pamRules(), packageRules(), legacyRules(),
		windowsRules(),
	} {
		out = append(out, group...)
	}
	for i := range out {
		out[i].Profiles = derivedProfiles(out[i])
	}
	return out
}

// derivedProfiles adds the CIS and PCI-DSS profiles from the references:
// a Level 1 item (of any benchmark: Debian, RHEL, Windows Server) is in
// cis-level1-server and cis-level2-server, a Level 2 item in
// cis-level2-server only. Legacy rules stay in the seed profiles.
func derivedProfiles(r Rule) []string {
	ps := slices.Clone(r.Profiles)
	if r.Legacy {
		return ps
	}
	add := func(p string) {
		if !slices.Contains(ps, p) {
			ps = append(ps, p)
		}
	}
	// A Windows item of the Next Generation profile has level 0 and is in
	// no CIS profile.
	switch r.References.CISLevel {
	case 1:
		add(names.CISLevel1Server)
		add(names.CISLevel2Server)
	case 2:
		add(names.CISLevel2Server)
	}
	if len(r.References.PCIDSS) > 0 {
		add(names.PCIDSS)
	}
	return ps
}
