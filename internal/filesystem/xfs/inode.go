package xfs

import (
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	"guestkit.io/batch/internal/filesystem"
)

const (
	inodeMagic = 0x494e // "IN"

	fmtDev     = 0
	fmtLocal   = 1
	fmtExtents = 2
	fmtBtree   = 3

	sIFMT   = 0o170000
	sIFREG  = 0o100000
	sIFDIR  = 0o040000
	sIFLNK  = 0o120000
	sIFCHR  = 0o020000
	sIFBLK  = 0o060000
	sIFIFO  = 0o010000
	sIFSOCK = 0o140000

	diflagRealtime  = 1 << 0
	diflag2Bigtime  = 1 << 3
	diflag2Nrext64  = 1 << 4
	bigtimeEpochOff = 1 << 31
)

// inode is the part of an on-disk inode the reader uses; the data fork is
// kept raw (at most the inode size) and its extents are decoded on use.
type inode struct {
	ino      uint64
	mode     uint32
	uid, gid uint32
	size     int64
	mtime    time.Time
	flags    uint16
	format   uint8
	nextents uint64
	fork     []byte // the data fork's bytes in the inode
}

func (n *inode) isDir() bool  { return n.mode&sIFMT == sIFDIR }
func (n *inode) isReg() bool  { return n.mode&sIFMT == sIFREG }
func (n *inode) isLink() bool { return n.mode&sIFMT == sIFLNK }

// extent maps count blocks from the file block off to the filesystem
// block fsb (already turned into a linear block number).
type extent struct {
	off       uint64
	lin       uint64
	count     uint32 // 21 bits on disk
	unwritten bool
}

func (e extent) end() uint64 { return e.off + uint64(e.count) }

func inodeErr(ino uint64, format string, args ...any) error {
	return fmt.Errorf("inode %d: %s: %w", ino, fmt.Sprintf(format, args...), filesystem.ErrCorrupt)
}

// inode returns inode ino, from the cache or the device.
func (f *FS) inode(ino uint64) (*inode, error) {
	f.mu.Lock()
	n := f.inodes[ino]
	f.mu.Unlock()
	if n != nil {
		return n, nil
	}
	n, err := f.readInode(ino)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if len(f.inodes) >= inodeCacheSize {
		clear(f.inodes)
	}
	f.inodes[ino] = n
	f.mu.Unlock()
	return n, nil
}

