package xfs

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"guestkit.io/batch/internal/filesystem"
)

// dirent is one directory entry; ftype is 0 when the filesystem does not
// record file types in directories.
type dirent struct {
	name  string
	ino   uint64
	ftype uint8
}

// ftypeMode maps XFS_DIR3_FT_* to a file type; ok is false for unknown.
func ftypeMode(t uint8) (fs.FileMode, bool) {
	switch t {
	case 1:
		return 0, true
	case 2:
		return fs.ModeDir, true
	case 3:
		return fs.ModeDevice | fs.ModeCharDevice, true
	case 4:
		return fs.ModeDevice, true
	case 5:
		return fs.ModeNamedPipe, true
	case 6:
		return fs.ModeSocket, true
	case 7:
		return fs.ModeSymlink, true
	}
	return 0, false
}

// dir returns the entries of directory n sorted by name, without "." and
// "..", from the cache or the device.
func (f *FS) dir(n *inode) ([]dirent, error) {
	f.mu.Lock()
	ents, ok := f.dirs[n.ino]
	f.mu.Unlock()
	if ok {
		return ents, nil
	}
	ents, err := f.readDir(n)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ents, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(ents); i++ {
		if ents[i].name == ents[i-1].name {
			return nil, inodeErr(n.ino, "directory has %q twice", ents[i].name)
		}
	}
	cost := len(ents) + 1
	f.mu.Lock()
	if f.dirCost+cost > dirCacheCost {
		clear(f.dirs)
		f.dirCost = 0
	}
	f.dirs[n.ino] = ents
	f.dirCost += cost
	f.mu.Unlock()
	return ents, nil
}

// lookup finds name in directory n.
func (f *FS) lookup(n *inode, name string) (dirent, bool, error) {
	ents, err := f.dir(n)
	if err != nil {
		return dirent{}, false, err
	}
	i, ok := slices.BinarySearchFunc(ents, name, func(e dirent, name string) int { return strings.Compare(e.name, name) })
	if !ok {
		return dirent{}, false, nil
	}
	return ents[i], true, nil
}

// entry checks one entry read from directory ino and appends it.
func (f *FS) entry(ents []dirent, ino uint64, name []byte, child uint64, ftype uint8) ([]dirent, error) {
	if len(ents) >= maxDirEntries {
		return nil, fmt.Errorf("inode %d: directory of more than %d entries: %w", ino, maxDirEntries, filesystem.ErrUnsupported)
	}
	s := string(name)
	if s == "." || s == ".." {
		return ents, nil
	}
	if strings.ContainsAny(s, "/\x00") {
		return nil, inodeErr(ino, "directory entry %q", s)
	}
	if _, err := f.sb.inodeOffset(child); err != nil {
		return nil, fmt.Errorf("inode %d: entry %q: %w", ino, s, err)
	}
	if f.sb.ftype {
		if _, ok := ftypeMode(ftype); !ok && ftype != 0 {
			return nil, inodeErr(ino, "entry %q has file type %d", s, ftype)
		}
	} else {
		ftype = 0
	}
	return append(ents, dirent{name: s, ino: child, ftype: ftype}), nil
}

func (f *FS) readDir(n *inode) ([]dirent, error) {
	if n.format == fmtLocal {
		return f.shortDir(n)
	}
	exts, err := f.extents(n)
	if err != nil {
		return nil, err
	}
	sb := f.sb
	// Entries live in the data space, the first 32 GiB of the directory;
	// the leaf, node and free blocks above it only index them.
	leafBlk := uint64(1) << (35 - sb.blockLog)
	dirBlks := uint64(1) << sb.dirBlkLog
	dirBytes := int(sb.blockSize) << sb.dirBlkLog
	var dbs []uint64 // first file block of each directory data block
	for _, e := range exts {
		if e.off >= leafBlk {
			break
		}
		first := e.off &^ (dirBlks - 1)
		if len(dbs) > 0 && dbs[len(dbs)-1] == first {
			first += dirBlks
		}
		for db := first; db < min(e.end(), leafBlk); db += dirBlks {
			if uint64(len(dbs)+1)*uint64(dirBytes) > maxDirBytes {
				return nil, fmt.Errorf("inode %d: directory of more than %d bytes: %w", n.ino, maxDirBytes, filesystem.ErrUnsupported)
			}
			dbs = append(dbs, db)
		}
	}
	var ents []dirent
	buf := make([]byte, dirBytes)
	for i, db := range dbs {
		if err := f.readMapped(n.ino, exts, db, buf); err != nil {
			return nil, err
		}
		first, _ := findExtent(exts, db)
		if ents, err = f.dataBlock(n.ino, buf, db, exts[first].lin+db-exts[first].off, i == 0 && len(dbs) == 1, ents); err != nil {
			return nil, err
		}
	}
	return ents, nil
}

