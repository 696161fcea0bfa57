package btrfs

import (
	"encoding/binary"
)

// File extent types and compression algorithms (EXTENT_DATA items).
const (
	extentInline   = 0
	extentRegular  = 1
	extentPrealloc = 2

	compNone = 0
	compZlib = 1
	compLZO  = 2
	compZstd = 3

	extentHeaderSize  = 21
	extentRegularSize = 53
)

type extent struct {
	typ      uint8
	comp     uint8
	ram      uint64
	inline   []byte
	disk     uint64 // logical address of the extent on disk, 0 for a hole
	diskLen  uint64
	offset   uint64 // where this file's window starts in the (decompressed) extent
	length   uint64 // bytes of the file this item covers
	inlineAt extentKey
}

// extentKey names a decompressed extent in the cache.
type extentKey struct {
	inline  bool
	disk    uint64 // logical address (or, inline, the leaf's)
	diskLen uint64 // size on disk (or, inline, the item's offset in the leaf)
	comp    uint8
	ram     uint64
}

func parseExtent(b []byte, tree, ino, fileOff uint64, leaf *node, slot int) (extent, error) {
	if len(b) < extentHeaderSize {
		return extent{}, corrupt("btrfs tree %d: extent of inode %d at %d truncated", tree, ino, fileOff)
	}
	le := binary.LittleEndian
	e := extent{ram: le.Uint64(b[8:]), comp: b[16], typ: b[20]}
	if b[17] != 0 || le.Uint16(b[18:]) != 0 {
		return extent{}, unsupported("btrfs tree %d: extent of inode %d at %d is encrypted or encoded", tree, ino, fileOff)
	}
	if e.comp > compZstd {
		return extent{}, unsupported("btrfs tree %d: extent of inode %d at %d uses compression %d", tree, ino, fileOff, e.comp)
	}
	switch e.typ {
	case extentInline:
		if fileOff != 0 {
			return extent{}, corrupt("btrfs tree %d: inline extent of inode %d at %d", tree, ino, fileOff)
		}
		e.inline = b[extentHeaderSize:]
		e.length = e.ram
		if e.comp == compNone && e.ram != uint64(len(e.inline)) {
			return extent{}, corrupt("btrfs tree %d: inline extent of inode %d holds %d bytes, says %d", tree, ino, len(e.inline), e.ram)
		}
		if e.comp != compNone && e.ram > maxCompBytes {
			return extent{}, corrupt("btrfs tree %d: compressed inline extent of inode %d of %d bytes", tree, ino, e.ram)
		}
		e.inlineAt = extentKey{inline: true, disk: leaf.logical, diskLen: uint64(slot), comp: e.comp, ram: e.ram}
	case extentRegular, extentPrealloc:
		if len(b) < extentRegularSize {
			return extent{}, corrupt("btrfs tree %d: extent of inode %d at %d truncated", tree, ino, fileOff)
		}
		e.disk, e.diskLen = le.Uint64(b[21:]), le.Uint64(b[29:])
		e.offset, e.length = le.Uint64(b[37:]), le.Uint64(b[45:])
		if e.comp != compNone {
			if e.typ == extentPrealloc || e.disk == 0 || e.ram > maxCompBytes || e.diskLen == 0 || e.diskLen > maxCompBytes ||
				e.offset > e.ram || e.length > e.ram-e.offset {
				return extent{}, corrupt("btrfs tree %d: compressed extent of inode %d at %d: %d bytes on disk, %d in memory, window %d+%d",
					tree, ino, fileOff, e.diskLen, e.ram, e.offset, e.length)
			}
		} else if end := e.disk + e.offset; end < e.disk || end+e.length < end {
			return extent{}, corrupt("btrfs tree %d: extent of inode %d at %d overflows", tree, ino, fileOff)
		}
	default:
		return extent{}, corrupt("btrfs tree %d: extent of inode %d at %d has type %d", tree, ino, fileOff, e.typ)
	}
	if fileOff+e.length < fileOff {
		return extent{}, corrupt("btrfs tree %d: extent of inode %d at %d overflows", tree, ino, fileOff)
	}
	return e, nil
}

// readData fills p with the bytes of inode ino (of tree id, root t) from
// offset off. Ranges no extent covers are holes and read as zeroes; the
// caller bounds p by the file's size.
func (f *FS) readData(t treeRoot, id, ino uint64, p []byte, off uint64) error {
	c, err := f.search(t, key{ino, typeExtentData, off})
	if err != nil {
		return err
	}
	ok := c.valid
	if ok {
		// The item before off covers it only if it is one of ino's extents.
		if k, _ := c.item(); k.obj != ino || k.typ != typeExtentData {
			ok = false
		}
	}
	if !ok {
		if ok, err = c.next(); err != nil {
			return err
		}
	}
	pos, end := off, off+uint64(len(p))
	for pos < end {
		var k key
		var b []byte
		if ok {
			k, b = c.item()
		}
		if !ok || k.obj != ino || k.typ != typeExtentData {
			clear(p[pos-off:])
			return nil
		}
		if pos < k.off {
			n := min(end, k.off) - pos
			clear(p[pos-off : pos-off+n])
			pos += n
			continue
		}
		leaf := c.path[len(c.path)-1]
		e, err := parseExtent(b, id, ino, k.off, leaf.n, leaf.slot)
		if err != nil {
			return err
		}
		if eEnd := k.off + e.length; pos < eEnd {
			n := min(end, eEnd) - pos
			if err := f.readExtent(p[pos-off:pos-off+n], e, pos-k.off); err != nil {
				return err
			}
			pos += n
			if pos < eEnd {
				return nil
			}
		}
		if ok, err = c.next(); err != nil {
			return err
		}
	}
	return nil
}

// readExtent fills dst with the extent's bytes from rel on.
func (f *FS) readExtent(dst []byte, e extent, rel uint64) error {
	switch {
	case e.typ == extentInline && e.comp == compNone:
		copy(dst, e.inline[rel:])
		return nil
	case e.typ == extentInline:
		buf, err := f.decompressed(e.inlineAt, func() ([]byte, error) { return e.inline, nil })
		if err != nil {
			return err
		}
		copy(dst, buf[rel:])
		return nil
	case e.typ == extentPrealloc || e.disk == 0:
		clear(dst)
		return nil
	case e.comp == compNone:
		return f.readLogical(dst, e.disk+e.offset+rel)
	}
	k := extentKey{disk: e.disk, diskLen: e.diskLen, comp: e.comp, ram: e.ram}
	buf, err := f.decompressed(k, func() ([]byte, error) {
		src := make([]byte, e.diskLen)
		return src, f.readLogical(src, e.disk)
	})
	if err != nil {
		return err
	}
	copy(dst, buf[e.offset+rel:])
	return nil
}

// decompressed returns the decompressed bytes (k.ram of them) of the
// extent that src reads, from the cache if it is there.
func (f *FS) decompressed(k extentKey, src func() ([]byte, error)) ([]byte, error) {
	if buf, ok := f.extents.get(k); ok {
		return buf, nil
	}
	in, err := src()
	if err != nil {
		return nil, err
	}
	buf, err := f.decompress(k.comp, in, int(k.ram))
	if err != nil {
		return nil, corrupt("btrfs: compressed extent at %d (algorithm %d, %d bytes): %v", k.disk, k.comp, len(in), err)
	}
	f.extents.put(k, buf)
	return buf, nil
}
