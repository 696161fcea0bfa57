package ext4

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sort"

	"guestkit.io/batch/internal/filesystem"
)

// run is a stretch of a file's logical blocks: n blocks stored from block
// phys on, or zeroes (a hole or an unwritten extent) when phys is 0.
type run struct {
	phys, n uint64
}

// mapBlock finds the run of in's data that starts at logical block l.
func (f *FS) mapBlock(in *inode, l uint64) (run, error) {
	if in.flags&flagExtents != 0 {
		return f.mapExtent(in, l)
	}
	return f.mapIndirect(in, l)
}

const extentMagic = 0xF30A

// mapExtent descends the extent tree rooted in i_block: at most
// maxExtentDepth levels, each node's depth one less than its parent's, so
// it cannot loop.
func (f *FS) mapExtent(in *inode, l uint64) (run, error) {
	le := binary.LittleEndian
	node := in.iblock[:]
	nodeBlk := uint64(0)   // where node was read from, 0 for i_block
	end := uint64(1) << 32 // first logical block past what node covers
	if l >= end {
		return run{0, math.MaxUint64 - l}, nil
	}
	want := -1
	for {
		bad := func(format string, a ...any) error {
			where := "i_block"
			if nodeBlk != 0 {
				where = fmt.Sprintf("block %d", nodeBlk)
			}
			return fmt.Errorf("inode %d: extent node in %s: "+format+": %w", append([]any{in.ino, where}, append(a, filesystem.ErrCorrupt)...)...)
		}
		if le.Uint16(node[0:]) != extentMagic {
			return run{}, bad("bad magic")
		}
		entries := int(le.Uint16(node[2:]))
		max := int(le.Uint16(node[4:]))
		depth := int(le.Uint16(node[6:]))
		if 12+12*max > len(node) || entries > max {
			return run{}, bad("%d entries of at most %d", entries, max)
		}
		if want < 0 && depth > maxExtentDepth || want >= 0 && depth != want {
			return run{}, bad("depth %d", depth)
		}
		key := func(i int) uint64 { return uint64(le.Uint32(node[12+12*i:])) }
		i := sort.Search(entries, func(i int) bool { return key(i) > l }) - 1
		if i < 0 {
			if entries == 0 {
				return run{0, end - l}, nil
			}
			return run{0, key(0) - l}, nil
		}
		next := end
		if i+1 < entries {
			next = min(key(i+1), end)
		}
		if next <= l {
			return run{}, bad("entries out of order")
		}
		e := node[12+12*i:]
		if depth == 0 {
			start := key(i)
			n := uint64(le.Uint16(e[4:]))
			unwritten := n > 32768
			if unwritten {
				n -= 32768
			}
			phys := uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))
			if n == 0 {
				return run{}, bad("empty extent at logical block %d", start)
			}
			if l >= start+n {
				return run{0, next - l}, nil
			}
			if err := f.checkBlocks(phys, n, "extent of inode", uint64(in.ino)); err != nil {
				return run{}, err
			}
			if unwritten {
				return run{0, start + n - l}, nil
			}
			return run{phys + (l - start), start + n - l}, nil
		}
		child := uint64(le.Uint16(e[8:]))<<32 | uint64(le.Uint32(e[4:]))
		b := make([]byte, f.sb.blockSize)
		nodeBlk = child
		if err := f.readBlocks(b, child, "extent node of inode", uint64(in.ino)); err != nil {
			return run{}, err
		}
		node, end, want = b, next, depth-1
	}
}

