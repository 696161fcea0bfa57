package runner_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/spec"
)

// A filesystem that breaks its own rules never gives a report presented as
// complete: --backend direct ends with image_corrupt (keeping what it read
// in data), and auto hands the disk to the appliance, which says what the
// kernel makes of it. Two corruptions of debian.raw's ext4 root: its
// superblock (found when the reader opens it) and /etc/passwd's inode
// (found only when the users section reads the file).
func TestCorruptFilesystem(t *testing.T) {
	var img testImage
	for _, i := range images(t) {
		if i.Name == "debian-raw" {
			img = i
		}
	}
	if img.Path == "" {
		t.Fatal("MANIFEST lists no debian-raw")
	}
	for _, tool := range []string{"debugfs", "dd", "cp"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
	}
	const part = 1 << 20 // debian.raw's partition 1 starts at sector 2048
	t.Run("superblock", func(t *testing.T) {
		disk := copyImage(t, img.Path)
		patch(t, disk, part+1024+120, []byte("X")) // the volume name, under metadata_csum
		res := execute(t, disk, spec.BackendDirect)
		wantCorrupt(t, res, "superblock")
	})
	t.Run("inode", func(t *testing.T) {
		disk := copyImage(t, img.Path)
		off := inodeOffset(t, disk, part, "/etc/passwd")
		patch(t, disk, off+4, []byte{0xff, 0xff, 0xff, 0x7f}) // i_size_lo, under the inode checksum
		res := execute(t, disk, spec.BackendDirect)
		wantCorrupt(t, res, "inode")
		var rep inspect.Report
		if err := json.Unmarshal(res.Data, &rep); err != nil || len(rep.OperatingSystems) != 1 || rep.OperatingSystems[0].Distro != "debian" {
			t.Errorf("what was read before the fault is not in data: %v %s", err, res.Data)
		}
		auto := execute(t, disk, spec.BackendAuto)
		if auto.Backend == nil || auto.Backend.Used != spec.BackendAppliance || !strings.Contains(auto.Backend.Fallback, "inode") {
			t.Fatalf("auto: backend %+v, want the appliance after the fault", auto.Backend)
		}
		if auto.Status != result.StatusCompleted {
			t.Errorf("auto: %s %+v", auto.Status, auto.Error)
		}
	})
}

func execute(t *testing.T, disk, backend string) *result.Result {
	t.Helper()
	img := testImage{Name: "corrupt", Path: disk, Format: "raw"}
	return runner.Execute(context.Background(), inspectJob(img, 900), nil, runner.Config{Version: "test", Backend: backend})
}

func wantCorrupt(t *testing.T, res *result.Result, what string) {
	t.Helper()
	if res.Status != result.StatusRejected || res.ExitCode != result.ExitBadImage || res.Error == nil ||
		res.Error.Code != result.CodeImageCorrupt || !strings.Contains(res.Error.Message, what) ||
		!strings.Contains(res.Error.Message, "/dev/sda1") {
		t.Errorf("status %s exit %d error %+v; want rejected, image_corrupt naming /dev/sda1 and the %s", res.Status, res.ExitCode, res.Error, what)
	}
}

func copyImage(t *testing.T, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "disk.raw")
	if out, err := exec.Command("cp", "--sparse=always", path, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	return dst
}

func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// inodeOffset asks debugfs where a file's inode is, in bytes from the
// start of the disk.
func inodeOffset(t *testing.T, disk string, part int64, file string) int64 {
	t.Helper()
	fsImg := filepath.Join(t.TempDir(), "part.img")
	if out, err := exec.Command("dd", "if="+disk, "of="+fsImg, "bs=1M", "skip="+strconv.FormatInt(part>>20, 10), "conv=sparse", "status=none").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v\n%s", err, out)
	}
	out, err := exec.Command("debugfs", "-R", "imap "+file, fsImg).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`located at block (\d+), offset 0x([0-9a-f]+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("debugfs imap: %s", out)
	}
	blk, _ := strconv.ParseInt(m[1], 10, 64)
	o, _ := strconv.ParseInt(m[2], 16, 64)
	return part + blk*4096 + o
}
