// Package btrfs reads a btrfs filesystem from its bytes: the superblock,
// the chunk tree that maps logical addresses to the device, the root tree
// of subvolumes and each subvolume's file tree, with zlib, zstd and LZO
// compressed extents. Only single-device filesystems are read (single,
// DUP and mirrored profiles); anything else is ErrUnsupported, so that the
// direct backend falls back to the appliance.
//
// Every tree block is checked before use: its checksum, its address, its
// filesystem id, its level, its item table, and that its keys lie inside
// the range its parent promises, so that a walk visits each key once and
// ends. Caches (tree blocks, inodes, directory lookups, decompressed
// extents) are bounded.
//
// Not read: file data checksums (the csum tree is not consulted), an
// unreplayed log tree (ErrUnsupported: the kernel would replay it on
// mount, and it holds the latest fsync'd writes), striped profiles,
// zoned and extent-tree-v2 filesystems, the raid stripe tree.
package btrfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/crypto/blake2b"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/filesystem"
)

const (
	superOffset  = 64 << 10
	superSize    = 4096
	magic        = "_BHRfS_M"
	maxLevel     = 8 // BTRFS_MAX_LEVEL
	headerSize   = 101
	keySize      = 17
	itemSize     = 25 // a leaf's item: key, data offset, data size
	keyPtrSize   = 33 // a node's pointer: key, block, generation
	sysArrayMax  = 2048
	maxChunks    = 1 << 18
	cacheBytes   = 8 << 20 // tree blocks kept in memory
	maxNameLen   = 255
	maxDirCount  = 1 << 18 // entries of one directory (about 25 MiB of entries)
	maxLinkLen   = 4095
	maxCompBytes = 128 << 10 // BTRFS_MAX_COMPRESSED and BTRFS_MAX_UNCOMPRESSED
)

// Object ids and item types (ctree.h).
const (
	rootTreeObjectID    = 1
	fsTreeObjectID      = 5
	rootTreeDirObjectID = 6
	firstFreeObjectID   = 256
	lastFreeObjectID    = ^uint64(0) - 255 // -256
	emptySubvolDirID    = 2
	firstChunkTreeID    = 256

	typeInodeItem   = 1
	typeInodeRef    = 12
	typeInodeExtref = 13
	typeXattrItem   = 24
	typeDirItem     = 84
	typeDirIndex    = 96
	typeExtentData  = 108
	typeRootItem    = 132
	typeRootBackref = 144
	typeRootRef     = 156
	typeChunkItem   = 228
)

// Incompatible features (ctree.h). Everything else is unknown, so refused.
const (
	incompatMixedBackref  = 1 << 0
	incompatDefaultSubvol = 1 << 1
	incompatMixedGroups   = 1 << 2
	incompatCompressLZO   = 1 << 3
	incompatCompressZSTD  = 1 << 4
	incompatBigMetadata   = 1 << 5
	incompatExtendedIref  = 1 << 6
	incompatRAID56        = 1 << 7
	incompatSkinnyMeta    = 1 << 8
	incompatNoHoles       = 1 << 9
	incompatMetadataUUID  = 1 << 10
	incompatRAID1C34      = 1 << 11
	incompatZoned         = 1 << 12
	incompatExtentTreeV2  = 1 << 13
	incompatStripeTree    = 1 << 14
	incompatSimpleQuota   = 1 << 16

	incompatKnown = incompatMixedBackref | incompatDefaultSubvol | incompatMixedGroups |
		incompatCompressLZO | incompatCompressZSTD | incompatBigMetadata |
		incompatExtendedIref | incompatRAID56 | incompatSkinnyMeta | incompatNoHoles |
		incompatMetadataUUID | incompatRAID1C34 | incompatSimpleQuota
)

// Checksum algorithms of the superblock's csum_type.
const (
	csumCRC32C = 0
	csumXXHash = 1
	csumSHA256 = 2
	csumBlake2 = 3
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func corrupt(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, filesystem.ErrCorrupt)...)
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, filesystem.ErrUnsupported)...)
}

