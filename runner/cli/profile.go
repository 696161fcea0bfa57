package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"guestkit.io/batch/internal/spec"
)

// ProfileCmd evaluates security and compliance profiles on one local image.
type ProfileCmd struct {
	localImage        `embed:""`
	Profiles          []string `help:"Profiles: ${profiles}." default:"${default_profiles}" sep:"," env:"GUESTKIT_PROFILES"`
	SeverityThreshold string   `help:"Lowest severity of a failed rule that makes the image noncompliant (exit 2); none disables." default:"medium" enum:"none,info,low,medium,high,critical" env:"GUESTKIT_SEVERITY_THRESHOLD"`
	FailOnCritical    bool     `help:"A failed critical rule makes the image noncompliant whatever the threshold." default:"true" negatable:"" env:"GUESTKIT_FAIL_ON_CRITICAL"`
	Remediation       bool     `help:"Include remediation text in the results." default:"true" negatable:"" env:"GUESTKIT_INCLUDE_REMEDIATION"`
	ReportFormat      string   `help:"json (the result), sarif or junit (the findings), cyclonedx or spdx (an SBOM of the packages): written beside -o (one per OS root), or to stdout without -o." default:"json" enum:"${report_formats}" env:"GUESTKIT_REPORT_FORMAT"`
}

// Validate checks what kong's tags cannot.
func (c *ProfileCmd) Validate() error {
	known := spec.KnownProfiles()
	for _, p := range c.Profiles {
		if !contains(known, p) {
			return fmt.Errorf("--profiles: unknown profile %q (known: %s)", p, strings.Join(known, ", "))
		}
	}
	return c.validate()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Run profiles the image; the exit code is the result's (2: noncompliant).
func (c *ProfileCmd) Run(ctx context.Context, deps Deps) error {
	abs, err := filepath.Abs(c.Image)
	if err != nil {
		return err
	}
	job := adhocJob(spec.OpProfile, abs, c.Format, c.Timeout)
	job.Payload.Data.Profiles = c.Profiles
	job.Payload.Data.Options = &spec.Options{
		SeverityThreshold: c.SeverityThreshold, FailOnCritical: &c.FailOnCritical, IncludeRemediation: &c.Remediation,
	}
	res := c.execute(ctx, deps, job, abs)
	return emitWithReports(res, c.ReportFormat, c.Output, c.Summary, deps)
}