// dataBlock reads the entries of one directory data block (or the single
// block of a block-form directory, whose end holds the leaf and a tail).
func (f *FS) dataBlock(ino uint64, b []byte, db, lin uint64, only bool, ents []dirent) ([]dirent, error) {
	sb := f.sb
	be := binary.BigEndian
	bad := func(format string, args ...any) error {
		return inodeErr(ino, "directory block at file block %d: %s", db, fmt.Sprintf(format, args...))
	}
	magic := be.Uint32(b)
	hdr := 16
	var isBlock bool
	if sb.v5 {
		hdr = 64
		switch magic {
		case 0x58444233: // "XDB3"
			isBlock = true
		case 0x58444433: // "XDD3"
		default:
			return nil, bad("bad magic %#x", magic)
		}
		switch {
		case !cksumOK(b, 4):
			return nil, bad("checksum mismatch")
		case be.Uint64(b[8:]) != sb.daddr(lin) || be.Uint64(b[40:]) != ino || [16]byte(b[24:40]) != sb.metaUUID:
			return nil, bad("belongs elsewhere")
		}
	} else {
		switch magic {
		case 0x58443242: // "XD2B"
			isBlock = true
		case 0x58443244: // "XD2D"
		default:
			return nil, bad("bad magic %#x", magic)
		}
	}
	end := len(b)
	if isBlock {
		if !only || db != 0 {
			return nil, bad("single-block directory header in a larger directory")
		}
		count := int(be.Uint32(b[len(b)-8:]))
		if count > (len(b)-8-hdr)/8 {
			return nil, bad("%d leaf entries", count)
		}
		end = len(b) - 8 - count*8
	}
	nameOff := 9
	for pos := hdr; pos < end; {
		if end-pos < 8 {
			return nil, bad("entry at %d runs past %d", pos, end)
		}
		if be.Uint16(b[pos:]) == 0xffff {
			l := int(be.Uint16(b[pos+2:]))
			if l < 8 || l%8 != 0 || l > end-pos {
				return nil, bad("free space of %d bytes at %d", l, pos)
			}
			pos += l
			continue
		}
		nl := int(b[pos+8])
		l := nameOff + nl + 2
		if sb.ftype {
			l++
		}
		l = (l + 7) &^ 7
		if nl == 0 || l > end-pos {
			return nil, bad("entry of %d bytes at %d", l, pos)
		}
		if int(be.Uint16(b[pos+l-2:])) != pos {
			return nil, bad("entry at %d tagged %d", pos, be.Uint16(b[pos+l-2:]))
		}
		var ft uint8
		if sb.ftype {
			ft = b[pos+nameOff+nl]
		}
		var err error
		if ents, err = f.entry(ents, ino, b[pos+nameOff:pos+nameOff+nl], be.Uint64(b[pos:]), ft); err != nil {
			return nil, err
		}
		pos += l
	}
	return ents, nil
}

// shortDir reads a directory held in the inode (short form).
func (f *FS) shortDir(n *inode) ([]dirent, error) {
	b := n.fork
	if len(b) < 6 {
		return nil, inodeErr(n.ino, "short-form directory of %d bytes", len(b))
	}
	count := int(b[0])
	isz := 4
	if b[1] != 0 {
		isz = 8
	}
	ftb := 0
	if f.sb.ftype {
		ftb = 1
	}
	pos := 2 + isz
	var ents []dirent
	for i := 0; i < count; i++ {
		if len(b)-pos < 3 {
			return nil, inodeErr(n.ino, "short-form entry %d at %d runs past %d bytes", i, pos, len(b))
		}
		nl := int(b[pos])
		pos += 3
		if nl == 0 || len(b)-pos < nl+ftb+isz {
			return nil, inodeErr(n.ino, "short-form entry %d at %d: name of %d bytes", i, pos-3, nl)
		}
		name := b[pos : pos+nl]
		pos += nl
		var ft uint8
		if ftb == 1 {
			ft = b[pos]
			pos++
		}
		var child uint64
		if isz == 8 {
			child = binary.BigEndian.Uint64(b[pos:])
		} else {
			child = uint64(binary.BigEndian.Uint32(b[pos:]))
		}
		pos += isz
		var err error
		if ents, err = f.entry(ents, n.ino, name, child, ft); err != nil {
			return nil, err
		}
	}
	return ents, nil
}
