package cli

import (
	"io"
	"sort"
	"strconv"

	"context"
	"encoding/json"
	"fmt"
	"guestkit.io/batch/internal/profile"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/spec"
)

// localImage are the flags of the commands that work on a local image.
type localImage struct {
	Image          string `arg:"" help:"Disk image file." type:"existingfile"`
	Output         string `short:"o" help:"Write the JSON result to this file instead of stdout." env:"GUESTKIT_OUTPUT"`
	Format         string `help:"Declared image format (qcow2, raw, vmdk, vdi, vhdx, vpc); probed and checked either way." env:"GUESTKIT_FORMAT"`
	Accel          string `help:"Accelerator: auto, kvm or tcg." default:"auto" enum:"auto,kvm,tcg" env:"GUESTKIT_ACCEL"`
	Backend        string `help:"How to read the disk: auto (direct, falling back to the appliance for what direct does not read), direct (in Go, no VM; never falls back) or appliance (libguestfs). A spec's payload.data.options.backend overrides it." default:"auto" enum:"${backends}" env:"GUESTKIT_BACKEND"`
	Timeout        int64  `help:"Timeout in seconds." default:"3600" env:"GUESTKIT_TIMEOUT"`
	Memory         int    `help:"Appliance memory in MiB (0: libguestfs default)." default:"0" env:"GUESTKIT_MEMORY_MB"`
	MaxVirtualSize int64  `name:"max-virtual-size" help:"Refuse images whose virtual size exceeds this many bytes (0: the default 8 TiB, -1: no limit)." default:"0" env:"GUESTKIT_MAX_VIRTUAL_SIZE"`
	Summary        bool   `help:"Print a short human summary to stdout (the JSON goes to -o, if given)." env:"GUESTKIT_SUMMARY"`
}

func (l *localImage) validate() error {
	if l.Timeout < 1 || l.Timeout > 7*24*3600 {
		return fmt.Errorf("--timeout: %d, want 1 to 604800 seconds", l.Timeout)
	}
	return nil
}

// execute runs job on the image with these flags.
func (l *localImage) execute(ctx context.Context, deps Deps, job *spec.Job, abs string) *result.Result {
	return runner.Execute(ctx, job, nil, runner.Config{
		Version: deps.Version, Backend: l.Backend, Accel: l.Accel, MemoryMB: l.Memory, ImagePath: abs, MaxVirtualSize: l.MaxVirtualSize, Log: deps.Log, Launch: deps.Launch, OpenDirect: deps.OpenDirect,
	})
}

// InspectCmd inspects one local image for a person.
type InspectCmd struct {
	localImage   `embed:""`
	ReportFormat string `help:"json (the result), or cyclonedx or spdx (an SBOM of the packages): written beside -o (one per OS root), or to stdout without -o." default:"json" enum:"${inventory_formats}" env:"GUESTKIT_REPORT_FORMAT"`
}

// Validate checks what kong's tags cannot.
func (c *InspectCmd) Validate() error { return c.validate() }

// Run inspects the image; the exit code is the result's.
func (c *InspectCmd) Run(ctx context.Context, deps Deps) error {
	abs, err := filepath.Abs(c.Image)
	if err != nil {
		return err
	}
	res := c.execute(ctx, deps, adhocJob(spec.OpInspect, abs, c.Format, c.Timeout), abs)
	return emitWithReports(res, c.ReportFormat, c.Output, c.Summary, deps)
}

// emitWithReports writes the result, and the reports of format beside
// output (result.ReportName: out.sarif, out.2.sarif, out.cdx.json, ...), or
// the one report to stdout without output (a disk with more OS roots needs
// -o).
func emitWithReports(res *result.Result, format, output string, summary bool, deps Deps) error {
	if format == result.FormatJSON {
		return emit(res, output, summary, deps)
	}
	docs, err := runner.RenderReports(res, format)
	switch {
	case runner.NothingToRender(err):
		// No findings or packages to render (the job failed): the result
		// says why.
		deps.Log.WithFields(logrus.Fields{"status": res.Status, "format": format}).Warn("no report to write; see the result")
	case err != nil:
		return err
	case output == "" && len(docs) > 1:
		return &ExitError{Code: result.ExitUsage, Err: fmt.Errorf("the image has %d OS roots: pass -o to write one %s report per root", len(docs), format)}
	case output == "":
		if _, err := deps.Stdout.Write(docs[0]); err != nil {
			return err
		}
		return exitErr(res.ExitCode, nil)
	default:
		base := strings.TrimSuffix(output, ".json")
		for i, d := range docs {
			name := result.ReportName(base, format, i)
			if err := os.WriteFile(name, d, 0o644); err != nil {
				return fmt.Errorf("write %s report %s: %w", format, name, err)
			}
		}
	}
	return emit(res, output, summary, deps)
}

// adhocJob is the job a command line implies.
func adhocJob(op, image, format string, timeout int64) *spec.Job {
	id := "local-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return '-'
	}, filepath.Base(image))
	if len(id) > 128 {
		id = id[:128]
	}
	return &spec.Job{
		Version: "1.0", JobID: id, Kind: "VMOperation", Operation: op,
		Execution: &spec.Execution{TimeoutSeconds: &timeout},
		Payload: spec.Payload{Type: op + ".v1", Data: &spec.Data{
			Image: &spec.Image{Path: image, Format: format},
		}},
	}
}

