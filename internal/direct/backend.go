// Package direct inspects a disk by reading its bytes in Go, with no
// appliance: partitions and LVM from internal/layout, filesystems from
// internal/filesystem's readers, and libguestfs's inspection rules
// (which filesystem is a root, its OS facts, its fstab, its packages)
// applied to the files. It implements inspect.Backend, so every section
// and profile rule runs on it unchanged, and it is compared with the
// appliance on every test image.
//
// What it cannot read (an encrypted volume, a thin pool, RAID, a
// filesystem without a reader) is an error wrapping ErrUnsupported at
// Open, and a structure that breaks its own rules met while reading is
// recorded (Fault), so that the caller can fall back to the appliance or
// fail, never present a partial answer as complete.
package direct

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/layout"
)

// ErrUnsupported: the disk holds something the direct backend does not
// read; the appliance may.
var ErrUnsupported = filesystem.ErrUnsupported

// wholeDisk is the one drive's name, as the appliance calls it.
const wholeDisk = "/dev/sda"

// Backend is an opened disk. It implements inspect.Backend.
type Backend struct {
	disk block.Device
	log  logrus.FieldLogger

	partTable string
	parts     []layout.Partition
	lvm       *layout.LVM
	devs      []*device          // devices that may hold a filesystem, in libguestfs's listing order
	byName    map[string]*device // every named device, partitions and LVs included
	fses      []*fsEntry         // filesystems, btrfs subvolumes included
	byMount   map[string]*fsEntry

	closeDisk func() error
	stats     func() block.Stats

	mu    sync.Mutex
	fault error
}

var _ inspect.Backend = (*Backend)(nil)

// device is a block device of the disk.
type device struct {
	name     string
	dev      block.Device
	info     filesystem.Info
	readable bool // one of the readers knows info.Type
	partUUID string
	isPart   bool
	isPV     bool
}

// fsEntry is a mountable filesystem and what inspection made of it.
type fsEntry struct {
	mountable string
	dev       *device
	subvol    string // btrfs subvolume path; "" for the default one
	open      func() (filesystem.Volume, error)
	role      role
	data      *osData
}

// Options tune a Backend.
type Options struct {
	Log logrus.FieldLogger
}

// Open reads the disk's layout, identifies every filesystem and runs
// libguestfs's per-filesystem inspection. It fails, wrapping
// ErrUnsupported, when the disk holds anything it cannot read, so that
// `auto` hands the whole disk to the appliance.
func Open(ctx context.Context, disk block.Device, opts Options) (*Backend, error) {
	b := &Backend{disk: disk, log: opts.Log, byName: map[string]*device{}, byMount: map[string]*fsEntry{}}
	if b.log == nil {
		b.log = logrus.New()
	}
	if err := b.scanLayout(); err != nil {
		return nil, err
	}
	if err := b.identify(ctx); err != nil {
		return nil, err
	}
	if err := b.inspectFilesystems(ctx); err != nil {
		return nil, err
	}
	if err := b.Fault(); err != nil {
		return nil, err
	}
	return b, nil
}

// OpenImage opens the image file read-only, in the format the probe
// found (never guessed), and the backend over it.
func OpenImage(ctx context.Context, path, format string, opts Options) (*Backend, error) {
	log := blockLogger(opts)
	disk, err := block.Open(ctx, path, format, block.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open %s image: %w", format, err)
	}
	return openDisk(ctx, disk, opts)
}

// OpenDevice is OpenImage for an image whose bytes are dev (a streamed
// object), in format.
func OpenDevice(ctx context.Context, dev block.Device, format string, opts Options) (*Backend, error) {
	log := blockLogger(opts)
	disk, err := block.OpenDevice(ctx, dev, format, block.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open %s image: %w", format, err)
	}
	return openDisk(ctx, disk, opts)
}

// blockLogger is the block layer's logger for opts.Log.
func blockLogger(opts Options) *logrus.Entry {
	if opts.Log == nil {
		return nil
	}
	if e, ok := opts.Log.(*logrus.Entry); ok {
		return e
	}
	return logrus.NewEntry(logrus.StandardLogger())
}

