// Package xfs reads XFS filesystems (v5, and v4 with version 2
// directories) from a block.Device, read-only and without the journal.
//
// Every structure it follows is checked against the superblock's geometry
// before it is read: inode numbers and block numbers must fall inside
// their allocation group and the device, btrees must descend one level at
// a time to a bounded depth, and extent, directory and symlink sizes are
// capped. v5 metadata (superblock, inodes, bmbt, directory and symlink
// blocks) is checked against its CRC and its owner.
//
// What it does not do: replay the log (a filesystem that was not cleanly
// unmounted is read as its metadata blocks stand), read files on a
// realtime device, or mount filesystems with the metadir or zoned
// features (ErrUnsupported).
package xfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/filesystem"
)

// Limits on hostile input. A real root filesystem stays far below them;
// going past one is ErrUnsupported (valid but too large to hold in memory)
// or ErrCorrupt (impossible on a real XFS).
const (
	maxExtents     = 1 << 20  // extents of one inode held in memory
	maxBtreeLevels = 12       // bmbt depth (XFS's own maximum is below 10)
	maxDirBytes    = 64 << 20 // data space of one directory read
	maxDirEntries  = 1 << 18  // entries of one directory
	maxSymlinkLen  = 1024     // XFS_SYMLINK_MAXLEN
	maxReadChunk   = 1 << 20  // bytes read from the device at once
	inodeCacheSize = 8192     // inodes kept; the cache is emptied when full
	dirCacheCost   = 1 << 18  // directory entries kept, over all directories (at least the last one read)
)

