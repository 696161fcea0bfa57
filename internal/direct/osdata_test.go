package direct

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"testing"
	"testing/fstest"

	"guestkit.io/batch/internal/filesystem"
)

// mapVolume serves a MapFS as a filesystem.Volume (the Tree hands it
// resolved paths only).
type mapVolume struct{ m fstest.MapFS }

func (v mapVolume) Lstat(name string) (fs.FileInfo, error)     { return fs.Lstat(v.m, name) }
func (v mapVolume) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(v.m, name) }
func (v mapVolume) ReadLink(name string) (string, error)       { return fs.ReadLink(v.m, name) }
func (v mapVolume) Open(name string) (fs.File, error)          { return v.m.Open(name) }

func filesOf(t *testing.T, m fstest.MapFS) files {
	t.Helper()
	tree, errs := filesystem.NewTree([]filesystem.Mount{{Path: "/", Volume: mapVolume{m}}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return files{tree}
}

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s), Mode: 0o644} }
func link(s string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(s), Mode: fs.ModeSymlink | 0o777}
}

// fakeDisk is the disk fstab resolution asks about.
type fakeDisk struct {
	tags  map[string]string // "UUID=x" -> device
	parts map[string]bool
	lvs   map[string]string // dm name -> /dev/VG/LV
}

func (d fakeDisk) byTag(tag, v string) (string, bool) { dev, ok := d.tags[tag+"="+v]; return dev, ok }
func (d fakeDisk) isPartition(dev string) bool        { return d.parts[dev] }
func (d fakeDisk) lvByMapperName(n string) (string, bool) {
	lv, ok := d.lvs[n]
	return lv, ok
}
func (d fakeDisk) wholeDevices() []string { return []string{"/dev/sda"} }

var disk = fakeDisk{
	tags: map[string]string{
		"UUID=11111111-2222-3333-4444-555555555555": "/dev/sda2", "LABEL=fedora": "/dev/sda3",
		"PARTUUID=0c0ffee0-0000-4000-8000-000000000001": "/dev/sda1", "UUID=ABCD-1234": "/dev/sda1",
	},
	parts: map[string]bool{"/dev/sda1": true, "/dev/sda2": true, "/dev/sda3": true, "/dev/sda5": true},
	lvs:   map[string]string{"/dev/mapper/my--vg-root--lv": "/dev/my-vg/root-lv"},
}

func TestCheckFstab(t *testing.T) {
	f := filesOf(t, fstest.MapFS{"etc/fstab": file(`# comment
UUID="11111111-2222-3333-4444-555555555555" /  ext4 defaults 0 1
LABEL=fedora /home btrfs subvol=home,compress=zstd 0 0
PARTUUID=0C0FFEE0-0000-4000-8000-000000000001 /boot/efi vfat umask=0077 0 2
/dev/vda5 //srv//data/ xfs defaults 0 0
/dev/mapper/my--vg-root--lv /var ext4 defaults 0 0
/dev/disk/by-id/virtio-abc-part3 /opt btrfs defaults 0 0
/dev/disk/by-uuid/99 /mnt ext4 defaults 0 0
UUID=00000000-0000-0000-0000-000000000000 /lost ext4 defaults 0 0
tmpfs /tmp tmpfs defaults 0 0
proc /proc proc defaults 0 0
/dev/cdrom /media/cdrom iso9660 ro 0 0
/dev/sda2 /sys/x ext4 defaults 0 0
/dev/sda2 /two ext4,ext3 defaults 0 0
/dev/root / ext4 defaults 0 0
`)})
	got := checkFstab(f, "/dev/sda9", "linux", disk)
	want := []fstabEntry{
		{"/dev/sda2", "/"},
		{"btrfsvol:/dev/sda3/home", "/home"},
		{"/dev/sda1", "/boot/efi"}, // PARTUUID, which libguestfs 1.48 skips
		{"/dev/sda5", "/srv/data"},
		{"/dev/my-vg/root-lv", "/var"},
		{"/dev/sda3", "/opt"},            // by-id on a one-disk guest; btrfs without subvol= is the device
		{"/dev/disk/by-uuid/99", "/mnt"}, // kept as written; will not mount
		{"/dev/sda9", "/"},               // /dev/root is the root being inspected
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fstab\n got %v\nwant %v", got, want)
	}
}

