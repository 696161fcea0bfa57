package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/sweep"
)

// SweepCmd is the nightly compliance sweep.
type SweepCmd struct {
	ExecutorFlags
	Images             string        `help:"Key prefix of the disk images to profile." default:"images/" env:"GUESTKIT_SWEEP_IMAGES"`
	Profiles           []string      `help:"Profiles to evaluate on every image." default:"security,compliance,hardening" env:"GUESTKIT_SWEEP_PROFILES"`
	Date               string        `help:"Date of the sweep, YYYY-MM-DD (default: today, UTC). One sweep per date: a rerun reuses its specs and results." env:"GUESTKIT_SWEEP_DATE"`
	SeverityThreshold  string        `name:"severity-threshold" help:"Lowest severity that makes an image noncompliant (spec default: medium)." env:"GUESTKIT_SWEEP_SEVERITY_THRESHOLD"`
	Timeout            time.Duration `help:"Timeout of each image's job (0: the spec default)." default:"0" env:"GUESTKIT_SWEEP_TIMEOUT"`
	MaxAttempts        int           `name:"max-attempts" help:"Attempts per image (0: the spec default)." default:"0" env:"GUESTKIT_SWEEP_MAX_ATTEMPTS"`
	FailOnNoncompliant bool          `name:"fail-on-noncompliant" help:"Exit 2 when an image is noncompliant." env:"GUESTKIT_FAIL_ON_NONCOMPLIANT"`
	Progress           string        `help:"Progress line on stderr: auto, always or never." enum:"auto,always,never" default:"auto" env:"GUESTKIT_PROGRESS"`
	Full               bool          `help:"Read every image again: by default an image whose object (ETag or version id, and size) is unchanged since the previous sweep, swept then with the same profiles, threshold and ruleset, keeps its previous result (carried forward, no job)." env:"GUESTKIT_SWEEP_FULL"`
	ReportLinkTTL      time.Duration `name:"report-link-ttl" help:"Life of the presigned link to report.html printed for a remote bucket (at most 168h, S3's limit)." default:"168h" env:"GUESTKIT_SWEEP_REPORT_LINK_TTL"`
}

// Run plans one profile spec per image, runs them as once does, and writes
// sweeps/<date>/report.json, report.md (also printed) and report.html
// (its link printed).
func (c *SweepCmd) Run(ctx context.Context, deps Deps) error {
	log := deps.Log.WithField("command", "sweep")
	if err := checkReportLinkTTL(c.ReportLinkTTL); err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	started := time.Now().UTC()
	date := c.Date
	if date == "" {
		date = started.Format(time.DateOnly)
	}
	en, err := newEngine(ctx, deps.Globals, &c.ExecutorFlags, deps, log)
	if err != nil {
		return err
	}
	st := en.store
	var images []store.Object
	if err := st.List(ctx, c.Images, func(o store.Object) error {
		images = append(images, o)
		return nil
	}); err != nil {
		return fmt.Errorf("list images %s: %w", st.URI(c.Images), err)
	}
	planned, skipped, err := sweep.Specs(date, images, st, sweep.Options{
		Profiles: c.Profiles, SeverityThreshold: c.SeverityThreshold, Timeout: c.Timeout,
		MaxAttempts: c.MaxAttempts, CreatedAt: started,
	})
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("sweep %s: %w", date, err)}
	}
	for _, s := range skipped {
		log.WithFields(logrus.Fields{"key": s.Key, "reason": s.Reason}).Info("not an image; skipped")
	}
	statImages(ctx, st, planned, log)
	prev, err := sweep.Previous(ctx, st, date)
	if errors.Is(err, sweep.ErrCorruptReport) {
		log.WithError(err).Warn("the previous sweep report is unreadable; this report has no changes section and carries nothing")
		prev, err = nil, nil
	}
	if err != nil {
		return err
	}
	ruleset := profile.RulesetVersion()
	carried := sweep.Carry(planned, prev, sweep.CarryOptions{
		Profiles: c.Profiles, SeverityThreshold: c.SeverityThreshold, RulesetVersion: ruleset, Full: c.Full,
	})
	var toRead []sweep.Planned
	for _, p := range planned {
		if _, ok := carried[p.ImageKey]; !ok {
			toRead = append(toRead, p)
		}
	}
	log.WithFields(logrus.Fields{
		"date": date, "images": len(planned), "skipped": len(skipped), "read": len(toRead), "carried": len(carried),
		"full": c.Full, "ruleset_version": ruleset,
	}).Info("sweep planned")
	for _, p := range toRead {
		if err := submitPlanned(ctx, st, p); err != nil {
			return err
		}
	}
	if len(toRead) > 0 {
		if _, err := runOnce(ctx, en, newProgress(deps, c.Progress)); err != nil {
			return err
		}
	}

	results := readResults(ctx, st, toRead, log)
	rep := sweep.Build(sweep.BuildInput{
		Date: date, Prefix: c.Images, Profiles: c.Profiles, StartedAt: started, FinishedAt: time.Now().UTC(),
		Planned: planned, Skipped: skipped, Results: results, Previous: prev,
		SeverityThreshold: c.SeverityThreshold, RulesetVersion: ruleset, Full: c.Full, Carried: carried,
		PreviousPackages: previousPackages(ctx, st, prev, toRead, log),
	})
	data, err := sweep.Encode(rep)
	if err != nil {
		return err
	}
	md := sweep.Markdown(rep)
	if err := st.Put(ctx, sweep.ReportKey(date), data); err != nil {
		return fmt.Errorf("store sweep report %s: %w", st.URI(sweep.ReportKey(date)), err)
	}
	if err := st.Put(ctx, sweep.MarkdownKey(date), md); err != nil {
		return fmt.Errorf("store sweep report %s: %w", st.URI(sweep.MarkdownKey(date)), err)
	}
	link, err := storeHTMLReport(ctx, st, rep, results, c.ReportLinkTTL, log)
	if err != nil {
		return err
	}
	log.WithField("report", st.URI(sweep.ReportKey(date))).Info("sweep report stored")
	if _, err := deps.Stdout.Write(md); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(deps.Stdout, "\nHTML report: %s\n", link); err != nil {
		return err
	}
	t := rep.Totals.ByStatus
	switch {
	case t.Failed+t.Timeout+t.Rejected+t.Missing+t.Invalid > 0:
		return &ExitError{Code: ExitJobsFailed, Err: fmt.Errorf("sweep %s: %d of %d images have no profile", date, t.Failed+t.Timeout+t.Rejected+t.Missing+t.Invalid, len(planned))}
	case c.FailOnNoncompliant && t.Noncompliant > 0:
		return &ExitError{Code: ExitNoncompliant, Err: fmt.Errorf("sweep %s: %d images are noncompliant", date, t.Noncompliant)}
	}
	return nil
}