func (f *FS) readInode(ino uint64) (*inode, error) {
	sb := f.sb
	off, err := sb.inodeOffset(ino)
	if err != nil {
		return nil, err
	}
	b := make([]byte, sb.inodeSize)
	if _, err := f.dev.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("inode %d: read at %d: %w", ino, off, err)
	}
	be := binary.BigEndian
	if be.Uint16(b) != inodeMagic {
		return nil, inodeErr(ino, "bad magic at byte %d", off)
	}
	version := b[4]
	lit := 100
	switch {
	case sb.v5 && version == 3:
		lit = 176
		if !cksumOK(b, 100) {
			return nil, inodeErr(ino, "checksum mismatch at byte %d", off)
		}
		if be.Uint64(b[152:]) != ino {
			return nil, inodeErr(ino, "records inode number %d", be.Uint64(b[152:]))
		}
		if [16]byte(b[160:176]) != sb.metaUUID {
			return nil, inodeErr(ino, "filesystem UUID mismatch")
		}
	case !sb.v5 && (version == 1 || version == 2):
	default:
		return nil, inodeErr(ino, "version %d", version)
	}
	n := &inode{
		ino:    ino,
		mode:   uint32(be.Uint16(b[2:])),
		format: b[5],
		uid:    be.Uint32(b[8:]),
		gid:    be.Uint32(b[12:]),
		flags:  be.Uint16(b[90:]),
	}
	var flags2 uint64
	if version == 3 {
		flags2 = be.Uint64(b[120:])
	}
	size := be.Uint64(b[56:])
	if size > 1<<62 {
		return nil, inodeErr(ino, "size %d", size)
	}
	n.size = int64(size)
	mt := be.Uint64(b[40:])
	if flags2&diflag2Bigtime != 0 {
		n.mtime = time.Unix(int64(mt/1e9)-bigtimeEpochOff, int64(mt%1e9))
	} else {
		n.mtime = time.Unix(int64(int32(mt>>32)), int64(uint32(mt)%1e9))
	}
	if flags2&diflag2Nrext64 != 0 {
		if !sb.nrext64 {
			return nil, inodeErr(ino, "large extent counts without the nrext64 feature")
		}
		n.nextents = be.Uint64(b[24:])
	} else {
		n.nextents = uint64(be.Uint32(b[76:]))
	}
	forkoff := int(b[82]) * 8
	dsize := len(b) - lit
	if forkoff != 0 {
		if forkoff >= dsize {
			return nil, inodeErr(ino, "attribute fork offset %d in a %d-byte literal area", forkoff, dsize)
		}
		dsize = forkoff
	}
	n.fork = b[lit : lit+dsize]

	typ := n.mode & sIFMT
	switch typ {
	case sIFREG, sIFDIR, sIFLNK, sIFCHR, sIFBLK, sIFIFO, sIFSOCK:
	case 0:
		return nil, inodeErr(ino, "free inode (mode 0) in use")
	default:
		return nil, inodeErr(ino, "file type %#o", typ)
	}
	ok := false
	switch n.format {
	case fmtDev:
		ok = typ == sIFCHR || typ == sIFBLK || typ == sIFIFO || typ == sIFSOCK
		n.fork = nil
	case fmtLocal:
		ok = typ == sIFDIR || typ == sIFLNK
		if ok && n.size > int64(dsize) {
			return nil, inodeErr(ino, "%d bytes in a %d-byte local fork", n.size, dsize)
		}
		n.fork = n.fork[:n.size]
	case fmtExtents:
		ok = typ == sIFREG || typ == sIFDIR || typ == sIFLNK
		if ok && n.nextents > uint64(dsize/16) {
			return nil, inodeErr(ino, "%d extents in a %d-byte fork", n.nextents, dsize)
		}
	case fmtBtree:
		ok = typ == sIFREG || typ == sIFDIR
	}
	if !ok {
		return nil, inodeErr(ino, "data fork format %d for file type %#o", n.format, typ)
	}
	if n.isReg() && n.flags&diflagRealtime != 0 && sb.rblocks == 0 {
		return nil, inodeErr(ino, "realtime file without a realtime device")
	}
	// Keep only the fork, not the whole inode buffer.
	n.fork = append([]byte(nil), n.fork...)
	return n, nil
}

// unpackExtent decodes one 16-byte bmbt record and checks its blocks.
func (f *FS) unpackExtent(ino uint64, r []byte) (extent, error) {
	l0 := binary.BigEndian.Uint64(r)
	l1 := binary.BigEndian.Uint64(r[8:])
	e := extent{
		unwritten: l0>>63 != 0,
		off:       (l0 & (1<<63 - 1)) >> 9,
		count:     uint32(l1 & (1<<21 - 1)),
	}
	fsb := (l0&(1<<9-1))<<43 | l1>>21
	lin, err := f.sb.fsbToBlock(fsb, uint64(e.count))
	if err != nil {
		return extent{}, fmt.Errorf("inode %d: extent at file block %d: %w", ino, e.off, err)
	}
	e.lin = lin
	return e, nil
}

// extents returns the data fork's extent list, sorted and checked.
func (f *FS) extents(n *inode) ([]extent, error) {
	if n.nextents > maxExtents {
		return nil, fmt.Errorf("inode %d: %d extents (limit %d): %w", n.ino, n.nextents, maxExtents, filesystem.ErrUnsupported)
	}
	var exts []extent
	switch n.format {
	case fmtExtents:
		exts = make([]extent, 0, n.nextents)
		for i := uint64(0); i < n.nextents; i++ {
			e, err := f.unpackExtent(n.ino, n.fork[i*16:])
			if err != nil {
				return nil, err
			}
			exts = append(exts, e)
		}
	case fmtBtree:
		var err error
		exts, err = f.bmbtRoot(n)
		if err != nil {
			return nil, err
		}
	default:
		return nil, nil
	}
	if uint64(len(exts)) != n.nextents {
		return nil, inodeErr(n.ino, "%d extents found, %d recorded", len(exts), n.nextents)
	}
	for i := 1; i < len(exts); i++ {
		if exts[i].off < exts[i-1].end() {
			return nil, inodeErr(n.ino, "extent at file block %d overlaps or precedes the one at %d", exts[i].off, exts[i-1].off)
		}
	}
	return exts, nil
}