// superblock is what the reader keeps of the primary superblock.
type superblock struct {
	csumType       uint16
	fsid           [16]byte
	metaFSID       [16]byte // what tree blocks carry: fsid, or metadata_uuid
	generation     uint64
	root           uint64
	chunkRoot      uint64
	chunkRootGen   uint64
	logRoot        uint64
	rootLevel      uint8
	chunkRootLevel uint8
	numDevices     uint64
	sectorSize     uint32
	nodeSize       uint32
	incompat       uint64
	devid          uint64
	label          string
	sysArray       []byte
}

func csumSize(typ uint16) int {
	switch typ {
	case csumCRC32C:
		return 4
	case csumXXHash:
		return 8
	case csumSHA256, csumBlake2:
		return 32
	}
	return 0
}

// checksum returns the checksum of data as btrfs stores it (little-endian
// for the integer ones), or nil for an unknown algorithm.
func checksum(typ uint16, data []byte) []byte {
	switch typ {
	case csumCRC32C:
		return binary.LittleEndian.AppendUint32(nil, crc32.Checksum(data, castagnoli))
	case csumXXHash:
		return binary.LittleEndian.AppendUint64(nil, xxhash.Sum64(data))
	case csumSHA256:
		s := sha256.Sum256(data)
		return s[:]
	case csumBlake2:
		s := blake2b.Sum256(data)
		return s[:]
	}
	return nil
}

// readSuper reads and checks the primary superblock. The error wraps
// ErrCorrupt (or ErrUnsupported) only once the magic matched: before
// that, the device simply holds no btrfs.
func readSuper(dev block.Device) (*superblock, error) {
	if dev.Size() < superOffset+superSize {
		return nil, errNotBtrfs
	}
	b := make([]byte, superSize)
	if _, err := dev.ReadAt(b, superOffset); err != nil {
		return nil, fmt.Errorf("btrfs superblock at %d: %w", superOffset, err)
	}
	if string(b[0x40:0x48]) != magic {
		return nil, errNotBtrfs
	}
	le := binary.LittleEndian
	sb := &superblock{csumType: le.Uint16(b[0xc4:])}
	n := csumSize(sb.csumType)
	if n == 0 {
		return nil, unsupported("btrfs superblock: checksum type %d", sb.csumType)
	}
	if !bytes.Equal(checksum(sb.csumType, b[0x20:])[:n], b[:n]) {
		return nil, corrupt("btrfs superblock at %d: checksum mismatch", superOffset)
	}
	copy(sb.fsid[:], b[0x20:0x30])
	if bytenr := le.Uint64(b[0x30:]); bytenr != superOffset {
		return nil, corrupt("btrfs superblock at %d: says it is at %d", superOffset, bytenr)
	}
	sb.generation = le.Uint64(b[0x48:])
	sb.root = le.Uint64(b[0x50:])
	sb.chunkRoot = le.Uint64(b[0x58:])
	sb.logRoot = le.Uint64(b[0x60:])
	sb.numDevices = le.Uint64(b[0x88:])
	sb.sectorSize = le.Uint32(b[0x90:])
	sb.nodeSize = le.Uint32(b[0x94:])
	sysSize := le.Uint32(b[0xa0:])
	sb.chunkRootGen = le.Uint64(b[0xa4:])
	sb.incompat = le.Uint64(b[0xbc:])
	sb.rootLevel = b[0xc6]
	sb.chunkRootLevel = b[0xc7]
	sb.devid = le.Uint64(b[0xc9:])
	label := b[0x12b : 0x12b+256]
	if i := bytes.IndexByte(label, 0); i >= 0 {
		label = label[:i]
	}
	sb.label = string(label)
	sb.metaFSID = sb.fsid
	if sb.incompat&incompatMetadataUUID != 0 {
		copy(sb.metaFSID[:], b[0x23b:0x24b])
	}

	switch {
	case !pow2(sb.sectorSize) || sb.sectorSize < 4096 || sb.sectorSize > 64<<10:
		return nil, corrupt("btrfs superblock: sector size %d", sb.sectorSize)
	case !pow2(sb.nodeSize) || sb.nodeSize < sb.sectorSize || sb.nodeSize > 64<<10:
		return nil, corrupt("btrfs superblock: node size %d", sb.nodeSize)
	case sysSize > sysArrayMax:
		return nil, corrupt("btrfs superblock: system chunk array of %d bytes", sysSize)
	case sb.rootLevel >= maxLevel || sb.chunkRootLevel >= maxLevel:
		return nil, corrupt("btrfs superblock: tree levels %d and %d", sb.rootLevel, sb.chunkRootLevel)
	case sb.numDevices == 0:
		return nil, corrupt("btrfs superblock: no devices")
	}
	sb.sysArray = append([]byte(nil), b[0x32b:0x32b+sysSize]...)
	return sb, nil
}

