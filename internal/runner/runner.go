// Package runner executes one validated job on one disk image and always
// produces a result: spec -> image -> probe -> appliance -> report.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/image"
	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/libguestfs"
	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/remote"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runnerenv"
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
	// ImageURL is where to read a bucket or http image from instead of
	// the spec's URI: a presigned URL from the dispatcher. The spec's URI
	// still names the image in the result.
	ImageURL string
	// ImageIdentity is the object the dispatcher saw when it admitted the
	// spec (ETag, size): every read is pinned to it, so that an image
	// replaced since then fails as changed.
	ImageIdentity remote.Identity
	// Attested is the digest the image's store vouches for (its own
	// checksum or a sidecar), as the dispatcher read it.
	Attested store.Attestation
	// ImageAccess is one of runnerenv.ImageAccesses (default auto).
	ImageAccess string
	// Verify is one of runnerenv.Verifies (default auto).
	Verify string
	// DownloadLimit bounds a download to scratch (0: the virtual size
	// limit only; <0: no downloads).
	DownloadLimit int64
	// ReadTimeout is how long a read of a streamed image waits for the
	// server's headers, or for the next body byte, before it is retried
	// (0: remote's 30 s).
	ReadTimeout time.Duration
	// HTTP reads the spec's own http(s) image URI, a stranger's URL
	// (nil: store's default client); netguard's client keeps it off the
	// cluster's network. Not used for ImageURL: that is the dispatcher's.
	HTTP *http.Client
	// ScratchDir receives downloaded images (default os.TempDir()).
	ScratchDir string
	// MaxVirtualSize refuses larger disks (default DefaultMaxVirtualSize; <0:
	// no limit). A spec's maximum_disk_size_gb can only lower it.
	MaxVirtualSize int64
	Kubernetes     *result.Kubernetes
	Log            logrus.FieldLogger
	// Backend is auto (default), direct or appliance; a spec's
	// options.backend overrides it.
	Backend    string
	Launch     Launcher
	OpenDirect DirectOpener
	Now        func() time.Time
}

