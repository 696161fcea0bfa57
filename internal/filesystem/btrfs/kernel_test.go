package btrfs

import (
	"archive/tar"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// kernelScript builds, in the libguestfs appliance, a btrfs laid out as
// Fedora and openSUSE do: "root" and "home" subvolumes, "root" the
// default, a subvolume nested in root and a snapshot of root (in which the
// nested subvolume is an empty stand-in directory). Files are written by
// the kernel with zstd, zlib and lzo compression, then partly
// overwritten, so that extents are shared and windowed; home has a
// 3000-entry directory, inline files, a sparse and a preallocated file.
// Both views (the default subvolume and the top level) are read back with
// tar-out, the subvolumes with btrfs-subvolume-list.
const kernelScript = `
run
mkfs btrfs /dev/sda label:kernel-btrfs
mount /dev/sda /
btrfs-subvolume-create /root
btrfs-subvolume-create /home
mkdir-p /root/var/lib
btrfs-subvolume-create /root/var/lib/machines
write /root/var/lib/machines/inside "nested subvolume\n"
mkdir /top-only
write /top-only/file "top level only\n"
umount /
mount-options compress-force=zstd,subvol=root /dev/sda /
copy-in SRC/zstd /
pwrite /zstd/text "OVERWRITTEN" 300000
umount /
mount-options compress-force=zlib,subvol=root /dev/sda /
copy-in SRC/zlib /
pwrite /zlib/text "OVERWRITTEN" 300000
umount /
mount-options compress-force=lzo,subvol=root /dev/sda /
copy-in SRC/lzo /
pwrite /lzo/text "OVERWRITTEN" 300000
umount /
mount-options subvol=root /dev/sda /
mkdir-p /etc
write /etc/hostname "kernel-btrfs\n"
write /etc/fstab "LABEL=kernel-btrfs / btrfs subvol=root 0 0\nLABEL=kernel-btrfs /home btrfs subvol=home 0 0\n"
ln-s ../etc/hostname /etc/relative-link
ln-s /etc/hostname /absolute-link
ln /etc/hostname /hardlink
mkfifo 0600 /fifo
mknod-c 0666 1 3 /null
chown 1000 100 /etc/fstab
chmod 04750 /etc/fstab
umount /
mount-options subvol=home /dev/sda /
copy-in SRC/many /
mkdir /user
chown 1000 1000 /user
write /user/small "inline\n"
touch /user/sparse
truncate-size /user/sparse 10000000
pwrite /user/sparse "data in the middle" 5000000
fallocate64 /user/prealloc 1000000
pwrite /user/prealloc "head" 0
umount /
mount-options subvolid=5 /dev/sda /
btrfs-subvolume-snapshot /root /snap
btrfs-subvolume-set-default 256 /
umount /
mount /dev/sda /
echo ===default
btrfs-subvolume-get-default /
echo ===list
btrfs-subvolume-list /
tar-out / OUT/default.tar numericowner:true
umount /
mount-options subvolid=5 /dev/sda /
echo ===toplist
btrfs-subvolume-list /
tar-out / OUT/top.tar numericowner:true
umount /
`

// kernelSource writes the local trees the script copies in.
func kernelSource(t *testing.T, dir string) {
	t.Helper()
	text := []byte(strings.Repeat("all work and no play makes jack a dull boy\n", 25000))
	random := make([]byte, 300000)
	rand.Read(random)
	files := map[string][]byte{
		"text":   text,                  // compressible, over several 128 KiB extents
		"odd":    text[:1000001],        // not a multiple of the sector
		"random": random,                // incompressible: stored plain
		"tiny":   []byte("tiny file\n"), // inline
		"inline": text[:1800],           // inline, compressed
		"3000":   text[:3000],           // one compressed sector
	}
	for _, alg := range []string{"zstd", "zlib", "lzo"} {
		for name, data := range files {
			p := filepath.Join(dir, alg, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 0; i < 3000; i++ {
		p := filepath.Join(dir, "many", fmt.Sprintf("entry-%05d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strconv.Itoa(i*i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// buildKernelImage runs kernelScript and returns the image, the outputs
// directory and guestfish's standard output.
func buildKernelImage(t *testing.T) (img, out, stdout string) {
	t.Helper()
	needTools(t, "guestfish", "blkid")
	dir := t.TempDir()
	src, out := filepath.Join(dir, "src"), filepath.Join(dir, "out")
	kernelSource(t, src)
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	img = filepath.Join(dir, "kernel.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 512<<20); err != nil {
		t.Fatal(err)
	}
	script := strings.NewReplacer("SRC/", src+"/", "OUT/", out+"/").Replace(kernelScript)
	cmd := exec.Command("guestfish", "--rw", "--format=raw", "-a", img)
	cmd.Stdin = strings.NewReader(script)
	cmd.Env = append(os.Environ(), "LIBGUESTFS_BACKEND=direct")
	if _, ok := os.LookupEnv("LIBGUESTFS_BACKEND_SETTINGS"); !ok {
		cmd.Env = append(cmd.Env, "LIBGUESTFS_BACKEND_SETTINGS=force_tcg")
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	o, err := cmd.Output()
	if err != nil {
		t.Fatalf("guestfish: %v\n%s", err, stderr.String())
	}
	return img, out, string(o)
}

// readTar reads what tar-out wrote as entries.
func readTar(t *testing.T, name string) map[string]entry {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]entry{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		if p == "" || h.Name == "./" {
			p = "."
		}
		e := entry{mode: h.FileInfo().Mode(), uid: uint32(h.Uid), gid: uint32(h.Gid)}
		switch h.Typeflag {
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			e.size, e.sum = int64(len(data)), sum(data)
		case tar.TypeLink:
			target, ok := out[strings.TrimPrefix(h.Linkname, "./")]
			if !ok {
				t.Fatalf("tar: hard link %s to %s, not seen", h.Name, h.Linkname)
			}
			e = target
		case tar.TypeSymlink:
			e.size, e.link = int64(len(h.Linkname)), h.Linkname
		}
		out[p] = e
	}
	return out
}

var subvolRe = regexp.MustCompile(`btrfssubvolume_id: (\d+)\s+btrfssubvolume_top_level_id: (\d+)\s+btrfssubvolume_path: (\S+)`)

// TestKernelWritten reads a filesystem the Linux kernel wrote (in the
// libguestfs appliance) and compares it with the kernel's own view, read
// back by tar-out: the default subvolume, the top level with every
// subvolume under it, the subvolume list and default, and Probe with
// blkid. It also checks that the image has what it is meant to test:
// extents compressed with each algorithm, compressed inline extents,
// windows into compressed extents, preallocated extents.
func TestKernelWritten(t *testing.T) {
	img, out, stdout := buildKernelImage(t)
	dev := openImage(t, img)
	checkProbe(t, dev, img)
	f, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}

	def, err := f.Default()
	if err != nil {
		t.Fatal(err)
	}
	wantDef := strings.TrimSpace(between(stdout, "===default", "===list"))
	if strconv.FormatUint(def, 10) != wantDef {
		t.Errorf("Default() = %d; btrfs-subvolume-get-default says %q", def, wantDef)
	}
	subs, err := f.Subvolumes()
	if err != nil {
		t.Fatal(err)
	}
	// With the top level mounted, btrfs subvolume list shows the paths
	// from there; with the default subvolume mounted, the paths of
	// subvolumes under it are relative to it (what libguestfs inspection
	// then sees).
	var prefix string
	for _, s := range subs {
		if s.ID == def {
			prefix = s.Path + "/"
		}
	}
	var top, rel []string
	for _, s := range subs {
		top = append(top, fmt.Sprintf("%d %d %s", s.ID, s.Parent, s.Path))
		rel = append(rel, fmt.Sprintf("%d %d %s", s.ID, s.Parent, strings.TrimPrefix(s.Path, prefix)))
	}
	for _, c := range []struct {
		name     string
		got      []string
		from, to string
	}{{"top level", top, "===toplist", "\x00"}, {"default", rel, "===list", "===toplist"}} {
		var want []string
		for _, m := range subvolRe.FindAllStringSubmatch(between(stdout, c.from, c.to), -1) {
			want = append(want, m[1]+" "+m[2]+" "+m[3])
		}
		if strings.Join(c.got, "\n") != strings.Join(want, "\n") || len(want) != 4 {
			t.Errorf("Subvolumes:\n%s\nbtrfs-subvolume-list with the %s mounted:\n%s", strings.Join(c.got, "\n"), c.name, strings.Join(want, "\n"))
		}
	}

	for _, tc := range []struct {
		name string
		id   uint64
		tar  string
	}{{"default", def, "default.tar"}, {"top", 5, "top.tar"}} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := f.Volume(tc.id)
			if err != nil {
				t.Fatal(err)
			}
			compareTrees(t, walkVolume(t, v), readTar(t, filepath.Join(out, tc.tar)))
		})
	}

	stats := extentStats(t, f, subs)
	for _, what := range []string{"regular zlib", "regular lzo", "regular zstd", "inline zlib", "inline lzo", "inline zstd",
		"windowed compressed", "prealloc none", "regular none", "inline none"} {
		if stats[what] == 0 {
			t.Errorf("the image has no %s extent: %v", what, stats)
		}
	}
}

func between(s, from, to string) string {
	_, s, _ = strings.Cut(s, from)
	s, _, _ = strings.Cut(s, to)
	return s
}

// extentStats counts the kinds of file extents in every file tree.
func extentStats(t *testing.T, f *FS, subs []Subvolume) map[string]int {
	t.Helper()
	stats := map[string]int{}
	names := []string{"none", "zlib", "lzo", "zstd"}
	ids := []uint64{5}
	for _, s := range subs {
		ids = append(ids, s.ID)
	}
	for _, id := range ids {
		r, err := f.root(id)
		if err != nil {
			t.Fatal(err)
		}
		err = f.walk(r.tree, key{}, func(k key, b []byte) (bool, error) {
			if k.typ != typeExtentData || len(b) < extentHeaderSize {
				return true, nil
			}
			kind := map[uint8]string{extentInline: "inline", extentRegular: "regular", extentPrealloc: "prealloc"}[b[20]]
			stats[kind+" "+names[b[16]%4]]++
			if len(b) >= extentRegularSize {
				e, _ := parseExtent(b, id, k.obj, k.off, &node{}, 0)
				if e.comp != compNone && e.offset != 0 {
					stats["windowed compressed"]++
				}
				if e.typ == extentRegular && e.disk == 0 {
					stats["hole"]++
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return stats
}
