package direct

import (
	"context"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/filesystem/ext4"
	"guestkit.io/batch/internal/filesystem/fat"
	"guestkit.io/batch/internal/filesystem/xfs"
	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/inspect"
)

// reader is one filesystem implementation.
type reader struct {
	probe func(block.Device) (filesystem.Info, bool)
	open  func(block.Device) (filesystem.Volume, error)
	// subvolumes, for btrfs: every subvolume, the default one first.
	subvolumes func(block.Device) ([]subvolume, error)
}

type subvolume struct {
	path      string
	isDefault bool
	open      func() (filesystem.Volume, error)
}

// readers in blkid's probing order for the types they share a disk with.
var readers = []*reader{
	{probe: ext4.Probe, open: func(d block.Device) (filesystem.Volume, error) { return ext4.Open(d) }},
	{probe: xfs.Probe, open: func(d block.Device) (filesystem.Volume, error) { return xfs.Open(d) }},
	{probe: fat.Probe, open: func(d block.Device) (filesystem.Volume, error) { return fat.Open(d) }},
}

// probe finds the reader of a device's filesystem.
func probe(dev block.Device) (*reader, filesystem.Info, bool) {
	for _, r := range readers {
		if info, ok := r.probe(dev); ok {
			return r, info, true
		}
	}
	return nil, filesystem.Info{}, false
}

// packageReaders list a root's applications by package format.
var packageReaders = map[string]func(context.Context, guest.FS) ([]inspect.Application, error){
	"deb":    func(_ context.Context, fsys guest.FS) ([]inspect.Application, error) { return debApplications(fsys) },
	"apk":    func(_ context.Context, fsys guest.FS) ([]inspect.Application, error) { return apkApplications(fsys) },
	"pacman": func(_ context.Context, fsys guest.FS) ([]inspect.Application, error) { return pacmanApplications(fsys) },
}
