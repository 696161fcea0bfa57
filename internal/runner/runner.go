// Package runner executes one validated job on one disk image and always
// produces a result: spec -> image -> probe -> appliance -> report.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/image"
	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/libguestfs"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// Appliance is a launched libguestfs appliance, as the runner uses it.
type Appliance interface {
	inspect.Backend
	Accelerator() result.Accelerator
	Close() error
}

// Launcher starts an appliance; libguestfs.Launch in production.
type Launcher func(ctx context.Context, opts libguestfs.Options) (Appliance, error)

// LibguestfsLauncher launches the real appliance.
func LibguestfsLauncher(ctx context.Context, opts libguestfs.Options) (Appliance, error) {
	s, err := libguestfs.Launch(ctx, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Config is what a run needs besides the job.
type Config struct {
	Version string
	Accel   string
	// MemoryMB is the appliance memory (0: libguestfs default).
	MemoryMB int
	// ImagePath overrides the spec's image: the dispatcher has already put
	// the image there (downloaded, hostPath or PVC mount).
	ImagePath string
	// ScratchDir receives downloaded images (default os.TempDir()).
	ScratchDir string
	// MaxVirtualSize refuses larger disks (default DefaultMaxVirtualSize; <0:
	// no limit). A spec's maximum_disk_size_gb can only lower it.
	MaxVirtualSize int64
	Kubernetes     *result.Kubernetes
	Log            logrus.FieldLogger
	Launch         Launcher
	Now            func() time.Time
}

func (c *Config) defaults() {
	if c.Log == nil {
		c.Log = logrus.New()
	}
	if c.Launch == nil {
		c.Launch = LibguestfsLauncher
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ScratchDir == "" {
		c.ScratchDir = os.TempDir()
	}
	if c.MaxVirtualSize == 0 {
		c.MaxVirtualSize = DefaultMaxVirtualSize
	}
}

// DefaultMaxVirtualSize bounds what a stranger's image may claim to be.
const DefaultMaxVirtualSize = 8 << 40

// failure is an error with the phase and classification it ends a job with.
type failure struct {
	status    result.Status
	code      result.Code
	phase     result.Phase
	retryable bool
	err       error
}

func (f *failure) Error() string { return f.err.Error() }

// Execute runs job and returns its result. It never returns nil: every
// failure, including a timeout, becomes a result that says what happened.
func Execute(ctx context.Context, job *spec.Job, warnings []spec.Warning, cfg Config) *result.Result {
	cfg.defaults()
	res := NewResult(job.JobID, cfg.Version, cfg.Now())
	res.Operation = job.Operation
	res.Attempt = job.Attempt()
	if job.Execution != nil {
		res.IdempotencyKey = job.Execution.IdempotencyKey
	}
	res.Kubernetes = cfg.Kubernetes
	for _, w := range warnings {
		res.Warnings = append(res.Warnings, w.String())
	}
	log := cfg.Log.WithFields(logrus.Fields{"job_id": job.JobID, "operation": job.Operation})

	timeout := job.Timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if dl, ok := job.Deadline(); ok {
		var cancelDL context.CancelFunc
		ctx, cancelDL = context.WithDeadline(ctx, dl)
		defer cancelDL()
	}

	data, noncompliant, err := run(ctx, job, &cfg, res, log)
	if data != nil {
		b, merr := json.Marshal(data)
		if merr != nil {
			err = errors.Join(err, fmt.Errorf("encode report: %w", merr))
		} else {
			res.Data = b
		}
	}
	if err != nil {
		f := classify(ctx, err, timeout)
		res.Status = f.status
		res.Error = &result.Error{Code: f.code, Message: f.err.Error(), Phase: f.phase, Retryable: f.retryable}
		log.WithFields(logrus.Fields{"status": f.status, "code": f.code, "phase": f.phase, "error": f.err}).Warn("job did not complete")
	} else {
		res.Status = result.StatusCompleted
	}
	Finish(res, cfg.Now(), noncompliant)
	return res
}

// NewResult starts a result document.
func NewResult(jobID, version string, now time.Time) *result.Result {
	host, _ := os.Hostname()
	return &result.Result{
		APIVersion: result.APIVersion,
		JobID:      jobID,
		Runner:     result.Runner{Name: "guestkit-runner", Version: version, Host: host},
		StartedAt:  now.UTC(),
	}
}

// Finish stamps the end time and the exit code.
func Finish(res *result.Result, now time.Time, noncompliant bool) {
	res.FinishedAt = now.UTC()
	res.DurationSeconds = res.FinishedAt.Sub(res.StartedAt).Seconds()
	res.ExitCode = result.ExitCodeFor(res.Status, res.Error, noncompliant)
}

// Reject makes the result of a spec that could not be parsed or validated.
func Reject(jobID, version string, now time.Time, err error) *result.Result {
	res := NewResult(jobID, version, now)
	res.Status = result.StatusRejected
	code := result.CodeSpecInvalid
	if errors.Is(err, spec.ErrUnsupportedOperation) {
		code = result.CodeSpecUnsupported
	}
	res.Error = &result.Error{Code: code, Message: err.Error(), Phase: result.PhaseSpec}
	var ve *spec.ValidationError
	if errors.As(err, &ve) {
		res.Error.Fields = ve.Problems
	}
	Finish(res, now, false)
	return res
}

func run(ctx context.Context, job *spec.Job, cfg *Config, res *result.Result, log *logrus.Entry) (any, bool, error) {
	var visit inspect.VisitFunc
	prof, err := newProfiler(job)
	if err != nil {
		return nil, false, &failure{status: result.StatusRejected, code: result.CodeSpecInvalid, phase: result.PhaseSpec, err: err}
	}
	if prof != nil {
		visit = prof.visit
	}
	img := job.Image()
	path, cleanup, err := localImage(ctx, job, cfg)
	if cleanup != nil {
		defer cleanup()
	}
	res.Image = &result.Image{URI: imageURI(job, cfg), DeclaredFormat: img.Format}
	if err != nil {
		return nil, false, err
	}
	maxSize := max(cfg.MaxVirtualSize, 0)
	if c := job.Constraints; c != nil && c.MaximumDiskSizeGB != nil && *c.MaximumDiskSizeGB > 0 {
		if lim := *c.MaximumDiskSizeGB << 30; maxSize == 0 || lim < maxSize {
			maxSize = lim
		}
	}
	facts, err := image.Probe(ctx, path, image.ProbeOptions{DeclaredFormat: img.Format, MaxVirtualSize: maxSize})
	if facts != nil {
		res.Image.Format, res.Image.VirtualSize, res.Image.FileSize = facts.Format, facts.VirtualSize, facts.FileSize
	}
	if err != nil {
		return nil, false, phased(result.PhaseProbe, err)
	}
	if img.Checksum != "" {
		sum, err := image.VerifySHA256(ctx, path, img.Checksum)
		if err != nil {
			return nil, false, phased(result.PhaseProbe, err)
		}
		res.Image.SHA256 = sum
	}
	log.WithFields(logrus.Fields{"image": path, "format": facts.Format, "virtual_size": facts.VirtualSize}).Info("image accepted")

	app, err := cfg.Launch(ctx, libguestfs.Options{Image: path, Format: facts.Format, Accel: cfg.Accel, MemoryMB: cfg.MemoryMB, Log: cfg.Log})
	if err != nil {
		return nil, false, phased(result.PhaseLaunch, err)
	}
	defer app.Close()
	acc := app.Accelerator()
	res.Accelerator = &acc
	log.WithFields(logrus.Fields{"accel": acc.Used, "fallback": acc.Fallback}).Info("appliance launched")

	rep, err := inspect.Run(ctx, app, inspectOptions(job), visit)
	if err != nil {
		// What was learnt before the failure is kept, never dropped.
		var data any
		if rep != nil {
			data = rep
			if prof != nil {
				data = prof.data(rep)
			}
		}
		return data, false, phased(result.PhaseInspect, err)
	}
	if prof != nil {
		return prof.data(rep), prof.noncompliant(), nil
	}
	return rep, false, nil
}

func inspectOptions(job *spec.Job) inspect.Options {
	o := job.InspectOptions()
	return inspect.Options{
		SkipApplications: !o.Packages,
		SkipUsers:        !o.Users,
		SkipServices:     !o.Services,
		SkipNetwork:      !o.Network,
		SkipSecurity:     !o.Security,
		SkipStorage:      !o.Storage,
	}
}

// imageURI is the image's name for the result, without secrets.
func imageURI(job *spec.Job, cfg *Config) string {
	img := job.Image()
	switch {
	case img.URI != "":
		return store.Redact(img.URI)
	case img.Path != "":
		return img.Path
	}
	return cfg.ImagePath
}

// localImage returns a local path for the job's image, downloading it to
// the scratch directory when it is a bucket or http object.
func localImage(ctx context.Context, job *spec.Job, cfg *Config) (string, func(), error) {
	if cfg.ImagePath != "" {
		return cfg.ImagePath, nil, nil
	}
	img := job.Image()
	if img.Path != "" {
		return img.Path, nil, nil
	}
	uri := img.URI
	switch {
	case strings.HasPrefix(uri, "file://"):
		return strings.TrimPrefix(uri, "file://"), nil, nil
	case strings.HasPrefix(uri, "pvc://"):
		return "", nil, &failure{status: result.StatusRejected, code: result.CodeImageNotFound, phase: result.PhaseFetch,
			err: fmt.Errorf("image %s: a pvc:// image is mounted by the dispatcher; run with --image", uri)}
	}
	dst := filepath.Join(cfg.ScratchDir, "image-"+sanitize(job.JobID))
	cleanup := func() { os.Remove(dst) }
	if _, err := store.DownloadURI(ctx, uri, dst); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", cleanup, &failure{status: result.StatusRejected, code: result.CodeImageNotFound, phase: result.PhaseFetch, err: err}
		}
		return "", cleanup, &failure{status: result.StatusFailed, code: result.CodeInfrastructure, phase: result.PhaseFetch, retryable: true, err: err}
	}
	return dst, cleanup, nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

type phasedErr struct {
	phase result.Phase
	err   error
}

func (p *phasedErr) Error() string { return p.err.Error() }
func (p *phasedErr) Unwrap() error { return p.err }

func phased(p result.Phase, err error) error { return &phasedErr{phase: p, err: err} }

// classify turns an error into the result's status and error code.
func classify(ctx context.Context, err error, timeout time.Duration) *failure {
	var f *failure
	if errors.As(err, &f) {
		return f
	}
	phase := result.PhaseInspect
	var pe *phasedErr
	if errors.As(err, &pe) {
		phase = pe.phase
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &failure{status: result.StatusTimeout, code: result.CodeTimeout, phase: phase,
			err: fmt.Errorf("timed out after %s (timeout_seconds or deadline) during %s; the appliance was killed: %w", timeout, phase, err)}
	}
	if code := image.CodeOf(err); code != "" {
		retry := code == result.CodeImageUnreadable
		st := result.StatusRejected
		if retry {
			st = result.StatusFailed
		}
		return &failure{status: st, code: code, phase: phase, retryable: retry, err: err}
	}
	if errors.Is(err, inspect.ErrNoOS) {
		return &failure{status: result.StatusRejected, code: result.CodeImageNoOS, phase: phase,
			err: fmt.Errorf("no operating system found on the disk (storage facts are in data): %w", err)}
	}
	if errors.Is(err, guest.ErrTooLarge) {
		return &failure{status: result.StatusRejected, code: result.CodeImageTooLarge, phase: phase, err: err}
	}
	var le *libguestfs.LaunchError
	if errors.As(err, &le) {
		return &failure{status: result.StatusFailed, code: result.CodeApplianceFailed, phase: result.PhaseLaunch, retryable: true, err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &failure{status: result.StatusFailed, code: result.CodeInfrastructure, phase: phase, retryable: true, err: fmt.Errorf("cancelled (runner terminated): %w", err)}
	}
	return &failure{status: result.StatusFailed, code: result.CodeInfrastructure, phase: phase, retryable: true, err: err}
}
