package squashfs

import (
	"encoding/binary"
	"fmt"
)

// metaBlock is one decompressed metadata block and where the next one
// starts.
type metaBlock struct {
	data []byte
	next int64
}

// meta reads the metadata block at pos, which must lie in [min,
// bytes_used). Blocks are cached by position.
func (f *FS) meta(pos, min int64) (metaBlock, error) {
	if pos < min || pos >= f.size {
		return metaBlock{}, corrupt("metadata block at %d outside [%d, %d)", pos, min, f.size)
	}
	f.mu.Lock()
	mb, ok := f.metaCache[pos]
	f.mu.Unlock()
	if ok {
		return mb, nil
	}
	var h [2]byte
	if err := f.readAt(h[:], pos); err != nil {
		return metaBlock{}, fmt.Errorf("metadata block header at %d: %w", pos, err)
	}
	hdr := binary.LittleEndian.Uint16(h[:])
	size := int(hdr & 0x7fff)
	if size == 0 || size > metaSize {
		return metaBlock{}, corrupt("metadata block at %d: %d bytes", pos, size)
	}
	raw := make([]byte, size)
	if err := f.readAt(raw, pos+2); err != nil {
		return metaBlock{}, fmt.Errorf("metadata block at %d: %w", pos, err)
	}
	data := raw
	if hdr&0x8000 == 0 {
		var err error
		if data, err = f.decompress(raw, metaSize); err != nil {
			return metaBlock{}, corrupt("metadata block at %d: %v", pos, err)
		}
	}
	mb = metaBlock{data: data, next: pos + 2 + int64(size)}
	f.mu.Lock()
	if len(f.metaCache) >= maxMetaCache {
		clear(f.metaCache)
	}
	f.metaCache[pos] = mb
	f.mu.Unlock()
	return mb, nil
}

// metaReader reads a run of bytes of a metadata table across its blocks.
type metaReader struct {
	f   *FS
	min int64 // the table's start: no block of it lies before
	pos int64 // the current block
	mb  metaBlock
	off int
}

// metaReaderAt starts reading the table at start from the block at
// start+block, offset off in its decompressed bytes.
func (f *FS) metaReaderAt(start int64, block uint64, off int) (*metaReader, error) {
	if block >= uint64(f.size) {
		return nil, corrupt("metadata reference to block %d past the filesystem's %d bytes", block, f.size)
	}
	return f.metaReaderPos(start, start+int64(block), off)
}

func (f *FS) metaReaderPos(start, pos int64, off int) (*metaReader, error) {
	mb, err := f.meta(pos, start)
	if err != nil {
		return nil, err
	}
	if off > len(mb.data) {
		return nil, corrupt("metadata offset %d past the %d bytes of the block at %d", off, len(mb.data), pos)
	}
	return &metaReader{f: f, min: start, pos: pos, mb: mb, off: off}, nil
}

func (r *metaReader) read(p []byte) error {
	for len(p) > 0 {
		if r.off == len(r.mb.data) {
			mb, err := r.f.meta(r.mb.next, r.min)
			if err != nil {
				return err
			}
			r.pos, r.mb, r.off = r.mb.next, mb, 0
		}
		n := copy(p, r.mb.data[r.off:])
		r.off += n
		p = p[n:]
	}
	return nil
}