func (c *Config) defaults() {
	if c.Log == nil {
		c.Log = logrus.New()
	}
	if c.Launch == nil {
		c.Launch = LibguestfsLauncher
	}
	if c.OpenDirect == nil {
		c.OpenDirect = OpenDirect
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
	if c.ImageAccess == "" {
		c.ImageAccess = runnerenv.AccessAuto
	}
	if c.Verify == "" {
		c.Verify = runnerenv.VerifyAuto
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

	if f := job.OutputFormat(); result.IsFinding(f) && job.Operation != spec.OpProfile {
		res.Warnings = append(res.Warnings, fmt.Sprintf("payload.data.output.format: %s applies to profile results only; data is JSON", f))
	}

	data, noncompliant, err := runSafely(ctx, job, &cfg, res, log)
	if data != nil {
		b, merr := json.Marshal(data)
		if merr != nil {
			err = errors.Join(err, fmt.Errorf("encode report: %w", merr))
		} else {
			res.Data = b
		}
	}
	if err != nil {
		limit := fmt.Sprintf("timed out after %s (execution.timeout_seconds)", timeout)
		if dl, ok := job.Deadline(); ok && !cfg.Now().Before(dl) {
			limit = fmt.Sprintf("execution.deadline %s passed", dl.UTC().Format(time.RFC3339))
		}
		f := classify(ctx, err, limit)
		res.Status = f.status
		res.Error = &result.Error{Code: f.code, Message: f.err.Error(), Phase: f.phase, Retryable: f.retryable}
		var ve *spec.ValidationError
		if errors.As(f.err, &ve) {
			res.Error.Fields = ve.Problems
		}
		log.WithFields(logrus.Fields{"status": f.status, "code": f.code, "phase": f.phase, "error": f.err}).Warn("job did not complete")
	} else {
		res.Status = result.StatusCompleted
	}
	res.Finish(cfg.Now(), noncompliant)
	return res
}

// NewResult starts a result document, written by this host's runner.
func NewResult(jobID, version string, now time.Time) *result.Result {
	return result.Begin(jobID, self(version), now)
}

func self(version string) result.Runner {
	host, _ := os.Hostname()
	return result.Runner{Name: "guestkit-runner", Version: version, Host: host}
}

// Reject makes the result of a spec that could not be parsed or validated.
func Reject(jobID, version string, now time.Time, err error) *result.Result {
	f := spec.RefusalOf(err)
	f.JobID = jobID
	return f.Result(self(version), now)
}

// runSafely is run, with a panic (a bug, perhaps triggered by a hostile
// guest's files) turned into a failed result with code internal. Without
// it the process would die with Go's exit status 2, which is
// ExitNoncompliant: the Job would be failed for good as "noncompliant", and
// no result would be stored.
func runSafely(ctx context.Context, job *spec.Job, cfg *Config, res *result.Result, log *logrus.Entry) (data any, noncompliant bool, err error) {
	phase := result.PhaseSpec
	defer func() {
		if p := recover(); p != nil {
			log.WithFields(logrus.Fields{"panic": p, "stack": string(debug.Stack())}).Error("runner panicked")
			data, noncompliant = nil, false
			err = &failure{status: result.StatusFailed, code: result.CodeInternal, phase: phase,
				err: fmt.Errorf("internal error (a bug in guestkit-runner, please report it): panic during %s: %v", phase, p)}
		}
	}()
	return run(ctx, job, cfg, res, log, &phase)
}

// run does the job. It keeps *phase up to date for runSafely.
func run(ctx context.Context, job *spec.Job, cfg *Config, res *result.Result, log *logrus.Entry, phase *result.Phase) (any, bool, error) {
	if _, err := newProfiler(job); err != nil {
		return nil, false, &failure{status: result.StatusRejected, code: result.CodeSpecInvalid, phase: result.PhaseSpec, err: err}
	}
	res.Image = &result.Image{URI: imageURI(job, cfg), DeclaredFormat: job.Image().Format}
	if err := preflight(job, cfg); err != nil {
		return nil, false, err
	}
	*phase = result.PhaseFetch
	done := timer(res, "fetch")
	src, err := openSource(ctx, job, cfg, log)
	done()
	if err != nil {
		return nil, false, err
	}
	defer src.close()
	defer src.fetch(res)
	res.Image.Access, res.Image.AccessReason = src.access, src.reason
	res.Image.ETag = src.etag
	if src.obj != nil {
		id := src.obj.Identity()
		res.Image.ETag, res.Image.VersionID = id.ETag, id.VersionID
	}
	*phase = result.PhaseProbe
	facts, err := probe(ctx, job, cfg, src, res)
	if err != nil {
		return nil, false, err
	}
	log.WithFields(logrus.Fields{"image": src.name, "access": src.access, "format": facts.Format, "virtual_size": facts.VirtualSize}).Info("image accepted")

	// A whole-object hash of a streamed image runs beside the inspection;
	// its verdict is awaited before anything is reported as complete.
	hashed, err := verify(ctx, job, cfg, src, res, log)
	if err != nil {
		return nil, false, err
	}
	data, noncompliant, err := inspectWith(ctx, job, cfg, imageFile{src: src, format: facts.Format, virtualSize: facts.VirtualSize}, res, log, phase)
	if rerr := src.readErr(); rerr != nil {
		if f := remoteFailure(rerr, *phase); f != nil {
			// Blocks of two objects, or blocks the readers never got
			// (they saw an error where the guest had data, and may have
			// concluded "no OS"): nothing of it may be reported.
			return nil, false, f
		}
		return data, false, phased(*phase, fmt.Errorf("reading the image: %w", rerr))
	}
	if herr := hashed(); herr != nil {
		return data, false, herr
	}
	return data, noncompliant, err
}

// preflight refuses, before any work, what cannot succeed. A placeholder
// checksum ("sha256:abc123...") is only a warning to the spec parser; it
// can never verify, so the job is rejected here, as a spec problem naming
// the field, before an image is downloaded or probed for nothing. A
// deadline that has already passed ends the job.
func preflight(job *spec.Job, cfg *Config) error {
	if img := job.Image(); img.Checksum != "" {
		if _, ok := img.SHA256(); !ok {
			return &failure{status: result.StatusRejected, code: result.CodeSpecInvalid, phase: result.PhaseSpec,
				err: &spec.ValidationError{Problems: []result.FieldError{{Field: "payload.data.image.checksum", Value: img.Checksum,
					Message: "must be sha256:<64 hex digits>; a placeholder cannot be verified"}}}}
		}
	}
	if dl, ok := job.Deadline(); ok && !cfg.Now().Before(dl) {
		return &failure{status: result.StatusTimeout, code: result.CodeTimeout, phase: result.PhaseSpec,
			err: fmt.Errorf("execution.deadline %s passed before the job started", dl.UTC().Format(time.RFC3339))}
	}
	return nil
}

// maxVirtualSize is the configured bound, lowered by the spec's
// maximum_disk_size_gb; 0 means no limit.
func maxVirtualSize(job *spec.Job, cfg *Config) int64 {
	maxSize := max(cfg.MaxVirtualSize, 0)
	if c := job.Constraints; c != nil && c.MaximumDiskSizeGB != nil && *c.MaximumDiskSizeGB > 0 {
		if lim := *c.MaximumDiskSizeGB << 30; maxSize == 0 || lim < maxSize {
			maxSize = lim
		}
	}
	return maxSize
}

// probe checks the image's format and size, recording what it learns in
// res.Image. A streamed image is probed where it lies: its header by range
// reads, qemu-img through an NBD export of its bytes.
func probe(ctx context.Context, job *spec.Job, cfg *Config, src *source, res *result.Result) (*image.Facts, error) {
	img := job.Image()
	done := timer(res, "probe")
	opts := image.ProbeOptions{DeclaredFormat: img.Format, MaxVirtualSize: maxVirtualSize(job, cfg)}
	var facts *image.Facts
	var err error
	switch {
	case src.dev == nil:
		facts, err = image.Probe(ctx, src.path, opts)
	case src.path != "":
		// Read whole into memory: qemu-img reads that file.
		target := func(context.Context) (string, string, error) { return src.path, src.path, nil }
		facts, err = image.ProbeRemote(ctx, src.dev, src.dev.Size(), src.name, target, opts)
	default:
		target := func(ctx context.Context) (string, string, error) {
			e, err := src.nbd(ctx)
			if err != nil {
				return "", "", err
			}
			// qemu names the export in its extents list unescaped.
			return e.URI(), "nbd+unix:///" + e.Name() + "?socket=" + e.Socket(), nil
		}
		facts, err = image.ProbeRemote(ctx, src.dev, src.dev.Size(), src.name, target, opts)
	}
	done()
	if facts != nil {
		res.Image.Format, res.Image.VirtualSize, res.Image.FileSize = facts.Format, facts.VirtualSize, facts.FileSize
	}
	if err != nil {
		if rerr := src.readErr(); rerr != nil {
			// qemu-img said EIO, or the header read failed: the cause is
			// the network or the object, not the image.
			if f := remoteFailure(rerr, result.PhaseProbe); f != nil {
				return nil, f
			}
		}
		return nil, phased(result.PhaseProbe, err)
	}
	return facts, nil
}

// inspectImage inspects the launched image, profiling each root when the
// job is a profile. What was learnt before a failure is kept, never
// dropped.
func inspectImage(ctx context.Context, job *spec.Job, app inspect.Backend, prof *profiler, res *result.Result, log logrus.FieldLogger) (any, bool, error) {
	var visit inspect.VisitFunc
	if prof != nil {
		prof.log = log
		visit = prof.visit
	}
	iopts := inspectOptions(job)
	iopts.Observe = func(phase string, d time.Duration) {
		if phase == "visit" {
			phase = "profile"
		}
		observe(res, phase, d)
	}
	rep, err := inspect.Run(ctx, app, iopts, visit)
	if err != nil {
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

// timer starts timing a phase; calling the result adds the duration to
// res's timings.
func timer(res *result.Result, phase string) func() {
	start := time.Now()
	return func() { observe(res, phase, time.Since(start)) }
}

// observe adds a phase's duration to the result's timings.
func observe(res *result.Result, phase string, d time.Duration) {
	if res.Timings == nil {
		res.Timings = map[string]float64{}
	}
	res.Timings[phase] += math.Round(d.Seconds()*1000) / 1000
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
		return redact.URL(img.URI)
	case img.Path != "":
		return img.Path
	}
	return cfg.ImagePath
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
// limit says which time limit ended the job, for the timeout message.
func classify(ctx context.Context, err error, limit string) *failure {
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
			err: fmt.Errorf("%s during %s; the appliance, if any, was killed: %w", limit, phase, err)}
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
