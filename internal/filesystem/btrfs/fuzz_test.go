package btrfs

import (
	"bytes"
	"encoding/binary"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"
	"testing"
)

// The fuzzed images are sparse: the blocks a walk of a real image read
// (testdata/images/*.sparse), in this encoding:
//
//	u32 device size in blocks, u16 n, n × u32 block numbers, n blocks
//
// Missing bytes read as zeroes.
const fuzzBlock = 4096

type sparseDevice struct {
	size   int64
	blocks map[int64][]byte
}

func (d *sparseDevice) Size() int64 { return d.size }

func (d *sparseDevice) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > d.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < d.size {
		b, o := off/fuzzBlock, off%fuzzBlock
		m := min(int64(len(p)-n), fuzzBlock-o, d.size-off)
		if blk, ok := d.blocks[b]; ok {
			copy(p[n:n+int(m)], blk[o:])
		} else {
			clear(p[n : n+int(m)])
		}
		n += int(m)
		off += m
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func decodeSparse(data []byte) *sparseDevice {
	d := &sparseDevice{blocks: map[int64][]byte{}}
	if len(data) < 6 {
		return d
	}
	le := binary.LittleEndian
	d.size = int64(le.Uint32(data)) * fuzzBlock
	n := int(le.Uint16(data[4:]))
	data = data[6:]
	if len(data) < 4*n {
		return d
	}
	idx := data[:4*n]
	data = data[4*n:]
	for i := 0; i < n && len(data) > 0; i++ {
		blk := make([]byte, fuzzBlock)
		data = data[copy(blk, data):]
		d.blocks[int64(le.Uint32(idx[4*i:]))] = blk
	}
	return d
}

func encodeSparse(d *sparseDevice) []byte {
	var idx []int64
	for b := range d.blocks {
		idx = append(idx, b)
	}
	sort.Slice(idx, func(i, j int) bool { return idx[i] < idx[j] })
	out := binary.LittleEndian.AppendUint32(nil, uint32(d.size/fuzzBlock))
	out = binary.LittleEndian.AppendUint16(out, uint16(len(idx)))
	for _, b := range idx {
		out = binary.LittleEndian.AppendUint32(out, uint32(b))
	}
	for _, b := range idx {
		out = append(out, d.blocks[b]...)
	}
	return out
}

// fixChecksums recomputes the superblock's checksum and that of every
// block that looks like a tree block, so that mutations reach the
// parsers behind the checksums.
func fixChecksums(d *sparseDevice) {
	sb, ok := d.blocks[superOffset/fuzzBlock]
	if !ok || string(sb[0x40:0x48]) != magic {
		return
	}
	typ := binary.LittleEndian.Uint16(sb[0xc4:])
	n := csumSize(typ)
	nodeSize := int(binary.LittleEndian.Uint32(sb[0x94:]))
	if n == 0 || nodeSize < fuzzBlock || nodeSize > 64<<10 || nodeSize%fuzzBlock != 0 {
		return
	}
	fsid := sb[0x20:0x30]
	if binary.LittleEndian.Uint64(sb[0xbc:])&incompatMetadataUUID != 0 {
		fsid = sb[0x23b:0x24b]
	}
	buf := make([]byte, nodeSize)
	for b, blk := range d.blocks {
		if b == superOffset/fuzzBlock || !bytes.Equal(blk[0x20:0x30], fsid) {
			continue
		}
		d.ReadAt(buf, b*fuzzBlock)
		copy(blk, checksum(typ, buf[32:])[:n])
	}
	copy(sb, checksum(typ, sb[32:superSize])[:n])
}

// recordingDevice notes the blocks read through it.
type recordingDevice struct {
	fileDevice
	mu   sync.Mutex
	seen map[int64]bool
}

func (r *recordingDevice) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	for b := off / fuzzBlock; b*fuzzBlock < off+int64(len(p)); b++ {
		r.seen[b] = true
	}
	r.mu.Unlock()
	return r.fileDevice.ReadAt(p, off)
}