func pow2(x uint32) bool { return x != 0 && x&(x-1) == 0 }

var errNotBtrfs = errors.New("no btrfs superblock")

// uuidString spells a UUID as blkid does.
func uuidString(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Probe reports whether dev holds a btrfs filesystem, with its label and
// UUID as `blkid -p` prints them. Like blkid (util-linux 2.38, the
// appliance's), it looks at the magic only; Open checks the checksum.
func Probe(dev block.Device) (filesystem.Info, bool) {
	if dev.Size() < superOffset+superSize {
		return filesystem.Info{}, false
	}
	b := make([]byte, superSize)
	if _, err := dev.ReadAt(b, superOffset); err != nil || string(b[0x40:0x48]) != magic {
		return filesystem.Info{}, false
	}
	label := b[0x12b : 0x12b+256]
	if i := bytes.IndexByte(label, 0); i >= 0 {
		label = label[:i]
	}
	return filesystem.Info{
		Type:  "btrfs",
		Label: strings.TrimRight(string(label), " \t\n\r"),
		UUID:  uuidString([16]byte(b[0x20:0x30])),
	}, true
}

// FS is one open btrfs filesystem. It is safe for concurrent use.
type FS struct {
	dev    block.Device
	sb     *superblock
	chunks []chunk
	nodes  *lru[uint64, *node]
	roots  *lru[uint64, rootInfo]
	// extents holds recently decompressed extents, so that small reads
	// through a compressed file decompress each extent once.
	extents  *lru[extentKey, []byte]
	inodes   *lru[ref, inode]
	dentries *lru[dentKey, ref]
	zstd     sync.Pool
}

// Open reads the superblock and the chunk tree of the btrfs filesystem on
// dev.
func Open(dev block.Device) (*FS, error) {
	sb, err := readSuper(dev)
	if err == errNotBtrfs {
		return nil, fmt.Errorf("btrfs: %w: %w", err, filesystem.ErrCorrupt)
	}
	if err != nil {
		return nil, err
	}
	if unknown := sb.incompat &^ incompatKnown; unknown != 0 {
		return nil, unsupported("btrfs: incompatible features %#x", unknown)
	}
	if sb.numDevices != 1 {
		return nil, unsupported("btrfs: %d devices (only single-device filesystems are read)", sb.numDevices)
	}
	if sb.logRoot != 0 {
		// The kernel replays this log on mount; without it recent
		// fsync'd writes (package databases) would be missing.
		return nil, unsupported("btrfs: log tree at %d not replayed (not cleanly unmounted)", sb.logRoot)
	}
	nodes := cacheBytes / int(sb.nodeSize)
	f := &FS{
		dev:      dev,
		sb:       sb,
		nodes:    newLRU[uint64, *node](nodes),
		roots:    newLRU[uint64, rootInfo](1024),
		extents:  newLRU[extentKey, []byte](32),
		inodes:   newLRU[ref, inode](8192),
		dentries: newLRU[dentKey, ref](8192),
	}
	boot, err := parseSysArray(sb)
	if err != nil {
		return nil, err
	}
	f.chunks = boot
	chunks, err := f.readChunkTree()
	if err != nil {
		return nil, err
	}
	f.chunks = chunks
	return f, nil
}

// rootTree is the tree of trees, from the superblock.
func (f *FS) rootTree() treeRoot {
	return treeRoot{bytenr: f.sb.root, level: f.sb.rootLevel, gen: f.sb.generation}
}