// submitPlanned uploads a sweep spec once. A spec already there with the
// same content is a rerun of the same sweep; different content means the
// date's sweep was planned with other options, and mixing them would make
// a report of two sweeps.
func submitPlanned(ctx context.Context, st store.Store, p sweep.Planned) error {
	err := st.Create(ctx, p.SpecKey, p.SpecJSON)
	if !errors.Is(err, store.ErrExists) {
		if err != nil {
			return fmt.Errorf("upload sweep spec %s: %w", st.URI(p.SpecKey), err)
		}
		return nil
	}
	old, err := st.Get(ctx, p.SpecKey, spec.MaxSize)
	if err != nil {
		return fmt.Errorf("read sweep spec %s: %w", st.URI(p.SpecKey), err)
	}
	j, _, err := spec.Parse(old)
	if err == nil && j.Digest() == p.Job.Digest() {
		return nil
	}
	if err == nil && bytes.Equal(old, p.SpecJSON) {
		return nil
	}
	return fmt.Errorf("sweep spec %s exists with other content (another sweep of this date with different options?): choose another --date or delete %s", st.URI(p.SpecKey), st.URI(p.SpecKey))
}

// readResults reads the planned jobs' results, by job_id; a missing or
// unreadable one is left out, and the report says "missing".
func readResults(ctx context.Context, st store.Store, planned []sweep.Planned, log *logrus.Entry) map[string]*result.Result {
	keys := make([]string, len(planned))
	for i, p := range planned {
		keys[i] = p.ResultKey
	}
	results, errs := controller.ReadResults(ctx, st, keys)
	for k, err := range errs {
		log.WithError(err).WithField("result", k).Warn("no result for a sweep image")
	}
	out := map[string]*result.Result{}
	for _, p := range planned {
		if r := results[p.ResultKey]; r != nil {
			out[p.Job.JobID] = r
		}
	}
	return out
}

// statImages adds what a listing lacks to the planned images' identity:
// the version id of a versioned bucket (and the ETag, should the listing
// not give it). A failed Stat leaves the listing's identity, which can
// only make the next sweep read the image again.
func statImages(ctx context.Context, st store.Store, planned []sweep.Planned, log *logrus.Entry) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, statParallel)
	for i := range planned {
		p := &planned[i]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			o, err := st.Stat(ctx, p.ImageKey)
			if err != nil {
				log.WithError(err).WithField("image", p.ImageKey).Warn("stat a sweep image")
				return
			}
			if o.Size != p.Image.Size {
				// Changed since the listing: the runner reads the new one,
				// which the result's size check will tell.
				return
			}
			if p.Image.ETag == "" {
				p.Image.ETag = o.ETag
			}
			if o.ETag == p.Image.ETag {
				p.Image.VersionID = o.VersionID
			}
		}()
	}
	wg.Wait()
}

// statParallel bounds the concurrent Stat and previous-result reads.
const statParallel = 16

// previousPackages reads the packages of the previous sweep's results of
// the images read now that had a profile report then, by result key, for
// the package diff. Each result is read (at most result.MaxSize bytes),
// reduced to its package list and dropped, so that a few at a time are
// held whole. An unreadable one is logged; that image gets no diff.
func previousPackages(ctx context.Context, st store.Store, prev *sweep.Report, toRead []sweep.Planned, log *logrus.Entry) map[string][]sweep.PackageRef {
	out := map[string][]sweep.PackageRef{}
	if prev == nil {
		return out
	}
	now := map[string]bool{}
	for _, p := range toRead {
		now[p.ImageKey] = true
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, statParallel)
	for _, img := range prev.Images {
		if !now[img.ImageKey] || (img.Status != sweep.StatusCompleted && img.Status != sweep.StatusNoncompliant) {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			res, err := controller.ReadResult(ctx, st, img.ResultKey)
			var pkgs []sweep.PackageRef
			if err == nil {
				pkgs, err = sweep.ResultPackages(img, res)
			}
			if err != nil {
				log.WithError(err).WithFields(logrus.Fields{"image": img.ImageKey, "result": img.ResultKey}).Warn("no previous packages for a sweep image")
				return
			}
			mu.Lock()
			out[img.ResultKey] = pkgs
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
