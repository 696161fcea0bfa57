package direct

import (
	"regexp"
	"strconv"
	"strings"
)

// fstabEntry is one filesystem of an OS: its mountable (a device name as
// the appliance would call it, or btrfsvol:DEVICE/SUBVOLUME) and where the
// guest mounts it.
type fstabEntry struct {
	mountable string
	path      string
}

// diskIndex answers what fstab resolution asks of the disk; names are
// the appliance's (/dev/sda1, /dev/VG/LV).
type diskIndex interface {
	byTag(tag, value string) (string, bool) // UUID, LABEL, PARTUUID
	isPartition(dev string) bool
	lvByMapperName(name string) (string, bool) // "/dev/mapper/vg-lv"
	wholeDevices() []string
}

var (
	reXdev     = regexp.MustCompile(`^/dev/(h|s|v|xv)d([a-z]+)(\d*)$`)
	reDiskByID = regexp.MustCompile(`^/dev/disk/by-id/.*-part(\d+)$`)
)

// checkFstab is libguestfs's check_fstab: the entries of /etc/fstab that
// resolve to a device of this disk, in file order. libguestfs ignores
// PARTUUID= entries; we resolve them (the comparison test lists it).
func checkFstab(f files, root, osType string, disk diskIndex) []fstabEntry {
	data, ok := f.augeasFile("/etc/fstab")
	if !ok {
		return nil
	}
	bsd := osType == "freebsd" || osType == "netbsd" || osType == "openbsd"
	var out []fstabEntry
	for _, line := range strings.Split(string(data), "\n") {
		e, ok := fstabLine(line, root, bsd, disk)
		if ok {
			out = append(out, e)
		}
	}
	return out
}

func fstabLine(line, root string, bsd bool, disk diskIndex) (fstabEntry, bool) {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	fields := strings.Fields(line)
	if len(fields) < 3 {
		return fstabEntry{}, false
	}
	spec, mp, vfstype := fields[0], canonicalPath(fields[1]), fields[2]
	if ignoredSpec(spec) || ignoredMountpoint(mp) || strings.Contains(vfstype, ",") {
		return fstabEntry{}, false
	}
	var dev string
	switch {
	case strings.HasPrefix(spec, "UUID="):
		dev, _ = disk.byTag("UUID", shellUnquote(spec[5:]))
	case strings.HasPrefix(spec, "LABEL="):
		dev, _ = disk.byTag("LABEL", shellUnquote(spec[6:]))
	case strings.HasPrefix(spec, "PARTUUID="):
		dev, _ = disk.byTag("PARTUUID", strings.ToLower(shellUnquote(spec[9:])))
	case spec == "/dev/root" || bsd && mp == "/":
		dev = root
	case strings.HasPrefix(spec, "/dev/"):
		dev = resolveDevice(spec, disk)
	}
	if dev == "" {
		return fstabEntry{}, false
	}
	if vfstype == "btrfs" && !strings.HasPrefix(dev, "btrfsvol:") && len(fields) >= 4 {
		for _, opt := range strings.Split(fields[3], ",") {
			if k, v, ok := strings.Cut(opt, "="); ok && k == "subvol" {
				dev = "btrfsvol:" + dev + "/" + v
				break
			}
		}
	}
	return fstabEntry{mountable: dev, path: mp}, true
}

func ignoredSpec(spec string) bool {
	digitAt7 := len(spec) >= 8 && spec[7] >= '0' && spec[7] <= '9'
	return strings.HasPrefix(spec, "/dev/fd") && digitAt7 || strings.HasPrefix(spec, "/dev/cd") && digitAt7 ||
		spec == "/dev/floppy" || spec == "/dev/cdrom" || strings.HasPrefix(spec, "/dev/iso9660/")
}

func ignoredMountpoint(mp string) bool {
	for _, p := range []string{"/dev", "/proc", "/selinux", "/sys"} {
		if mp == p || strings.HasPrefix(mp, p+"/") {
			return true
		}
	}
	return strings.HasPrefix(mp, "/media/")
}

// canonicalPath is unix_canonical_path: no empty components.
func canonicalPath(p string) string {
	var parts []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			parts = append(parts, c)
		}
	}
	s := strings.Join(parts, "/")
	if strings.HasPrefix(p, "/") {
		return "/" + s
	}
	return s
}

// resolveDevice is resolve_fstab_device for the Linux device schemes:
// /dev/mapper names of LVs, /dev/[hsv]dX and /dev/xvdX by drive order,
// /dev/disk/by-id/...-partN on a one-disk guest. Anything else stays as
// written (and will not mount).
func resolveDevice(spec string, disk diskIndex) string {
	switch {
	case strings.HasPrefix(spec, "/dev/mapper"):
		if lv, ok := disk.lvByMapperName(spec); ok {
			return lv
		}
	case reXdev.MatchString(spec):
		m := reXdev.FindStringSubmatch(spec)
		devs := disk.wholeDevices()
		if i := driveIndex(m[2]); i >= 0 && i < len(devs) {
			if dev := devs[i] + m[3]; disk.isPartition(dev) {
				return dev
			}
		}
	case reDiskByID.MatchString(spec):
		m := reDiskByID.FindStringSubmatch(spec)
		if devs := disk.wholeDevices(); len(devs) == 1 {
			if n, err := strconv.Atoi(m[1]); err == nil {
				if dev := devs[0] + strconv.Itoa(n); disk.isPartition(dev) {
					return dev
				}
			}
		}
	}
	return spec
}

// driveIndex: "a" is 0, "z" 25, "aa" 26.
func driveIndex(s string) int {
	n := 0
	for i, c := range s {
		if c < 'a' || c > 'z' || i > 4 {
			return -1
		}
		n = n*26 + int(c-'a') + 1
	}
	return n - 1
}
