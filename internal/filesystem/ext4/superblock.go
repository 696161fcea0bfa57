package ext4

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"

	"guestkit.io/batch/internal/filesystem"
)

// The superblock lives 1024 bytes into the device whatever the block size.
const (
	superblockOffset = 1024
	superblockSize   = 1024
	magic            = 0xEF53
)

// Feature flags (fs/ext4/ext4.h). Only those the reader or the probe
// looks at are named.
const (
	compatHasJournal   = 0x4
	compatSparseSuper2 = 0x200

	roCompatSparseSuper  = 0x1
	roCompatLargeFile    = 0x2
	roCompatBtreeDir     = 0x4
	roCompatHugeFile     = 0x8
	roCompatBigalloc     = 0x200
	roCompatMetadataCsum = 0x400

	incompatCompression = 0x1
	incompatFiletype    = 0x2
	incompatRecover     = 0x4
	incompatJournalDev  = 0x8
	incompatMetaBG      = 0x10
	incompatExtents     = 0x40
	incompat64bit       = 0x80
	incompatMMP         = 0x100
	incompatFlexBG      = 0x200
	incompatEAInode     = 0x400
	incompatDirdata     = 0x1000
	incompatCsumSeed    = 0x2000
	incompatLargedir    = 0x4000
	incompatInlineData  = 0x8000
	incompatEncrypt     = 0x10000
	incompatCasefold    = 0x20000

	// flagTestFilesys marks a filesystem for ext4dev (s_flags).
	flagTestFilesys = 0x4
)

// incompatRead is every incompatible feature the reader implements; any
// other bit makes Open fail with ErrUnsupported. RECOVER is checked apart:
// it is fine when the journal holds nothing to replay.
const incompatRead = incompatFiletype | incompatRecover | incompatMetaBG | incompatExtents |
	incompat64bit | incompatMMP | incompatFlexBG | incompatEAInode | incompatCsumSeed |
	incompatLargedir | incompatInlineData | incompatEncrypt | incompatCasefold

