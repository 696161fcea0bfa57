package squashfs

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

// TestAgainstAppliance compares a full walk with what the libguestfs
// appliance's kernel shows of the same images (tar-out of the mounted
// volume): names, modes, owners, mtimes, bytes, link targets and device
// nodes. The direct backend is compared with the appliance, so the
// appliance is the ground truth here.
func TestAgainstAppliance(t *testing.T) {
	needTools(t)
	if _, err := exec.LookPath("guestfish"); err != nil {
		prereq.Missing(t, "guestfish not installed")
	}
	src := makeSource(t)
	dir := t.TempDir()
	comps := []string{"gzip", "zstd", "xz"}
	var imgs []string
	script := &strings.Builder{}
	for _, c := range comps {
		img := mksquashfs(t, src, "-comp", c)
		imgs = append(imgs, img)
		fmt.Fprintf(script, "add %s readonly:true format:raw\n", img)
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
		got["."] = node{mode: f.info(f.root, ".").Mode(), owner: guest.Owner{UID: f.root.uid, GID: f.root.gid}}
		for name, w := range want {
			g, ok := got[name]
			if !ok {
				t.Errorf("%s %s: missing", comps[i], name)
				continue
			}
			fi, _ := f.Lstat(name)
			if g.mode != w.mode || g.owner != w.owner || fi.ModTime().Unix() != w.size || !bytes.Equal(g.data, w.data) || g.target != w.target {
				t.Errorf("%s %s: %v %+v mtime %d %d bytes -> %q; the appliance: %v %+v mtime %d %d bytes -> %q",
					comps[i], name, g.mode, g.owner, fi.ModTime().Unix(), len(g.data), g.target, w.mode, w.owner, w.size, len(w.data), w.target)
			}
		}
		for name, g := range got {
			// GNU tar leaves sockets out.
			if _, ok := want[name]; !ok && g.mode.Type() != fs.ModeSocket {
				t.Errorf("%s %s: not shown by the appliance", comps[i], name)
			}
		}
	}
}

// tarTree reads guestfish's tar-out; node.size holds the mtime.
func tarTree(t *testing.T, name string) map[string]node {
	t.Helper()
	fd, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	out := map[string]node{}
	tr := tar.NewReader(fd)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		n := node{owner: guest.Owner{UID: uint32(h.Uid), GID: uint32(h.Gid)}, size: h.ModTime.Unix()}
		bits := map[byte]uint32{tar.TypeDir: 0o040000, tar.TypeReg: 0o100000, tar.TypeSymlink: 0o120000, tar.TypeChar: 0o020000, tar.TypeBlock: 0o060000, tar.TypeFifo: 0o010000}[h.Typeflag]
		if bits == 0 {
			t.Fatalf("%s: tar type %c", h.Name, h.Typeflag)
		}
		n.mode = guest.UnixMode(bits | uint32(h.Mode)&0o7777)
		switch h.Typeflag {
		case tar.TypeReg:
			if n.data, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			n.target = h.Linkname
		}
		out[path.Clean(h.Name)] = n
	}
}
