package profile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"guestkit.io/batch/internal/guestconf"
)

// Default bounds of the filesystem-wide walk.
const (
	DefaultWalkMaxEntries = 500_000
	DefaultWalkTimeout    = 60 * time.Second
)

// ModeWalker is an optional interface of a guest.FS that can list a tree's
// modes in bulk (libguestfs "find0" plus "lstatnslist", for example),
// which is far cheaper than one Lstat round-trip per file. The profile
// engine uses it for filesystem-wide rules when the FS offers it, and
// falls back to fs.WalkDir with DirEntry.Info otherwise.
//
// WalkModes calls fn for root and everything below it, parents before
// children, with io/fs paths and Lstat modes (symlinks are not followed).
// When fn returns fs.SkipDir for a directory its contents are skipped;
// any other error from fn stops the walk and is returned. WalkModes must
// stop when ctx is done and return ctx.Err().
type ModeWalker interface {
	WalkModes(ctx context.Context, root string, fn func(name string, mode fs.FileMode) error) error
}

// isPseudoDir reports top-level mount points of pseudo filesystems: empty
// on a powered-off disk, and never worth walking.
func isPseudoDir(name string) bool {
	return name == "proc" || name == "sys" || name == "dev" || name == "run"
}

// SetIDFile is a SUID or SGID regular file.
type SetIDFile struct {
	Path string      // absolute guest path
	Mode fs.FileMode // full mode with setuid/setgid bits
}

// WalkResult is what the walk found.
type WalkResult struct {
	Entries int
	// WorldWritable are regular files writable by others.
	WorldWritable []string
	// DirsNoSticky are world-writable directories without the sticky bit.
	DirsNoSticky []string
	SetID        []SetIDFile
	// Incomplete says why the walk did not cover the whole tree; rules then
	// report notchecked rather than pass.
	Incomplete string
	// Err is a read error that stopped the walk.
	Err error
}

var errWalkBound = errors.New("entry bound reached")

func walkGuest(ctx context.Context, fsys fs.FS, maxEntries int, timeout time.Duration) *WalkResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r := &WalkResult{}
	unreadable, firstUnreadable := 0, ""
	visit := func(name string, mode fs.FileMode) error {
		r.Entries++
		if r.Entries > maxEntries {
			return errWalkBound
		}
		if r.Entries%512 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case mode.IsDir():
			if isPseudoDir(name) {
				return fs.SkipDir
			}
			if mode.Perm()&0o002 != 0 && mode&fs.ModeSticky == 0 {
				r.DirsNoSticky = append(r.DirsNoSticky, guestconf.Abs(name))
			}
		case mode.IsRegular():
			if mode.Perm()&0o002 != 0 {
				r.WorldWritable = append(r.WorldWritable, guestconf.Abs(name))
			}
			if mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
				r.SetID = append(r.SetID, SetIDFile{Path: guestconf.Abs(name), Mode: mode})
			}
		}
		return nil
	}
	var err error
	if mw, ok := fsys.(ModeWalker); ok {
		err = mw.WalkModes(ctx, ".", visit)
	} else {
		err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == "." {
					return err
				}
				// An unreadable directory hides what is below it.
				unreadable++
				if firstUnreadable == "" {
					firstUnreadable = guestconf.Abs(p)
				}
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				unreadable++
				if firstUnreadable == "" {
					firstUnreadable = guestconf.Abs(p)
				}
				return nil
			}
			return visit(p, fi.Mode())
		})
	}
	switch {
	case errors.Is(err, errWalkBound):
		r.Incomplete = fmt.Sprintf("walk stopped at the bound of %d entries", maxEntries)
	case errors.Is(err, context.DeadlineExceeded):
		r.Incomplete = fmt.Sprintf("walk stopped by its %s time bound after %d entries", timeout, r.Entries)
	case errors.Is(err, context.Canceled):
		r.Incomplete = fmt.Sprintf("walk cancelled after %d entries", r.Entries)
	case err != nil:
		r.Err = err
	case unreadable > 0:
		r.Incomplete = fmt.Sprintf("%d entries could not be read (first: %s)", unreadable, firstUnreadable)
	}
	return r
}
