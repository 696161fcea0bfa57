package direct_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"guestkit.io/batch/internal/direct"
	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/inspect/inspecttest"
	"guestkit.io/batch/internal/libguestfs"
	"guestkit.io/batch/internal/prereq"
)

// The layouts the test images do not have, built here from the profile
// engine's Debian tree with the host's own tools (and one guestfish launch
// for what only a kernel makes: btrfs subvolumes and compressed extents),
// then inspected by both backends, which must agree field by field.
//
//   - gpt-btrfs-esp: GPT; a vfat EFI system partition at /boot/efi, an
//     ext4 /boot, and a btrfs filesystem whose "root" and "home"
//     subvolumes are / and /home (Fedora's layout), written with
//     compress=zstd; the fstab names btrfs by LABEL= and subvol=.
//   - mbr-logical: MBR with an extended partition; the root on a primary
//     partition, a squashfs /opt and swap on logical ones; the fstab names
//     them /dev/vda1, /dev/vda5 and /dev/vda6, as the VM saw them.

const debianTree = "../profile/testdata/trees/debian-hardened"

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds disks with host tools and launches the appliance")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			prereq.Missing(t, "%s not found: run `make test` (scripts/packages-test.txt)", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	// guestfish builds under TCG: nested KVM is broken on the test machines.
	cmd.Env = append(os.Environ(), "LIBGUESTFS_BACKEND=direct", "LIBGUESTFS_BACKEND_SETTINGS=force_tcg")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// guestTree copies the Debian tree with its modes and owners (MODES), and