// bmbtRoot walks the data fork's btree from its root in the inode.
func (f *FS) bmbtRoot(n *inode) ([]extent, error) {
	be := binary.BigEndian
	if len(n.fork) < 4 {
		return nil, inodeErr(n.ino, "btree root in a %d-byte fork", len(n.fork))
	}
	level := int(be.Uint16(n.fork))
	numrecs := int(be.Uint16(n.fork[2:]))
	maxrecs := (len(n.fork) - 4) / 16
	if level < 1 || level > maxBtreeLevels || numrecs < 1 || numrecs > maxrecs {
		return nil, inodeErr(n.ino, "btree root of level %d with %d records (at most %d)", level, numrecs, maxrecs)
	}
	w := bmbtWalk{f: f, n: n, exts: make([]extent, 0, min(n.nextents, 4096))}
	ptrs := n.fork[4+maxrecs*8:]
	for i := 0; i < numrecs; i++ {
		if err := w.block(be.Uint64(ptrs[i*8:]), level-1); err != nil {
			return nil, err
		}
	}
	return w.exts, nil
}

type bmbtWalk struct {
	f      *FS
	n      *inode
	exts   []extent
	visits uint64
}

// block reads the bmbt block at fsb, which must be at level; the level
// falls by one at each step, so the walk is bounded and cannot loop, and
// the extent count stops it before a fan-out to the same blocks explodes.
func (w *bmbtWalk) block(fsb uint64, level int) error {
	sb := w.f.sb
	ino := w.n.ino
	// A tree has at most one block per extent plus its nodes; more visits
	// mean blocks shared between branches.
	if w.visits++; w.visits > 2*w.n.nextents+maxBtreeLevels {
		return inodeErr(ino, "bmbt visits more blocks than its %d extents need", w.n.nextents)
	}
	lin, err := sb.fsbToBlock(fsb, 1)
	if err != nil {
		return fmt.Errorf("inode %d: bmbt block: %w", ino, err)
	}
	b := make([]byte, sb.blockSize)
	if err := w.f.readBlocks(b, lin); err != nil {
		return fmt.Errorf("inode %d: bmbt: %w", ino, err)
	}
	be := binary.BigEndian
	hdr := 24
	if sb.v5 {
		hdr = 72
		switch {
		case be.Uint32(b) != 0x424d4133: // "BMA3"
			return inodeErr(ino, "bmbt block %d: bad magic", fsb)
		case !cksumOK(b, 64):
			return inodeErr(ino, "bmbt block %d: checksum mismatch", fsb)
		case be.Uint64(b[24:]) != sb.daddr(lin) || be.Uint64(b[56:]) != ino || [16]byte(b[40:56]) != sb.metaUUID:
			return inodeErr(ino, "bmbt block %d: belongs elsewhere", fsb)
		}
	} else if be.Uint32(b) != 0x424d4150 { // "BMAP"
		return inodeErr(ino, "bmbt block %d: bad magic", fsb)
	}
	lv := int(be.Uint16(b[4:]))
	numrecs := int(be.Uint16(b[6:]))
	maxrecs := (len(b) - hdr) / 16
	if lv != level || numrecs < 1 || numrecs > maxrecs {
		return inodeErr(ino, "bmbt block %d: level %d (want %d) with %d records (at most %d)", fsb, lv, level, numrecs, maxrecs)
	}
	if level == 0 {
		if uint64(len(w.exts)+numrecs) > w.n.nextents {
			return inodeErr(ino, "bmbt holds more than the %d extents recorded", w.n.nextents)
		}
		for i := 0; i < numrecs; i++ {
			e, err := w.f.unpackExtent(ino, b[hdr+i*16:])
			if err != nil {
				return err
			}
			w.exts = append(w.exts, e)
		}
		return nil
	}
	ptrs := b[hdr+maxrecs*8:]
	for i := 0; i < numrecs; i++ {
		if err := w.block(be.Uint64(ptrs[i*8:]), level-1); err != nil {
			return err
		}
	}
	return nil
}

