// Package ext4 reads ext2, ext3 and ext4 filesystems from their bytes:
// block maps and extent trees, htree directories (read as their linear
// leaf blocks, as the kernel's readdir does), inline data, 64-bit group
// descriptors, flex_bg, meta_bg, bigalloc and metadata_csum (the
// superblock and inode checksums are verified).
//
// It was written rather than taken from
// github.com/masahiro331/go-ext4-filesystem (Trivy's): that one has no
// inline data, reports no owners (Sys is nil), resolves every path from the
// root by reading each entry's inode, and builds a map of every block of a
// file before reading it.
//
// A filesystem that needs recovery has its journal replayed in memory, as
// the kernel replays it at mount (see journal.go).
//
// What it does not read fails with filesystem.ErrUnsupported naming the
// feature, so that the caller can fall back to the appliance: encrypted and
// casefolded directories, encrypted files, compression, dirdata, external
// journals and fast commits to replay.
package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/filesystem"
)

// Probe says what blkid -p would say about dev when it holds an ext2, ext3
// or ext4 superblock (or an ext4dev, or an external journal, "jbd"). Like
// the blkid of Debian 12 (util-linux 2.38), which the appliance runs, it
// does not check the superblock's metadata_csum checksum (blkid 2.39 and
// later ignore a superblock whose checksum is wrong); Open does check it,
// as the kernel does.
func Probe(dev block.Device) (filesystem.Info, bool) {
	b, err := readSuperblock(dev)
	if err != nil {
		return filesystem.Info{}, false
	}
	sb, err := parseSuperblock(b)
	if err != nil {
		return filesystem.Info{}, false
	}
	t := sb.blkidType()
	if t == "" {
		return filesystem.Info{}, false
	}
	return filesystem.Info{Type: t, Label: sb.blkidLabel(), UUID: sb.blkidUUID()}, true
}

// readSuperblock reads the superblock's bytes with one read from the start
// of the device, 4 KiB long (aligned to the usual block size) when the
// device is that large.
func readSuperblock(dev block.Device) ([]byte, error) {
	if dev.Size() < superblockOffset+superblockSize {
		return nil, fmt.Errorf("device of %d bytes has no superblock: %w", dev.Size(), filesystem.ErrCorrupt)
	}
	b := make([]byte, min(dev.Size(), 4096))
	if _, err := dev.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("read superblock: %w", err)
	}
	return b[superblockOffset : superblockOffset+superblockSize], nil
}

// Bounds on what hostile metadata can make the reader hold or walk.
const (
	maxExtentDepth     = 5        // EXT4_MAX_EXTENT_DEPTH
	maxDirSize         = 64 << 20 // bytes of one directory
	maxDirEntries      = 1 << 20  // entries of one directory
	maxSymlink         = 4096     // PATH_MAX
	inodeCacheSize     = 1 << 15
	dirCacheBytes      = 32 << 20 // names and entries held by the directory cache
	maxReadChunk       = 1 << 20  // bytes read from the device at once
	rootIno            = 2
	osLinux            = 0
	inodeChecksumLoOff = 0x7C
	inodeChecksumHiOff = 0x82
)

// FS is an ext2, ext3 or ext4 filesystem. It implements filesystem.Volume
// and is safe for concurrent use: metadata it has read (group descriptors,
// inodes, directories) is cached, since the filesystem is read-only.
type FS struct {
	dev      block.Device
	sb       *superblock
	csumSeed uint32 // metadata_csum seed for inode checksums

	mu       sync.Mutex
	tables   map[uint64][]uint64 // descriptor block index → inode table block of each of its groups
	inodes   map[uint32]*inode
	dirs     map[uint32][]dirent
	dirBytes int // memory held by dirs, roughly

	// replay holds the blocks that a needs_recovery journal rewrites; set
	// once by Open.
	replay map[uint64]journalCopy
}

var _ filesystem.Volume = (*FS)(nil)

// Open reads the superblock of dev and checks that the reader can read the
// filesystem: its geometry, its features and its root directory.
func Open(dev block.Device) (*FS, error) {
	b, err := readSuperblock(dev)
	if err != nil {
		return nil, fmt.Errorf("ext4: %w", err)
	}
	sb, err := parseSuperblock(b)
	if err != nil {
		return nil, fmt.Errorf("ext4: %w", err)
	}
	if err := sb.check(dev.Size()); err != nil {
		return nil, fmt.Errorf("ext4: %w", err)
	}
	f := &FS{
		dev:    dev,
		sb:     sb,
		tables: map[uint64][]uint64{},
		inodes: map[uint32]*inode{},
		dirs:   map[uint32][]dirent{},
	}
	if sb.incompat&incompatCsumSeed != 0 {
		f.csumSeed = sb.checksumSeed
	} else {
		f.csumSeed = crc32cRaw(^uint32(0), sb.uuid[:])
	}
	if sb.incompat&incompatRecover != 0 {
		if err := f.replayJournal(); err != nil {
			return nil, fmt.Errorf("ext4: %w", err)
		}
		// What was read to find the journal was read without it.
		clear(f.tables)
		clear(f.inodes)
	}
	root, err := f.inode(rootIno)
	if err != nil {
		return nil, fmt.Errorf("ext4: root directory: %w", err)
	}
	if !root.isDir() {
		return nil, fmt.Errorf("ext4: root inode has mode %#o: %w", root.mode, filesystem.ErrCorrupt)
	}
	return f, nil
}