// exercise does what the direct backend does with a filesystem, within a
// budget: Probe, Open, the subvolumes, and a walk of each with reads.
func exercise(dev interface {
	io.ReaderAt
	Size() int64
}) {
	Probe(dev)
	f, err := Open(dev)
	if err != nil {
		return
	}
	f.Default()
	subs, _ := f.Subvolumes()
	ids := []uint64{5}
	for i, s := range subs {
		if i < 8 {
			ids = append(ids, s.ID)
		}
	}
	budget := 600
	for _, id := range ids {
		v, err := f.Volume(id)
		if err != nil {
			continue
		}
		var walk func(dir string, depth int)
		walk = func(dir string, depth int) {
			ents, err := v.ReadDir(dir)
			if err != nil || depth > 20 {
				return
			}
			for _, e := range ents {
				if budget--; budget < 0 {
					return
				}
				p := path.Join(dir, e.Name())
				fi, err := v.Lstat(p)
				if err != nil {
					continue
				}
				e.Info()
				switch {
				case fi.IsDir():
					walk(p, depth+1)
				case fi.Mode()&fs.ModeSymlink != 0:
					v.ReadLink(p)
				case fi.Mode().IsRegular():
					fl, err := v.Open(p)
					if err != nil {
						continue
					}
					buf := make([]byte, 16<<10)
					fl.Read(buf)
					fl.(io.ReaderAt).ReadAt(buf[:4096], max(0, fi.Size()-4096))
					fl.Close()
				}
			}
		}
		walk(".", 0)
	}
}

// patch applies a fuzz input to a copy of one of the images: the first
// byte picks the image, then each 5 bytes set the byte at a (u32) offset
// into the image's blocks. Inputs stay small, so the fuzzer's own work
// (minimizing) stays cheap, and every change lands in a structure.
func patch(images []*sparseDevice, in []byte) *sparseDevice {
	if len(images) == 0 || len(in) == 0 {
		return &sparseDevice{blocks: map[int64][]byte{}}
	}
	base := images[int(in[0])%len(images)]
	d := &sparseDevice{size: base.size, blocks: map[int64][]byte{}}
	var idx []int64
	for b, blk := range base.blocks {
		d.blocks[b] = append([]byte(nil), blk...)
		idx = append(idx, b)
	}
	sort.Slice(idx, func(i, j int) bool { return idx[i] < idx[j] })
	total := len(idx) * fuzzBlock
	for in = in[1:]; len(in) >= 5 && total > 0; in = in[5:] {
		off := int(binary.LittleEndian.Uint32(in) % uint32(total))
		d.blocks[idx[off/fuzzBlock]][off%fuzzBlock] = in[4]
	}
	return d
}

func loadImages(tb testing.TB) []*sparseDevice {
	names, _ := filepath.Glob(filepath.Join("testdata", "images", "*.sparse"))
	sort.Strings(names)
	var out []*sparseDevice
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, decodeSparse(b))
	}
	if len(out) == 0 {
		tb.Fatal("no images in testdata/images")
	}
	return out
}

// FuzzVolume opens mutated small images (mkfs.btrfs and kernel written)
// and walks them: nothing may panic or hang.
func FuzzVolume(f *testing.F) {
	images := loadImages(f)
	for i := range images {
		f.Add([]byte{byte(i)})
		// A byte of the superblock's root pointer and one deep in a leaf.
		f.Add([]byte{byte(i), 0x50, 0, 0, 0, 0xff, 0x30, 0x10, 0, 0, 7})
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		d := patch(images, in)
		fixChecksums(d)
		exercise(d)
	})
}

// TestImagesWalk checks that the fuzz images still open and hold files.
func TestImagesWalk(t *testing.T) {
	for _, d := range loadImages(t) {
		f, err := Open(d)
		if err != nil {
			t.Fatal(err)
		}
		v, err := f.Volume(fsTreeObjectID)
		if err != nil {
			t.Fatal(err)
		}
		if ents, err := v.ReadDir("."); err != nil || len(ents) == 0 {
			t.Errorf("top level: %v, %v", ents, err)
		}
	}
}

// TestWriteFuzzSeed turns the image named by GUESTKIT_BTRFS_SEED_IMAGE
// into a FuzzVolume image holding the blocks a walk reads. Run by hand
// when the images need renewing (mkfs-4k: mkfs.btrfs -n 4096 --rootdir of
// a small tree; kernel-4k: the appliance, nodesize 4096, subvolumes and
// zstd, zlib and lzo files).
func TestWriteFuzzSeed(t *testing.T) {
	img := os.Getenv("GUESTKIT_BTRFS_SEED_IMAGE")
	if img == "" {
		t.Skip("GUESTKIT_BTRFS_SEED_IMAGE not set")
	}
	rec := &recordingDevice{fileDevice: openImage(t, img), seen: map[int64]bool{}}
	exercise(rec)
	d := &sparseDevice{size: rec.Size(), blocks: map[int64][]byte{}}
	for b := range rec.seen {
		blk := make([]byte, fuzzBlock)
		rec.fileDevice.ReadAt(blk, b*fuzzBlock)
		d.blocks[b] = blk
	}
	name := filepath.Join("testdata", "images", filepath.Base(img)+".sparse")
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, encodeSparse(d), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d blocks", name, len(d.blocks))
}
