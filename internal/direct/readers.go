package direct

import (
	"context"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/filesystem/btrfs"
	"guestkit.io/batch/internal/filesystem/ext4"
	"guestkit.io/batch/internal/filesystem/fat"
	"guestkit.io/batch/internal/filesystem/squashfs"
	"guestkit.io/batch/internal/filesystem/xfs"
	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/rpmdb"
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
	{probe: btrfs.Probe, subvolumes: btrfsSubvolumes},
	{probe: squashfs.Probe, open: func(d block.Device) (filesystem.Volume, error) { return squashfs.Open(d) }},
	{probe: fat.Probe, open: func(d block.Device) (filesystem.Volume, error) { return fat.Open(d) }},
}

// btrfsSubvolumes lists a btrfs filesystem as libguestfs's
// list_filesystems does: the device itself (its default subvolume), then
// every other subvolume by path.
func btrfsSubvolumes(d block.Device) ([]subvolume, error) {
	f, err := btrfs.Open(d)
	if err != nil {
		return nil, err
	}
	def, err := f.Default()
	if err != nil {
		return nil, err
	}
	subs, err := f.Subvolumes()
	if err != nil {
		return nil, err
	}
	out := []subvolume{{isDefault: true, open: func() (filesystem.Volume, error) { return f.Volume(def) }}}
	for _, s := range subs {
		if s.ID == def {
			continue
		}
		id := s.ID
		out = append(out, subvolume{path: s.Path, open: func() (filesystem.Volume, error) { return f.Volume(id) }})
	}
	return out, nil
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
	"rpm":    rpmApplications,
}

// rpmApplications reads the rpm database in Go (internal/rpmdb), with
// the fields and order of the appliance's librpm listing.
func rpmApplications(ctx context.Context, fsys guest.FS) ([]inspect.Application, error) {
	pkgs, err := rpmdb.Read(ctx, fsys)
	if err != nil {
		return nil, err
	}
	apps := make([]inspect.Application, 0, len(pkgs))
	for _, p := range pkgs {
		apps = append(apps, inspect.Application{Name: p.Name, Epoch: p.Epoch, Version: p.Version, Release: p.Release,
			Arch: p.Arch, URL: p.URL, Summary: p.Summary, Description: p.Description})
	}
	return sortApps(apps), nil
}
