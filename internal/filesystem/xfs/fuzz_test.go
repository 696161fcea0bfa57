package xfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"guestkit.io/batch/internal/filesystem"
)

// The fuzz input is a sparse image of fuzzDevSize bytes: a sequence of
// 1 KiB blocks, each preceded by its block number (uint32, big-endian);
// every other block reads as zeroes. The seed is a small mkfs.xfs image
// with 1 KiB blocks, its log left out (the reader never reads it).
const (
	fuzzBlock   = 1024
	fuzzDevSize = 16 << 20
)

var seedFiles = map[string]string{"v5": "testdata/seed-v5.sparse", "v4": "testdata/seed-v4.sparse"}

type sparseDev map[int64][]byte

func (d sparseDev) Size() int64 { return fuzzDevSize }

func (d sparseDev) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= fuzzDevSize {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < fuzzDevSize {
		blk, in := off/fuzzBlock, off%fuzzBlock
		c := min(int64(len(p)-n), fuzzBlock-in, fuzzDevSize-off)
		if b, ok := d[blk]; ok {
			copy(p[n:n+int(c)], b[in:])
		} else {
			clear(p[n : n+int(c)])
		}
		n += int(c)
		off += c
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func parseSparse(data []byte) sparseDev {
	d := sparseDev{}
	for len(data) >= 4+fuzzBlock {
		blk := int64(binary.BigEndian.Uint32(data))
		d[blk%(fuzzDevSize/fuzzBlock)] = bytes.Clone(data[4 : 4+fuzzBlock])
		data = data[4+fuzzBlock:]
	}
	return d
}

// setCRC stores the XFS checksum of b at off.
func setCRC(b []byte, off int) {
	clear(b[off : off+4])
	binary.LittleEndian.PutUint32(b[off:], crc32.Checksum(b, castagnoli))
}

// fixChecksums recomputes the CRCs of v5 metadata after a mutation, as
// the seed's geometry lays it out (1 KiB blocks, 512-byte sectors and
// inodes, 4 KiB directory blocks), so that the fuzzer reaches the parsers
// behind the checks and not only the checks.
func fixChecksums(d sparseDev) {
	be := binary.BigEndian
	for blk, b := range d {
		switch be.Uint32(b) {
		case sbMagic:
			if blk == 0 && be.Uint16(b[100:])&0xf == 5 {
				setCRC(b[:512], 224)
			}
		case 0x424d4133: // BMA3
			setCRC(b, 64)
		case 0x58534c4d: // XSLM
			setCRC(b, 12)
		case 0x58444233, 0x58444433: // XDB3, XDD3
			var dirblk [4 * fuzzBlock]byte
			for i := range int64(4) {
				if p, ok := d[blk+i]; ok {
					copy(dirblk[i*fuzzBlock:], p)
				}
			}
			setCRC(dirblk[:], 4)
			for i := range int64(4) {
				if blk+i < fuzzDevSize/fuzzBlock {
					d[blk+i] = dirblk[i*fuzzBlock : (i+1)*fuzzBlock]
				}
			}
		}
		for off := 0; off < fuzzBlock; off += 512 {
			if be.Uint16(b[off:]) == inodeMagic && b[off+4] == 3 {
				setCRC(b[off:off+512], 100)
			}
		}
	}
}

// FuzzXFS opens a mutated image, walks it and reads every file. The
// input picks a seed image and patches it: 8-byte records of an offset
// into the seed's bytes and 4 bytes to write there, so that inputs stay
// small (the fuzzer minimises every new one) while the images are whole
// filesystems. fix recomputes the v5 checksums after patching, so that
// the fuzzer reaches the parsers behind the checks.
func FuzzXFS(f *testing.F) {
	var bases [][]byte
	for _, v := range []string{"v5", "v4"} {
		seed, err := os.ReadFile(seedFiles[v])
		if err != nil {
			f.Fatal(err)
		}
		bases = append(bases, seed)
	}
	for i := range bases {
		f.Add(uint8(i), true, []byte{})
	}
	f.Fuzz(func(t *testing.T, which uint8, fix bool, patches []byte) {
		base := bases[int(which)%len(bases)]
		img := bytes.Clone(base)
		for ; len(patches) >= 8; patches = patches[8:] {
			off := int(binary.BigEndian.Uint32(patches) % uint32(len(img)-3))
			copy(img[off:off+4], patches[4:8])
		}
		dev := parseSparse(img)
		if fix {
			fixChecksums(dev)
		}
		fuzzOne(dev)
	})
}

func fuzzOne(dev sparseDev) {
	Probe(dev)
	v, err := Open(dev)
	if err != nil {
		return
	}
	budget := 3000
	var dir func(p string, depth int)
	dir = func(p string, depth int) {
		ents, err := v.ReadDir(p)
		if err != nil || depth > 6 {
			return
		}
		for _, e := range ents {
			if budget--; budget < 0 {
				return
			}
			cp := path.Join(p, e.Name())
			fi, err := v.Lstat(cp)
			if err != nil {
				continue
			}
			e.Info()
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				v.ReadLink(cp)
			case fi.Mode().IsRegular():
				fh, err := v.Open(cp)
				if err != nil {
					continue
				}
				io.CopyN(io.Discard, fh, 256<<10)
				buf := make([]byte, 5000)
				fh.(io.ReaderAt).ReadAt(buf, fi.Size()/2-7)
				fh.(io.ReaderAt).ReadAt(buf, fi.Size()-3)
			case e.IsDir():
				dir(cp, depth+1)
			}
		}
	}
	dir(".", 0)
}

// TestWriteFuzzSeed rebuilds the seeds: XFS_WRITE_SEED=1 go test -run WriteFuzzSeed.
// v5: a small tree of every file type and the short-form, block and leaf
// directory forms; v4: a btree directory as well (256-byte inodes hold
// fewer extents, so fewer entries make one).
func TestWriteFuzzSeed(t *testing.T) {
	if os.Getenv("XFS_WRITE_SEED") == "" {
		t.Skip("set XFS_WRITE_SEED=1 to rebuild the fuzz seeds")
	}
	for version, name := range seedFiles {
		writeSeed(t, version, name)
	}
}

func seedTree(version string) map[string]*protoNode {
	tree := map[string]*protoNode{
		"etc":         {kind: 'd', perm: 0o755},
		"etc/passwd":  {kind: '-', perm: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\n")},
		"etc/big":     {kind: '-', perm: 0o640, uid: 7, gid: 8, data: bytes.Repeat([]byte("0123456789abcde\n"), 300)},
		"bin":         {kind: 'l', perm: 0o777, target: "usr/bin"},
		"dev":         {kind: 'd', perm: 0o755},
		"dev/null":    {kind: 'c', perm: 0o666, major: 1, minor: 3},
		"blockdir":    {kind: 'd', perm: 0o755},
		"leafdir":     {kind: 'd', perm: 0o755},
		"usr":         {kind: 'd', perm: 0o755},
		"usr/bin":     {kind: 'd', perm: 0o755},
		"usr/bin/su":  {kind: '-', perm: 0o4755, data: []byte("#!/bin/sh\n")},
		"usr/bin/sgd": {kind: '-', perm: 0o2755, data: []byte("#!/bin/sh\n")},
	}
	for i := range 10 {
		tree[fmt.Sprintf("blockdir/%s-%02d", strings.Repeat("e", 40), i)] = &protoNode{kind: '-', perm: 0o644, data: []byte{byte(i)}}
	}
	for i := range 24 {
		tree[fmt.Sprintf("leafdir/%s-%03d", strings.Repeat("n", 200), i)] = &protoNode{kind: 'l', perm: 0o777, target: "t"}
	}
	if version == "v4" {
		// v4 remote symlinks are valid (mkfs.xfs 6.1 writes v5 ones without
		// their header). Zero-filled files: their blocks interleave with
		// the directory's (a btree fork) but stay out of the sparse seed.
		tree["long"] = &protoNode{kind: 'l', perm: 0o777, target: strings.Repeat("x/", 300)}
		tree["btreedir"] = &protoNode{kind: 'd', perm: 0o755}
		for i := range 170 {
			tree[fmt.Sprintf("btreedir/%s-%03d", strings.Repeat("b", 250), i)] = &protoNode{kind: '-', perm: 0o644, data: make([]byte, fuzzBlock)}
		}
	}
	return tree
}

func writeSeed(t *testing.T, version, name string) {
	dir := t.TempDir()
	proto := writeProto(t, dir, seedTree(version))
	img := filepath.Join(dir, "img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, fuzzDevSize); err != nil {
		t.Fatal(err)
	}
	args := []string{"-q", "-p", proto, "-b", "size=1024", "-d", "agcount=1", "-L", "fuzz"}
	if version == "v4" {
		args = append(args, "-m", "crc=0", "-i", "size=256")
	}
	cmd := exec.Command("mkfs.xfs", append(args, img)...)
	// fstests' variables let mkfs.xfs make a filesystem below 300 MB.
	cmd.Env = append(os.Environ(), "TEST_DIR=/tmp", "TEST_DEV=/dev/null", "QA_CHECK_FS=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	v := mustOpen(t, openDev(t, img))
	if n, err := v.resolve("btreedir"); version == "v4" && (err != nil || n.format != fmtBtree) {
		t.Fatalf("btreedir: %+v, %v", n, err)
	}
	be := binary.BigEndian
	logStart, logBlocks := be.Uint64(raw[48:]), uint64(be.Uint32(raw[96:]))
	var out bytes.Buffer
	zero := make([]byte, fuzzBlock)
	for blk := uint64(0); blk < fuzzDevSize/fuzzBlock; blk++ {
		b := raw[blk*fuzzBlock : (blk+1)*fuzzBlock]
		if (blk >= logStart && blk < logStart+logBlocks) || bytes.Equal(b, zero) {
			continue
		}
		binary.Write(&out, be, uint32(blk))
		out.Write(b)
	}
	// The seed must read back as the same tree.
	want := walk(t, v)
	compare(t, walk(t, mustOpen(t, parseSparse(out.Bytes()))), want)
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes", name, out.Len())
}

func mustOpen(t *testing.T, d interface {
	io.ReaderAt
	Size() int64
}) *FS {
	t.Helper()
	v, err := Open(d)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFuzzSeeds checks that the seeds still open and walk as the trees
// they were made from, so that the fuzzer starts from valid filesystems,
// and that fixChecksums leaves valid checksums as they are.
func TestFuzzSeeds(t *testing.T) {
	for version, name := range seedFiles {
		seed, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		d := parseSparse(seed)
		fixChecksums(d)
		if !bytes.Equal(flatten(d), flatten(parseSparse(seed))) {
			t.Errorf("%s: fixChecksums changed a valid image", version)
		}
		compare(t, walk(t, mustOpen(t, d)), protoFacts(seedTree(version)))
		if info, ok := Probe(d); !ok || info.Label != "fuzz" {
			t.Errorf("Probe(%s) = %+v, %v", version, info, ok)
		}
	}
}

func flatten(d sparseDev) []byte {
	var b bytes.Buffer
	for blk := range int64(fuzzDevSize / fuzzBlock) {
		if p, ok := d[blk]; ok && !bytes.Equal(p, make([]byte, fuzzBlock)) {
			fmt.Fprint(&b, blk)
			b.Write(p)
		}
	}
	return b.Bytes()
}

// TestFeaturesAndDamage patches the v5 seed's superblock: incompat
// features it does not implement are ErrUnsupported by name, a bad
// checksum is ErrCorrupt, and so is a broken geometry; Probe agrees with
// blkid on each.
func TestFeaturesAndDamage(t *testing.T) {
	seed, err := os.ReadFile(seedFiles["v5"])
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	for _, c := range []struct {
		name   string
		patch  func(sb []byte)
		fix    bool
		target error
		words  string
	}{
		{"needsrepair", func(sb []byte) { be.PutUint32(sb[216:], be.Uint32(sb[216:])|incompatNeedsRepair) }, true, filesystem.ErrUnsupported, "needsrepair"},
		{"metadir+unknown", func(sb []byte) { be.PutUint32(sb[216:], be.Uint32(sb[216:])|incompatMetadir|1<<30) }, true, filesystem.ErrUnsupported, "metadir, unknown 0x40000000"},
		{"bad crc", func(sb []byte) { sb[300]++ }, false, filesystem.ErrCorrupt, "checksum"},
		{"root ino past the end", func(sb []byte) { be.PutUint64(sb[56:], 1<<40) }, true, filesystem.ErrCorrupt, "outside the filesystem"},
		{"agblklog", func(sb []byte) { sb[124]++ }, true, filesystem.ErrCorrupt, "agblklog"},
		{"dblocks", func(sb []byte) { be.PutUint64(sb[8:], 1<<40) }, true, filesystem.ErrCorrupt, "blocks in"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := parseSparse(seed)
			c.patch(d[0])
			if c.fix {
				fixChecksums(d)
			}
			_, err := Open(d)
			if !errors.Is(err, c.target) || !strings.Contains(err.Error(), c.words) {
				t.Errorf("Open = %v; want %v naming %q", err, c.target, c.words)
			}
			// Probe accepts what blkid accepts.
			img := filepath.Join(t.TempDir(), "img")
			if err := os.WriteFile(img, d[0], 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(img, fuzzDevSize); err != nil {
				t.Fatal(err)
			}
			out, _ := exec.Command("blkid", "-p", "-o", "value", "-s", "TYPE", img).Output()
			if _, ok := Probe(d); ok != (strings.TrimSpace(string(out)) == "xfs") {
				t.Errorf("Probe = %v, blkid says %q", ok, out)
			}
		})
	}
}
