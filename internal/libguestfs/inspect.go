package libguestfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"libguestfs.org/guestfs"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/layout"
)

var _ inspect.Backend = (*Session)(nil)

// Roots runs libguestfs inspection (inspect_os).
func (s *Session) Roots(ctx context.Context) ([]string, error) {
	var roots []string
	err := s.call(ctx, "inspect_os", func(g *guestfs.Guestfs) error {
		var err error
		roots, err = g.Inspect_os()
		return err
	})
	if err != nil {
		return nil, err
	}
	names := make(map[string]string, len(roots))
	for i, r := range roots {
		roots[i] = userName(r)
		names[roots[i]] = r
	}
	s.roots.Store(&names)
	sort.Strings(roots)
	return roots, nil
}

// applianceName is the name libguestfs gave the root the caller names.
func (s *Session) applianceName(root string) string {
	if m := s.roots.Load(); m != nil {
		if r, ok := (*m)[root]; ok {
			return r
		}
	}
	return root
}

// OSFacts gathers what virt-inspector prints for a root, except
// applications, which need the root mounted.
func (s *Session) OSFacts(ctx context.Context, root string) (inspect.OS, error) {
	os := inspect.OS{Root: root}
	name := s.applianceName(root)
	err := s.call(ctx, "inspect_get", func(g *guestfs.Guestfs) error {
		for _, read := range []func(*guestfs.Guestfs, string, *inspect.OS) error{
			osStrings, osVersionAndFlags, windowsFacts, osMountpoints, osFilesystems,
		} {
			if err := read(g, name, &os); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return os, fmt.Errorf("inspect %s: %w", root, err)
	}
	return os, nil
}

// osStrings reads the string facts; libguestfs's "unknown" stays empty.
func osStrings(g *guestfs.Guestfs, root string, os *inspect.OS) error {
	for _, f := range []struct {
		get func(string) (string, error)
		dst *string
	}{
		{g.Inspect_get_type, &os.Type},
		{g.Inspect_get_distro, &os.Distro},
		{g.Inspect_get_product_name, &os.ProductName},
		{g.Inspect_get_product_variant, &os.ProductVariant},
		{g.Inspect_get_arch, &os.Arch},
		{g.Inspect_get_hostname, &os.Hostname},
		{g.Inspect_get_package_format, &os.PackageFormat},
		{g.Inspect_get_package_management, &os.PackageManagement},
		{g.Inspect_get_osinfo, &os.OSInfo},
		{g.Inspect_get_format, &os.Format},
	} {
		v, err := f.get(root)
		if err != nil {
			return err
		}
		if v != "unknown" {
			*f.dst = v
		}
	}
	return nil
}

// osVersionAndFlags reads the version numbers and the install-media flags.
func osVersionAndFlags(g *guestfs.Guestfs, root string, os *inspect.OS) error {
	var err error
	if os.MajorVersion, err = g.Inspect_get_major_version(root); err != nil {
		return err
	}
	if os.MinorVersion, err = g.Inspect_get_minor_version(root); err != nil {
		return err
	}
	if os.Live, err = g.Inspect_is_live(root); err != nil {
		return err
	}
	if os.Netinst, err = g.Inspect_is_netinst(root); err != nil {
		return err
	}
	os.Multipart, err = g.Inspect_is_multipart(root)
	return err
}

// windowsFacts reads the Windows-only facts of a Windows root.
func windowsFacts(g *guestfs.Guestfs, root string, os *inspect.OS) error {
	if os.Type != "windows" {
		return nil
	}
	var err error
	if os.WindowsSystemroot, err = g.Inspect_get_windows_systemroot(root); err != nil {
		return err
	}
	// Both exist only when the registry could be read.
	if v, err := g.Inspect_get_windows_current_control_set(root); err == nil {
		os.WindowsCCS = v
	}
	if m, err := g.Inspect_get_drive_mappings(root); err == nil && len(m) > 0 {
		os.DriveMappings = m
	}
	return nil
}

// osMountpoints reads the root's mount points in virt-inspector's order:
// shortest path first, then by name.
func osMountpoints(g *guestfs.Guestfs, root string, os *inspect.OS) error {
	mps, err := g.Inspect_get_mountpoints(root)
	if err != nil {
		return err
	}
	for p, dev := range mps {
		os.Mountpoints = append(os.Mountpoints, inspect.Mountpoint{Path: p, Device: userName(dev)})
	}
	sort.Slice(os.Mountpoints, func(i, j int) bool {
		a, b := os.Mountpoints[i].Path, os.Mountpoints[j].Path
		if len(a) != len(b) {
			return len(a) < len(b)
		}
		return a < b
	})
	return nil
}

// osFilesystems describes the filesystems that belong to the root.
func osFilesystems(g *guestfs.Guestfs, root string, os *inspect.OS) error {
	devs, err := g.Inspect_get_filesystems(root)
	if err != nil {
		return err
	}
	for _, d := range devs {
		os.Filesystems = append(os.Filesystems, filesystem(g, d))
	}
	return nil
}

// filesystem reads type, label and UUID with one blkid call instead of
// three vfs_* calls; both read the same superblock fields.
func filesystem(g *guestfs.Guestfs, dev string) inspect.Filesystem {
	fs := inspect.Filesystem{Device: userName(dev)}
	if tags, err := g.Blkid(dev); err == nil {
		fs.Type, fs.Label, fs.UUID = tags["TYPE"], tags["LABEL"], tags["UUID"]
	} else if t, err := g.Vfs_type(dev); err == nil {
		fs.Type = t
	}
	return fs
}

// Mount mounts the root's filesystems read-only, shortest mountpoint first.
func (s *Session) Mount(ctx context.Context, root string) (guest.FS, []inspect.Problem, error) {
	var probs []inspect.Problem
	err := s.call(ctx, "mount", func(g *guestfs.Guestfs) error {
		mps, err := g.Inspect_get_mountpoints(s.applianceName(root))
		if err != nil {
			return err
		}
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
		for _, p := range paths {
			if err := g.Mount_ro(mps[p], p); err != nil {
				if p == "/" {
					return fmt.Errorf("mount %s on /: %w", mps[p], err)
				}
				// As virt-inspector does: a broken /home must not hide /.
				probs = append(probs, inspect.Problem{Section: "mount", Path: p, Message: fmt.Sprintf("mount %s: %v", mps[p], err)})
			}
		}
		return nil
	})
	if err != nil {
		return nil, probs, err
	}
	return s.FS(ctx), probs, nil
}

// Unmount unmounts everything.
func (s *Session) Unmount(ctx context.Context) error {
	return s.call(ctx, "umount_all", func(g *guestfs.Guestfs) error { return g.Umount_all() })
}

// Applications lists installed packages (inspect_list_applications2).
func (s *Session) Applications(ctx context.Context, root string) ([]inspect.Application, error) {
	var apps []inspect.Application
	err := s.call(ctx, "inspect_list_applications2", func(g *guestfs.Guestfs) error {
		list, err := g.Inspect_list_applications2(root)
		if err != nil {
			return err
		}
		for _, a := range *list {
			apps = append(apps, inspect.Application{
				Name: a.App2_name, DisplayName: a.App2_display_name, Epoch: int(a.App2_epoch),
				Version: a.App2_version, Release: a.App2_release, Arch: a.App2_arch,
				InstallPath: a.App2_install_path, Publisher: a.App2_publisher, URL: a.App2_url,
				SourcePackage: a.App2_source_package, Summary: a.App2_summary, Description: a.App2_description,
			})
		}
		return nil
	})
	return apps, err
}

// lvmPVType are partition types that hold an LVM physical volume.
func isLVMType(t string) bool {
	return t == "0x8e" || t == "E6D6D379-F507-44C2-A23C-238F2A3DF928"
}

// isContainerType are MBR extended partitions: no filesystem of their own.
func isContainerType(t string) bool { return t == "0x05" || t == "0x0f" || t == "0x85" }

// Storage describes the disk. It reads the partition table itself (one
// pread_device) and runs blkid only on devices that no OS root described
// already: each tool spawned inside a TCG appliance costs about a second.
func (s *Session) Storage(ctx context.Context, known []inspect.Filesystem) (inspect.Storage, []inspect.Problem, error) {
	st := inspect.Storage{Devices: []inspect.Device{}, Partitions: []inspect.Partition{}, Filesystems: []inspect.Filesystem{}}
	var probs []inspect.Problem
	note := func(section, path string, err error) {
		probs = append(probs, inspect.Problem{Section: section, Path: path, Message: err.Error()})
	}
	have := map[string]inspect.Filesystem{}
	for _, f := range known {
		have[f.Device] = f
	}
	err := s.call(ctx, "storage", func(g *guestfs.Guestfs) error {
		const dev = "/dev/sda" // the one drive added, by libguestfs's canonical name
		d := inspect.Device{Name: dev, Size: s.size}
		if d.Size == 0 {
			size, err := g.Blockdev_getsize64(dev)
			if err != nil {
				return err
			}
			d.Size = size
		}
		// One pread_device per table: parted and sfdisk cost a process
		// spawn each inside the appliance, most of a storage report's time
		// under TCG.
		pt, parts, err := layout.Partitions(deviceReader{g, dev}, d.Size)
		if err != nil && !errors.Is(err, layout.ErrNoTable) {
			note("partitions", dev, err)
		}
		d.Partition = pt
		st.Devices = append(st.Devices, d)
		var candidates []string // devices that may hold a filesystem
		hasLVM := false
		if len(parts) == 0 {
			candidates = append(candidates, dev)
			hasLVM = isPV(g, dev)
		}
		for _, p := range parts {
			name := partName(dev, p.Number)
			st.Partitions = append(st.Partitions, inspect.Partition{
				Name: name, Device: dev, Number: p.Number, Start: p.Start, Size: p.Size, Type: p.Type, Label: p.Name,
			})
			switch {
			case isContainerType(p.Type):
			case isLVMType(p.Type) || isPV(g, name):
				hasLVM = true
			default:
				candidates = append(candidates, name)
			}
		}
		if hasLVM {
			lvm, err := lvmInfo(g)
			if err != nil {
				note("lvm", "", err)
			} else if lvm != nil {
				st.LVM = lvm
				for _, lv := range lvm.LVs {
					candidates = append(candidates, "/dev/"+lv.VG+"/"+lv.Name)
				}
			}
		}
		for _, c := range candidates {
			f, ok := have[c]
			if !ok {
				f = filesystem(g, c)
			}
			if f.Type == "" && f.UUID == "" {
				continue // blank or unknown content
			}
			st.Filesystems = append(st.Filesystems, f)
		}
		return nil
	})
	return st, probs, err
}

// isPV says whether a device is an LVM2 physical volume, without
// spawning pvs.
func isPV(g *guestfs.Guestfs, dev string) bool {
	return layout.IsPV(deviceReader{g, dev})
}

// deviceReader reads a device of the appliance.
type deviceReader struct {
	g   *guestfs.Guestfs
	dev string
}

func (r deviceReader) ReadAt(p []byte, off int64) (int, error) {
	b, err := r.g.Pread_device(r.dev, len(p), off)
	n := copy(p, b)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

func partName(dev string, n int) string {
	if c := dev[len(dev)-1]; c >= '0' && c <= '9' { // nvme0n1 -> nvme0n1p1
		return fmt.Sprintf("%sp%d", dev, n)
	}
	return fmt.Sprintf("%s%d", dev, n)
}

// userDevice names a PV as the caller sees the disk. pvs_full returns
// lvm's own device name untranslated, and when the appliance's disks come
// up in another order (seen under load: /dev/sdb2 for the one drive's
// second partition) that is not the drive's name. The appliance has one
// drive, /dev/sda, and its own disk holds no PV.
func userDevice(name string) string {
	rest, ok := strings.CutPrefix(name, "/dev/sd")
	if !ok || rest == "" || rest[0] < 'a' || rest[0] > 'z' {
		return name
	}
	part := strings.TrimLeft(rest, "abcdefghijklmnopqrstuvwxyz")
	if strings.Trim(part, "0123456789") != "" {
		return name // not a disk or partition: /dev/sdvg/root is an LV
	}
	return "/dev/sda" + part
}

// userName is userDevice for any device name libguestfs returns,
// including a btrfs subvolume's "btrfsvol:DEVICE/SUBVOLUME", which
// inspect_os does not translate either.
func userName(name string) string {
	rest, ok := strings.CutPrefix(name, "btrfsvol:/dev/")
	if !ok {
		return userDevice(name)
	}
	dev, sub, _ := strings.Cut(rest, "/")
	return "btrfsvol:" + userDevice("/dev/"+dev) + "/" + sub
}

// lvmInfo lists PVs, VGs and LVs; nil when the disk has no LVM.
func lvmInfo(g *guestfs.Guestfs) (*inspect.LVM, error) {
	pvs, err := g.Pvs_full()
	if err != nil {
		return nil, err
	}
	if len(*pvs) == 0 {
		return nil, nil
	}
	l := &inspect.LVM{PVs: []inspect.PV{}, VGs: []inspect.VG{}, LVs: []inspect.LV{}}
	// The bindings cannot copy the uuid fields of the *_full structs, so
	// UUIDs come from the *uuid calls.
	for _, p := range *pvs {
		uuid, _ := g.Pvuuid(p.Pv_name)
		l.PVs = append(l.PVs, inspect.PV{Name: userDevice(p.Pv_name), UUID: uuid, Size: int64(p.Pv_size)})
	}
	vgs, err := g.Vgs_full()
	if err != nil {
		return nil, err
	}
	for _, v := range *vgs {
		uuid, _ := g.Vguuid(v.Vg_name)
		l.VGs = append(l.VGs, inspect.VG{Name: v.Vg_name, UUID: uuid, Size: int64(v.Vg_size), Free: int64(v.Vg_free)})
	}
	lvs, err := g.Lvs() // "/dev/VG/LV"
	if err != nil {
		return nil, err
	}
	for _, dev := range lvs {
		vg, lv, _ := strings.Cut(strings.TrimPrefix(dev, "/dev/"), "/")
		uuid, _ := g.Lvuuid(dev)
		size, _ := g.Blockdev_getsize64(dev)
		l.LVs = append(l.LVs, inspect.LV{Name: lv, VG: vg, UUID: uuid, Size: size})
	}
	return l, nil
}
