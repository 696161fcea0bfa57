package profile

import (
	"context"
	"fmt"
	"strings"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/guestconf"
)

// Severity of a rule. The order is info < low < medium < high < critical.
type Severity string

const (
	SeverityInfo     Severity = "info"
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
	// SeverityNone is valid only as a threshold: no severity makes a
	// report noncompliant (fail_on_critical still can).
	SeverityNone Severity = "none"
)

// Rank orders severities; unknown ones rank 0 and none ranks above critical.
func (s Severity) Rank() int {
	switch s {
	case SeverityInfo:
		return 1
	case SeverityLow:
		return 2
	case SeverityMedium:
		return 3
	case SeverityHigh:
		return 4
	case SeverityCritical:
		return 5
	case SeverityNone:
		return 6
	}
	return 0
}

// Weight is the severity's weight in the hardening index.
func (s Severity) Weight() int {
	switch s {
	case SeverityCritical:
		return 10
	case SeverityHigh:
		return 5
	case SeverityMedium:
		return 3
	case SeverityLow:
		return 1
	}
	return 0
}

// ParseSeverity accepts a severity name in any case.
func ParseSeverity(s string) (Severity, error) {
	v := Severity(strings.ToLower(strings.TrimSpace(s)))
	if v.Rank() == 0 {
		return "", fmt.Errorf("unknown severity %q (want info, low, medium, high, critical or none)", s)
	}
	return v, nil
}

// Status is the outcome of one rule.
type Status string

const (
	StatusPass          Status = "pass"
	StatusFail          Status = "fail"
	StatusNotApplicable Status = "notapplicable"
	// StatusNotChecked: the rule applies but could not be decided (a bound
	// was hit, or an input such as the package list is missing).
	StatusNotChecked Status = "notchecked"
	// StatusError: reading or parsing the guest failed.
	StatusError Status = "error"
)

// Evidence is what a rule saw: a file, a line and the value found there,
// or a note saying why the rule passed by default or could not decide.
type Evidence struct {
	File  string `json:"file,omitempty"`  // absolute guest path
	Line  int    `json:"line,omitempty"`  // 1-based
	Value string `json:"value,omitempty"` // the setting or content seen
	Note  string `json:"note,omitempty"`  // what it means, or why undecided
}

// References ties a rule to benchmarks.
type References struct {
	// CISDebian is the item of the CIS Debian Linux 12 Benchmark v1.1.0,
	// as ComplianceAsCode's controls/cis_debian12.yml numbers and titles
	// it. CIS Ubuntu Linux 24.04 (controls/cis_ubuntu2404.yml) gives every
	// item cited here the same number and title (TestCISCitations). The
	// JSON key keeps its old name.
	CISDebian string `json:"cis_debian,omitempty"`
	// CISRHEL is the item of the CIS Red Hat Enterprise Linux 9 Benchmark
	// (ComplianceAsCode's products/rhel9/controls/cis_rhel9.yml).
	CISRHEL string `json:"cis_rhel,omitempty"`
	// CISWindows is the item of the CIS Microsoft Windows Server 2022
	// Benchmark v3.0.0 (see rules_win.go for the source of the numbers).
	CISWindows string `json:"cis_windows,omitempty"`
	// CISLevel is the CIS server profile of the cited items: 1 (Level 1 -
	// Server) or 2 (Level 2 - Server, which includes Level 1); 0 when no
	// CIS item is cited, or the cited Windows item is only in the Next
	// Generation Windows Security profile. Every cited item has this level
	// in its benchmark.
	CISLevel int `json:"cis_level,omitempty"`
	// ComplianceAsCode is the ComplianceAsCode (SCAP Security Guide) rule id.
	ComplianceAsCode string `json:"complianceascode,omitempty"`
	// PCIDSS lists PCI-DSS v4.0.1 requirements.
	PCIDSS []string `json:"pci_dss,omitempty"`
}

// Package is an installed package of the guest.
type Package = guestconf.Package

// OSInfo describes the guest's operating system, as inspection found it.
type OSInfo struct {
	Type          string `json:"type,omitempty"`           // linux, windows
	Distro        string `json:"distro,omitempty"`         // debian, ubuntu, rhel, rocky, sles, alpine, windows, ...
	Family        string `json:"family,omitempty"`         // debian, rhel, suse, alpine, arch, windows
	Version       string `json:"version,omitempty"`        // 12, 9.4, ...
	PackageFormat string `json:"package_format,omitempty"` // deb, rpm, apk, pacman
}

// Target is what rules evaluate: the guest filesystem, its OS and its
// packages.
type Target struct {
	FS guest.FS
	OS OSInfo
	// Packages is the installed package list. When nil, Evaluate reads the
	// dpkg or apk database from FS itself; when that fails too (rpm), rules
	// that need packages are notchecked. A non-nil empty list means "no
	// packages installed".
	Packages []Package
}

// Outcome is what a rule's Eval returns.
type Outcome struct {
	Status   Status
	Evidence []Evidence
}

