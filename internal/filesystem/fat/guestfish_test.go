package fat

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/prereq"
)

// TestAgainstAppliance compares a full walk of FAT12, FAT16 and FAT32
// images with what the libguestfs appliance's kernel shows of them
// (tar-out of the mounted volume): names, modes, owners, mtimes and
// bytes, a read-only file included. The direct backend is compared with
// the appliance, so the appliance is the ground truth here.
func TestAgainstAppliance(t *testing.T) {
	needTools(t, "guestfish", "mattrib")
	dir := t.TempDir()
	var imgs []string
	script := &strings.Builder{}
	for _, c := range []struct {
		bits        int
		size, label string
	}{{12, "8M", "A"}, {16, "40M", "B"}, {32, "64M", "C"}} {
		fx := makeFixture(t, c.bits, c.size, c.label)
		runTool(t, "mattrib", "-i", fx.img, "+r", "::/readme.txt")
		runTool(t, "mattrib", "-i", fx.img, "+r", "::/EFI/debian")
		imgs = append(imgs, fx.img)
		fmt.Fprintf(script, "add %s readonly:true format:raw\n", fx.img)
	}
	script.WriteString("run\n")
	for i := range imgs {
		fmt.Fprintf(script, "mount-ro /dev/sd%c /\ntar-out / %s numericowner:true\numount /\n", 'a'+i, filepath.Join(dir, fmt.Sprintf("%d.tar", i)))
	}
	cmd := exec.Command("guestfish")
	cmd.Stdin = strings.NewReader(script.String())
	cmd.Env = append(os.Environ(), "LIBGUESTFS_BACKEND=direct")
	if os.Getenv("LIBGUESTFS_BACKEND_SETTINGS") == "" {
		cmd.Env = append(cmd.Env, "LIBGUESTFS_BACKEND_SETTINGS=force_tcg")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		prereq.Missing(t, "guestfish: %v\n%s", err, out)
	}
	for i, img := range imgs {
		f, err := Open(openDev(t, img))
		if err != nil {
			t.Fatal(err)
		}
		want := tarTree(t, filepath.Join(dir, fmt.Sprintf("%d.tar", i)))
		got := walk(t, f)
		if fi, err := f.Lstat("."); err == nil {
			got["."] = walked{mode: fi.Mode(), size: -1, mtime: fi.ModTime().Unix()}
		}
		for name, w := range want {
			g, ok := got[name]
			if !ok {
				t.Errorf("FAT%d %s: missing", f.bits, name)
				continue
			}
			fi, _ := f.Lstat(name)
			if g.mode != w.mode || g.owner != w.owner || fi.ModTime().Unix() != w.mtime || !bytes.Equal(g.data, w.data) {
				t.Errorf("FAT%d %s: %v %+v mtime %d %d bytes; the appliance: %v %+v mtime %d %d bytes",
					f.bits, name, g.mode, g.owner, fi.ModTime().Unix(), len(g.data), w.mode, w.owner, w.mtime, len(w.data))
			}
		}
		for name := range got {
			if _, ok := want[name]; !ok {
				t.Errorf("FAT%d %s: not shown by the appliance", f.bits, name)
			}
		}
	}
}

// tarTree reads guestfish's tar-out.
func tarTree(t *testing.T, name string) map[string]walked {
	t.Helper()
	fd, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	out := map[string]walked{}
	tr := tar.NewReader(fd)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		w := walked{owner: guest.Owner{UID: uint32(h.Uid), GID: uint32(h.Gid)}, mtime: h.ModTime.Unix()}
		switch h.Typeflag {
		case tar.TypeDir:
			w.mode = fs.ModeDir | fs.FileMode(h.Mode)&fs.ModePerm
		case tar.TypeReg:
			w.mode = fs.FileMode(h.Mode) & fs.ModePerm
			if w.data, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: tar type %c on FAT", h.Name, h.Typeflag)
		}
		out[path.Clean(h.Name)] = w
	}
}
