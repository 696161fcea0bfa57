package xfs

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/layout"
	"guestkit.io/batch/internal/prereq"
)

// guestfish runs a guestfish script the way the project's image builder
// does (direct backend, TCG).
func guestfish(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("guestfish")
	cmd.Stdin = strings.NewReader(script)
	cmd.Env = append(os.Environ(), "LIBGUESTFS_BACKEND=direct")
	if os.Getenv("LIBGUESTFS_BACKEND_SETTINGS") == "" {
		cmd.Env = append(cmd.Env, "LIBGUESTFS_BACKEND_SETTINGS=force_tcg")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("guestfish: %v\n%s", err, out)
	}
}

// tarFacts reads what guestfish's tar-out wrote: the ground truth of a
// whole tree (names, modes, numeric owners, sizes, link targets, bytes).
func tarFacts(t *testing.T, name string) map[string]facts {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]facts{}
	tr := tar.NewReader(bufio.NewReader(f))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if p == "." {
			continue
		}
		perm := uint32(h.Mode) & 0o7777
		ft := facts{uid: uint32(h.Uid), gid: uint32(h.Gid), mtime: h.ModTime.Unix()}
		switch h.Typeflag {
		case tar.TypeReg:
			s := sha256.New()
			n, err := io.Copy(s, tr)
			if err != nil {
				t.Fatal(err)
			}
			ft.mode, ft.size, ft.sum = guest.UnixMode(sIFREG|perm), n, fmt.Sprintf("%x", s.Sum(nil))
		case tar.TypeLink:
			ft = want[path.Clean(strings.TrimPrefix(h.Linkname, "./"))]
			ft.mtime = h.ModTime.Unix()
		case tar.TypeDir:
			ft.mode = guest.UnixMode(sIFDIR | perm)
		case tar.TypeSymlink:
			ft.mode, ft.target, ft.size = guest.UnixMode(sIFLNK|perm), h.Linkname, int64(len(h.Linkname))
		case tar.TypeChar:
			ft.mode = guest.UnixMode(sIFCHR | perm)
		case tar.TypeBlock:
			ft.mode = guest.UnixMode(sIFBLK | perm)
		case tar.TypeFifo:
			ft.mode = guest.UnixMode(sIFIFO | perm)
		default:
			t.Fatalf("%s: tar type %c", p, h.Typeflag)
		}
		want[p] = ft
	}
	return want
}

// setupScript runs inside the appliance on the new filesystem: what
// mkfs.xfs -p cannot make (the kernel writes it all).
const setupScript = `set -e
cd /sysroot
# 3000 holes punched in a 6000-block file: a bmbt of two levels.
i=0; while [ $i -lt 3000 ]; do echo "fpunch $((i*2048+1024)) 1024"; i=$((i+1)); done > /tmp/cmds
xfs_io frag < /tmp/cmds
ln frag frag-hardlink
chown 1234:5678 frag; chmod 4711 frag
# sparse, and unwritten extents inside and past the size
xfs_io -f -c "truncate 100m" -c "pwrite -q -S 0x5a 50m 5000" -c "pwrite -q -S 0x61 99m 1k" sparse
xfs_io -f -c "falloc 0 1m" -c "pwrite -q -S 0x42 300k 10k" prealloc
xfs_io -f -c "falloc -k 0 1m" -c "pwrite -q -S 0x43 0 100" keepsize
# symlinks in the inode and in blocks (with the v5 header)
pad=0123456789; pad=$pad$pad$pad$pad$pad$pad$pad$pad$pad$pad
ln -s short link-short
ln -s /x/$pad$pad$pad$pad$pad/y link-remote
ln -s $pad$pad$pad$pad$pad$pad$pad$pad$pad$pad link-1000
mkdir tmp; chmod 1777 tmp
mkdir -m 2750 setgid-dir; chown 0:10 setgid-dir
# two directories growing in turn: their blocks interleave (btree dirs)
mkdir -p bd/a bd/b
i=0; while [ $i -lt 2500 ]; do : > bd/a/$pad$pad$i; : > bd/b/$pad$i; i=$((i+1)); done
mknod dev-null c 1 3; mknod fifo p
rm /tmp/cmds setup.sh
`

