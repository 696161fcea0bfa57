package btrfs

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// Chunk types (block group flags).
const (
	chunkRAID0   = 1 << 3
	chunkRAID1   = 1 << 4
	chunkDUP     = 1 << 5
	chunkRAID10  = 1 << 6
	chunkRAID5   = 1 << 7
	chunkRAID6   = 1 << 8
	chunkRAID1C3 = 1 << 9
	chunkRAID1C4 = 1 << 10

	chunkItemSize = 48
	stripeSize    = 32
)

// chunk maps a range of logical addresses to one or more copies on the
// device (one for single, two for DUP, two to four for RAID1 on one
// device).
type chunk struct {
	logical, length uint64
	copies          []uint64 // physical offsets
}

// parseChunk reads a chunk item (with its stripes) that maps the range at
// logical; it returns the item's length in b.
func (f *FS) parseChunk(logical uint64, b []byte, where string) (chunk, int, error) {
	le := binary.LittleEndian
	if len(b) < chunkItemSize {
		return chunk{}, 0, corrupt("btrfs %s: chunk item at logical %d truncated", where, logical)
	}
	length := le.Uint64(b[0:])
	typ := le.Uint64(b[24:])
	n := int(le.Uint16(b[44:]))
	size := chunkItemSize + n*stripeSize
	switch {
	case n == 0 || size > len(b):
		return chunk{}, 0, corrupt("btrfs %s: chunk at logical %d has %d stripes in %d bytes", where, logical, n, len(b))
	case length == 0 || logical+length < logical:
		return chunk{}, 0, corrupt("btrfs %s: chunk at logical %d of %d bytes", where, logical, length)
	case typ&(chunkRAID0|chunkRAID10|chunkRAID5|chunkRAID6) != 0:
		return chunk{}, 0, unsupported("btrfs %s: chunk at logical %d has a striped profile (%#x)", where, logical, typ)
	case typ&(chunkDUP|chunkRAID1|chunkRAID1C3|chunkRAID1C4) == 0 && n != 1:
		return chunk{}, 0, corrupt("btrfs %s: single chunk at logical %d has %d stripes", where, logical, n)
	}
	c := chunk{logical: logical, length: length}
	for i := 0; i < n; i++ {
		s := b[chunkItemSize+i*stripeSize:]
		devid, off := le.Uint64(s[0:]), le.Uint64(s[8:])
		if devid != f.sb.devid {
			return chunk{}, 0, unsupported("btrfs %s: chunk at logical %d is on device %d, not this one (%d)", where, logical, devid, f.sb.devid)
		}
		if off+length < off {
			return chunk{}, 0, corrupt("btrfs %s: chunk at logical %d: stripe at %d overflows", where, logical, off)
		}
		c.copies = append(c.copies, off)
	}
	return c, size, nil
}

// parseSysArray reads the superblock's copy of the system chunks, enough
// to read the chunk tree.
func parseSysArray(sb *superblock) ([]chunk, error) {
	f := &FS{sb: sb}
	var chunks []chunk
	b := sb.sysArray
	for off := 0; off < len(b); {
		if len(b)-off < keySize {
			return nil, corrupt("btrfs superblock: system chunk array: key at %d truncated", off)
		}
		k := readKey(b[off:])
		if k.typ != typeChunkItem {
			return nil, corrupt("btrfs superblock: system chunk array: item type %d at %d", k.typ, off)
		}
		off += keySize
		c, n, err := f.parseChunk(k.off, b[off:], "superblock system chunk array")
		if err != nil {
			return nil, err
		}
		chunks = append(chunks, c)
		off += n
	}
	if len(chunks) == 0 {
		return nil, corrupt("btrfs superblock: no system chunk")
	}
	return sortChunks(chunks, "superblock system chunk array")
}

func sortChunks(chunks []chunk, where string) ([]chunk, error) {
	sort.Slice(chunks, func(i, j int) bool { return chunks[i].logical < chunks[j].logical })
	for i := 1; i < len(chunks); i++ {
		if p := chunks[i-1]; p.logical+p.length > chunks[i].logical {
			return nil, corrupt("btrfs %s: chunks at logical %d and %d overlap", where, p.logical, chunks[i].logical)
		}
	}
	return chunks, nil
}

// readChunkTree reads every chunk item of the chunk tree.
func (f *FS) readChunkTree() ([]chunk, error) {
	t := treeRoot{bytenr: f.sb.chunkRoot, level: f.sb.chunkRootLevel, gen: f.sb.chunkRootGen}
	var chunks []chunk
	err := f.walk(t, key{firstChunkTreeID, typeChunkItem, 0}, func(k key, data []byte) (bool, error) {
		if k.obj != firstChunkTreeID || k.typ != typeChunkItem {
			return false, nil
		}
		if len(chunks) >= maxChunks {
			return false, unsupported("btrfs chunk tree: more than %d chunks", maxChunks)
		}
		c, _, err := f.parseChunk(k.off, data, "chunk tree")
		if err != nil {
			return false, err
		}
		chunks = append(chunks, c)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if len(chunks) == 0 {
		return nil, corrupt("btrfs chunk tree: no chunks")
	}
	return sortChunks(chunks, "chunk tree")
}

// mapLogical returns the physical offsets of the copies of logical, and
// how many bytes from there are contiguous in the chunk.
func (f *FS) mapLogical(logical uint64) ([]uint64, uint64, error) {
	i := sort.Search(len(f.chunks), func(i int) bool { return f.chunks[i].logical+f.chunks[i].length > logical })
	if i == len(f.chunks) || f.chunks[i].logical > logical {
		return nil, 0, corrupt("btrfs: logical address %d is in no chunk", logical)
	}
	c := f.chunks[i]
	d := logical - c.logical
	phys := make([]uint64, len(c.copies))
	for j, p := range c.copies {
		phys[j] = p + d
	}
	return phys, c.length - d, nil
}

// readPhys reads len(b) bytes at physical offset off, which must lie on
// the device.
func (f *FS) readPhys(b []byte, off uint64) error {
	if off > uint64(f.dev.Size()) || uint64(len(b)) > uint64(f.dev.Size())-off {
		return corrupt("btrfs: %d bytes at physical %d: past the device's end (%d)", len(b), off, f.dev.Size())
	}
	if _, err := f.dev.ReadAt(b, int64(off)); err != nil {
		return fmt.Errorf("btrfs: read %d bytes at physical %d: %w", len(b), off, err)
	}
	return nil
}

// readLogical reads len(b) bytes of data at logical, from the first copy,
// across chunks if need be.
func (f *FS) readLogical(b []byte, logical uint64) error {
	for len(b) > 0 {
		phys, n, err := f.mapLogical(logical)
		if err != nil {
			return err
		}
		if n > uint64(len(b)) {
			n = uint64(len(b))
		}
		if err := f.readPhys(b[:n], phys[0]); err != nil {
			return err
		}
		b = b[n:]
		logical += n
	}
	return nil
}