func TestLinuxReleaseDetection(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  string // distro product major.minor pkgformat pkgmgmt osinfo
	}{
		{"debian minor from debian_version", fstest.MapFS{
			"etc/os-release":     file("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n"),
			"etc/debian_version": file("12.5\n"),
		}, "debian|12.5|12.5|deb|apt|debian12"},
		{"rocky from os-release", fstest.MapFS{
			"etc/os-release": file("NAME=\"Rocky Linux\"\nID=\"rocky\"\nVERSION_ID=\"9.4\"\nPRETTY_NAME=\"Rocky Linux 9.4 (Blue Onyx)\"\n"),
		}, "rocky|Rocky Linux 9.4 (Blue Onyx)|9.4|rpm|dnf|rocky9"},
		{"ubuntu", fstest.MapFS{
			"etc/os-release": file("ID=ubuntu\nVERSION_ID=\"22.04\"\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\n"),
		}, "ubuntu|Ubuntu 22.04.4 LTS|22.4|deb|apt|ubuntu22.04"},
		{"os-release a symlink to usr/lib", fstest.MapFS{
			"etc/os-release":     link("../usr/lib/os-release"),
			"usr/lib/os-release": file("ID=fedora\nVERSION_ID=40\nPRETTY_NAME=\"Fedora Linux 40 (Server Edition)\"\n"),
			"usr/bin/dnf":        file(""),
		}, "fedora|Fedora Linux 40 (Server Edition)|40.0|rpm|dnf|fedora40"},
		{"rhel from redhat-release", fstest.MapFS{
			"etc/redhat-release": file("Red Hat Enterprise Linux Server release 7.9 (Maipo)\n"),
		}, "rhel|Red Hat Enterprise Linux Server release 7.9 (Maipo)|7.9|rpm|yum|rhel7.9"},
		{"centos 7 osinfo", fstest.MapFS{
			"etc/centos-release": file("CentOS Linux release 7.9.2009 (Core)\n"),
		}, "centos|CentOS Linux release 7.9.2009 (Core)|7.9|rpm|yum|centos7.0"},
		{"alpine", fstest.MapFS{
			"etc/alpine-release": file("3.19.1\n"),
		}, "alpinelinux|3.19.1|3.19|apk|apk|alpinelinux3.19"},
		{"arch rolling", fstest.MapFS{
			"etc/os-release": file("NAME=\"Arch Linux\"\nPRETTY_NAME=\"Arch Linux\"\nID=arch\n"),
		}, "archlinux|Arch Linux|0.0|pacman|pacman|archlinux"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := fstest.MapFS{"etc/fstab": file(""), "bin": link("usr/bin"), "usr/bin/sh": file("#!")}
			for k, v := range tc.files {
				m[k] = v
			}
			r, d := checkFilesystem(filesOf(t, m), "/dev/sda1", disk)
			if r != roleRoot {
				t.Fatalf("role %v, want root", r)
			}
			got := fmt.Sprintf("%s|%s|%d.%d|%s|%s|%s", d.distro, d.productName, d.major, d.minor, d.pkgFormat, d.pkgManagement,
				osinfo(d.osType, d.distro, d.major, d.minor))
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestRoles(t *testing.T) {
	for name, tc := range map[string]struct {
		files fstest.MapFS
		want  role
	}{
		"/boot":            {fstest.MapFS{"grub2/grub.cfg": file("")}, roleOther},
		"root, usr-merged": {fstest.MapFS{"etc/hosts": file(""), "bin": link("usr/bin"), "usr/bin/ls": file("")}, roleRoot},
		"bin elsewhere":    {fstest.MapFS{"etc/hosts": file(""), "bin": link("/usr/bin")}, roleOther},
		"separate /usr":    {fstest.MapFS{"bin/ls": file(""), "local/x": file(""), "share/x": file(""), "src/x": file("")}, roleUsr},
		"/var":             {fstest.MapFS{"log/x": file(""), "run/x": file(""), "spool/x": file("")}, roleOther},
		"data":             {fstest.MapFS{"README": file("")}, roleOther},
	} {
		if r, _ := checkFilesystem(filesOf(t, tc.files), "/dev/sda1", disk); r != tc.want {
			t.Errorf("%s: role %v, want %v", name, r, tc.want)
		}
	}
}

func elfHeaderOf(class, data byte, typ, machine uint16) []byte {
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = class, data, 1
	order := binary.ByteOrder(binary.LittleEndian)
	if data == 2 {
		order = binary.BigEndian
	}
	order.PutUint16(h[16:], typ)
	order.PutUint16(h[18:], machine)
	return h
}

func TestElfArch(t *testing.T) {
	for _, tc := range []struct {
		h    []byte
		want string
	}{
		{elfHeaderOf(2, 1, 3, 62), "x86_64"},   // PIE
		{elfHeaderOf(2, 1, 2, 183), "aarch64"}, // EXEC
		{elfHeaderOf(1, 1, 2, 3), "i386"},
		{elfHeaderOf(2, 2, 2, 21), "ppc64"},
		{elfHeaderOf(2, 1, 2, 21), "ppc64le"},
		{elfHeaderOf(2, 2, 2, 22), "s390x"},
		{elfHeaderOf(2, 1, 3, 243), "riscv64"},
		{elfHeaderOf(2, 1, 4, 62), ""}, // a core file: file(1)'s description does not match
		{[]byte("#!/bin/sh\n"), ""},
		{elfHeaderOf(2, 1, 3, 62)[:10], ""},
	} {
		got, err := elfArch(tc.h)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("elfArch(% x...) = %q, %v; want %q", tc.h[:min(len(tc.h), 20)], got, err, tc.want)
		}
	}
}

func TestDebApplicationsFollowLibguestfs(t *testing.T) {
	f := filesOf(t, fstest.MapFS{"var/lib/dpkg/status": file(`Package: a
Status: install ok installed
Version: 1:2.3-4+b1
Architecture: amd64
Source: a-src (2.3-4)
Description: first line
 more
 .
 end

Package: gone
Status: deinstall ok config-files
Version: 1.0

Package: half
Status: install reinstreq half-installed
Version: 2.0

Package: badepoch
Status: install ok installed
Version: x:1.0

Package: last
Status: install ok installed
Version: 5
`)})
	apps, err := debApplications(f.fsys)
	if err != nil {
		t.Fatal(err)
	}
	// "half-installed" contains "installed", as libguestfs tests it; a bad
	// epoch drops the entry; the last entry has no blank line after it,
	// and libguestfs drops it too.
	if len(apps) != 2 || apps[0].Name != "a" || apps[0].Epoch != 1 || apps[0].Version != "2.3" || apps[0].Release != "4+b1" ||
		apps[0].SourcePackage != "a-src" || apps[0].Summary != "first line" || apps[0].Description != "more\n.\nend" ||
		apps[1].Name != "half" || apps[1].Version != "2.0" {
		t.Errorf("applications %+v", apps)
	}
}

func TestApkApplicationsFollowLibguestfs(t *testing.T) {
	f := filesOf(t, fstest.MapFS{"lib/apk/db/installed": file("C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:aarch64\nT:the musl c library\nU:https://musl.libc.org/\n\nP:busybox\nV:1:1.36.1-r15\nA:aarch64\n\nP:nolast\nV:1\n")})
	apps, err := apkApplications(f.fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 2 || apps[0].Name != "busybox" || apps[0].Epoch != 1 || apps[0].Release != "15" ||
		apps[1].Name != "musl" || apps[1].Version != "1.2.4" || apps[1].Release != "2" || apps[1].Description != "the musl c library" {
		t.Errorf("applications %+v", apps)
	}
}
