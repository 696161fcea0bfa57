package btrfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"
	"testing"
)

// The fuzz input is a sparse image: the blocks a walk of a real image
// read, so that seeds stay small and mutations land in structures.
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
	for i := 0; i < n; i++ {
		blk := make([]byte, fuzzBlock)
		if len(data) > 0 {
			data = data[copy(blk, data):]
		}
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

// FuzzVolume opens mutated small images (mkfs.btrfs and kernel written,
// in testdata/fuzz/FuzzVolume) and walks them: nothing may panic or hang.
func FuzzVolume(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		d := decodeSparse(data)
		fixChecksums(d)
		exercise(d)
	})
}

// TestWriteFuzzSeed turns the image named by GUESTKIT_BTRFS_SEED_IMAGE
// into a FuzzVolume seed holding the blocks a walk reads. Run by hand when
// the seeds need renewing.
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
	seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", encodeSparse(d))
	name := filepath.Join("testdata", "fuzz", "FuzzVolume", filepath.Base(img))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(seed), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d blocks, %d bytes", name, len(d.blocks), len(seed))
}