// a real ELF /usr/bin/bash for the architecture.
func guestTree(t *testing.T, fstab string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "root")
	run(t, "cp", "-a", filepath.Join(debianTree, "root"), dir)
	f, err := os.Open(filepath.Join(debianTree, "MODES"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		fields := strings.Fields(sc.Text())
		if len(fields) != 4 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		p := filepath.Join(dir, fields[3])
		if strings.HasSuffix(fields[3], "/") {
			os.MkdirAll(p, 0o755)
		}
		mode, _ := strconv.ParseUint(fields[0], 8, 32)
		uid, _ := strconv.Atoi(fields[1])
		gid, _ := strconv.Atoi(fields[2])
		os.Chown(p, uid, gid) // as root, as CI runs; the owners are not what is compared
		if err := os.Chmod(p, os.FileMode(mode&0o777)|unixSpecial(mode)); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "cp", "/bin/bash", filepath.Join(dir, "usr/bin/bash"))
	if err := os.WriteFile(filepath.Join(dir, "etc/fstab"), []byte(fstab), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func unixSpecial(m uint64) os.FileMode {
	var out os.FileMode
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

// place writes a filesystem image into the disk at a partition's offset.
func place(t *testing.T, disk, img string, offsetSectors int64) {
	t.Helper()
	run(t, "dd", "if="+img, "of="+disk, "bs=512", "seek="+strconv.FormatInt(offsetSectors, 10), "conv=notrunc,sparse", "status=none")
}

func newDisk(t *testing.T, size, layout string) string {
	t.Helper()
	disk := filepath.Join(t.TempDir(), "disk.raw")
	run(t, "truncate", "-s", size, disk)
	cmd := exec.Command("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", disk)
	cmd.Stdin = strings.NewReader(layout)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return disk
}

func buildGPTBtrfsESP(t *testing.T) string {
	const bootUUID = "4b1d0000-0000-4000-8000-0000000000b0"
	fstab := "# Fedora-like layout\n" +
		"LABEL=fedora-root /          btrfs subvol=root,compress=zstd:1 0 0\n" +
		"UUID=" + bootUUID + " /boot ext4 defaults 1 2\n" +
		"UUID=1234-ABCD     /boot/efi  vfat  umask=0077,shortname=winnt 0 2\n" +
		"LABEL=fedora-root /home      btrfs subvol=home,compress=zstd:1 0 0\n"
	root := guestTree(t, fstab)
	// /boot's files go to their own partition, the mountpoint stays.
	boot := filepath.Join(t.TempDir(), "boot")
	run(t, "mv", filepath.Join(root, "boot"), boot)
	os.MkdirAll(filepath.Join(root, "boot"), 0o755)
	os.MkdirAll(filepath.Join(root, "home"), 0o755)
	os.MkdirAll(filepath.Join(boot, "efi"), 0o700)
	esp := filepath.Join(t.TempDir(), "esp")
	os.MkdirAll(filepath.Join(esp, "EFI/BOOT"), 0o755)
	os.MkdirAll(filepath.Join(esp, "EFI/debian"), 0o755)
	os.WriteFile(filepath.Join(esp, "EFI/BOOT/BOOTX64.EFI"), []byte("MZ not really a PE file"), 0o644)
	os.WriteFile(filepath.Join(esp, "EFI/debian/grub.cfg"), []byte("search.fs_uuid "+bootUUID+" root\n"), 0o644)

	disk := newDisk(t, "400M", "label: gpt\n"+
		"start=2048, size=65536, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"EFI System\"\n"+
		"start=67584, size=131072, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=boot\n"+
		"start=198656, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root\n")
	dir := t.TempDir()
	espImg, bootImg := filepath.Join(dir, "esp.img"), filepath.Join(dir, "boot.img")
	run(t, "mkfs.vfat", "-C", "-F", "16", "-n", "EFI", "-i", "1234ABCD", espImg, strconv.Itoa(65536/2))
	run(t, "mcopy", "-s", "-i", espImg, filepath.Join(esp, "EFI"), "::/")
	run(t, "mke2fs", "-q", "-t", "ext4", "-L", "boot", "-U", bootUUID, "-d", boot, bootImg, "64M")
	place(t, disk, espImg, 2048)
	place(t, disk, bootImg, 67584)

	tarball := filepath.Join(dir, "root.tar")
	run(t, "tar", "-C", root, "--numeric-owner", "-cf", tarball, ".")
	home := filepath.Join(dir, "home.tar")
	os.MkdirAll(filepath.Join(dir, "home/alice"), 0o750)
	os.WriteFile(filepath.Join(dir, "home/alice/.profile"), []byte("umask 027\n"), 0o640)
	run(t, "tar", "-C", filepath.Join(dir, "home"), "--numeric-owner", "-cf", home, ".")
	// The kernel makes the subvolumes and the zstd extents.
	run(t, "guestfish", "--rw", "-a", disk, "--",
		"run",
		":", "mkfs", "btrfs", "/dev/sda3", "label:fedora-root",
		":", "mount", "/dev/sda3", "/",
		":", "btrfs-subvolume-create", "/root",
		":", "btrfs-subvolume-create", "/home",
		":", "umount-all",
		":", "mount-options", "subvol=root,compress=zstd", "/dev/sda3", "/",
		":", "tar-in", tarball, "/",
		":", "umount-all",
		":", "mount-options", "subvol=home,compress=zstd", "/dev/sda3", "/",
		":", "tar-in", home, "/",
		":", "umount-all")
	return disk
}

func buildMBRLogical(t *testing.T) string {
	const rootUUID = "4b1d0000-0000-4000-8000-0000000000a1"
	fstab := "/dev/vda1 /    ext4     errors=remount-ro 0 1\n" +
		"/dev/vda5 /opt squashfs ro                0 0\n" +
		"/dev/vda6 none swap     sw                0 0\n"
	root := guestTree(t, fstab)
	os.MkdirAll(filepath.Join(root, "opt"), 0o755)
	dir := t.TempDir()
	opt := filepath.Join(dir, "opt")
	os.MkdirAll(filepath.Join(opt, "tool/bin"), 0o755)
	os.WriteFile(filepath.Join(opt, "tool/bin/run"), []byte("#!/bin/sh\necho tool\n"), 0o755)
	os.Symlink("/opt/tool/bin/run", filepath.Join(opt, "run-tool"))

	disk := newDisk(t, "256M", "label: dos\n"+
		"start=2048, size=327680, type=83, bootable\n"+
		"start=329728, type=5\n"+
		"start=331776, size=81920, type=83\n"+
		"start=415744, size=32768, type=82\n")
	rootImg, optImg, swapImg := filepath.Join(dir, "root.img"), filepath.Join(dir, "opt.sqfs"), filepath.Join(dir, "swap.img")
	run(t, "mke2fs", "-q", "-t", "ext4", "-L", "root", "-U", rootUUID, "-d", root, rootImg, "160M")
	run(t, "mksquashfs", opt, optImg, "-comp", "xz", "-noappend", "-quiet")
	run(t, "truncate", "-s", "16M", swapImg)
	run(t, "mkswap", "-L", "swap", "-U", "4b1d0000-0000-4000-8000-0000000000a6", swapImg)
	place(t, disk, rootImg, 2048)
	place(t, disk, optImg, 331776)
	place(t, disk, swapImg, 415744)
	return disk
}

func TestLayoutsMatchAppliance(t *testing.T) {
	needTools(t, "sfdisk", "mke2fs", "mkfs.vfat", "mcopy", "mksquashfs", "mkswap", "guestfish", "tar", "dd")
	for _, tc := range []struct {
		name  string
		build func(*testing.T) string
		check func(*testing.T, *inspect.Report)
	}{
		{"gpt-btrfs-esp", buildGPTBtrfsESP, func(t *testing.T, rep *inspect.Report) {
			wantMounts(t, rep, "btrfsvol:/dev/sda3/root", map[string]string{
				"/": "btrfsvol:/dev/sda3/root", "/boot": "/dev/sda2", "/boot/efi": "/dev/sda1", "/home": "btrfsvol:/dev/sda3/home"})
		}},
		{"mbr-logical", buildMBRLogical, func(t *testing.T, rep *inspect.Report) {
			wantMounts(t, rep, "/dev/sda1", map[string]string{"/": "/dev/sda1", "/opt": "/dev/sda5"})
			if n := len(rep.Storage.Partitions); n != 4 {
				t.Errorf("%d partitions, want 4 (two primary, two logical)", n)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := tc.build(t)
			appliance := inspectWithAppliance(t, disk)
			d := inspectDirect(t, disk)
			tc.check(t, d)
			a, _ := json.Marshal(appliance)
			b, _ := json.Marshal(d)
			diffs, err := inspecttest.Diff(a, b, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range diffs {
				t.Errorf("direct differs from the appliance (appliance | direct): %s", p)
			}
		})
	}
}

func wantMounts(t *testing.T, rep *inspect.Report, root string, want map[string]string) {
	t.Helper()
	if len(rep.OperatingSystems) != 1 || rep.OperatingSystems[0].Root != root {
		t.Fatalf("roots %+v, want one: %s", rep.OperatingSystems, root)
	}
	os := rep.OperatingSystems[0]
	got := map[string]string{}
	for _, m := range os.Mountpoints {
		got[m.Path] = m.Device
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("mountpoints %v, want %v", got, want)
	}
	if os.Distro != "debian" || os.Arch != "x86_64" || len(os.Applications) == 0 || len(os.Users) == 0 {
		t.Errorf("distro %q arch %q, %d applications, %d users: the files under the mounts were not read", os.Distro, os.Arch, len(os.Applications), len(os.Users))
	}
	for _, p := range rep.Problems {
		t.Errorf("problem: %+v", p)
	}
}

func inspectWithAppliance(t *testing.T, disk string) *inspect.Report {
	t.Helper()
	ctx := context.Background()
	s, err := libguestfs.Launch(ctx, libguestfs.Options{Image: disk, Format: "raw", Accel: "auto"})
	if err != nil {
		t.Fatalf("appliance: %v", err)
	}
	defer s.Close()
	rep, err := inspect.Run(ctx, s, inspect.Options{}, nil)
	if err != nil {
		t.Fatalf("appliance inspect: %v", err)
	}
	return rep
}

func inspectDirect(t *testing.T, disk string) *inspect.Report {
	t.Helper()
	ctx := context.Background()
	b, err := direct.OpenImage(ctx, disk, "raw", direct.Options{})
	if err != nil {
		t.Fatalf("direct: %v", err)
	}
	defer b.Close()
	rep, err := inspect.Run(ctx, b, inspect.Options{}, nil)
	if err != nil {
		t.Fatalf("direct inspect: %v", err)
	}
	if err := b.Fault(); err != nil {
		t.Errorf("direct fault: %v", err)
	}
	return rep
}
