package inspect

import (
	"context"
	"errors"
	"fmt"
	"time"

	"guestkit.io/batch/internal/guest"
)

// ErrNoOS means the disk holds no operating system that inspection knows.
var ErrNoOS = errors.New("no operating system found")

// Options choose report sections; the zero value includes everything.
type Options struct {
	SkipApplications bool
	SkipUsers        bool
	SkipServices     bool
	SkipNetwork      bool
	SkipSecurity     bool
	SkipStorage      bool
	// Observe, when set, is told how long each phase took.
	Observe func(phase string, d time.Duration)
}

func (o Options) timed(phase string) func() {
	if o.Observe == nil {
		return func() {}
	}
	start := time.Now()
	return func() { o.Observe(phase, time.Since(start)) }
}

// VisitFunc is called once per root while it is mounted, after the report
// sections are read, so that profiles share the same single mount.
type VisitFunc func(ctx context.Context, os *OS, fsys guest.FS) error

// Run inspects every OS root through b, then the disk's storage (told
// which filesystems the roots described, so the backend need not probe
// them again). On a disk without an OS it returns the storage facts and
// an error wrapping ErrNoOS.
//
// What one root's files do cannot fail the run: unreadable sections, a
// failed package listing and a root that does not mount are Problems (the
// root is then reported with its identity only and not visited). Backend
// failures (roots, OS facts, storage), visit errors and a cancelled ctx
// end the run with the report so far.
func Run(ctx context.Context, b Backend, opts Options, visit VisitFunc) (*Report, error) {
	rep := &Report{OperatingSystems: []OS{}}
	done := opts.timed("inspect_os")
	roots, err := b.Roots(ctx)
	done()
	if err != nil {
		return rep, fmt.Errorf("inspect: %w", err)
	}
	var known []Filesystem
	for _, root := range roots {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		os, err := inspectRoot(ctx, b, root, opts, rep, visit)
		if err != nil {
			return rep, err
		}
		rep.OperatingSystems = append(rep.OperatingSystems, os)
		known = append(known, os.Filesystems...)
	}
	done = opts.timed("storage")
	st, probs, err := b.Storage(ctx, known)
	done()
	if err != nil {
		return rep, fmt.Errorf("storage: %w", err)
	}
	rep.Storage = st
	rep.Problems = append(rep.Problems, probs...)
	if len(roots) == 0 {
		return rep, ErrNoOS
	}
	return rep, nil
}

// hasGuestFiles lists the OS types whose files the sections can read.
func hasGuestFiles(osType string) bool {
	switch osType {
	case "linux", "hurd", "freebsd", "netbsd", "openbsd":
		return true
	}
	return false
}

func inspectRoot(ctx context.Context, b Backend, root string, opts Options, rep *Report, visit VisitFunc) (OS, error) {
	done := opts.timed("os_facts")
	os, err := b.OSFacts(ctx, root)
	done()
	if err != nil {
		return os, fmt.Errorf("inspect root %s: %w", root, err)
	}
	if os.Root == "" {
		os.Root = root
	}
	// JSON arrays, never null.
	if os.Mountpoints == nil {
		os.Mountpoints = []Mountpoint{}
	}
	if os.Filesystems == nil {
		os.Filesystems = []Filesystem{}
	}
	os.Applications = []Application{}
	done = opts.timed("mount")
	fsys, probs, err := b.Mount(ctx, root)
	done()
	for i := range probs {
		probs[i].Root = root
	}
	rep.Problems = append(rep.Problems, probs...)
	// Unmount even after a failed Mount: a partial mount must not show
	// through the next root.
	defer func() {
		if err := b.Unmount(context.WithoutCancel(ctx)); err != nil {
			rep.Problems = append(rep.Problems, Problem{Root: root, Section: "unmount", Message: err.Error()})
		}
	}()
	if err != nil {
		if ctx.Err() != nil {
			return os, ctx.Err()
		}
		rep.Problems = append(rep.Problems, Problem{Root: root, Section: "mount", Path: "/", Message: err.Error()})
		return os, nil
	}
	if !opts.SkipApplications {
		done := opts.timed("applications")
		apps, err := b.Applications(ctx, root)
		done()
		if err != nil {
			if ctx.Err() != nil {
				return os, ctx.Err()
			}
			rep.Problems = append(rep.Problems, Problem{Root: root, Section: "applications", Message: err.Error()})
		}
		if apps != nil {
			os.Applications = apps
		}
	}
	if hasGuestFiles(os.Type) {
		done := opts.timed("sections")
		r := &reader{fsys: fsys, root: root}
		readSections(ctx, r, &os, opts)
		rep.Problems = append(rep.Problems, r.problems...)
		done()
	}
	if os.Type == "windows" {
		done := opts.timed("sections")
		r := &reader{fsys: fsys, root: root}
		readWindows(ctx, r, fsys, &os, opts)
		rep.Problems = append(rep.Problems, r.problems...)
		done()
	}
	if ctx.Err() != nil {
		return os, ctx.Err()
	}
	if visit != nil {
		done := opts.timed("visit")
		err := visit(ctx, &os, fsys)
		done()
		if err != nil {
			return os, fmt.Errorf("root %s: %w", root, err)
		}
	}
	return os, nil
}
