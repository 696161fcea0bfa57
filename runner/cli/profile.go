package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/spec"
)

// ProfileCmd evaluates security and compliance profiles on one local image.
type ProfileCmd struct {
	localImage        `embed:""`
	Profiles          []string `help:"Profiles: ${profiles}." default:"${default_profiles}" sep:"," env:"GUESTKIT_PROFILES"`
	SeverityThreshold string   `help:"Lowest severity of a failed rule that makes the image noncompliant (exit 2); none disables." default:"medium" enum:"none,info,low,medium,high,critical" env:"GUESTKIT_SEVERITY_THRESHOLD"`
	FailOnCritical    bool     `help:"A failed critical rule makes the image noncompliant whatever the threshold." default:"true" negatable:"" env:"GUESTKIT_FAIL_ON_CRITICAL"`
	Remediation       bool     `help:"Include remediation text in the results." default:"true" negatable:"" env:"GUESTKIT_INCLUDE_REMEDIATION"`
	ReportFormat      string   `help:"json (the result), or sarif or junit: written beside -o, or to stdout without -o." default:"json" enum:"json,sarif,junit" env:"GUESTKIT_REPORT_FORMAT"`
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
	if c.ReportFormat == result.FormatJSON {
		return emit(res, c.Output, c.Summary, deps)
	}
	docs, rerr := runner.RenderReports(res, c.ReportFormat)
	switch {
	case errors.Is(rerr, runner.ErrNoProfile):
		// No findings to render (the job failed): the result says why.
		deps.Log.WithField("status", res.Status).Warn("no profile report to write; see the result")
	case rerr != nil:
		return rerr
	case c.Output == "" && len(docs) > 1:
		return &ExitError{Code: result.ExitUsage, Err: fmt.Errorf("the image has %d OS roots: pass -o to write one report per root", len(docs))}
	case c.Output == "":
		if _, err := deps.Stdout.Write(docs[0]); err != nil {
			return err
		}
		return exitErr(res.ExitCode, nil)
	default:
		base := strings.TrimSuffix(c.Output, ".json")
		for i, d := range docs {
			if err := os.WriteFile(result.ReportName(base, c.ReportFormat, i), d, 0o644); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
		}
	}
	return emit(res, c.Output, c.Summary, deps)
}