// TestKernelWrittenImage builds a filesystem in the libguestfs appliance
// with what only the kernel writes (a two-level bmbt, holes, unwritten
// extents, remote symlinks, btree directories, hard links) and compares
// the whole walk with guestfish's tar-out of it.
func TestKernelWrittenImage(t *testing.T) {
	needTools(t, "guestfish", "xfs_db", "blkid")
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 320<<20); err != nil {
		t.Fatal(err)
	}
	frag := make([]byte, 6000<<10)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < len(frag); i += 8 {
		binary.LittleEndian.PutUint64(frag[i:], rng.Uint64())
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"frag", frag}, {"setup.sh", []byte(setupScript)}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tarball := filepath.Join(dir, "tree.tar")
	guestfish(t, fmt.Sprintf(`add %s format:raw
run
mkfs xfs /dev/sda blocksize:1024 label:gk-frag
mount /dev/sda /
upload %s /frag
upload %s /setup.sh
debug sh "sh /sysroot/setup.sh"
tar-out / %s numericowner:true
umount-all
`, img, filepath.Join(dir, "frag"), filepath.Join(dir, "setup.sh"), tarball))

	dev := openDev(t, img)
	checkProbe(t, dev, blkid(t, img))
	v, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	want := tarFacts(t, tarball)
	if len(want) < 5000 {
		t.Fatalf("tar-out has %d files", len(want))
	}
	compare(t, walk(t, v), want)

	// The fixture covers what it is meant to.
	n, err := v.resolve("frag")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("xfs_db", "-r", "-c", fmt.Sprintf("inode %d", n.ino), "-c", "print core.format u3.bmbt.level core.nextents", img).CombinedOutput()
	if !strings.Contains(string(out), "(btree)") || !strings.Contains(string(out), "level = 2") {
		t.Errorf("frag is not a two-level btree file: xfs_db says %s", out)
	}
	for _, name := range []string{"bd/a", "bd/b"} {
		n, err := v.resolve(name)
		if err != nil || n.format != fmtBtree {
			t.Errorf("%s: format %v, %v; want a btree directory", name, n, err)
		}
	}
	for _, name := range []string{"prealloc", "keepsize"} {
		n, _ := v.resolve(name)
		exts, err := v.extents(n)
		unwritten := 0
		for _, e := range exts {
			if e.unwritten {
				unwritten++
			}
		}
		if err != nil || unwritten == 0 {
			t.Errorf("%s: no unwritten extents in %+v, %v", name, exts, err)
		}
	}
	if n, _ := v.resolve("link-remote"); n.format != fmtExtents {
		t.Errorf("link-remote is not a remote symlink (format %d)", n.format)
	}
}

// TestRPMImage reads the root filesystem of the rpm test image (GPT
// partition 1, XFS) and compares it with guestfish's tar-out of the same
// partition, and Probe with blkid.
func TestRPMImage(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the test images, qemu-img and guestfish")
	}
	images := os.Getenv("GUESTKIT_TEST_IMAGES")
	src := filepath.Join(images, "rpm.qcow2")
	if _, err := os.Stat(src); images == "" || err != nil {
		prereq.Missing(t, "no test images: run `make test`, or set GUESTKIT_TEST_IMAGES")
	}
	needTools(t, "qemu-img", "guestfish", "blkid")
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	if out, err := exec.Command("qemu-img", "convert", "-f", "qcow2", "-O", "raw", src, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	disk := openDev(t, raw)
	_, parts, err := layout.Partitions(disk, disk.Size())
	if err != nil || len(parts) == 0 {
		t.Fatalf("partitions: %v, %v", parts, err)
	}
	dev, err := block.Section(disk, parts[0].Start, parts[0].Size)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("blkid", "-p", "-o", "export", "--offset", fmt.Sprint(parts[0].Start), "--size", fmt.Sprint(parts[0].Size), raw).Output()
	if err != nil {
		t.Fatalf("blkid: %v", err)
	}
	bl := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			bl[k] = v
		}
	}
	if bl["LABEL"] != "rocky-root" {
		t.Errorf("blkid: %v", bl)
	}
	checkProbe(t, dev, bl)

	tarball := filepath.Join(dir, "tree.tar")
	guestfish(t, fmt.Sprintf("add %s format:raw readonly:true\nrun\nmount-ro /dev/sda1 /\ntar-out / %s numericowner:true\n", raw, tarball))
	v, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	want := tarFacts(t, tarball)
	if len(want) < 50 {
		t.Fatalf("tar-out has %d files", len(want))
	}
	compare(t, walk(t, v), want)
}