var incompatNames = map[uint32]string{
	incompatCompression: "compression",
	incompatJournalDev:  "journal_dev",
	incompatDirdata:     "dirdata",
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// crc32cRaw is the kernel's ext4_chksum: crc32c without the final
// inversion, seeded by the caller.
func crc32cRaw(seed uint32, b []byte) uint32 {
	return ^crc32.Update(^seed, crc32c, b)
}

type superblock struct {
	inodesCount    uint32
	blocksCount    uint64
	firstDataBlock uint32
	logBlockSize   uint32
	blockSize      uint32
	logCluster     uint32
	blocksPerGroup uint32
	clustersPerGrp uint32
	inodesPerGroup uint32
	creatorOS      uint32
	revLevel       uint32
	inodeSize      uint32
	compat         uint32
	incompat       uint32
	roCompat       uint32
	uuid           [16]byte
	label          [16]byte
	journalInum    uint32
	descSize       uint32
	firstMetaBG    uint32
	flags          uint32
	backupBGs      [2]uint32
	checksumSeed   uint32
	checksum       uint32
	checksumOK     bool // metadata_csum is off, or the stored checksum matches

	// Derived by check.
	groupBlocks  uint64 // blocks per group
	groups       uint64
	descPerBlock uint64
}

func parseSuperblock(b []byte) (*superblock, error) {
	if len(b) < superblockSize {
		return nil, fmt.Errorf("superblock: %d bytes: %w", len(b), filesystem.ErrCorrupt)
	}
	le := binary.LittleEndian
	if le.Uint16(b[0x38:]) != magic {
		return nil, fmt.Errorf("superblock at byte %d: bad magic %#04x: %w", superblockOffset, le.Uint16(b[0x38:]), filesystem.ErrCorrupt)
	}
	sb := &superblock{
		inodesCount:    le.Uint32(b[0x00:]),
		blocksCount:    uint64(le.Uint32(b[0x04:])),
		firstDataBlock: le.Uint32(b[0x14:]),
		logBlockSize:   le.Uint32(b[0x18:]),
		logCluster:     le.Uint32(b[0x1C:]),
		blocksPerGroup: le.Uint32(b[0x20:]),
		clustersPerGrp: le.Uint32(b[0x24:]),
		inodesPerGroup: le.Uint32(b[0x28:]),
		creatorOS:      le.Uint32(b[0x48:]),
		revLevel:       le.Uint32(b[0x4C:]),
		inodeSize:      128,
		compat:         le.Uint32(b[0x5C:]),
		incompat:       le.Uint32(b[0x60:]),
		roCompat:       le.Uint32(b[0x64:]),
		journalInum:    le.Uint32(b[0xE0:]),
		descSize:       32,
		firstMetaBG:    le.Uint32(b[0x104:]),
		flags:          le.Uint32(b[0x160:]),
		backupBGs:      [2]uint32{le.Uint32(b[0x24C:]), le.Uint32(b[0x250:])},
		checksumSeed:   le.Uint32(b[0x270:]),
		checksum:       le.Uint32(b[0x3FC:]),
	}
	copy(sb.uuid[:], b[0x68:0x78])
	copy(sb.label[:], b[0x78:0x88])
	if sb.revLevel >= 1 {
		sb.inodeSize = uint32(le.Uint16(b[0x58:]))
	}
	if sb.incompat&incompat64bit != 0 {
		sb.blocksCount |= uint64(le.Uint32(b[0x150:])) << 32
		sb.descSize = uint32(le.Uint16(b[0xFE:]))
	}
	sb.checksumOK = true
	if sb.roCompat&roCompatMetadataCsum != 0 {
		sb.checksumOK = crc32cRaw(^uint32(0), b[:0x3FC]) == sb.checksum
	}
	return sb, nil
}

// blkidType names the filesystem the way libblkid's ext prober does
// (superblocks/ext.c): jbd for an external journal, ext4dev for a test
// filesystem, then ext4 if ext3 would not understand a feature, ext3 if it
// has a journal, else ext2. It returns "" when no prober claims it.
func (sb *superblock) blkidType() string {
	const (
		ext2IncompatSupp = incompatFiletype | incompatMetaBG
		ext3IncompatSupp = ext2IncompatSupp | incompatRecover
		ext3RoCompatSupp = roCompatSparseSuper | roCompatLargeFile | roCompatBtreeDir
	)
	fc, fi, frc := sb.compat, sb.incompat, sb.roCompat
	switch {
	case fi&incompatJournalDev != 0:
		return "jbd"
	case sb.flags&flagTestFilesys != 0:
		return "ext4dev"
	case frc&^ext3RoCompatSupp != 0 || fi&^ext3IncompatSupp != 0:
		return "ext4"
	case fc&compatHasJournal != 0:
		return "ext3"
	case fi&^ext2IncompatSupp == 0:
		return "ext2"
	}
	return ""
}

// blkidLabel is s_volume_name up to its NUL, without trailing white space
// (blkid_probe_set_label).
func (sb *superblock) blkidLabel() string {
	l := string(sb.label[:])
	if i := strings.IndexByte(l, 0); i >= 0 {
		l = l[:i]
	}
	return strings.TrimRight(l, " \t\n\v\f\r")
}

// blkidUUID is the UUID in blkid's spelling; blkid sets none when it is
// all zeroes.
func (sb *superblock) blkidUUID() string {
	if sb.uuid == [16]byte{} {
		return ""
	}
	u := sb.uuid
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// check validates the geometry against the kernel's own mount checks
// (ext4_fill_super) and the device size, and computes what the reader
// derives from it. It returns ErrUnsupported for features it cannot read.
func (sb *superblock) check(devSize int64) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("superblock: "+format+": %w", append(a, filesystem.ErrCorrupt)...)
	}
	if !sb.checksumOK {
		return bad("checksum mismatch (metadata_csum)")
	}
	if sb.logBlockSize > 6 {
		return bad("block size 2^(10+%d)", sb.logBlockSize)
	}
	sb.blockSize = 1024 << sb.logBlockSize
	bs := uint64(sb.blockSize)
	if sb.revLevel >= 1 {
		if sb.inodeSize < 128 || uint64(sb.inodeSize) > bs || sb.inodeSize&(sb.inodeSize-1) != 0 {
			return bad("inode size %d", sb.inodeSize)
		}
	}
	if sb.incompat&incompat64bit != 0 {
		if sb.descSize < 64 || sb.descSize > 1024 || sb.descSize&(sb.descSize-1) != 0 {
			return bad("group descriptor size %d", sb.descSize)
		}
	}
	if unknown := sb.incompat &^ incompatRead; unknown != 0 {
		names := []string{}
		for bit := uint32(1); bit != 0; bit <<= 1 {
			if unknown&bit != 0 {
				if n, ok := incompatNames[bit]; ok {
					names = append(names, n)
				} else {
					names = append(names, fmt.Sprintf("incompat %#x", bit))
				}
			}
		}
		return fmt.Errorf("ext4 feature %s: %w", strings.Join(names, ", "), filesystem.ErrUnsupported)
	}
	bpg := uint64(sb.blocksPerGroup)
	if bpg == 0 || bpg > 8*bs && sb.roCompat&roCompatBigalloc == 0 {
		return bad("%d blocks per group", bpg)
	}
	if sb.roCompat&roCompatBigalloc != 0 {
		if sb.logCluster < sb.logBlockSize || sb.logCluster-sb.logBlockSize > 16 {
			return bad("cluster size 2^(10+%d)", sb.logCluster)
		}
		if uint64(sb.clustersPerGrp) > 8*bs || uint64(sb.clustersPerGrp)<<(sb.logCluster-sb.logBlockSize) != bpg {
			return bad("%d clusters per group of %d blocks", sb.clustersPerGrp, bpg)
		}
	}
	if sb.inodesPerGroup == 0 || uint64(sb.inodesPerGroup) > 8*bs ||
		uint64(sb.inodesPerGroup)*uint64(sb.inodeSize) < bs {
		return bad("%d inodes per group", sb.inodesPerGroup)
	}
	if sb.firstDataBlock > 1 || uint64(sb.firstDataBlock) >= sb.blocksCount {
		return bad("first data block %d of %d", sb.firstDataBlock, sb.blocksCount)
	}
	if sb.blocksCount > uint64(devSize)/bs {
		return bad("%d blocks of %d bytes exceed the device's %d bytes", sb.blocksCount, bs, devSize)
	}
	groups := (sb.blocksCount - uint64(sb.firstDataBlock) + bpg - 1) / bpg
	if groups*uint64(sb.inodesPerGroup) != uint64(sb.inodesCount) {
		return bad("%d groups of %d inodes, but %d inodes", groups, sb.inodesPerGroup, sb.inodesCount)
	}
	sb.groupBlocks = bpg
	sb.groups = groups
	sb.descPerBlock = bs / uint64(sb.descSize)
	return nil
}
