package ext4

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestJournalReplay writes transactions into the journal with debugfs
// (journal_write), leaving the filesystem needing recovery, and compares
// what the reader sees with the same image after e2fsck replayed the
// journal: a data block whose journalled copy starts with the journal
// magic (escaped), a block rewritten by a later transaction, a block
// revoked after it was journalled, and (without metadata_csum) an inode
// table block that changes a file's mode.
func TestJournalReplay(t *testing.T) {
	needTools(t, "mke2fs", "debugfs", "e2fsck", "dumpe2fs")
	for _, c := range []struct {
		name string
		mkfs []string
		open string // journal_open options
	}{
		{"ext4-csum-v3", []string{"-t", "ext4", "-b", "4096"}, "-c"},
		{"ext3-1k", []string{"-t", "ext3", "-b", "1024"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			rng := rand.New(rand.NewPCG(5, 6))
			random := func(n int) []byte {
				b := make([]byte, n)
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
				return b
			}
			if err := os.MkdirAll(src, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, data := range map[string][]byte{"tiny": []byte("tiny\n"), "medium": random(5000), "big": random(300 << 10)} {
				if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			img := filepath.Join(dir, "fs.img")
			runCmd(t, "mke2fs", append(append([]string{"-q", "-F", "-d", src}, c.mkfs...), img, "32M")...)
			clean, err := Open(openDevice(t, img))
			if err != nil {
				t.Fatal(err)
			}
			bs := int(clean.sb.blockSize)
			bmap := func(name string, l int) string {
				out := runCmd(t, "debugfs", "-R", fmt.Sprintf("bmap /%s %d", name, l), img)
				return strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
			}
			file := func(name string, data []byte) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			}
			escaped := random(bs)
			binary.BigEndian.PutUint32(escaped, journalMagic)
			first, second := random(2*bs), random(bs)
			cmds := []string{
				"jo " + c.open,
				"jw -b " + bmap("medium", 0) + " " + file("escaped", escaped),
				"jw -b " + bmap("big", 0) + "," + bmap("big", 1) + " " + file("first", first),
				"jw -r " + bmap("big", 1),
				"jw -b " + bmap("big", 0) + " " + file("second", second),
			}
			wantMode := "-rw-r--r--"
			if !strings.Contains(c.name, "csum") {
				// The inode table block of tiny with its mode made 0600
				// (no inode checksum to update).
				out := runCmd(t, "debugfs", "-R", "imap /tiny", img)
				m := regexp.MustCompile(`located at block (\d+), offset (0x[0-9a-f]+)`).FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("imap: %s", out)
				}
				blk, _ := strconv.ParseInt(m[1], 10, 64)
				off, _ := strconv.ParseInt(m[2], 0, 64)
				table := make([]byte, bs)
				if _, err := clean.dev.ReadAt(table, blk*int64(bs)); err != nil {
					t.Fatal(err)
				}
				binary.LittleEndian.PutUint16(table[off:], 0o100600)
				cmds = append(cmds, fmt.Sprintf("jw -b %d %s", blk, file("table", table)))
				wantMode = "-rw-------"
			}
			cmds = append(cmds, "jc")
			runCmd(t, "debugfs", "-w", "-f", file("cmds", []byte(strings.Join(cmds, "\n")+"\n")), img)
			if out := runCmd(t, "dumpe2fs", "-h", img); !strings.Contains(out, "needs_recovery") {
				t.Fatalf("no needs_recovery after journal_write:\n%s", out)
			}

			replayedImg := filepath.Join(dir, "replayed.img")
			data, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(replayedImg, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := runE2fsck(replayedImg); err != nil {
				t.Fatalf("e2fsck: %v\n%s", err, out)
			}
			f, err := Open(openDevice(t, img))
			if err != nil {
				t.Fatal(err)
			}
			if len(f.replay) == 0 {
				t.Fatal("nothing replayed")
			}
			replayed, err := Open(openDevice(t, replayedImg))
			if err != nil {
				t.Fatal(err)
			}
			all := func(string) bool { return false }
			compareWalks(t, walkVolume(t, f, all), walkVolume(t, replayed, all))

			// And the walk agrees with what was written, not only with e2fsck.
			read := func(name string, off, n int) []byte {
				h, err := f.Open(name)
				if err != nil {
					t.Fatal(err)
				}
				defer h.Close()
				b := make([]byte, n)
				if _, err := h.(io.ReaderAt).ReadAt(b, int64(off)); err != nil {
					t.Fatal(err)
				}
				return b
			}
			if got := read("medium", 0, bs); !bytes.Equal(got, escaped[:bs]) {
				t.Errorf("medium: block 0 is not its escaped journal copy")
			}
			if got := read("big", 0, bs); !bytes.Equal(got, second) {
				t.Errorf("big: block 0 is not its last journal copy")
			}
			cleanBig, _ := clean.Open("big")
			want := make([]byte, bs)
			if _, err := cleanBig.(io.ReaderAt).ReadAt(want, int64(bs)); err != nil {
				t.Fatal(err)
			}
			if got := read("big", bs, bs); !bytes.Equal(got, want) {
				t.Errorf("big: block 1 was replayed though revoked")
			}
			if fi, err := f.Lstat("tiny"); err != nil || fi.Mode().String() != wantMode {
				t.Errorf("tiny: %v, %v; want %s", fi.Mode(), err, wantMode)
			}
		})
	}
}

// runE2fsck replays the journal and checks the filesystem; exit status 1
// means it changed something (the replay), which is expected.
func runE2fsck(img string) ([]byte, error) {
	out, err := exec.Command("e2fsck", "-fy", img).CombinedOutput()
	if ee, ok := err.(interface{ ExitCode() int }); ok && ee.ExitCode() == 1 {
		err = nil
	}
	return out, err
}
