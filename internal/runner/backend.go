package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/direct"
	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/image"
	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/libguestfs"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
)

// DirectOpener opens the direct backend; OpenDirect in production.
type DirectOpener func(ctx context.Context, img DirectImage, log logrus.FieldLogger) (DirectSession, error)

// DirectImage is the probed image the direct backend reads: a local file,
// or the bytes of a streamed object (Device) in their own format.
type DirectImage struct {
	Path   string
	Device block.Device
	Format string
}

// DirectSession is the direct backend as the runner uses it.
type DirectSession interface {
	inspect.Backend
	Close() error
	// Fault is the first unsupported or corrupt structure a read met.
	Fault() error
	Stats() block.Stats
}

// OpenDirect opens the real direct backend.
func OpenDirect(ctx context.Context, img DirectImage, log logrus.FieldLogger) (DirectSession, error) {
	var b *direct.Backend
	var err error
	if img.Device != nil {
		b, err = direct.OpenDevice(ctx, img.Device, img.Format, direct.Options{Log: log})
	} else {
		b, err = direct.OpenImage(ctx, img.Path, img.Format, direct.Options{Log: log})
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// backendOf is the backend a job runs with: the spec's choice, else the
// runner's configuration, else auto.
func backendOf(job *spec.Job, cfg *Config) string {
	if b := job.Backend(); b != "" {
		return b
	}
	if cfg.Backend != "" {
		return cfg.Backend
	}
	return spec.BackendAuto
}

// inspectWith opens the job's backend and inspects the disk with it. auto
// tries direct first and hands the disk to the appliance when direct
// cannot read all of it, at open or while reading; direct never falls
// back: what it cannot read ends the job with a code that says so.
func inspectWith(ctx context.Context, job *spec.Job, cfg *Config, img imageFile, res *result.Result, log *logrus.Entry, phase *result.Phase) (any, bool, error) {
	choice := backendOf(job, cfg)
	res.Backend = &result.Backend{Requested: choice}
	before := map[string]float64{}
	for k, v := range res.Timings {
		before[k] = v
	}
	if choice != spec.BackendAppliance {
		start := time.Now()
		data, noncompliant, err, fallback := inspectDirect(ctx, job, cfg, img, res, log, phase)
		if fallback == nil {
			return data, noncompliant, err
		}
		if rerr := img.src.readErr(); rerr != nil {
			// The network or the object failed, not the reader: the
			// appliance would read no better.
			return data, false, fmt.Errorf("reading the image: %w", rerr)
		}
		if choice == spec.BackendDirect {
			return data, false, directFailure(img.src.name, fallback)
		}
		res.Backend.Fallback = fallback.Error()
		// The direct attempt counts as one phase; its inspection's
		// phases are the appliance's to report.
		res.Timings = before
		observe(res, "direct", time.Since(start))
		res.Accelerator = nil
		log.WithField("reason", fallback.Error()).Info("direct reader cannot read this disk; using the appliance")
	}
	res.Backend.Used = spec.BackendAppliance
	*phase = result.PhaseLaunch
	done := timer(res, "launch")
	opts := libguestfs.Options{Image: img.src.path, Format: img.format, VirtualSize: img.virtualSize, Accel: cfg.Accel, MemoryMB: cfg.MemoryMB, Log: cfg.Log}
	if img.src.dev != nil {
		// qemu reads the streamed object's blocks through the runner's
		// own NBD export, with the format given, never guessed.
		e, err := img.src.nbd(ctx)
		if err != nil {
			done()
			return nil, false, phased(result.PhaseLaunch, err)
		}
		opts.Image, opts.NBD, opts.ExportName = "", e.Socket(), e.Name()
	}
	app, err := cfg.Launch(ctx, opts)
	done()
	if err != nil {
		return nil, false, phased(result.PhaseLaunch, err)
	}
	defer func() {
		done := timer(res, "shutdown")
		app.Close()
		done()
	}()
	acc := app.Accelerator()
	res.Accelerator = &acc
	log.WithFields(logrus.Fields{"accel": acc.Used, "fallback": acc.Fallback}).Info("appliance launched")
	*phase = result.PhaseInspect
	prof, err := newProfiler(job)
	if err != nil {
		return nil, false, err
	}
	return inspectImage(ctx, job, app, prof, res, log)
}

// imageFile is the probed image: a local file (src.path), or a streamed
// one (src.dev).
type imageFile struct {
	src         *source
	format      string
	virtualSize int64
}

func (f imageFile) direct() DirectImage {
	d := DirectImage{Path: f.src.path, Format: f.format}
	if f.src.path == "" {
		d.Device = f.src.dev
	}
	return d
}

// inspectDirect runs the inspection on the direct backend. fallback is
// set when the direct reader met something it does not read, or a
// structure it found corrupt: the report is then not complete.
func inspectDirect(ctx context.Context, job *spec.Job, cfg *Config, img imageFile, res *result.Result, log *logrus.Entry, phase *result.Phase) (data any, noncompliant bool, err, fallback error) {
	*phase = result.PhaseLaunch
	res.Backend.Used = spec.BackendDirect
	done := timer(res, "open")
	b, err := cfg.OpenDirect(ctx, img.direct(), log)
	done()
	if oe := (*direct.OpenError)(nil); errors.As(err, &oe) {
		res.Backend.BytesRead = oe.Stats.BytesRead
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, phased(result.PhaseLaunch, ctx.Err()), nil
		}
		return nil, false, nil, err
	}
	defer func() {
		res.Backend.BytesRead = b.Stats().BytesRead
		b.Close()
	}()
	log.Info("direct reader opened the disk")
	*phase = result.PhaseInspect
	prof, err := newProfiler(job)
	if err != nil {
		return nil, false, err, nil
	}
	data, noncompliant, err = inspectImage(ctx, job, b, prof, res, log)
	if f := b.Fault(); f != nil && ctx.Err() == nil {
		return data, false, nil, f
	}
	return data, noncompliant, err, nil
}

// directFailure is how --backend direct ends on what it cannot read: a
// corrupt structure is image_corrupt, anything else backend_unsupported.
func directFailure(path string, err error) error {
	code := result.CodeBackendUnsupported
	msg := "use --backend auto or appliance for this disk"
	if errors.Is(err, filesystem.ErrCorrupt) || errors.Is(err, block.ErrCorrupt) {
		code, msg = result.CodeImageCorrupt, "the direct reader found a corrupt structure"
	}
	if errors.Is(err, block.ErrRefused) {
		code, msg = result.CodeImageBackingFile, "the image refers to other files"
	}
	return phased(result.PhaseInspect, &image.Error{Code: code, Path: path, Msg: msg, Err: fmt.Errorf("%w", err)})
}
