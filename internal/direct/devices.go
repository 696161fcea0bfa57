package direct

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/layout"
)

// identify names what each device holds (blkid), and lists the
// filesystems: one per device, and one per non-default btrfs subvolume.
// Anything recognised but not readable is ErrUnsupported.
func (b *Backend) identify(ctx context.Context) error {
	for _, d := range b.devs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.isPV {
			continue
		}
		r, info, ok := probe(d.dev)
		if !ok {
			info, ok = filesystem.Signature(d.dev)
		}
		if !ok {
			continue // blank or unknown: libguestfs cannot mount it either
		}
		d.info = info
		switch {
		case r != nil:
			d.readable = true
			entries, err := b.filesystemsOn(d, r)
			if err != nil {
				return err
			}
			b.fses = append(b.fses, entries...)
		case info.Type == "swap":
			b.fses = append(b.fses, &fsEntry{mountable: d.name, dev: d, role: roleSwap})
		default:
			return unsupported(fmt.Sprintf("%s holds %s, which the direct reader does not read", d.name, info.Type))
		}
	}
	return nil
}

// filesystemsOn lists the mountables of a readable device.
func (b *Backend) filesystemsOn(d *device, r *reader) ([]*fsEntry, error) {
	if r.subvolumes == nil {
		e := &fsEntry{mountable: d.name, dev: d}
		e.open = once(func() (filesystem.Volume, error) { return r.open(d.dev) })
		return []*fsEntry{e}, nil
	}
	subs, err := r.subvolumes(d.dev)
	if err != nil {
		b.noteFault(err)
		if b.Fault() != nil {
			return nil, fmt.Errorf("%s: %w", d.name, err)
		}
		return nil, nil
	}
	var out []*fsEntry
	for _, s := range subs {
		e := &fsEntry{mountable: d.name, dev: d, open: once(s.open)}
		if !s.isDefault {
			e.mountable, e.subvol = "btrfsvol:"+d.name+"/"+s.path, s.path
		}
		out = append(out, e)
	}
	return out, nil
}

// unsupportedError is what the direct backend does not read: its text is
// the reason alone, and it is ErrUnsupported.
type unsupportedError string

func unsupported(why string) error              { return unsupportedError(why) }
func (e unsupportedError) Error() string        { return string(e) }
func (e unsupportedError) Is(target error) bool { return target == ErrUnsupported }

// once opens a volume the first time it is asked for, then hands out the
// same one, caches and all.
func once(open func() (filesystem.Volume, error)) func() (filesystem.Volume, error) {
	var vol filesystem.Volume
	var err error
	done := false
	return func() (filesystem.Volume, error) {
		if !done {
			vol, err = open()
			done = true
		}
		return vol, err
	}
}

// scanLVM reads the LVM2 metadata of the devices that are physical
// volumes, and adds the logical volumes as devices. A thin pool, RAID or
// a missing PV is ErrUnsupported.
func (b *Backend) scanLVM() error {
	var pvs []layout.NamedDevice
	var rest []*device
	for _, d := range b.devs {
		if layout.IsPV(d.dev) {
			d.isPV = true
			d.info = filesystem.Info{Type: "LVM2_member"}
			pvs = append(pvs, layout.NamedDevice{Name: d.name, Dev: d.dev})
			continue
		}
		rest = append(rest, d)
	}
	if len(pvs) == 0 {
		return nil
	}
	lvm, err := layout.ReadLVM(pvs)
	if err != nil {
		return fmt.Errorf("LVM: %v: %w", err, filesystem.ErrCorrupt)
	}
	if lvm == nil {
		return nil
	}
	b.lvm = lvm
	for _, lv := range lvm.LVs {
		name := "/dev/" + lv.VG + "/" + lv.Name
		if lv.Unsupported != "" {
			return unsupported(fmt.Sprintf("logical volume %s: %s", name, lv.Unsupported))
		}
		dev, err := lv.Device()
		if err != nil {
			return fmt.Errorf("logical volume %s: %v: %w", name, err, filesystem.ErrCorrupt)
		}
		d := &device{name: name, dev: dev}
		b.byName[name] = d
		rest = append(rest, d)
	}
	// PVs stay listed for blkid's sake (UUID= of a PV); identify skips them.
	b.devs = append(rest, pvDevices(b.devs)...)
	return nil
}

func pvDevices(devs []*device) []*device {
	var out []*device
	for _, d := range devs {
		if d.isPV {
			out = append(out, d)
		}
	}
	return out
}

