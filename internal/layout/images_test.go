package layout_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"guestkit.io/batch/internal/layout"
	"guestkit.io/batch/internal/prereq"
)

// sfdiskTable is what `sfdisk --json` prints.
type sfdiskTable struct {
	PartitionTable struct {
		Label      string `json:"label"`
		SectorSize int64  `json:"sectorsize"`
		Partitions []struct {
			Node  string `json:"node"`
			Start int64  `json:"start"`
			Size  int64  `json:"size"`
			Type  string `json:"type"`
			Name  string `json:"name"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

// TestPartitionsAgreeWithSfdisk reads the partition table of every test
// image that has an operating system, converted to raw, and compares it
// with util-linux's sfdisk on the same bytes: kind, numbers, offsets,
// sizes, types and GPT names.
func TestPartitionsAgreeWithSfdisk(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the test images and qemu-img")
	}
	dir := os.Getenv("GUESTKIT_TEST_IMAGES")
	manifest, err := os.Open(filepath.Join(dir, "MANIFEST"))
	if dir == "" || err != nil {
		prereq.Missing(t, "no test images: run `make test`, or set GUESTKIT_TEST_IMAGES")
	}
	defer manifest.Close()
	checked := 0
	for sc := bufio.NewScanner(manifest); sc.Scan(); {
		f := strings.Split(sc.Text(), "\t")
		if strings.HasPrefix(sc.Text(), "#") || len(f) < 4 || f[3] != "ok" {
			continue
		}
		name, file, format := f[0], f[1], f[2]
		t.Run(name, func(t *testing.T) {
			raw := filepath.Join(t.TempDir(), "disk.raw")
			if out, err := exec.Command("qemu-img", "convert", "-f", format, "-O", "raw", filepath.Join(dir, file), raw).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img convert: %v\n%s", err, out)
			}
			out, err := exec.Command("sfdisk", "--json", raw).Output()
			want := sfdiskTable{}
			if err == nil {
				if err := json.Unmarshal(out, &want); err != nil {
					t.Fatalf("sfdisk --json: %v\n%s", err, out)
				}
			}
			fd, err := os.Open(raw)
			if err != nil {
				t.Fatal(err)
			}
			defer fd.Close()
			st, err := fd.Stat()
			if err != nil {
				t.Fatal(err)
			}
			kind, parts, err := layout.Partitions(fd, st.Size())
			wt := want.PartitionTable
			if wt.Label == "" {
				if err != layout.ErrNoTable {
					t.Errorf("sfdisk finds no table; we find %q %+v, %v", kind, parts, err)
				}
				return
			}
			if err != nil || kind != map[string]string{"dos": "msdos", "gpt": "gpt"}[wt.Label] {
				t.Fatalf("table %q, %v; sfdisk: %s", kind, err, wt.Label)
			}
			if len(parts) != len(wt.Partitions) {
				t.Fatalf("%d partitions %+v; sfdisk %d %+v", len(parts), parts, len(wt.Partitions), wt.Partitions)
			}
			for i, p := range parts {
				w := wt.Partitions[i]
				wantType := strings.ToUpper(w.Type)
				if wt.Label == "dos" {
					wantType = "0x" + fmt.Sprintf("%02s", w.Type)
				}
				if got := fmt.Sprintf("%s%d", raw, p.Number); got != w.Node || p.Start != w.Start*wt.SectorSize ||
					p.Size != w.Size*wt.SectorSize || p.Type != wantType || p.Name != w.Name {
					t.Errorf("partition %d: %+v; sfdisk %+v", i, p, w)
				}
			}
			checked++
		})
	}
	if checked < 3 {
		t.Errorf("compared %d partitioned images, want the Debian, rpm, LVM and multi-OS ones at least", checked)
	}
}