func openDisk(ctx context.Context, disk *block.Disk, opts Options) (*Backend, error) {
	b, err := Open(ctx, disk, opts)
	if err != nil {
		st := disk.Stats()
		disk.Close()
		return nil, &OpenError{Err: err, Stats: st}
	}
	b.closeDisk, b.stats = disk.Close, disk.Stats
	return b, nil
}

// OpenError is a failed OpenImage, with what it read of the image before
// it gave up.
type OpenError struct {
	Err   error
	Stats block.Stats
}

func (e *OpenError) Error() string { return e.Err.Error() }
func (e *OpenError) Unwrap() error { return e.Err }

// Close releases the image (and the qemu process that reads it, if any).
func (b *Backend) Close() error {
	if b.closeDisk == nil {
		return nil
	}
	return b.closeDisk()
}

// Stats are the reads made of the image so far.
func (b *Backend) Stats() block.Stats {
	if b.stats == nil {
		return block.Stats{}
	}
	return b.stats()
}

// Fault is the first unsupported feature or corrupt structure any read
// met, nil if none: a report read past one is not complete.
func (b *Backend) Fault() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fault
}

func (b *Backend) noteFault(err error) {
	if err == nil || !(errors.Is(err, filesystem.ErrCorrupt) || errors.Is(err, filesystem.ErrUnsupported)) {
		return
	}
	b.mu.Lock()
	if b.fault == nil {
		b.fault = err
	}
	b.mu.Unlock()
}

// scanLayout reads the partition table and LVM, and lists the devices
// that may hold a filesystem as libguestfs's list_filesystems does: the
// whole disk when it has no partitions, then partitions (not extended
// ones, not Windows LDM or reserved ones), then logical volumes.
func (b *Backend) scanLayout() error {
	whole := &device{name: wholeDisk, dev: b.disk}
	b.byName[wholeDisk] = whole
	pt, parts, err := layout.Partitions(b.disk, b.disk.Size())
	switch {
	case errors.Is(err, layout.ErrNoTable):
		b.devs = append(b.devs, whole)
	case err != nil:
		return fmt.Errorf("partition table of %s: %v: %w", wholeDisk, err, filesystem.ErrCorrupt)
	default:
		b.partTable, b.parts = pt, parts
	}
	for _, p := range parts {
		sec, err := block.Section(b.disk, p.Start, p.Size)
		if err != nil {
			return fmt.Errorf("partition %d: %v: %w", p.Number, err, filesystem.ErrCorrupt)
		}
		d := &device{name: partName(wholeDisk, p.Number), dev: sec, isPart: true, partUUID: strings.ToLower(p.UUID)}
		b.byName[d.name] = d
		if !holdsFilesystem(pt, p.Type) {
			continue
		}
		b.devs = append(b.devs, d)
	}
	return b.scanLVM()
}

func partName(dev string, n int) string {
	if c := dev[len(dev)-1]; c >= '0' && c <= '9' {
		return fmt.Sprintf("%sp%d", dev, n)
	}
	return fmt.Sprintf("%s%d", dev, n)
}

// holdsFilesystem is is_partition_can_hold_filesystem.
func holdsFilesystem(table, typ string) bool {
	switch strings.ToUpper(typ) {
	case "0X05", "0X0F", "0X85": // MBR extended
		return table != "msdos"
	case "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3", "AF9B60A0-1431-4F62-BC68-3311714A69AD", // LDM
		"E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "CADDEBF1-4400-4DE8-B103-12117DCF3CCF": // MSR, snapshot
		return false
	}
	return true
}