// OS families a rule names in Applicability.Families, besides the Linux
// families of OSInfo.Family ("debian", "rhel", "suse", "alpine", "arch").
const (
	// FamilyLinux names every Linux distribution (OSInfo.Type "linux"),
	// whatever its family, also one whose family is unknown (Gentoo).
	FamilyLinux = "linux"
	// FamilyWindows is the family (and type) of Windows guests.
	FamilyWindows = "windows"
)

// onLinux is the applicability of a rule for every Linux distribution.
func onLinux() Applicability { return Applicability{Families: []string{FamilyLinux}} }

// Applicability says where a rule applies.
type Applicability struct {
	// Families lists the OS families the rule was written for: "linux"
	// (any Linux distribution), a Linux family ("debian", "rhel", "suse",
	// "alpine", "arch") or "windows". Every rule names at least one
	// (TestRegistryIntegrity); on a guest of another family the rule is
	// notapplicable, and on a guest whose OS is unknown it is notchecked.
	Families []string
	// When is an extra condition (a package installed, a file present).
	// It returns false and the reason when the rule does not apply.
	When func(e *Env) (bool, string) `json:"-"`
}

// Rule is one check.
type Rule struct {
	ID          string
	Title       string
	Severity    Severity
	References  References
	Applies     Applicability
	Remediation string
	// Offline says in one sentence how the rule is decided from files on
	// a powered-off disk: which files are read and what passes. The README
	// rule table is rendered from it (TestReadmeRuleTable).
	Offline string
	// Profiles lists the profiles that hold the rule.
	Profiles []string
	// Legacy marks the guestkit worker's compatible checks.
	Legacy bool
	// Eval decides the rule, reading the guest only through e.
	Eval func(ctx context.Context, e *Env) Outcome
}

// RuleResult is one rule's result in a report.
type RuleResult struct {
	ID          string     `json:"id"`
	Title       string     `json:"title"`
	Severity    Severity   `json:"severity"`
	Status      Status     `json:"status"`
	Profiles    []string   `json:"profiles"`
	References  References `json:"references"`
	Evidence    []Evidence `json:"evidence"`
	Remediation string     `json:"remediation,omitempty"`
}

// StatusCounts counts results by status.
type StatusCounts struct {
	Pass          int `json:"pass"`
	Fail          int `json:"fail"`
	NotApplicable int `json:"notapplicable"`
	NotChecked    int `json:"notchecked"`
	Error         int `json:"error"`
}

func (c *StatusCounts) add(s Status) {
	switch s {
	case StatusPass:
		c.Pass++
	case StatusFail:
		c.Fail++
	case StatusNotApplicable:
		c.NotApplicable++
	case StatusNotChecked:
		c.NotChecked++
	default:
		c.Error++
	}
}

// SeverityCounts counts failed results by severity.
type SeverityCounts struct {
	Critical int `json:"critical"`
	High     int `json:"high"`
	Medium   int `json:"medium"`
	Low      int `json:"low"`
	Info     int `json:"info"`
}

func (c *SeverityCounts) add(s Severity) {
	switch s {
	case SeverityCritical:
		c.Critical++
	case SeverityHigh:
		c.High++
	case SeverityMedium:
		c.Medium++
	case SeverityLow:
		c.Low++
	default:
		c.Info++
	}
}

// Summary counts the report's results (each rule once).
type Summary struct {
	Total            int            `json:"total"`
	ByStatus         StatusCounts   `json:"by_status"`
	FailedBySeverity SeverityCounts `json:"failed_by_severity"`
}

// ProfileScore is the score of one selected profile.
type ProfileScore struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	// Rules counts the profile's rules evaluated; Applicable those that
	// apply to the guest (Rules less Counts.NotApplicable).
	Rules      int          `json:"rules"`
	Applicable int          `json:"applicable"`
	Counts     StatusCounts `json:"counts"`
	// Note says plainly when no rule of the profile applies to the guest
	// ("no rule of profile compliance applies to windows").
	Note string `json:"note,omitempty"`
	// PassRate is pass/(pass+fail), 0..1; null when no rule was decided.
	PassRate *float64 `json:"pass_rate"`
	// Noncompliant: a fail of this profile at or above the threshold.
	Noncompliant bool `json:"noncompliant"`
}

// ReportSchema names the report format.
const ReportSchema = "guestkit.io/profile/v1"

// Report is the result of Evaluate; its JSON form is the profile output.
type Report struct {
	Schema   string         `json:"schema"`
	OS       OSInfo         `json:"os"`
	Profiles []ProfileScore `json:"profiles"`
	Results  []RuleResult   `json:"results"`
	Summary  Summary        `json:"summary"`
	// HardeningIndex is 0..100, see doc.go.
	HardeningIndex int  `json:"hardening_index"`
	Noncompliant   bool `json:"noncompliant"`
	// Threshold is the severity_threshold in force.
	Threshold      Severity `json:"threshold"`
	FailOnCritical bool     `json:"fail_on_critical"`
}
