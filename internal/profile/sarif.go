package profile

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
)

// SARIF 2.1.0 output. Only the parts of the format the report fills are
// modelled; the test validates the output against the official schema.

// SARIFSchemaURI is the schema the output declares.
const SARIFSchemaURI = "https://json.schemastore.org/sarif-2.1.0.json"

// GuestRootBaseID is the uriBaseId of guest file locations: result URIs
// are relative to the guest's "/", not to any host path.
const GuestRootBaseID = "GUESTROOT"

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool               sarifTool                   `json:"tool"`
	Invocations        []sarifInvocation           `json:"invocations"`
	OriginalURIBaseIDs map[string]sarifArtifactLoc `json:"originalUriBaseIds"`
	Results            []sarifResult               `json:"results"`
	Properties         map[string]any              `json:"properties,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name,omitempty"`
	ShortDescription     sarifText      `json:"shortDescription"`
	Help                 *sarifText     `json:"help,omitempty"`
	HelpURI              string         `json:"helpUri,omitempty"`
	DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
	Properties           map[string]any `json:"properties"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool           `json:"executionSuccessful"`
	Properties          map[string]any `json:"properties,omitempty"`
}

type sarifArtifactLoc struct {
	URI         string     `json:"uri"`
	URIBaseID   string     `json:"uriBaseId,omitempty"`
	Description *sarifText `json:"description,omitempty"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifactLoc `json:"artifactLocation"`
	Region           *sarifRegion     `json:"region,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
	Message          *sarifText    `json:"message,omitempty"`
}

type sarifResult struct {
	RuleID     string          `json:"ruleId"`
	RuleIndex  int             `json:"ruleIndex"`
	Kind       string          `json:"kind"`
	Level      string          `json:"level"`
	Message    sarifText       `json:"message"`
	Locations  []sarifLocation `json:"locations,omitempty"`
	Properties map[string]any  `json:"properties,omitempty"`
}

// sarifLevel maps a failed rule's severity to a SARIF level.
func sarifLevel(s Severity) string {
	switch s {
	case SeverityCritical, SeverityHigh:
		return "error"
	case SeverityMedium:
		return "warning"
	}
	return "note"
}

// securitySeverity is the CVSS-like score code-scanning dashboards sort by.
func securitySeverity(s Severity) string {
	switch s {
	case SeverityCritical:
		return "9.5"
	case SeverityHigh:
		return "8.0"
	case SeverityMedium:
		return "5.5"
	case SeverityLow:
		return "3.0"
	}
	return "1.0"
}

// guestURI turns "/etc/ssh/sshd_config" into a relative URI reference.
func guestURI(p string) string {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// helpURI points at the rule's source in ComplianceAsCode, when it has one.
func helpURI(r RuleResult) string {
	if r.References.ComplianceAsCode == "" {
		return ""
	}
	return "https://github.com/ComplianceAsCode/content/search?type=code&q=" + url.QueryEscape("path:"+r.References.ComplianceAsCode+"/rule.yml")
}

func ruleTags(r RuleResult) []string {
	tags := []string{"security", "compliance"}
	add := func(t string) {
		if t != "" && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	for _, p := range r.Profiles {
		add("profile:" + p)
	}
	if r.References.CISDebian != "" {
		add("CIS-Debian:" + r.References.CISDebian)
	}
	if r.References.CISRHEL != "" {
		add("CIS-RHEL:" + r.References.CISRHEL)
	}
	if r.References.CISWindows != "" {
		add("CIS-Windows-Server-2022:" + r.References.CISWindows)
	}
	for _, p := range r.References.PCIDSS {
		add("PCI-DSS:" + p)
	}
	return tags
}

// evidenceLine renders one piece of evidence for messages.
func evidenceLine(e Evidence) string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
	}
	if e.Value != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Value)
	}
	if e.Note != "" {
		if b.Len() > 0 {
			b.WriteString(" — ")
		}
		b.WriteString(e.Note)
	}
	return b.String()
}

// WriteSARIF writes the report as a SARIF 2.1.0 log with one run. Every
// evaluated rule is a tool.driver.rules entry (help text, helpUri, CIS and
// PCI-DSS references as tags). Results are the failed rules (kind fail,
// level error for critical/high, warning for medium, note for low/info)
// and the undecided ones (notchecked, error: kind review, level note), so
// that nothing that could not be checked looks clean. Passed and
// notapplicable rules are counted in run.properties only. Locations are
// guest files relative to the GUESTROOT base.
func WriteSARIF(w io.Writer, rep *Report, toolVersion string) error {
	run := sarifRun{
		Tool: sarifTool{Driver: sarifDriver{Name: "guestkit-profile", Version: toolVersion,
			InformationURI: "https://guestkit.io/"}},
		OriginalURIBaseIDs: map[string]sarifArtifactLoc{
			GuestRootBaseID: {URI: "file:///", Description: &sarifText{Text: "The root of the inspected guest filesystem."}},
		},
		Results: []sarifResult{},
		Properties: map[string]any{
			"summary":          rep.Summary,
			"profiles":         rep.Profiles,
			"hardening_index":  rep.HardeningIndex,
			"noncompliant":     rep.Noncompliant,
			"threshold":        rep.Threshold,
			"fail_on_critical": rep.FailOnCritical,
			"os":               rep.OS,
		},
		Invocations: []sarifInvocation{{ExecutionSuccessful: true}},
	}
	run.Tool.Driver.Rules = []sarifRule{}
	for i, r := range rep.Results {
		rule := sarifRule{
			ID:                   r.ID,
			ShortDescription:     sarifText{Text: r.Title},
			HelpURI:              helpURI(r),
			DefaultConfiguration: sarifConfig{Level: sarifLevel(r.Severity)},
			Properties: map[string]any{
				"tags":              ruleTags(r),
				"severity":          r.Severity,
				"security-severity": securitySeverity(r.Severity),
				"references":        r.References,
			},
		}
		if r.Remediation != "" {
			rule.Help = &sarifText{Text: r.Remediation}
		}
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, rule)

		var kind, level string
		switch r.Status {
		case StatusFail:
			kind, level = "fail", sarifLevel(r.Severity)
		case StatusNotChecked, StatusError:
			kind, level = "review", "note"
		default:
			continue
		}
		var lines []string
		var locs []sarifLocation
		for _, e := range r.Evidence {
			lines = append(lines, evidenceLine(e))
			if e.File == "" {
				continue
			}
			loc := sarifLocation{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifactLoc{URI: guestURI(e.File), URIBaseID: GuestRootBaseID}}}
			if e.Line > 0 {
				loc.PhysicalLocation.Region = &sarifRegion{StartLine: e.Line}
			}
			if m := strings.TrimSpace(e.Value + " " + e.Note); m != "" {
				loc.Message = &sarifText{Text: m}
			}
			locs = append(locs, loc)
		}
		prefix := r.Title
		if kind == "review" {
			prefix = fmt.Sprintf("%s: could not be decided (%s)", r.Title, r.Status)
		}
		run.Results = append(run.Results, sarifResult{
			RuleID: r.ID, RuleIndex: i, Kind: kind, Level: level,
			Message:    sarifText{Text: prefix + ". " + strings.Join(lines, "; ")},
			Locations:  locs,
			Properties: map[string]any{"status": r.Status, "severity": r.Severity, "profiles": r.Profiles},
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Schema: SARIFSchemaURI, Version: "2.1.0", Runs: []sarifRun{run}})
}