const (
	sbMagic = 0x58465342 // "XFSB"

	incompatFtype       = 1 << 0
	incompatSpinodes    = 1 << 1
	incompatMetaUUID    = 1 << 2
	incompatBigtime     = 1 << 3
	incompatNeedsRepair = 1 << 4
	incompatNrext64     = 1 << 5
	incompatExchrange   = 1 << 6
	incompatParent      = 1 << 7
	incompatMetadir     = 1 << 8
	incompatZoned       = 1 << 9

	// incompat features that change nothing this reader looks at:
	// sparse inode chunks only change allocation, exchrange only adds log
	// items, parent pointers only add extended attributes.
	incompatKnown = incompatFtype | incompatSpinodes | incompatMetaUUID | incompatBigtime |
		incompatNrext64 | incompatExchrange | incompatParent

	v4DirV2Bit    = 0x2000
	v4MoreBitsBit = 0x8000
	v4F2Crc       = 0x100
	v4F2Ftype     = 0x200
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// cksumOK checks an XFS CRC: crc32c of b with the four bytes at off taken
// as zero, stored little-endian at off.
func cksumOK(b []byte, off int) bool {
	if off < 0 || off+4 > len(b) {
		return false
	}
	c := crc32.Update(0, castagnoli, b[:off])
	c = crc32.Update(c, castagnoli, []byte{0, 0, 0, 0})
	c = crc32.Update(c, castagnoli, b[off+4:])
	return c == binary.LittleEndian.Uint32(b[off:])
}

type superblock struct {
	blockSize uint32
	blockLog  uint
	dblocks   uint64
	agblocks  uint32
	agcount   uint32
	agblklog  uint
	sectSize  uint32
	inodeSize uint32
	inodeLog  uint
	inopblog  uint
	rootIno   uint64
	dirBlkLog uint // directory block = blockSize << dirBlkLog
	v5        bool
	ftype     bool
	nrext64   bool
	incompat  uint32
	rblocks   uint64
	uuid      [16]byte
	metaUUID  [16]byte // the UUID metadata blocks carry (sb_uuid unless meta_uuid)
	fname     [12]byte
}

func isPow2Log(v uint64, log uint8) bool {
	return log < 64 && v == 1<<log
}

// parseSuperblock checks the fields blkid and the kernel check before
// trusting the geometry. b holds at least the first sector.
func parseSuperblock(b []byte) (*superblock, error) {
	be := binary.BigEndian
	if len(b) < 512 || be.Uint32(b) != sbMagic {
		return nil, fmt.Errorf("superblock: bad magic: %w", filesystem.ErrCorrupt)
	}
	sb := &superblock{
		blockSize: be.Uint32(b[4:]),
		dblocks:   be.Uint64(b[8:]),
		rblocks:   be.Uint64(b[16:]),
		rootIno:   be.Uint64(b[56:]),
		agblocks:  be.Uint32(b[84:]),
		agcount:   be.Uint32(b[88:]),
		sectSize:  uint32(be.Uint16(b[102:])),
		inodeSize: uint32(be.Uint16(b[104:])),
		blockLog:  uint(b[120]),
		inodeLog:  uint(b[122]),
		inopblog:  uint(b[123]),
		agblklog:  uint(b[124]),
		dirBlkLog: uint(b[192]),
	}
	copy(sb.uuid[:], b[32:48])
	copy(sb.fname[:], b[108:120])
	version := be.Uint16(b[100:])
	inopblock := uint32(be.Uint16(b[106:]))
	bad := func(what string) error {
		return fmt.Errorf("superblock: %s: %w", what, filesystem.ErrCorrupt)
	}
	switch {
	case sb.sectSize < 512 || sb.sectSize > 32768 || !isPow2Log(uint64(sb.sectSize), b[121]):
		return nil, bad(fmt.Sprintf("sector size %d (log %d)", sb.sectSize, b[121]))
	case sb.blockSize < 512 || sb.blockSize > 65536 || !isPow2Log(uint64(sb.blockSize), b[120]):
		return nil, bad(fmt.Sprintf("block size %d (log %d)", sb.blockSize, b[120]))
	case sb.inodeSize < 256 || sb.inodeSize > 2048 || !isPow2Log(uint64(sb.inodeSize), b[122]):
		return nil, bad(fmt.Sprintf("inode size %d (log %d)", sb.inodeSize, b[122]))
	case sb.inodeSize > sb.blockSize || sb.blockLog-sb.inodeLog != sb.inopblog || inopblock != sb.blockSize/sb.inodeSize:
		return nil, bad(fmt.Sprintf("%d inodes of %d bytes per %d-byte block (log %d)", inopblock, sb.inodeSize, sb.blockSize, sb.inopblog))
	case sb.agcount == 0 || sb.agblocks < 64:
		return nil, bad(fmt.Sprintf("%d allocation groups of %d blocks", sb.agcount, sb.agblocks))
	case sb.agblklog > 31 || uint64(1)<<sb.agblklog < uint64(sb.agblocks) || (sb.agblklog > 0 && uint64(1)<<(sb.agblklog-1) >= uint64(sb.agblocks)):
		return nil, bad(fmt.Sprintf("agblklog %d for %d blocks", sb.agblklog, sb.agblocks))
	case sb.dblocks == 0 || sb.dblocks > uint64(sb.agcount)*uint64(sb.agblocks) || sb.dblocks <= uint64(sb.agcount-1)*uint64(sb.agblocks):
		return nil, bad(fmt.Sprintf("%d blocks in %d groups of %d", sb.dblocks, sb.agcount, sb.agblocks))
	case sb.blockLog+sb.dirBlkLog > 16:
		return nil, bad(fmt.Sprintf("directory block log %d", sb.dirBlkLog))
	case b[126] != 0:
		return nil, bad("mkfs did not finish (sb_inprogress)")
	}
	switch version & 0xf {
	case 5:
		sb.v5 = true
		if len(b) < int(sb.sectSize) {
			return nil, bad("short read")
		}
		if !cksumOK(b[:sb.sectSize], 224) {
			return nil, bad("checksum mismatch")
		}
		sb.incompat = be.Uint32(b[216:])
		sb.ftype = sb.incompat&incompatFtype != 0
		sb.nrext64 = sb.incompat&incompatNrext64 != 0
		sb.metaUUID = sb.uuid
		if sb.incompat&incompatMetaUUID != 0 {
			copy(sb.metaUUID[:], b[248:264])
		}
		if sb.inodeSize < 512 {
			return nil, bad(fmt.Sprintf("inode size %d on a v5 filesystem", sb.inodeSize))
		}
	case 4:
		if version&v4MoreBitsBit != 0 {
			f2 := be.Uint32(b[200:])
			if f2&v4F2Crc != 0 {
				return nil, bad("v4 superblock with the CRC feature")
			}
			sb.ftype = f2&v4F2Ftype != 0
		}
	default:
		return nil, bad(fmt.Sprintf("version %d", version&0xf))
	}
	return sb, nil
}

// features refuses what this reader does not implement, naming it.
func (sb *superblock) features(b []byte) error {
	if !sb.v5 {
		if binary.BigEndian.Uint16(b[100:])&v4DirV2Bit == 0 {
			return fmt.Errorf("xfs: version 1 directories: %w", filesystem.ErrUnsupported)
		}
		return nil
	}
	var names []string
	for _, f := range []struct {
		bit  uint32
		name string
	}{{incompatNeedsRepair, "needsrepair"}, {incompatMetadir, "metadir"}, {incompatZoned, "zoned"}} {
		if sb.incompat&f.bit != 0 {
			names = append(names, f.name)
		}
	}
	known := uint32(incompatKnown | incompatNeedsRepair | incompatMetadir | incompatZoned)
	if u := sb.incompat &^ known; u != 0 {
		names = append(names, fmt.Sprintf("unknown 0x%x", u))
	}
	if len(names) > 0 {
		return fmt.Errorf("xfs: incompatible features %s: %w", strings.Join(names, ", "), filesystem.ErrUnsupported)
	}
	return nil
}

func readSuperblock(dev block.Device) (*superblock, []byte, error) {
	b := make([]byte, 512)
	if _, err := dev.ReadAt(b, 0); err != nil {
		return nil, nil, fmt.Errorf("xfs: read superblock: %w", err)
	}
	if binary.BigEndian.Uint32(b) != sbMagic {
		return nil, nil, fmt.Errorf("xfs: superblock: bad magic: %w", filesystem.ErrCorrupt)
	}
	// The CRC covers the whole sector.
	if ss := int(binary.BigEndian.Uint16(b[102:])); ss > 512 && ss <= 32768 {
		b = make([]byte, ss)
		if _, err := dev.ReadAt(b, 0); err != nil {
			return nil, nil, fmt.Errorf("xfs: read superblock sector: %w", err)
		}
	}
	sb, err := parseSuperblock(b)
	if err != nil {
		return nil, nil, fmt.Errorf("xfs: %w", err)
	}
	return sb, b, nil
}

// Probe reports whether dev holds an XFS filesystem, with its label and
// UUID as blkid prints them. It applies blkid's checks (util-linux's
// xfs_verify_sb), not Open's stricter ones: blkid 2.38 names a superblock
// with a bad checksum xfs, and Open then calls it corrupt.
func Probe(dev block.Device) (filesystem.Info, bool) {
	b := make([]byte, 512)
	if _, err := dev.ReadAt(b, 0); err != nil || !blkidAccepts(b) {
		return filesystem.Info{}, false
	}
	info := filesystem.Info{Type: "xfs"}
	label := b[108:120]
	if i := bytes.IndexByte(label, 0); i >= 0 {
		label = label[:i]
	}
	info.Label = strings.TrimRight(string(label), " \t\n\r\v\f")
	if u := b[32:48]; !bytes.Equal(u, make([]byte, 16)) {
		info.UUID = fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	}
	return info, true
}

// blkidAccepts is util-linux's xfs_verify_sb, checksum aside.
func blkidAccepts(b []byte) bool {
	be := binary.BigEndian
	if be.Uint32(b) != sbMagic {
		return false
	}
	blockSize, blockLog := uint64(be.Uint32(b[4:])), b[120]
	sectSize, sectLog := uint64(be.Uint16(b[102:])), b[121]
	inodeSize, inodeLog := uint64(be.Uint16(b[104:])), b[122]
	dblocks, agblocks, agcount := be.Uint64(b[8:]), uint64(be.Uint32(b[84:])), uint64(be.Uint32(b[88:]))
	rext := uint64(be.Uint32(b[80:])) * blockSize
	switch {
	case agcount == 0,
		sectSize < 512 || sectSize > 32768 || sectLog < 9 || sectLog > 15 || sectSize != 1<<sectLog,
		blockSize < 512 || blockSize > 65536 || blockLog < 9 || blockLog > 16 || blockSize != 1<<blockLog,
		inodeSize < 256 || inodeSize > 2048 || inodeLog < 8 || inodeLog > 11 || inodeSize != 1<<inodeLog,
		int(blockLog)-int(inodeLog) != int(b[123]),
		rext > 1<<30 || rext < 4096,
		b[127] > 100,
		dblocks == 0 || dblocks > agcount*agblocks || dblocks < (agcount-1)*agblocks+64:
		return false
	}
	if be.Uint16(b[100:])&0xf == 5 {
		return be.Uint16(b[100:])&v4MoreBitsBit != 0 && be.Uint32(b[200:])&v4F2Crc != 0
	}
	return true
}

// FS is an open XFS filesystem. It implements filesystem.Volume and is
// safe for concurrent use.
type FS struct {
	dev block.Device
	sb  *superblock

	mu      sync.Mutex
	inodes  map[uint64]*inode
	dirs    map[uint64][]dirent
	dirCost int
}

// Open checks dev's superblock and features and reads the root directory's
// inode.
func Open(dev block.Device) (*FS, error) {
	sb, raw, err := readSuperblock(dev)
	if err != nil {
		return nil, err
	}
	if err := sb.features(raw); err != nil {
		return nil, err
	}
	if sb.dblocks > uint64(dev.Size())>>sb.blockLog {
		return nil, fmt.Errorf("xfs: %d blocks of %d bytes, device has %d bytes: %w", sb.dblocks, sb.blockSize, dev.Size(), filesystem.ErrCorrupt)
	}
	f := &FS{dev: dev, sb: sb, inodes: map[uint64]*inode{}, dirs: map[uint64][]dirent{}}
	root, err := f.inode(sb.rootIno)
	if err != nil {
		return nil, fmt.Errorf("xfs: root directory: %w", err)
	}
	if !root.isDir() {
		return nil, fmt.Errorf("xfs: root inode %d is not a directory: %w", sb.rootIno, filesystem.ErrCorrupt)
	}
	return f, nil
}

// fsbToBlock turns a filesystem block number (AG number in the high bits)
// into a linear block number, checking that count blocks from it stay
// inside one allocation group and the filesystem.
func (sb *superblock) fsbToBlock(fsb, count uint64) (uint64, error) {
	agno := fsb >> sb.agblklog
	agbno := fsb & (1<<sb.agblklog - 1)
	if agno >= uint64(sb.agcount) || agbno+count > uint64(sb.agblocks) || count == 0 {
		return 0, fmt.Errorf("block %d (group %d block %d, %d blocks) outside the filesystem: %w", fsb, agno, agbno, count, filesystem.ErrCorrupt)
	}
	lin := agno*uint64(sb.agblocks) + agbno
	if lin+count > sb.dblocks {
		return 0, fmt.Errorf("block %d (%d blocks) past the filesystem's %d: %w", fsb, count, sb.dblocks, filesystem.ErrCorrupt)
	}
	return lin, nil
}

// inodeOffset is the byte offset of inode ino on the device.
func (sb *superblock) inodeOffset(ino uint64) (int64, error) {
	agino := ino & (1<<(sb.agblklog+sb.inopblog) - 1)
	agno := ino >> (sb.agblklog + sb.inopblog)
	agbno := agino >> sb.inopblog
	if ino == 0 || agno >= uint64(sb.agcount) || agbno >= uint64(sb.agblocks) {
		return 0, fmt.Errorf("inode number %d outside the filesystem: %w", ino, filesystem.ErrCorrupt)
	}
	lin := agno*uint64(sb.agblocks) + agbno
	if lin >= sb.dblocks {
		return 0, fmt.Errorf("inode number %d past the filesystem's end: %w", ino, filesystem.ErrCorrupt)
	}
	return int64(lin<<sb.blockLog) + int64(agino&(1<<sb.inopblog-1))<<sb.inodeLog, nil
}

// readBlocks reads count blocks from the linear block lin.
func (f *FS) readBlocks(buf []byte, lin uint64) error {
	if _, err := f.dev.ReadAt(buf, int64(lin<<f.sb.blockLog)); err != nil {
		return fmt.Errorf("read block %d: %w", lin, err)
	}
	return nil
}

// daddr is the 512-byte sector number v5 headers record for a block.
func (sb *superblock) daddr(lin uint64) uint64 { return lin << (sb.blockLog - 9) }