// inspectFilesystems runs check_filesystem on every filesystem, alone,
// then merges a separate /usr into the roots whose fstab names it.
func (b *Backend) inspectFilesystems(ctx context.Context) error {
	for _, e := range b.fses {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.open == nil {
			continue
		}
		vol, err := e.open()
		if err != nil {
			b.noteFault(err)
			if b.Fault() != nil {
				return fmt.Errorf("%s: %w", e.mountable, err)
			}
			continue // does not mount: libguestfs skips it too
		}
		tree, _ := filesystem.NewTree([]filesystem.Mount{{Path: "/", Volume: b.watch(e.mountable, vol)}})
		e.role, e.data = checkFilesystem(files{tree}, e.mountable, b)
	}
	for _, root := range b.fses {
		if root.role != roleRoot || root.data.distro == "coreos" {
			continue
		}
		for _, usr := range b.fses {
			if usr.role == roleUsr && inFstab(root.data.fstab, usr.mountable) {
				mergeInto(root.data, usr.data)
				break
			}
		}
	}
	for _, e := range b.fses {
		b.byMount[e.mountable] = e
	}
	return nil
}

func inFstab(fstab []fstabEntry, mountable string) bool {
	for _, e := range fstab {
		if e.mountable == mountable {
			return true
		}
	}
	return false
}

// mergeInto is merge_inspection_data: the child fills what the parent
// lacks.
func mergeInto(parent, child *osData) {
	pick := func(p *string, c string) {
		if *p == "" {
			*p = c
		}
	}
	pick(&parent.osType, child.osType)
	pick(&parent.distro, child.distro)
	pick(&parent.pkgFormat, child.pkgFormat)
	pick(&parent.pkgManagement, child.pkgManagement)
	pick(&parent.productName, child.productName)
	pick(&parent.productVariant, child.productVariant)
	if !parent.hasVersion && child.hasVersion {
		parent.setVersion(child.major, child.minor)
	}
	pick(&parent.arch, child.arch)
	pick(&parent.hostname, child.hostname)
	parent.fstab = append(append([]fstabEntry(nil), child.fstab...), parent.fstab...)
}

// Roots are the root filesystems, sorted as the appliance's are.
func (b *Backend) Roots(ctx context.Context) ([]string, error) {
	var roots []string
	for _, e := range b.fses {
		if e.role == roleRoot {
			roots = append(roots, e.mountable)
		}
	}
	sort.Strings(roots)
	return roots, ctx.Err()
}

func (b *Backend) root(root string) (*fsEntry, error) {
	e, ok := b.byMount[root]
	if !ok || e.role != roleRoot {
		return nil, fmt.Errorf("%s: not a root found by inspection", root)
	}
	return e, nil
}

// OSFacts is what the appliance's inspect_get_* calls return for root.
func (b *Backend) OSFacts(ctx context.Context, root string) (inspect.OS, error) {
	e, err := b.root(root)
	if err != nil {
		return inspect.OS{}, err
	}
	d := e.data
	os := inspect.OS{
		Root: root, Type: d.osType, Distro: d.distro, ProductName: d.productName, ProductVariant: d.productVariant,
		Arch: d.arch, Hostname: d.hostname, PackageFormat: d.pkgFormat, PackageManagement: d.pkgManagement,
		Format: "installed",
	}
	if d.hasVersion {
		os.MajorVersion, os.MinorVersion = d.major, d.minor
	}
	os.OSInfo = osinfo(os.Type, os.Distro, os.MajorVersion, os.MinorVersion)
	if os.OSInfo == "unknown" {
		os.OSInfo = ""
	}
	for p, dev := range mountpoints(e) {
		os.Mountpoints = append(os.Mountpoints, inspect.Mountpoint{Path: p, Device: dev})
	}
	sort.Slice(os.Mountpoints, func(i, j int) bool {
		a, b := os.Mountpoints[i].Path, os.Mountpoints[j].Path
		if len(a) != len(b) {
			return len(a) < len(b)
		}
		return a < b
	})
	for _, m := range filesystemsOf(e) {
		os.Filesystems = append(os.Filesystems, b.describe(m))
	}
	return os, ctx.Err()
}

// mountpoints is inspect_get_mountpoints: the fstab's absolute
// mountpoints, or just the root when the fstab gave nothing. The
// appliance lists the fstab's entries last first (seen on every test
// image), so for a path listed twice the first entry wins.
func mountpoints(e *fsEntry) map[string]string {
	out := map[string]string{}
	if len(e.data.fstab) == 0 {
		out["/"] = e.mountable
		return out
	}
	for _, f := range e.data.fstab {
		if _, dup := out[f.path]; !dup && strings.HasPrefix(f.path, "/") {
			out[f.path] = f.mountable
		}
	}
	return out
}

