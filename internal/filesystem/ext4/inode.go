package ext4

import (
	"encoding/binary"
	"fmt"
	"time"

	"guestkit.io/batch/internal/filesystem"
)

// Inode flags (i_flags).
const (
	flagEncrypt    = 0x800
	flagIndex      = 0x1000
	flagHugeFile   = 0x40000
	flagExtents    = 0x80000
	flagEAInode    = 0x200000
	flagInlineData = 0x10000000
	flagCasefold   = 0x40000000
)

// File types of i_mode.
const (
	sIFMT   = 0o170000
	sIFDIR  = 0o040000
	sIFREG  = 0o100000
	sIFLNK  = 0o120000
	nBlocks = 60 // bytes of i_block
)

// inode is the part of an on-disk inode the reader uses.
type inode struct {
	ino     uint32
	mode    uint16
	uid     uint32
	gid     uint32
	size    uint64
	flags   uint32
	blocks  uint64 // 512-byte sectors, as the kernel's i_blocks
	fileACL uint64
	mtime   time.Time
	iblock  [nBlocks]byte
	// inline is the system.data extended attribute of an inline-data
	// inode: the bytes that follow the first 60 in i_block.
	inline []byte
}

func (in *inode) isDir() bool     { return in.mode&sIFMT == sIFDIR }
func (in *inode) isRegular() bool { return in.mode&sIFMT == sIFREG }
func (in *inode) isSymlink() bool { return in.mode&sIFMT == sIFLNK }

// inode reads inode number ino (cached).
func (f *FS) inode(ino uint32) (*inode, error) {
	if ino == 0 || ino > f.sb.inodesCount {
		return nil, fmt.Errorf("inode %d: outside the filesystem's %d inodes: %w", ino, f.sb.inodesCount, filesystem.ErrCorrupt)
	}
	f.mu.Lock()
	in, ok := f.inodes[ino]
	f.mu.Unlock()
	if ok {
		return in, nil
	}
	sb := f.sb
	group := uint64(ino-1) / uint64(sb.inodesPerGroup)
	index := uint64(ino-1) % uint64(sb.inodesPerGroup)
	table, err := f.inodeTable(group)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", ino, err)
	}
	bs := uint64(sb.blockSize)
	off := index * uint64(sb.inodeSize)
	b := make([]byte, bs)
	if err := f.readBlocks(b, table+off/bs, "inode", uint64(ino)); err != nil {
		return nil, err
	}
	in, err = f.parseInode(ino, b[off%bs:off%bs+uint64(sb.inodeSize)])
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if len(f.inodes) >= inodeCacheSize {
		clear(f.inodes)
	}
	f.inodes[ino] = in
	f.mu.Unlock()
	return in, nil
}

func (f *FS) parseInode(ino uint32, raw []byte) (*inode, error) {
	le := binary.LittleEndian
	bad := func(format string, a ...any) error {
		return fmt.Errorf("inode %d: "+format+": %w", append([]any{ino}, append(a, filesystem.ErrCorrupt)...)...)
	}
	extra := uint32(0)
	if len(raw) > 128 {
		extra = uint32(le.Uint16(raw[0x80:]))
		if 128+extra > uint32(len(raw)) || extra%4 != 0 {
			return nil, bad("extra size %d", extra)
		}
	}
	if f.sb.roCompat&roCompatMetadataCsum != 0 && f.sb.creatorOS == osLinux {
		if err := f.verifyInode(ino, raw, extra); err != nil {
			return nil, err
		}
	}
	in := &inode{
		ino:     ino,
		mode:    le.Uint16(raw[0x00:]),
		uid:     uint32(le.Uint16(raw[0x02:])) | uint32(le.Uint16(raw[0x78:]))<<16,
		gid:     uint32(le.Uint16(raw[0x18:])) | uint32(le.Uint16(raw[0x7A:]))<<16,
		size:    uint64(le.Uint32(raw[0x04:])),
		flags:   le.Uint32(raw[0x20:]),
		blocks:  uint64(le.Uint32(raw[0x1C:])),
		fileACL: uint64(le.Uint32(raw[0x68:])) | uint64(le.Uint16(raw[0x76:]))<<32,
	}
	copy(in.iblock[:], raw[0x28:0x28+nBlocks])
	if links := le.Uint16(raw[0x1A:]); links == 0 && ino != rootIno && ino != f.sb.journalInum {
		return nil, bad("deleted (no links)")
	}
	// ext4_isize: the high half is i_dir_acl for directories of old
	// filesystems, so it counts only for files or with largedir.
	if in.isRegular() || f.sb.incompat&incompatLargedir != 0 {
		in.size |= uint64(le.Uint32(raw[0x6C:])) << 32
	}
	if in.size >= 1<<63 {
		return nil, bad("size %d", in.size)
	}
	if f.sb.roCompat&roCompatHugeFile != 0 {
		in.blocks |= uint64(le.Uint16(raw[0x74:])) << 32
		if in.flags&flagHugeFile != 0 {
			in.blocks <<= f.sb.logBlockSize + 1
		}
	}
	sec := int64(int32(le.Uint32(raw[0x10:])))
	nsec := int64(0)
	if extra >= 12 { // i_mtime_extra (0x88) fits
		x := le.Uint32(raw[0x88:])
		sec += int64(x&3) << 32
		nsec = int64(x >> 2)
		if nsec > 999999999 {
			nsec = 0
		}
	}
	in.mtime = time.Unix(sec, nsec)
	if in.flags&flagInlineData != 0 {
		if f.sb.incompat&incompatInlineData == 0 {
			return nil, bad("inline data flag without the inline_data feature")
		}
		v, err := inlineValue(raw, extra)
		if err != nil {
			return nil, bad("%v", err)
		}
		in.inline = v
	}
	return in, nil
}

