package inspect

import (
	"context"
	"errors"
	"fmt"

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
}

// VisitFunc is called once per root while it is mounted, after the report
// sections are read, so that profiles share the same single mount.
type VisitFunc func(ctx context.Context, os *OS, fsys guest.FS) error

// Run inspects every OS root through b. On a disk without an OS it returns
// the storage facts and an error wrapping ErrNoOS.
func Run(ctx context.Context, b Backend, opts Options, visit VisitFunc) (*Report, error) {
	rep := &Report{OperatingSystems: []OS{}}
	st, probs, err := b.Storage(ctx)
	if err != nil {
		return rep, fmt.Errorf("storage: %w", err)
	}
	rep.Storage = st
	rep.Problems = append(rep.Problems, probs...)
	roots, err := b.Roots(ctx)
	if err != nil {
		return rep, fmt.Errorf("inspect: %w", err)
	}
	if len(roots) == 0 {
		return rep, ErrNoOS
	}
	for _, root := range roots {
		os, err := inspectRoot(ctx, b, root, opts, rep, visit)
		if err != nil {
			return rep, err
		}
		rep.OperatingSystems = append(rep.OperatingSystems, os)
	}
	return rep, nil
}

func inspectRoot(ctx context.Context, b Backend, root string, opts Options, rep *Report, visit VisitFunc) (OS, error) {
	os, err := b.OSFacts(ctx, root)
	if err != nil {
		return os, fmt.Errorf("inspect root %s: %w", root, err)
	}
	fsys, probs, err := b.Mount(ctx, root)
	for i := range probs {
		probs[i].Root = root
	}
	rep.Problems = append(rep.Problems, probs...)
	if err != nil {
		return os, fmt.Errorf("mount root %s: %w", root, err)
	}
	defer b.Unmount(context.WithoutCancel(ctx))
	if !opts.SkipApplications {
		apps, err := b.Applications(ctx, root)
		if err != nil {
			if ctx.Err() != nil {
				return os, ctx.Err()
			}
			rep.Problems = append(rep.Problems, Problem{Root: root, Section: "applications", Message: err.Error()})
		}
		os.Applications = apps
	}
	if os.Applications == nil {
		os.Applications = []Application{}
	}
	if os.Type == "linux" || os.Type == "hurd" || os.Type == "freebsd" || os.Type == "netbsd" || os.Type == "openbsd" {
		r := &reader{fsys: fsys, root: root}
		readSections(ctx, r, &os, opts)
		rep.Problems = append(rep.Problems, r.problems...)
	}
	if ctx.Err() != nil {
		return os, ctx.Err()
	}
	if visit != nil {
		if err := visit(ctx, &os, fsys); err != nil {
			return os, fmt.Errorf("root %s: %w", root, err)
		}
	}
	return os, nil
}