// filesystemsOf is inspect_get_filesystems, in the appliance's order.
func filesystemsOf(e *fsEntry) []string {
	if len(e.data.fstab) == 0 {
		return []string{e.mountable}
	}
	var out []string
	for i := len(e.data.fstab) - 1; i >= 0; i-- {
		out = append(out, e.data.fstab[i].mountable)
	}
	return out
}

// describe is what blkid says of a mountable; a btrfs subvolume is
// described by its device's filesystem type only, as vfs_type does.
func (b *Backend) describe(mountable string) inspect.Filesystem {
	f := inspect.Filesystem{Device: mountable}
	if strings.HasPrefix(mountable, "btrfsvol:") {
		f.Type = "btrfs"
		return f
	}
	if d, ok := b.byName[mountable]; ok {
		f.Type, f.Label, f.UUID = d.info.Type, d.info.Label, d.info.UUID
	}
	return f
}

// Mount joins the root's filesystems at their mountpoints, shortest path
// first; a secondary one that fails is a Problem, as in the appliance.
func (b *Backend) Mount(ctx context.Context, root string) (guest.FS, []inspect.Problem, error) {
	e, err := b.root(root)
	if err != nil {
		return nil, nil, err
	}
	mps := mountpoints(e)
	paths := make([]string, 0, len(mps))
	for p := range mps {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool {
		if len(paths[i]) != len(paths[j]) {
			return len(paths[i]) < len(paths[j])
		}
		return paths[i] < paths[j]
	})
	var probs []inspect.Problem
	var mounts []filesystem.Mount
	for _, p := range paths {
		vol, err := b.volume(mps[p])
		if err != nil {
			if p == "/" {
				return nil, probs, fmt.Errorf("mount %s on /: %w", mps[p], err)
			}
			probs = append(probs, inspect.Problem{Section: "mount", Path: p, Message: fmt.Sprintf("mount %s: %v", mps[p], err)})
			continue
		}
		mounts = append(mounts, filesystem.Mount{Path: p, Volume: vol})
	}
	if _, ok := mps["/"]; !ok {
		// The appliance mounts only what the fstab lists; with no "/"
		// there, its view of the guest is empty.
		mounts = append(mounts, filesystem.Mount{Path: "/", Volume: emptyVolume{}})
	}
	tree, errs := filesystem.NewTree(mounts)
	for _, err := range errs {
		probs = append(probs, inspect.Problem{Section: "mount", Message: err.Error()})
	}
	if tree == nil {
		return nil, probs, fmt.Errorf("mount %s: nothing mounted on /", root)
	}
	return tree, probs, ctx.Err()
}

// volume opens a mountable's filesystem, watched for faults.
func (b *Backend) volume(mountable string) (filesystem.Volume, error) {
	e, ok := b.byMount[mountable]
	if !ok || e.open == nil {
		return nil, fmt.Errorf("%s: no filesystem that can be mounted", mountable)
	}
	vol, err := e.open()
	if err != nil {
		b.noteFault(err)
		return nil, err
	}
	return b.watch(mountable, vol), nil
}

// Unmount has nothing to release: volumes hold no state beyond caches.
func (b *Backend) Unmount(ctx context.Context) error { return nil }

// Applications lists the root's packages as the appliance's
// inspect_list_applications2 does, from the mounted tree.
func (b *Backend) Applications(ctx context.Context, root string) ([]inspect.Application, error) {
	e, err := b.root(root)
	if err != nil {
		return nil, err
	}
	fsys, _, err := b.Mount(ctx, root)
	if err != nil {
		return nil, err
	}
	if e.data.osType != "linux" && e.data.osType != "hurd" {
		return []inspect.Application{}, nil
	}
	read, ok := packageReaders[e.data.pkgFormat]
	if !ok {
		return []inspect.Application{}, nil
	}
	return read(ctx, fsys)
}