// verifyInode checks the metadata_csum checksum (ext4_inode_csum): crc32c
// of the inode number, generation and raw inode with the checksum fields
// zeroed, seeded by the filesystem's seed.
func (f *FS) verifyInode(ino uint32, raw []byte, extra uint32) error {
	le := binary.LittleEndian
	var num [8]byte
	le.PutUint32(num[0:], ino)
	copy(num[4:], raw[0x64:0x68]) // i_generation
	c := make([]byte, len(raw))
	copy(c, raw)
	want := uint32(le.Uint16(raw[inodeChecksumLoOff:]))
	c[inodeChecksumLoOff], c[inodeChecksumLoOff+1] = 0, 0
	hasHi := len(raw) > 128 && 128+extra >= inodeChecksumHiOff+2
	if hasHi {
		want |= uint32(le.Uint16(raw[inodeChecksumHiOff:])) << 16
		c[inodeChecksumHiOff], c[inodeChecksumHiOff+1] = 0, 0
	}
	got := crc32cRaw(crc32cRaw(f.csumSeed, num[:]), c)
	if !hasHi {
		got &= 0xFFFF
	}
	if got != want {
		return fmt.Errorf("inode %d: checksum %#x, computed %#x: %w", ino, want, got, filesystem.ErrCorrupt)
	}
	return nil
}

// inlineValue finds the system.data extended attribute in the space after
// the inode's extra fields, where inline data continues past i_block.
func inlineValue(raw []byte, extra uint32) ([]byte, error) {
	le := binary.LittleEndian
	start := 128 + int(extra)
	if len(raw) <= 128 || start+4 > len(raw) || le.Uint32(raw[start:]) != 0xEA020000 {
		return nil, nil
	}
	area := raw[start+4:] // entry value offsets count from here
	for pos := 0; pos+16 <= len(area) && le.Uint32(area[pos:]) != 0; {
		nameLen := int(area[pos])
		index := area[pos+1]
		valOff := int(le.Uint16(area[pos+2:]))
		valInum := le.Uint32(area[pos+4:])
		valSize := int(le.Uint32(area[pos+8:]))
		if pos+16+nameLen > len(area) {
			return nil, fmt.Errorf("extended attribute at %d: name past the inode", pos)
		}
		if index == 7 && string(area[pos+16:pos+16+nameLen]) == "data" {
			if valInum != 0 {
				return nil, fmt.Errorf("system.data in inode %d", valInum)
			}
			if valOff > len(area) || valSize > len(area)-valOff {
				return nil, fmt.Errorf("system.data value of %d bytes at %d: past the inode", valSize, valOff)
			}
			return append([]byte{}, area[valOff:valOff+valSize]...), nil
		}
		pos += (16 + nameLen + 3) &^ 3
	}
	return nil, nil
}
