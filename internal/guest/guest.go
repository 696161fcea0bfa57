// Package guest defines how the rest of the project reads a guest's
// filesystem: a read-only io/fs tree with ownership and symlinks. libguestfs
// is one implementation; testing/fstest.MapFS is another.
package guest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// FS is a read-only view of one mounted guest, rooted at the guest's "/".
// Paths are unrooted io/fs paths ("etc/passwd"). Stat follows symlinks;
// Lstat and ReadLink do not. A symlink target is resolved inside the guest,
// never on the host.
type FS interface {
	fs.StatFS
	fs.ReadDirFS
	fs.ReadLinkFS
}

// Owner is what FileInfo.Sys returns for files of an FS that knows owners.
type Owner struct {
	UID, GID uint32
}

// DefaultMaxFile bounds a single configuration file read: no file that a
// report or rule parses is legitimately larger.
const DefaultMaxFile = 4 << 20

// LimitedReader is implemented by filesystems that read a bounded file in
// fewer round trips than Stat+Open+Read.
type LimitedReader interface {
	ReadFileLimit(name string, max int64) ([]byte, error)
}

// ErrTooLarge is returned (wrapped) when a file exceeds the read bound.
var ErrTooLarge = errors.New("file exceeds read limit")

// ReadFile reads name, refusing files larger than max bytes, so that a
// hostile 2 GB /etc/passwd costs nothing.
func ReadFile(fsys fs.FS, name string, max int64) ([]byte, error) {
	if r, ok := fsys.(LimitedReader); ok {
		return r.ReadFileLimit(name, max)
	}
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read /%s: not a regular file (%s)", name, fi.Mode().Type())
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("read /%s: %d bytes > %d: %w", name, fi.Size(), max, ErrTooLarge)
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The size can change under us only in theory; the limit still holds.
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read /%s: %w", name, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("read /%s: more than %d bytes: %w", name, max, ErrTooLarge)
	}
	return data, nil
}

// OwnerOf returns the owner recorded in fi, and false when the FS does not
// report owners (for example fstest.MapFS without Sys).
func OwnerOf(fi fs.FileInfo) (Owner, bool) {
	switch o := fi.Sys().(type) {
	case Owner:
		return o, true
	case *Owner:
		if o != nil {
			return *o, true
		}
	}
	return Owner{}, false
}

// Clean turns an absolute guest path ("/etc/passwd") into an io/fs path
// ("etc/passwd"). It reports false for paths that escape the root.
func Clean(p string) (string, bool) {
	p = path.Clean("/" + p)
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return ".", true
	}
	return p, fs.ValidPath(p)
}

// UnixMode converts a POSIX st_mode (as stored in inodes) to io/fs bits,
// keeping setuid, setgid and sticky. The values are the same on every
// Unix filesystem, so they are spelled out rather than taken from syscall.
func UnixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & 0o170000 {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o120000:
		mode |= fs.ModeSymlink
	case 0o010000:
		mode |= fs.ModeNamedPipe
	case 0o140000:
		mode |= fs.ModeSocket
	case 0o020000:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		mode |= fs.ModeDevice
	}
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