// mapIndirect follows the ext2/ext3 block map: 12 direct pointers, then
// single, double and triple indirect blocks.
func (f *FS) mapIndirect(in *inode, l uint64) (run, error) {
	le := binary.LittleEndian
	p := uint64(f.sb.blockSize / 4)
	if l < 12 {
		return pointerRun(in.iblock[:48], l), nil
	}
	l -= 12
	var blk uint64
	levels := 0
	switch {
	case l < p:
		blk, levels = uint64(le.Uint32(in.iblock[48:])), 1
	case l-p < p*p:
		l -= p
		blk, levels = uint64(le.Uint32(in.iblock[52:])), 2
	case l-p-p*p < p*p*p:
		l -= p + p*p
		blk, levels = uint64(le.Uint32(in.iblock[56:])), 3
	default:
		return run{0, math.MaxUint64 - l}, nil
	}
	span := uint64(1) // logical blocks under one pointer at this level
	for range levels - 1 {
		span *= p
	}
	b := make([]byte, f.sb.blockSize)
	for ; ; span /= p {
		if blk == 0 {
			return run{0, span*p - l}, nil
		}
		if err := f.readBlocks(b, blk, "indirect block of inode", uint64(in.ino)); err != nil {
			return run{}, err
		}
		if span == 1 {
			return pointerRun(b, l), nil
		}
		blk = uint64(le.Uint32(b[4*(l/span):]))
		l %= span
	}
}

// pointerRun is the run that starts at pointer i of a block map: the
// pointers that follow it contiguously on disk, or the zero pointers.
func pointerRun(ptrs []byte, i uint64) run {
	le := binary.LittleEndian
	count := uint64(len(ptrs) / 4)
	first := uint64(le.Uint32(ptrs[4*i:]))
	n := uint64(1)
	for i+n < count {
		next := uint64(le.Uint32(ptrs[4*(i+n):]))
		if first == 0 && next != 0 || first != 0 && next != first+n {
			break
		}
		n++
	}
	return run{first, n}
}

// readData reads in's bytes at off into p, as ReadAt does: n < len(p) only
// with an error, io.EOF at the end of the file.
func (f *FS) readData(in *inode, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	size := int64(in.size)
	if off >= size {
		return 0, io.EOF
	}
	want := p
	if int64(len(p)) > size-off {
		want = p[:size-off]
	}
	var n int
	var err error
	if in.flags&flagInlineData != 0 {
		n, err = f.readInline(in, want, off)
	} else {
		n, err = f.readMapped(in, want, off)
	}
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

func (f *FS) readInline(in *inode, p []byte, off int64) (int, error) {
	data := append(in.iblock[:nBlocks:nBlocks], in.inline...)
	if int64(len(data)) < int64(in.size) {
		return 0, fmt.Errorf("inode %d: %d bytes of inline data, size %d: %w", in.ino, len(data), in.size, filesystem.ErrCorrupt)
	}
	return copy(p, data[off:]), nil
}

func (f *FS) readMapped(in *inode, p []byte, off int64) (int, error) {
	bs := int64(f.sb.blockSize)
	var buf []byte
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		within := pos % bs
		r, err := f.mapBlock(in, uint64(pos/bs))
		if err != nil {
			return n, err
		}
		chunk := p[n:]
		if need := (within + int64(len(chunk)) + bs - 1) / bs; r.n > uint64(need) {
			r.n = uint64(need)
		}
		if avail := int64(r.n)*bs - within; int64(len(chunk)) > avail {
			chunk = chunk[:avail]
		}
		if r.phys == 0 {
			clear(chunk)
			n += len(chunk)
			continue
		}
		if within+int64(len(chunk)) > maxReadChunk {
			chunk = chunk[:maxReadChunk-within]
		}
		blocks := (within + int64(len(chunk)) + bs - 1) / bs
		if within == 0 && int64(len(chunk)) == blocks*bs {
			// Whole blocks: straight into the caller's buffer.
			if err := f.readBlocks(chunk, r.phys, "data of inode", uint64(in.ino)); err != nil {
				return n, err
			}
		} else {
			if int64(cap(buf)) < blocks*bs {
				buf = make([]byte, blocks*bs)
			}
			if err := f.readBlocks(buf[:blocks*bs], r.phys, "data of inode", uint64(in.ino)); err != nil {
				return n, err
			}
			copy(chunk, buf[within:])
		}
		n += len(chunk)
	}
	return n, nil
}
