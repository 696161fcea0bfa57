package runner

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/guestconf"
	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/spec"
)

// ProfileData is the data of a guestkit.profile result: the inspection, and
// one profile report per OS root, evaluated on the same mount.
type ProfileData struct {
	*inspect.Report
	Profiles []RootProfile `json:"profile_reports"`
	// Noncompliant is true when any root is noncompliant.
	Noncompliant bool `json:"noncompliant"`
	// RulesetVersion is profile.RulesetVersion() of this runner: a sweep
	// carries the result forward only while the dispatcher's is the same.
	RulesetVersion string `json:"ruleset_version"`
}

// RootProfile is the profile report of one OS root.
type RootProfile struct {
	Root string `json:"root"`
	*profile.Report
}

// profiler evaluates the job's profiles on each mounted root. It is nil for
// inspect jobs.
type profiler struct {
	opts    profile.Options
	reports []RootProfile
	// log says when a requested profile has no rule for a root's OS
	// (Linux profiles on a Windows guest); nil logs nothing.
	log logrus.FieldLogger
}

func newProfiler(job *spec.Job) (*profiler, error) {
	if job.Operation != spec.OpProfile {
		return nil, nil
	}
	po := job.ProfileOptions()
	sev, err := profile.ParseSeverity(po.SeverityThreshold)
	if err != nil {
		return nil, fmt.Errorf("severity_threshold: %w", err)
	}
	return &profiler{opts: profile.Options{
		Profiles:           po.Profiles,
		SeverityThreshold:  sev,
		FailOnCritical:     po.FailOnCritical,
		IncludeRemediation: po.IncludeRemediation,
	}}, nil
}

func (p *profiler) visit(ctx context.Context, os *inspect.OS, fsys guest.FS) error {
	t := profile.Target{
		FS: fsys,
		OS: profile.OSInfo{Type: os.Type, Distro: os.Distro, PackageFormat: os.PackageFormat},
	}
	// libguestfs reports 0.0 when it does not know the version (rolling
	// releases, Debian testing): leave it empty so that the profile takes
	// os-release's VERSION_ID instead.
	if os.MajorVersion != 0 || os.MinorVersion != 0 {
		t.OS.Version = fmt.Sprintf("%d.%d", os.MajorVersion, os.MinorVersion)
	}
	// The inspection's package list is authoritative (it reads rpm too);
	// without it the rules read dpkg or apk themselves.
	if len(os.Applications) > 0 {
		t.Packages = make([]guestconf.Package, 0, len(os.Applications))
		for _, a := range os.Applications {
			t.Packages = append(t.Packages, guestconf.Package{Name: a.Name, Version: a.PackageVersion(os.PackageFormat), Arch: a.Arch})
		}
	}
	rep, err := profile.Evaluate(ctx, t, p.opts)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	p.reports = append(p.reports, RootProfile{Root: os.Root, Report: rep})
	for _, ps := range rep.Profiles {
		if ps.Note != "" && p.log != nil {
			p.log.WithFields(logrus.Fields{"root": os.Root, "profile": ps.Name, "os_family": rep.OS.Family, "rules": ps.Rules, "applicable": ps.Applicable}).Warn(ps.Note)
		}
	}
	return nil
}

func (p *profiler) data(rep *inspect.Report) *ProfileData {
	return &ProfileData{Report: rep, Profiles: p.reports, Noncompliant: p.noncompliant(), RulesetVersion: profile.RulesetVersion()}
}

func (p *profiler) noncompliant() bool {
	for _, r := range p.reports {
		if r.Noncompliant {
			return true
		}
	}
	return false
}