// emit writes the result and returns its exit code.
func emit(res *result.Result, output string, summary bool, deps Deps) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	switch {
	case output != "":
		if err := os.WriteFile(output, b, 0o644); err != nil {
			// As for run: exit 7 means the result is on stderr.
			deps.Log.WithError(err).Error("cannot write the result; it is the next line on stderr")
			line, _ := json.Marshal(res)
			fmt.Fprintf(deps.Stderr, "%s\n", line)
			return &ExitError{Code: result.ExitUploadFailed, Err: fmt.Errorf("write %s: %w", output, err), logged: true}
		}
	case !summary:
		if _, err := deps.Stdout.Write(b); err != nil {
			return err
		}
	}
	if summary {
		writeSummary(deps, res)
	}
	return exitErr(res.ExitCode, nil)
}

func writeSummary(deps Deps, res *result.Result) {
	w := deps.Stdout
	fmt.Fprintf(w, "job %s: %s (exit %d) in %.1fs", res.JobID, res.Status, res.ExitCode, res.DurationSeconds)
	if res.Accelerator != nil {
		fmt.Fprintf(w, ", accel %s", res.Accelerator.Used)
	}
	fmt.Fprintln(w)
	if res.Image != nil {
		fmt.Fprintf(w, "image %s: %s, %d MiB virtual\n", res.Image.URI, res.Image.Format, res.Image.VirtualSize>>20)
	}
	if res.Error != nil {
		fmt.Fprintf(w, "error %s in %s: %s\n", res.Error.Code, res.Error.Phase, res.Error.Message)
	}
	var rep inspect.Report
	if len(res.Data) == 0 || json.Unmarshal(res.Data, &rep) != nil {
		return
	}
	for _, o := range rep.OperatingSystems {
		fmt.Fprintf(w, "\nroot %s: %s %s (%s %d.%d, %s), hostname %q\n", o.Root, o.Type, o.ProductName, o.Distro, o.MajorVersion, o.MinorVersion, o.Arch, o.Hostname)
		fmt.Fprintf(w, "  packages: %d (%s)\n", len(o.Applications), o.PackageFormat)
		logins := []string{}
		for _, u := range o.Users {
			if u.CanLogin {
				logins = append(logins, u.Name)
			}
		}
		fmt.Fprintf(w, "  users: %d, can log in: %s\n", len(o.Users), strings.Join(logins, ", "))
		if o.Services != nil {
			fmt.Fprintf(w, "  enabled services: %d (%s)\n", len(o.Services.Enabled), o.Services.InitSystem)
		}
		if o.Kernels != nil {
			fmt.Fprintf(w, "  kernels: %d, default %s\n", len(o.Kernels.Installed), o.Kernels.Default)
		}
		if o.Network != nil {
			for _, i := range o.Network.Interfaces {
				fmt.Fprintf(w, "  network %s: %s via %s %s\n", i.Name, i.Method, i.Source, strings.Join(i.Addresses, " "))
			}
		}
		if s := o.Security; s != nil {
			if s.Firewall != nil {
				fmt.Fprintf(w, "  firewall: %s enabled=%v\n", s.Firewall.Kind, s.Firewall.Enabled)
			}
			if s.SSH != nil {
				fmt.Fprintf(w, "  sshd: enabled=%v PermitRootLogin=%s\n", s.SSH.Enabled, s.SSH.Settings["permitrootlogin"])
			}
		}
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "problem: %s %s: %s\n", p.Section, p.Path, p.Message)
	}
	writeProfileSummary(w, res)
}

// writeProfileSummary prints scores and the failed rules, worst first.
func writeProfileSummary(w io.Writer, res *result.Result) {
	var d runner.ProfileData
	if json.Unmarshal(res.Data, &d) != nil {
		return
	}
	for _, rp := range d.Profiles {
		r := rp.Report
		fmt.Fprintf(w, "\nprofile %s: hardening index %d, noncompliant=%v (threshold %s)\n", rp.Root, r.HardeningIndex, r.Noncompliant, r.Threshold)
		for _, p := range r.Profiles {
			rate := "n/a"
			if p.PassRate != nil {
				rate = fmt.Sprintf("%.0f%%", *p.PassRate*100)
			}
			fmt.Fprintf(w, "  %-18s pass %3d  fail %3d  n/a %3d  notchecked %d  pass rate %s\n", p.Name, p.Counts.Pass, p.Counts.Fail, p.Counts.NotApplicable, p.Counts.NotChecked, rate)
			if p.Note != "" {
				fmt.Fprintf(w, "  %-18s %s\n", "", p.Note)
			}
		}
		failed := make([]profile.RuleResult, 0)
		for _, x := range r.Results {
			if x.Status == profile.StatusFail || x.Status == profile.StatusError {
				failed = append(failed, x)
			}
		}
		sort.SliceStable(failed, func(i, j int) bool { return failed[i].Severity.Rank() > failed[j].Severity.Rank() })
		for _, x := range failed {
			where := ""
			if len(x.Evidence) > 0 {
				e := x.Evidence[0]
				where = e.File
				if e.Line > 0 {
					where = fmt.Sprintf("%s:%d", e.File, e.Line)
				}
				if e.Value != "" {
					where += " " + strconv.Quote(e.Value)
				}
			}
			fmt.Fprintf(w, "  %-4s %-8s %s %s\n", x.Status, x.Severity, x.ID, where)
		}
	}
}
