package runner_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/inspect/inspecttest"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/testenv"
)

// TestFallback builds disks that hold what the direct reader does not
// read, beside a Debian root it does, and runs the whole runner on each
// with every backend:
//   - auto tries direct, which stops at the unreadable device, and hands
//     the disk to the appliance; the result says so and why, and its report
//     is the appliance's own;
//   - direct is rejected with backend_unsupported, naming the device;
//   - appliance reads the disk with no fallback recorded.
//
// The disks:
//   - luks: MBR; Debian on p1, a LUKS2 volume (cryptsetup, label "vault")
//     on p2;
//   - ntfs: MBR; Debian on p1, an NTFS volume labelled DATA on p2, which
//     the guest's fstab mounts at /data by LABEL=;
//   - thin: MBR; p1 a PV of VG gkthin, whose thin pool holds the thin LV
//     root with Debian on it (made in the appliance, the only place with
//     device-mapper here).
func TestFallback(t *testing.T) {
	fbNeedTools(t, "sfdisk", "mke2fs", "cryptsetup", "mkntfs", "guestfish", "truncate", "dd", "cp")
	for _, tc := range []struct {
		name     string
		build    func(*testing.T) string
		fallback string // what the fallback and the direct error say
		root     string
		mounts   map[string]string
		check    func(*testing.T, *inspect.Report)
	}{
		{"luks", fbBuildLUKS, "/dev/sda2 holds crypto_LUKS", "/dev/sda1", map[string]string{"/": "/dev/sda1"},
			func(t *testing.T, rep *inspect.Report) {
				fs := fbStorageFS(t, rep, "/dev/sda2")
				if fs.Type != "crypto_LUKS" || fs.UUID != fbLUKSUUID {
					t.Errorf("/dev/sda2 = %+v, want crypto_LUKS with UUID %s", fs, fbLUKSUUID)
				}
			}},
		{"ntfs", fbBuildNTFS, "/dev/sda2 holds ntfs", "/dev/sda1", map[string]string{"/": "/dev/sda1", "/data": "/dev/sda2"},
			func(t *testing.T, rep *inspect.Report) {
				fs := fbStorageFS(t, rep, "/dev/sda2")
				if fs.Type != "ntfs" || fs.Label != "DATA" {
					t.Errorf("/dev/sda2 = %+v, want ntfs labelled DATA", fs)
				}
			}},
		{"thin", fbBuildThin, "logical volume /dev/gkthin/root: thin volume", "/dev/gkthin/root", map[string]string{"/": "/dev/gkthin/root"},
			func(t *testing.T, rep *inspect.Report) {
				if rep.Storage.LVM == nil {
					t.Fatal("no LVM in the storage section")
				}
				var lvs []string
				for _, lv := range rep.Storage.LVM.LVs {
					lvs = append(lvs, lv.VG+"/"+lv.Name)
				}
				if !strings.Contains(" "+strings.Join(lvs, " ")+" ", " gkthin/root ") {
					t.Errorf("LVs %v, want gkthin/root among them", lvs)
				}
				fs := fbStorageFS(t, rep, "/dev/gkthin/root")
				if fs.Type != "ext4" || fs.UUID != fbRootUUID {
					t.Errorf("/dev/gkthin/root = %+v, want ext4 with UUID %s", fs, fbRootUUID)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage{Name: "fallback-" + tc.name, Format: "raw", Path: tc.build(t)}

			direct := runnerExecute(t, img, 600, spec.BackendDirect)
			if direct.Status != result.StatusRejected || direct.ExitCode != result.ExitBadImage || direct.Error == nil ||
				direct.Error.Code != result.CodeBackendUnsupported || direct.Error.Phase != result.PhaseInspect {
				t.Errorf("direct: status %s exit %d, error %+v; want rejected, exit %d, backend_unsupported in the inspect phase",
					direct.Status, direct.ExitCode, direct.Error, result.ExitBadImage)
			} else if !strings.Contains(direct.Error.Message, tc.fallback) {
				t.Errorf("direct: error message %q does not say %q", direct.Error.Message, tc.fallback)
			}
			if direct.Backend == nil || direct.Backend.Requested != spec.BackendDirect || direct.Backend.Used == spec.BackendAppliance || direct.Backend.Fallback != "" {
				t.Errorf("direct: backend %+v: direct must never fall back", direct.Backend)
			}
			if direct.Accelerator != nil || len(direct.Data) != 0 && string(direct.Data) != "null" {
				t.Errorf("direct: accelerator %+v, data %.200s: nothing may come from an appliance or a partial read", direct.Accelerator, direct.Data)
			}

			auto := runnerExecute(t, img, 1200, spec.BackendAuto)
			if auto.Status != result.StatusCompleted || auto.ExitCode != result.ExitCompleted {
				t.Fatalf("auto: status %s exit %d, error %+v", auto.Status, auto.ExitCode, auto.Error)
			}
			if auto.Backend == nil || auto.Backend.Requested != spec.BackendAuto || auto.Backend.Used != spec.BackendAppliance {
				t.Errorf("auto: backend %+v, want requested auto, used appliance", auto.Backend)
			} else if !strings.Contains(auto.Backend.Fallback, tc.fallback) {
				t.Errorf("auto: fallback %q does not say %q", auto.Backend.Fallback, tc.fallback)
			}
			if auto.Accelerator == nil || auto.Accelerator.Used != "kvm" && auto.Accelerator.Used != "tcg" {
				t.Errorf("auto: accelerator %+v: the appliance's run is not recorded", auto.Accelerator)
			}
			if _, ok := auto.Timings["direct"]; !ok || auto.Timings["launch"] <= 0 {
				t.Errorf("auto: timings %v, want the direct attempt and the appliance's launch", auto.Timings)
			}
			t.Logf("direct: error %+v; auto: backend %+v, timings %v", direct.Error, auto.Backend, auto.Timings)
			rep := fbReport(t, auto)
			fbCheckDebian(t, rep, tc.root, tc.mounts)
			tc.check(t, rep)

			appliance := runnerExecute(t, img, 1200, spec.BackendAppliance)
			if appliance.Status != result.StatusCompleted || appliance.ExitCode != result.ExitCompleted {
				t.Fatalf("appliance: status %s exit %d, error %+v", appliance.Status, appliance.ExitCode, appliance.Error)
			}
			if appliance.Backend == nil || *appliance.Backend != (result.Backend{Requested: spec.BackendAppliance, Used: spec.BackendAppliance}) {
				t.Errorf("appliance: backend %+v, want requested and used appliance, no fallback", appliance.Backend)
			}
			if _, ok := appliance.Timings["direct"]; ok {
				t.Errorf("appliance: timings %v: the direct reader ran", appliance.Timings)
			}
			// auto's report is the appliance's, whole.
			diffs, err := inspecttest.Diff(appliance.Data, auto.Data, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range diffs {
				t.Errorf("auto differs from the appliance (appliance | auto): %s", p)
			}
		})
	}
}

const (
	fbTree     = "../profile/testdata/trees/debian-hardened"
	fbRootUUID = "4b1d0000-0000-4000-8000-0000000000f1"
	fbLUKSUUID = "4b1d0000-0000-4000-8000-0000000000f2"
)

func fbNeedTools(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds disks with host tools and launches the appliance")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unavailable(t, "%s not found: run `make test` (scripts/packages-test.txt)", tool)
		}
	}
}

func fbRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = libguestfsEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fbRootImage is an ext4 image of the Debian tree, with its modes and
// owners (MODES), a real ELF /usr/bin/bash for the architecture (which
// inspection reads the arch from), and the given fstab.
func fbRootImage(t *testing.T, fstab, size string, dirs ...string) string {
	t.Helper()
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "root")
	fbRun(t, "cp", "-a", filepath.Join(fbTree, "root"), dir)
	f, err := os.Open(filepath.Join(fbTree, "MODES"))
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
		os.Chown(p, uid, gid) // as root, as CI runs; owners are not what this test is about
		if err := os.Chmod(p, os.FileMode(mode&0o777)|fbSpecial(mode)); err != nil {
			t.Fatal(err)
		}
	}
	fbRun(t, "cp", "/bin/bash", filepath.Join(dir, "usr/bin/bash"))
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/fstab"), []byte(fstab), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(tmp, "root.img")
	fbRun(t, "mke2fs", "-q", "-t", "ext4", "-L", "root", "-U", fbRootUUID, "-d", dir, img, size)
	return img
}

func fbSpecial(m uint64) os.FileMode {
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

// fbDisk is a raw disk of the size with the sfdisk layout.
func fbDisk(t *testing.T, size, layout string) string {
	t.Helper()
	disk := filepath.Join(t.TempDir(), "disk.raw")
	fbRun(t, "truncate", "-s", size, disk)
	cmd := exec.Command("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", disk)
	cmd.Stdin = strings.NewReader(layout)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return disk
}

// fbPlace writes an image into the disk at a partition's start.
func fbPlace(t *testing.T, disk, img string, startSector int) {
	t.Helper()
	fbRun(t, "dd", "if="+img, "of="+disk, "bs=512", "seek="+strconv.Itoa(startSector), "conv=notrunc,sparse", "status=none")
}

// The two-partition disks: a 64 MiB root at sector 2048, a 32 MiB second
// partition right after it.
const fbP2Start = 2048 + 131072

var fbTwoParts = fmt.Sprintf("label: dos\nstart=2048, size=131072, type=83, bootable\nstart=%d, size=65536, type=83\n", fbP2Start)

func fbBuildLUKS(t *testing.T) string {
	root := fbRootImage(t, "UUID="+fbRootUUID+" / ext4 errors=remount-ro 0 1\n", "64M")
	dir := t.TempDir()
	key, p2 := filepath.Join(dir, "key"), filepath.Join(dir, "p2.img")
	if err := os.WriteFile(key, []byte("not a secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	fbRun(t, "truncate", "-s", "32M", p2)
	// pbkdf2 at its minimum: argon2 would take seconds and a GiB here.
	fbRun(t, "cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
		"--uuid", fbLUKSUUID, "--label", "vault", "--key-file", key, p2)
	disk := fbDisk(t, "128M", fbTwoParts)
	fbPlace(t, disk, root, 2048)
	fbPlace(t, disk, p2, fbP2Start)
	return disk
}

func fbBuildNTFS(t *testing.T) string {
	root := fbRootImage(t, "UUID="+fbRootUUID+" / ext4 errors=remount-ro 0 1\n"+
		"LABEL=DATA /data ntfs-3g defaults,nofail 0 0\n", "64M", "data")
	p2 := filepath.Join(t.TempDir(), "p2.img")
	fbRun(t, "truncate", "-s", "32M", p2)
	fbRun(t, "mkntfs", "-F", "-Q", "-L", "DATA", p2)
	disk := fbDisk(t, "128M", fbTwoParts)
	fbPlace(t, disk, root, 2048)
	fbPlace(t, disk, p2, fbP2Start)
	return disk
}

// fbBuildThin makes the thin pool in the appliance with lvm2 itself (one
// launch), and writes the root image into the thin LV through
// device-mapper.
//
// The LV's last 64 KiB chunk is written first, so that it takes the
// pool's first data chunk. Otherwise a fresh pool's data device holds the
// filesystem in order, from its start, and the appliance, which lists and
// reads the pool's own device (/dev/mapper/gkthin-pool, which dm-thin maps
// straight onto the data device), finds the root there a second time; a
// used pool does not look like that.
func fbBuildThin(t *testing.T) string {
	root := fbRootImage(t, "/dev/mapper/gkthin-root / ext4 errors=remount-ro 0 1\n", "48M")
	disk := fbDisk(t, "128M", "label: dos\nstart=2048, type=8e\n")
	const script = "set -e; exec 2>&1; lvm pvcreate -y /dev/sda1; lvm vgcreate gkthin /dev/sda1; " +
		"lvm lvcreate -y -L 64M -T gkthin/pool -V 48M -n root; " +
		"dd if=/dev/urandom of=/dev/mapper/gkthin-root bs=64k seek=767 count=1 status=none"
	fbRun(t, "guestfish", "--rw", "-a", disk, "--",
		"run",
		":", "debug", "sh", script,
		":", "upload", root, "/dev/gkthin/root",
		":", "sync")
	return disk
}

func fbReport(t *testing.T, res *result.Result) *inspect.Report {
	t.Helper()
	var rep inspect.Report
	if err := json.Unmarshal(res.Data, &rep); err != nil {
		t.Fatalf("result data: %v", err)
	}
	return &rep
}

// fbCheckDebian requires the one root, Debian 12 as the tree says, its
// mountpoints, and its files read: packages, users, hostname.
func fbCheckDebian(t *testing.T, rep *inspect.Report, root string, mounts map[string]string) {
	t.Helper()
	if len(rep.OperatingSystems) != 1 {
		var roots []string
		for _, o := range rep.OperatingSystems {
			roots = append(roots, o.Root)
		}
		t.Fatalf("roots %v, want one: %s", roots, root)
	}
	o := rep.OperatingSystems[0]
	if o.Root != root || o.Type != "linux" || o.Distro != "debian" || o.MajorVersion != 12 || o.Arch != "x86_64" ||
		o.Hostname != "hardened-debian" || o.PackageFormat != "deb" {
		t.Errorf("root %s: type %q distro %q version %d arch %q hostname %q package format %q; want %s, linux debian 12 x86_64 hardened-debian deb",
			o.Root, o.Type, o.Distro, o.MajorVersion, o.Arch, o.Hostname, o.PackageFormat, root)
	}
	got := map[string]string{}
	for _, m := range o.Mountpoints {
		got[m.Path] = m.Device
	}
	if fmt.Sprint(got) != fmt.Sprint(mounts) {
		t.Errorf("mountpoints %v, want %v", got, mounts)
	}
	// The tree's dpkg status lists 19 packages, openssh-server among them.
	names := map[string]bool{}
	for _, a := range o.Applications {
		names[a.Name] = true
	}
	if len(o.Applications) != 19 || !names["openssh-server"] {
		t.Errorf("%d applications (openssh-server %v), want the tree's 19", len(o.Applications), names["openssh-server"])
	}
	var rootUser bool
	for _, u := range o.Users {
		rootUser = rootUser || u.Name == "root" && u.UID == 0
	}
	if !rootUser {
		t.Errorf("users %+v: no root with uid 0", o.Users)
	}
	for _, p := range rep.Problems {
		t.Errorf("problem: %+v", p)
	}
}

// fbStorageFS is the storage section's filesystem on the device.
func fbStorageFS(t *testing.T, rep *inspect.Report, dev string) inspect.Filesystem {
	t.Helper()
	var all []string
	for _, fs := range rep.Storage.Filesystems {
		if fs.Device == dev {
			return fs
		}
		all = append(all, fs.Device+"="+fs.Type)
	}
	t.Errorf("no filesystem on %s in the storage section: %v", dev, all)
	return inspect.Filesystem{}
}
