// Package cli is guestkit-runner's command line: one kong command per file.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/profile/names"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/runnerenv"
	"guestkit.io/batch/internal/spec"
)

// Deps are the command's connections to the outside world.
type Deps struct {
	Stdout, Stderr io.Writer
	Version        string
	// Launch overrides the appliance launcher (tests only).
	Launch runner.Launcher
	// OpenDirect overrides the direct backend (tests only).
	OpenDirect runner.DirectOpener
	Log        *logrus.Logger
}

// Globals are flags shared by every command.
type Globals struct {
	LogLevel  string `help:"Log level: debug, info, warn, error." default:"info" env:"GUESTKIT_LOG_LEVEL" enum:"debug,info,warn,error"`
	LogFormat string `help:"Log format: text or json." default:"text" env:"GUESTKIT_LOG_FORMAT" enum:"text,json"`
}

// CLI is the root command.
type CLI struct {
	Globals
	Inspect  InspectCmd  `cmd:"" help:"Inspect a disk image and print the result (for people)."`
	Profile  ProfileCmd  `cmd:"" help:"Evaluate security and compliance profiles on a disk image (for people)."`
	Run      RunCmd      `cmd:"" help:"Run a job spec and store its result (for Kubernetes Jobs)."`
	KVMCheck KVMCheckCmd `cmd:"" name:"kvm-check" help:"Check whether KVM works here (what --accel auto decides)."`
	Version  VersionCmd  `cmd:"" help:"Print the version."`
}

// ExitError carries a process exit code out of Run.
type ExitError struct {
	Code int
	Err  error
	// logged: the command already logged Err; Run does not repeat it.
	logged bool
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode maps Run's error to the documented exit codes.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var pe *kong.ParseError
	if errors.As(err, &pe) {
		return result.ExitUsage
	}
	return result.ExitInternal
}

// Run parses args and runs the chosen command. Errors are written to
// deps.Stderr (parse errors) or logged; the caller only maps the returned
// error to an exit code with ExitCode.
func Run(ctx context.Context, args []string, deps Deps) (err error) {
	// A panic would end the process with Go's status 2, which is
	// ExitNoncompliant: a bug must exit with ExitInternal instead. (Panics
	// during a job are already turned into a result by runner.Execute.)
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(deps.Stderr, "guestkit-runner: internal error (a bug, please report it): %v\n%s", p, debug.Stack())
			err = &ExitError{Code: result.ExitInternal, Err: fmt.Errorf("panic: %v", p), logged: true}
		}
	}()
	var c CLI
	exited := -1
	parser, err := kong.New(&c,
		kong.Name("guestkit-runner"),
		kong.Description("Inspect or profile one VM disk image, read-only, with libguestfs."),
		kong.Writers(deps.Stdout, deps.Stderr),
		kong.Exit(func(code int) { exited = code }),
		Vars(),
	)
	if err != nil {
		return err
	}
	kctx, err := parser.Parse(args)
	if exited >= 0 { // --help
		return exitErr(exited, nil)
	}
	if err != nil {
		fmt.Fprintf(deps.Stderr, "guestkit-runner: %v\n", err)
		return &ExitError{Code: result.ExitUsage, Err: err}
	}
	if deps.Log == nil {
		deps.Log = logrus.New()
		deps.Log.SetOutput(deps.Stderr)
		lvl, _ := logrus.ParseLevel(c.LogLevel)
		deps.Log.SetLevel(lvl)
		if c.LogFormat == "json" {
			deps.Log.SetFormatter(&logrus.JSONFormatter{})
		}
	}
	kctx.BindTo(ctx, (*context.Context)(nil))
	err = kctx.Run(ctx, deps)
	var ee *ExitError
	if err != nil && !(errors.As(err, &ee) && (ee.Err == nil || ee.logged)) {
		deps.Log.WithError(err).Error(kctx.Command() + " failed")
	}
	return err
}

// Vars fill the ${...} of the flags' tags, so that help and defaults name
// the profiles of the registry.
func Vars() kong.Vars {
	return kong.Vars{
		"profiles":         strings.Join(names.All(), ", "),
		"default_profiles": strings.Join(names.Defaults(), ","),
		"backends":         strings.Join(spec.Backends(), ","),
		"accesses":         strings.Join(runnerenv.ImageAccesses(), ","),
		"verifies":         strings.Join(runnerenv.Verifies(), ","),
		"report_formats":   strings.Join(result.Formats(), ","),
		// inspect has no findings: the JSON result or an SBOM.
		"inventory_formats": strings.Join(slices.DeleteFunc(result.Formats(), result.IsFinding), ","),
	}
}

func exitErr(code int, err error) error {
	if code == 0 && err == nil {
		return nil
	}
	return &ExitError{Code: code, Err: err}
}
