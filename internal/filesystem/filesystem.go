// Package filesystem reads guest filesystems from their bytes, without a
// kernel or an appliance: each subpackage (ext4, xfs, fat, squashfs,
// btrfs) turns one block.Device (an io.ReaderAt and a size) into a Volume,
// and Tree joins the volumes of one OS root at their mountpoints into a
// guest.FS. Every reader treats the bytes as hostile: every structure it
// follows is bounded and checked, and a corrupt filesystem is an error,
// never a panic, a hang or a partial answer presented as complete.
package filesystem

import (
	"errors"
	"io/fs"
)

// Volume is one filesystem. Paths are io/fs paths relative to the
// filesystem's own root ("etc/passwd", "." for the root).
//
// A Volume never follows symbolic links: Lstat, ReadDir, ReadLink and Open
// act on the named entry itself, and a path whose non-final component is
// not a directory (a symlink included) fails with an fs.PathError wrapping
// fs.ErrNotExist. Tree resolves links, so that they stay inside the guest.
//
// FileInfo.Sys returns a guest.Owner; Mode carries the permission bits,
// the type and setuid, setgid and sticky (guest.UnixMode). ReadDir returns
// entries sorted by name, without "." and "..". Open opens regular files
// and directories; an opened regular file also implements io.ReaderAt and
// io.Seeker. Errors are fs.PathError with the path given, wrapping
// fs.ErrNotExist, fs.ErrInvalid or ErrCorrupt.
//
// A Volume is safe for concurrent use.
type Volume interface {
	Lstat(name string) (fs.FileInfo, error)
	ReadDir(name string) ([]fs.DirEntry, error)
	ReadLink(name string) (string, error)
	Open(name string) (fs.File, error)
}

// ErrCorrupt is wrapped by every error about a structure that breaks the
// filesystem's own rules (a bad magic, a pointer past the end, a loop).
var ErrCorrupt = errors.New("corrupt filesystem")

// ErrUnsupported is wrapped when a filesystem is valid but uses a feature
// the reader does not implement (an incompatible feature flag, a
// compression algorithm). The direct backend then falls back to the
// appliance rather than answer partly.
var ErrUnsupported = errors.New("unsupported filesystem feature")

// Info is what blkid would say about a device: the filesystem type as
// blkid names it (ext4, xfs, vfat, btrfs, squashfs, swap, crypto_LUKS,
// LVM2_member, ntfs), its label and its UUID in blkid's spelling.
type Info struct {
	Type  string
	Label string
	UUID  string
}
