package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/term"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/result"
)

// OnceCmd dispatches everything pending and waits for the results.
type OnceCmd struct {
	ExecutorFlags
	FailOnNoncompliant bool   `name:"fail-on-noncompliant" help:"Exit 2 when an image is noncompliant (by default findings are not failures)." env:"GUESTKIT_FAIL_ON_NONCOMPLIANT"`
	Progress           string `help:"Progress line on stderr: auto (on a terminal), always or never." enum:"auto,always,never" default:"auto" env:"GUESTKIT_PROGRESS"`
}

// Run dispatches, waits and prints a summary. The exit code is 1 when a
// result is failed, timeout or rejected.
func (c *OnceCmd) Run(ctx context.Context, deps Deps) error {
	log := deps.Log.WithField("command", "once")
	en, err := newEngine(ctx, deps.Globals, &c.ExecutorFlags, deps, log)
	if err != nil {
		return err
	}
	sum, err := runOnce(ctx, en, newProgress(deps, c.Progress))
	en.logStats(log)
	if err != nil {
		return err
	}
	if err := printSummary(deps.Stdout, sum); err != nil {
		return err
	}
	return summaryExit(sum, c.FailOnNoncompliant)
}

// runOnce starts the executor, runs Controller.Once, and lets running
// local processes finish when interrupted.
func runOnce(ctx context.Context, en *engine, p *progress) (*controller.Summary, error) {
	if en.start != nil {
		if err := en.start(ctx); err != nil {
			return nil, err
		}
	}
	sum, err := en.controller.Once(ctx, en.trigger, p.report)
	p.done()
	if en.wait != nil {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = en.wait(wctx)
	}
	return sum, err
}

// logStats logs what the run cost, for operators and the benchmark.
func (en *engine) logStats(log logrus.FieldLogger) {
	t := en.metrics.Totals()
	log.WithFields(logrus.Fields{
		"passes": t["passes_total"], "jobs_created": t["jobs_created_total"],
		"specs_seen": t["specs_seen_total"], "kube_api_requests": t["kube_api_requests_total"],
	}).Info("stats")
}

func summaryExit(sum *controller.Summary, failOnNoncompliant bool) error {
	switch {
	case sum.Failed():
		return &ExitError{Code: ExitJobsFailed, Err: fmt.Errorf("%d of %d jobs did not complete", len(sum.Items), sum.Total)}
	case failOnNoncompliant && sum.Noncompliant > 0:
		return &ExitError{Code: ExitNoncompliant, Err: fmt.Errorf("%d of %d images are noncompliant", sum.Noncompliant, sum.Total)}
	}
	return nil
}

// printSummary writes counts by status, then every spec that did not
// complete.
func printSummary(w io.Writer, s *controller.Summary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d specs:", s.Total)
	statuses := make([]string, 0, len(s.ByStatus))
	for st := range s.ByStatus {
		statuses = append(statuses, string(st))
	}
	slices.Sort(statuses)
	for _, st := range statuses {
		fmt.Fprintf(&b, " %d %s", s.ByStatus[result.Status(st)], st)
	}
	if s.Noncompliant > 0 {
		fmt.Fprintf(&b, " (%d noncompliant)", s.Noncompliant)
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if len(s.Items) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SPEC\tJOB ID\tSTATUS\tCODE\tMESSAGE")
	for _, it := range s.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.Key, it.JobID, it.Status, it.Code, oneLine(it.Message, 120))
	}
	return tw.Flush()
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n-3] + "..."
	}
	return s
}

// progress draws one line on a terminal, overwritten in place.
type progress struct {
	w       io.Writer
	on      bool
	started time.Time
	drawn   bool
}

func newProgress(deps Deps, mode string) *progress {
	on := mode == "always"
	if mode == "auto" {
		if deps.IsTerminal != nil {
			on = deps.IsTerminal()
		} else if f, ok := deps.Stderr.(*os.File); ok {
			on = term.IsTerminal(int(f.Fd()))
		}
	}
	return &progress{w: deps.Stderr, on: on, started: time.Now()}
}

func (p *progress) report(pr controller.Progress) {
	if !p.on {
		return
	}
	el := time.Since(p.started).Truncate(time.Second)
	fmt.Fprintf(p.w, "\r\033[K[%s] %d/%d done, %d running, %d waiting", el, pr.Done, pr.Total, pr.Active, pr.Waiting)
	p.drawn = true
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprint(p.w, "\n")
	}
}