// byTag finds a device by blkid tag, as findfs does.
func (b *Backend) byTag(tag, value string) (string, bool) {
	for _, d := range b.allDevices() {
		var v string
		switch tag {
		case "UUID":
			v = d.info.UUID
		case "LABEL":
			v = d.info.Label
		case "PARTUUID":
			v = d.partUUID
		}
		if v != "" && v == value {
			return d.name, true
		}
	}
	return "", false
}

// allDevices: the whole disk, partitions in table order, then LVs.
func (b *Backend) allDevices() []*device {
	out := []*device{b.byName[wholeDisk]}
	for _, p := range b.parts {
		out = append(out, b.byName[partName(wholeDisk, p.Number)])
	}
	if b.lvm != nil {
		for _, lv := range b.lvm.LVs {
			if d, ok := b.byName["/dev/"+lv.VG+"/"+lv.Name]; ok {
				out = append(out, d)
			}
		}
	}
	return out
}

func (b *Backend) isPartition(dev string) bool {
	d, ok := b.byName[dev]
	return ok && d.isPart
}

// lvByMapperName maps /dev/mapper/VG-LV (a '-' in a name doubled) to
// /dev/VG/LV.
func (b *Backend) lvByMapperName(name string) (string, bool) {
	if b.lvm == nil {
		return "", false
	}
	dm := strings.TrimPrefix(name, "/dev/mapper/")
	for _, lv := range b.lvm.LVs {
		if strings.ReplaceAll(lv.VG, "-", "--")+"-"+strings.ReplaceAll(lv.Name, "-", "--") == dm {
			return "/dev/" + lv.VG + "/" + lv.Name, true
		}
	}
	return "", false
}

func (b *Backend) wholeDevices() []string { return []string{wholeDisk} }

// watch records the faults a volume meets, naming the filesystem.
func (b *Backend) watch(name string, v filesystem.Volume) filesystem.Volume {
	return watched{v, &fsFaults{b, name}}
}

// fsFaults notes one filesystem's faults on the backend.
type fsFaults struct {
	b    *Backend
	name string
}

func (f *fsFaults) noteFault(err error) {
	if errors.Is(err, filesystem.ErrCorrupt) || errors.Is(err, filesystem.ErrUnsupported) {
		f.b.noteFault(fmt.Errorf("%s: %w", f.name, err))
	}
}

type watched struct {
	filesystem.Volume
	b *fsFaults
}

func (w watched) Lstat(name string) (fs.FileInfo, error) {
	fi, err := w.Volume.Lstat(name)
	w.b.noteFault(err)
	return fi, err
}

func (w watched) ReadDir(name string) ([]fs.DirEntry, error) {
	ents, err := w.Volume.ReadDir(name)
	w.b.noteFault(err)
	return ents, err
}

func (w watched) ReadLink(name string) (string, error) {
	s, err := w.Volume.ReadLink(name)
	w.b.noteFault(err)
	return s, err
}

func (w watched) Open(name string) (fs.File, error) {
	f, err := w.Volume.Open(name)
	w.b.noteFault(err)
	if err != nil {
		return nil, err
	}
	return watchedFile{f, w.b}, nil
}

// watchedFile records faults met while reading a file's data.
type watchedFile struct {
	fs.File
	b *fsFaults
}

func (f watchedFile) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	f.b.noteFault(err)
	return n, err
}

func (f watchedFile) ReadDir(n int) ([]fs.DirEntry, error) {
	d, ok := f.File.(fs.ReadDirFile)
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Err: errors.New("not a directory")}
	}
	ents, err := d.ReadDir(n)
	f.b.noteFault(err)
	return ents, err
}

// emptyVolume is an empty directory: "/" when the fstab names none.
type emptyVolume struct{}

func (emptyVolume) Lstat(name string) (fs.FileInfo, error) {
	if name == "." {
		return emptyDir{}, nil
	}
	return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrNotExist}
}

func (emptyVolume) ReadDir(name string) ([]fs.DirEntry, error) {
	if name == "." {
		return nil, nil
	}
	return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
}

func (emptyVolume) ReadLink(name string) (string, error) {
	return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
}

func (emptyVolume) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

type emptyDir struct{}

func (emptyDir) Name() string       { return "." }
func (emptyDir) Size() int64        { return 0 }
func (emptyDir) Mode() fs.FileMode  { return fs.ModeDir | 0o755 }
func (emptyDir) ModTime() time.Time { return time.Time{} }
func (emptyDir) IsDir() bool        { return true }
func (emptyDir) Sys() any           { return nil }
