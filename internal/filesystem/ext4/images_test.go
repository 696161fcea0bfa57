package ext4

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/layout"
	"guestkit.io/batch/internal/prereq"
)

// TestImages reads every ext filesystem of the test images (each disk
// converted to raw, each partition, or the whole disk when it has no
// table) and compares it with e2fsprogs on the same bytes: Probe with
// blkid -p, every directory's entries (inode, mode, owner, size) with
// debugfs ls -p, and every file's bytes and link target with debugfs
// rdump.
func TestImages(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the test images, qemu-img and e2fsprogs")
	}
	dir := os.Getenv("GUESTKIT_TEST_IMAGES")
	manifest, err := os.Open(filepath.Join(dir, "MANIFEST"))
	if dir == "" || err != nil {
		prereq.Missing(t, "no test images: run `make test`, or set GUESTKIT_TEST_IMAGES")
	}
	defer manifest.Close()
	for _, tool := range []string{"qemu-img", "debugfs", "blkid"} {
		if _, err := exec.LookPath(tool); err != nil {
			prereq.Missing(t, "%s not found", tool)
		}
	}
	checked := 0
	for sc := bufio.NewScanner(manifest); sc.Scan(); {
		f := strings.Split(sc.Text(), "\t")
		if strings.HasPrefix(sc.Text(), "#") || len(f) < 4 || f[3] != "ok" {
			continue
		}
		name, file, format := f[0], f[1], f[2]
		t.Run(name, func(t *testing.T) {
			raw := filepath.Join(dir, file)
			if format != "raw" {
				raw = filepath.Join(t.TempDir(), "disk.raw")
				runCmd(t, "qemu-img", "convert", "-f", format, "-O", "raw", filepath.Join(dir, file), raw)
			}
			disk := openDevice(t, raw)
			_, parts, err := layout.Partitions(disk, disk.Size())
			if err == layout.ErrNoTable {
				parts = []layout.Partition{{Number: 0, Start: 0, Size: disk.Size()}}
			} else if err != nil {
				t.Fatal(err)
			}
			for _, p := range parts {
				dev, err := block.Section(disk, p.Start, p.Size)
				if err != nil {
					t.Fatal(err)
				}
				want := blkidInfo(t, raw, p.Start)
				isExt := strings.HasPrefix(want.Type, "ext")
				if !isExt {
					want = filesystem.Info{}
				}
				got, ok := Probe(dev)
				if got != want || ok != isExt {
					t.Errorf("partition %d: Probe %+v %v, blkid -p %+v", p.Number, got, ok, want)
				}
				if !ok {
					continue
				}
				t.Run(fmt.Sprint(p.Number), func(t *testing.T) {
					compareDebugfs(t, dev, fmt.Sprintf("%s?offset=%d", raw, p.Start))
				})
				checked++
			}
		})
	}
	if checked < 4 {
		t.Errorf("compared %d ext filesystems, want the Debian, Alpine, multi-OS and LVM /boot ones at least", checked)
	}
}

// compareDebugfs walks the volume on dev and compares it with debugfs on
// spec (a file name, with ?offset= for a partition).
func compareDebugfs(t *testing.T, dev block.Device, spec string) {
	f, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	got := walkVolume(t, f, func(string) bool { return false })

	// Every directory's listing, in one debugfs run.
	dirs := []string{"."}
	for p, e := range got {
		if e.mode.IsDir() {
			dirs = append(dirs, p)
		}
	}
	cmds := filepath.Join(t.TempDir(), "cmds")
	var sb strings.Builder
	for _, d := range dirs {
		fmt.Fprintf(&sb, "ls -p \"/%s\"\n", strings.TrimPrefix(d, "."))
	}
	if err := os.WriteFile(cmds, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runCmd(t, "debugfs", "-f", cmds, spec)
	listed := map[string]bool{}
	cur := ""
	for _, line := range strings.Split(out, "\n") {
		if c, ok := strings.CutPrefix(line, "debugfs: ls -p "); ok {
			cur = strings.Trim(strings.Trim(c, `"`), "/")
			if cur == "" {
				cur = "."
			}
			continue
		}
		fld := strings.Split(line, "/")
		// (lost+found's empty slots are listed with inode 0)
		if len(fld) != 8 || fld[1] == "0" || fld[5] == "." || fld[5] == ".." {
			continue
		}
		p := path.Join(cur, fld[5])
		mode, _ := strconv.ParseUint(fld[2], 8, 32)
		uid, _ := strconv.ParseUint(fld[3], 10, 32)
		gid, _ := strconv.ParseUint(fld[4], 10, 32)
		e, ok := got[p]
		if !ok {
			t.Errorf("%s: listed by debugfs, not by the Volume", p)
			continue
		}
		listed[p] = true
		if e.mode != guest.UnixMode(uint32(mode)) || e.uid != uint32(uid) || e.gid != uint32(gid) {
			t.Errorf("%s: %v %d:%d; debugfs %s", p, e.mode, e.uid, e.gid, line)
		}
		if !e.mode.IsDir() && strconv.FormatInt(e.size, 10) != fld[6] && (e.mode.IsRegular() || e.mode&fs.ModeSymlink != 0) {
			t.Errorf("%s: size %d; debugfs %s", p, e.size, line)
		}
	}
	for p := range got {
		if !listed[p] {
			t.Errorf("%s: not listed by debugfs", p)
		}
	}

	// Contents and link targets, from rdump.
	outDir := t.TempDir()
	runCmd(t, "debugfs", "-R", "rdump / "+outDir, spec)
	host := walkHost(t, outDir)
	files, links := 0, 0
	for p, e := range got {
		h, ok := host[p]
		switch {
		case e.mode.IsRegular():
			files++
			if !ok || h.sum != e.sum || h.size != e.size {
				t.Errorf("%s: %v; rdump %v", p, e, h)
			}
		case e.mode&fs.ModeSymlink != 0:
			links++
			if !ok || h.target != e.target {
				t.Errorf("%s: link to %q; rdump %q", p, e.target, h.target)
			}
		}
	}
	t.Logf("%d entries, %d files, %d symbolic links agree", len(got), files, links)
	if files == 0 {
		t.Errorf("no files")
	}
}