// readBlocks reads len(p)/blocksize blocks from block blk, checking that
// they are inside the filesystem (and so the device). what and id name the
// structure in an error ("data of inode", 12).
func (f *FS) readBlocks(p []byte, blk uint64, what string, id uint64) error {
	bs := uint64(f.sb.blockSize)
	n := uint64(len(p)) / bs
	if err := f.checkBlocks(blk, n, what, id); err != nil {
		return err
	}
	if _, err := f.dev.ReadAt(p, int64(blk*bs)); err != nil {
		return fmt.Errorf("read %s %d at block %d: %w", what, id, blk, err)
	}
	if len(f.replay) > 0 {
		return f.patchReplayed(p, blk)
	}
	return nil
}

func (f *FS) checkBlocks(blk, n uint64, what string, id uint64) error {
	if blk <= uint64(f.sb.firstDataBlock) || blk >= f.sb.blocksCount || n > f.sb.blocksCount-blk {
		return fmt.Errorf("%s %d at block %d (+%d): outside the filesystem's %d blocks: %w", what, id, blk, n, f.sb.blocksCount, filesystem.ErrCorrupt)
	}
	return nil
}

// groupHasSuper is ext4_bg_has_super: whether group holds a superblock
// backup (and so, without meta_bg, a descriptor table copy).
func (sb *superblock) groupHasSuper(group uint64) bool {
	if group == 0 {
		return true
	}
	if sb.compat&compatSparseSuper2 != 0 {
		return group == uint64(sb.backupBGs[0]) || group == uint64(sb.backupBGs[1])
	}
	if group <= 1 || sb.roCompat&roCompatSparseSuper == 0 {
		return true
	}
	if group&1 == 0 {
		return false
	}
	for _, base := range []uint64{3, 5, 7} {
		n := base
		for n < group {
			n *= base
		}
		if n == group {
			return true
		}
	}
	return false
}

// descriptorBlock is the kernel's descriptor_loc: where descriptor block nr
// lives, in the first block group's table or, with meta_bg, in the first
// group of its meta group.
func (sb *superblock) descriptorBlock(nr uint64) uint64 {
	logicalSB := uint64(superblockOffset / sb.blockSize)
	if sb.incompat&incompatMetaBG == 0 || nr < uint64(sb.firstMetaBG) {
		return logicalSB + nr + 1
	}
	bg := sb.descPerBlock * nr
	hasSuper := uint64(0)
	if sb.groupHasSuper(bg) {
		hasSuper = 1
	}
	if sb.blockSize == 1024 && nr == 0 && sb.firstDataBlock == 0 {
		hasSuper++
	}
	return hasSuper + bg*sb.groupBlocks + uint64(sb.firstDataBlock)
}

// inodeTable returns the first block of group's inode table, reading and
// caching the descriptor block that holds it.
func (f *FS) inodeTable(group uint64) (uint64, error) {
	sb := f.sb
	nr := group / sb.descPerBlock
	f.mu.Lock()
	t, ok := f.tables[nr]
	f.mu.Unlock()
	if !ok {
		blk := sb.descriptorBlock(nr)
		b := make([]byte, sb.blockSize)
		if err := f.readBlocks(b, blk, "group descriptor block", nr); err != nil {
			return 0, err
		}
		tableBlocks := (uint64(sb.inodesPerGroup)*uint64(sb.inodeSize) + uint64(sb.blockSize) - 1) / uint64(sb.blockSize)
		t = make([]uint64, sb.descPerBlock)
		for i := range t {
			d := b[uint64(i)*uint64(sb.descSize):]
			it := uint64(binary.LittleEndian.Uint32(d[0x08:]))
			if sb.descSize >= 64 {
				it |= uint64(binary.LittleEndian.Uint32(d[0x28:])) << 32
			}
			t[i] = it
			if g := nr*sb.descPerBlock + uint64(i); g < sb.groups {
				if err := f.checkBlocks(it, tableBlocks, "inode table of group", g); err != nil {
					return 0, err
				}
			}
		}
		f.mu.Lock()
		f.tables[nr] = t
		f.mu.Unlock()
	}
	return t[group%sb.descPerBlock], nil
}

// pathError is the error every Volume method returns.
func pathError(op, name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == name {
		return err
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}
