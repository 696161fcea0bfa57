// Package cli is guestkit-dispatcher's command line: one kong command per
// file, each with Run(ctx, deps).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"

	"github.com/alecthomas/kong"
	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/exitcode"
	"guestkit.io/batch/internal/runnerenv"
	"guestkit.io/batch/internal/spec"
)

// Exit codes of guestkit-dispatcher; their meanings are in package exitcode.
const (
	ExitOK           = exitcode.DispatcherOK
	ExitJobsFailed   = exitcode.DispatcherJobsFailed
	ExitNoncompliant = exitcode.DispatcherNoncompliant
	ExitFailure      = exitcode.DispatcherFailure
	ExitUsage        = exitcode.DispatcherUsage
	ExitInterrupted  = exitcode.DispatcherInterrupted
)

// Deps are the command's connections to the outside world.
type Deps struct {
	Stdout, Stderr io.Writer
	Version        string
	Log            *logrus.Logger
	// Getenv reads the environment (os.Getenv when nil).
	Getenv func(string) string
	// IsTerminal says whether Stderr is a terminal, for the progress line
	// (detected when nil).
	IsTerminal func() bool
	// Globals are the parsed global flags (set by Run).
	Globals *Globals
}

// Globals are flags shared by every command.
type Globals struct {
	Bucket    string `help:"Bucket URL: s3://BUCKET[/PREFIX][?endpoint=URL&path-style=true], minio://BUCKET[/PREFIX][?endpoint=HOST:PORT], or a local folder (file:///path or a path)." default:"guestkit-bucket" env:"GUESTKIT_BUCKET"`
	LogLevel  string `help:"Log level: debug, info, warn, error." default:"info" env:"GUESTKIT_LOG_LEVEL" enum:"debug,info,warn,error"`
	LogFormat string `help:"Log format: text or json." default:"text" env:"GUESTKIT_LOG_FORMAT" enum:"text,json"`
}

// CLI is the root command.
type CLI struct {
	Globals
	Watch     WatchCmd     `cmd:"" help:"Dispatch specs as they arrive, until stopped (the Deployment)."`
	Once      OnceCmd      `cmd:"" help:"Dispatch everything pending, wait for the results, print a summary."`
	Sweep     SweepCmd     `cmd:"" help:"Profile every disk image under a prefix and write a sweep report (the nightly CronJob)."`
	Submit    SubmitCmd    `cmd:"" help:"Validate job specs and upload them to the bucket."`
	Upload    UploadCmd    `cmd:"" help:"Upload a disk image with its sha256, which the store verifies, and a KEY.sha256 sidecar."`
	Status    StatusCmd    `cmd:"" help:"Show specs, their Jobs and their results."`
	Inventory InventoryCmd `cmd:"" help:"Ask the fleet, from the latest sweep: which images have a package (in a version range), the OS distribution, which images failed a rule."`
	Version   VersionCmd   `cmd:"" help:"Print the version."`
}

// ExitError carries a process exit code out of Run.
type ExitError struct {
	Code int
	Err  error
	// logged: the command already reported Err.
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
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var pe *kong.ParseError
	switch {
	case errors.As(err, &pe):
		return ExitUsage
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	}
	return ExitFailure
}

// Run parses args and runs the chosen command.
func Run(ctx context.Context, args []string, deps Deps) (err error) {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(deps.Stderr, "guestkit-dispatcher: internal error (a bug, please report it): %v\n%s", p, debug.Stack())
			err = &ExitError{Code: ExitFailure, Err: fmt.Errorf("panic: %v", p), logged: true}
		}
	}()
	if deps.Getenv == nil {
		deps.Getenv = os.Getenv
	}
	var c CLI
	exited := -1
	parser, err := kong.New(&c,
		kong.Name("guestkit-dispatcher"),
		kong.Description("Turn a bucket of guestkit job specs into guestkit-runner runs (Kubernetes Jobs or local processes), with exactly one result per spec."),
		kong.Writers(deps.Stdout, deps.Stderr),
		kong.Exit(func(code int) { exited = code }),
		Vars(),
	)
	if err != nil {
		return err
	}
	kctx, err := parser.Parse(args)
	if exited >= 0 { // --help
		if exited == 0 {
			return nil
		}
		return &ExitError{Code: ExitUsage}
	}
	if err != nil {
		fmt.Fprintf(deps.Stderr, "guestkit-dispatcher: %v\n", err)
		return &ExitError{Code: ExitUsage, Err: err, logged: true}
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
	deps.Globals = &c.Globals
	err = kctx.Run(ctx, deps)
	var ee *ExitError
	if err != nil && !(errors.As(err, &ee) && (ee.Err == nil || ee.logged)) {
		deps.Log.WithError(err).Error(kctx.Command() + " failed")
	}
	return err
}

// atomicBool is a bool shared between the metrics server and the elector.
type atomicBool struct{ v atomic.Bool }

func (b *atomicBool) set(v bool) { b.v.Store(v) }
func (b *atomicBool) get() bool  { return b.v.Load() }

// Vars fill the ${...} of the flags' tags from the lists the runner and
// the spec validation use, so that the enums cannot drift from them.
func Vars() kong.Vars {
	return kong.Vars{
		"backends": strings.Join(spec.Backends(), ","),
		"accesses": strings.Join(runnerenv.ImageAccesses(), ","),
		"verifies": strings.Join(runnerenv.Verifies(), ","),
	}
}