// findExtent returns the index of the extent holding file block blk, or
// of the first extent after it (len(exts) if none), and whether it holds.
func findExtent(exts []extent, blk uint64) (int, bool) {
	i := sort.Search(len(exts), func(i int) bool { return exts[i].end() > blk })
	return i, i < len(exts) && exts[i].off <= blk
}

// readMapped reads len(buf) bytes (whole blocks) from file block blk of a
// file whose blocks must all be mapped (directory and symlink blocks).
func (f *FS) readMapped(ino uint64, exts []extent, blk uint64, buf []byte) error {
	bs := uint64(f.sb.blockSize)
	for len(buf) > 0 {
		i, ok := findExtent(exts, blk)
		if !ok {
			return inodeErr(ino, "file block %d is a hole", blk)
		}
		e := exts[i]
		n := min((e.end()-blk)*bs, uint64(len(buf)))
		if err := f.readBlocks(buf[:n], e.lin+blk-e.off); err != nil {
			return fmt.Errorf("inode %d: %w", ino, err)
		}
		buf = buf[n:]
		blk += n / bs
	}
	return nil
}

// readLink returns a symlink's target.
func (f *FS) readLink(n *inode) (string, error) {
	if n.size < 1 || n.size > maxSymlinkLen {
		return "", inodeErr(n.ino, "symlink of %d bytes", n.size)
	}
	if n.format == fmtLocal {
		return string(n.fork), nil
	}
	exts, err := f.extents(n)
	if err != nil {
		return "", err
	}
	sb := f.sb
	var target []byte
	if !sb.v5 {
		nb := (uint64(n.size) + uint64(sb.blockSize) - 1) >> sb.blockLog
		buf := make([]byte, nb<<sb.blockLog)
		if err := f.readMapped(n.ino, exts, 0, buf); err != nil {
			return "", err
		}
		target = buf[:n.size]
	} else {
		// v5: each extent starts with a header naming its part of the target.
		be := binary.BigEndian
		for _, e := range exts {
			if e.count > 4 || len(target) >= int(n.size) {
				return "", inodeErr(n.ino, "remote symlink extent of %d blocks", e.count)
			}
			b := make([]byte, uint64(e.count)<<sb.blockLog)
			if err := f.readBlocks(b, e.lin); err != nil {
				return "", fmt.Errorf("inode %d: symlink: %w", n.ino, err)
			}
			off, cnt := be.Uint32(b[4:]), be.Uint32(b[8:])
			switch {
			case be.Uint32(b) != 0x58534c4d: // "XSLM"
				return "", inodeErr(n.ino, "symlink block %d: bad magic", e.lin)
			case !cksumOK(b, 12):
				return "", inodeErr(n.ino, "symlink block %d: checksum mismatch", e.lin)
			case [16]byte(b[16:32]) != sb.metaUUID || be.Uint64(b[32:]) != n.ino || be.Uint64(b[40:]) != sb.daddr(e.lin):
				return "", inodeErr(n.ino, "symlink block %d: belongs elsewhere", e.lin)
			case int(off) != len(target) || cnt == 0 || uint64(cnt) > uint64(len(b)-56) || len(target)+int(cnt) > int(n.size):
				return "", inodeErr(n.ino, "symlink block %d: %d bytes at %d", e.lin, cnt, off)
			}
			target = append(target, b[56:56+cnt]...)
		}
		if len(target) != int(n.size) {
			return "", inodeErr(n.ino, "remote symlink holds %d of %d bytes", len(target), n.size)
		}
	}
	return string(target), nil
}
