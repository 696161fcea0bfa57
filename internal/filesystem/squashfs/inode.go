package squashfs

import (
	"encoding/binary"
	"fmt"
)

// Basic inode types; an extended inode's type is its basic type plus 7.
const (
	typeDir     = 1
	typeFile    = 2
	typeSymlink = 3
	typeBlock   = 4
	typeChar    = 5
	typeFIFO    = 6
	typeSocket  = 7
)

// typeBits are the st_mode type bits of each basic type.
var typeBits = [8]uint32{0, 0o040000, 0o100000, 0o120000, 0o060000, 0o020000, 0o010000, 0o140000}

type inode struct {
	typ   uint16 // basic type
	perm  uint16
	uid   uint32
	gid   uint32
	mtime uint32
	size  int64 // a file's or a symlink target's bytes; a directory's file_size

	dirBlock uint32 // directory: its listing in the directory table
	dirOff   uint16

	blocksStart uint64 // regular file
	frag        uint32
	fragOff     uint32

	tailPos int64 // where the block list or the link target starts
	tailOff int
}

func (in *inode) isDir() bool     { return in.typ == typeDir }
func (in *inode) isRegular() bool { return in.typ == typeFile }
func (in *inode) isSymlink() bool { return in.typ == typeSymlink }
func (in *inode) mode() uint32    { return typeBits[in.typ] | uint32(in.perm)&0o7777 }

// inode reads the inode at ref (its metadata block relative to the inode
// table, and its offset in the block).
func (f *FS) inode(ref uint64) (*inode, error) {
	block, off := ref>>16, int(ref&0xffff)
	if off >= metaSize {
		return nil, corrupt("inode reference %#x: offset %d", ref, off)
	}
	r, err := f.metaReaderAt(int64(f.sb.inodeTable), block, off)
	if err != nil {
		return nil, fmt.Errorf("inode %#x: %w", ref, err)
	}
	in, err := f.parseInode(r)
	if err != nil {
		return nil, fmt.Errorf("inode %#x: %w", ref, err)
	}
	return in, nil
}

func (f *FS) parseInode(r *metaReader) (*inode, error) {
	le := binary.LittleEndian
	var b [40]byte
	if err := r.read(b[:16]); err != nil {
		return nil, err
	}
	typ := le.Uint16(b[0:])
	if typ == 0 || typ > 14 {
		return nil, corrupt("type %d", typ)
	}
	ext := typ > 7
	if ext {
		typ -= 7
	}
	in := &inode{typ: typ, perm: le.Uint16(b[2:]), mtime: le.Uint32(b[8:])}
	uidIdx, gidIdx := le.Uint16(b[4:]), le.Uint16(b[6:])
	if int(uidIdx) >= len(f.ids) || int(gidIdx) >= len(f.ids) {
		return nil, corrupt("id indexes %d and %d of %d", uidIdx, gidIdx, len(f.ids))
	}
	in.uid, in.gid = f.ids[uidIdx], f.ids[gidIdx]
	fixed := map[bool][8]int{
		false: {0, 16, 16, 8, 8, 8, 4, 4},
		true:  {0, 24, 40, 8, 12, 12, 8, 8},
	}[ext][typ]
	if err := r.read(b[:fixed]); err != nil {
		return nil, err
	}
	switch {
	case typ == typeDir && !ext:
		in.dirBlock, in.size, in.dirOff = le.Uint32(b[0:]), int64(le.Uint16(b[8:])), le.Uint16(b[10:])
	case typ == typeDir:
		in.size, in.dirBlock, in.dirOff = int64(le.Uint32(b[4:])), le.Uint32(b[8:]), le.Uint16(b[18:])
	case typ == typeFile && !ext:
		in.blocksStart, in.frag, in.fragOff, in.size = uint64(le.Uint32(b[0:])), le.Uint32(b[4:]), le.Uint32(b[8:]), int64(le.Uint32(b[12:]))
	case typ == typeFile:
		size := le.Uint64(b[8:])
		if size > 1<<62 {
			return nil, corrupt("file size %d", size)
		}
		in.blocksStart, in.size, in.frag, in.fragOff = le.Uint64(b[0:]), int64(size), le.Uint32(b[28:]), le.Uint32(b[32:])
	case typ == typeSymlink:
		in.size = int64(le.Uint32(b[4:]))
		if in.size > maxSymlink {
			return nil, corrupt("symlink target of %d bytes", in.size)
		}
	}
	if typ == typeDir && in.dirOff >= metaSize {
		return nil, corrupt("directory offset %d", in.dirOff)
	}
	if typ == typeFile && in.frag != invalidFrag && in.frag >= f.sb.fragments {
		return nil, corrupt("fragment %d of %d", in.frag, f.sb.fragments)
	}
	in.tailPos, in.tailOff = r.pos, r.off
	return in, nil
}

// target reads a symlink's target.
func (f *FS) target(in *inode) (string, error) {
	r, err := f.metaReaderPos(int64(f.sb.inodeTable), in.tailPos, in.tailOff)
	if err != nil {
		return "", err
	}
	b := make([]byte, in.size)
	if err := r.read(b); err != nil {
		return "", fmt.Errorf("symlink target: %w", err)
	}
	return string(b), nil
}
