// Package squashfs reads squashfs 4.0 filesystems (gzip, xz, zstd, lz4
// and lzo compression) as Linux shows them: owners from the id table,
// symlinks, device nodes, fragments and sparse blocks; extended
// attributes are ignored.
//
// It is written here rather than taken from go-diskfs's reader, which
// decompresses without an output bound, reads whole tables at open and
// does not tell a corrupt image from an unsupported one. Every metadata
// block decompresses into at most 8 KiB and every data block into at most
// the block size; directories, block lists and symlinks are bounded too.
package squashfs

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"sync"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/filesystem"
)

const (
	magic       = 0x73717368 // "hsqs"
	metaSize    = 8192
	invalidFrag = 0xffffffff

	flagCompressorOptions = 0x0400

	maxBlockSize = 1 << 20
	minBlockSize = 4096

	// maxDirListing bounds the bytes of one directory's listing (about
	// 200,000 entries), maxBlocks a file's block list (512 GiB of 128 KiB
	// blocks), maxSymlink a link target, as the kernel does (PAGE_SIZE).
	maxDirListing = 8 << 20
	maxBlocks     = 1 << 22
	maxSymlink    = 4096

	maxMetaCache  = 1024 // 8 MiB of metadata blocks
	maxBlockCache = 8
	maxDirCache   = 64
)

// superblock is squashfs 4.0's superblock.
type superblock struct {
	inodes      uint32
	mtime       uint32
	blockSize   uint32
	fragments   uint32
	compressor  uint16
	blockLog    uint16
	flags       uint16
	ids         uint16
	major       uint16
	minor       uint16
	root        uint64
	bytesUsed   uint64
	idTable     uint64
	xattrTable  uint64
	inodeTable  uint64
	dirTable    uint64
	fragTable   uint64
	exportTable uint64
}

func parseSuper(b []byte) superblock {
	le := binary.LittleEndian
	return superblock{
		inodes: le.Uint32(b[4:]), mtime: le.Uint32(b[8:]), blockSize: le.Uint32(b[12:]),
		fragments: le.Uint32(b[16:]), compressor: le.Uint16(b[20:]), blockLog: le.Uint16(b[22:]),
		flags: le.Uint16(b[24:]), ids: le.Uint16(b[26:]), major: le.Uint16(b[28:]), minor: le.Uint16(b[30:]),
		root: le.Uint64(b[32:]), bytesUsed: le.Uint64(b[40:]), idTable: le.Uint64(b[48:]),
		xattrTable: le.Uint64(b[56:]), inodeTable: le.Uint64(b[64:]), dirTable: le.Uint64(b[72:]),
		fragTable: le.Uint64(b[80:]), exportTable: le.Uint64(b[88:]),
	}
}

// Probe says whether dev holds a squashfs 4 filesystem, as blkid does
// (blkid gives squashfs neither label nor UUID).
func Probe(dev block.Device) (filesystem.Info, bool) {
	b := make([]byte, 96)
	if _, err := dev.ReadAt(b, 0); err != nil {
		return filesystem.Info{}, false
	}
	if binary.LittleEndian.Uint32(b) != magic || binary.LittleEndian.Uint16(b[28:]) < 4 {
		return filesystem.Info{}, false
	}
	return filesystem.Info{Type: "squashfs"}, true
}

// FS is a squashfs filesystem. It is safe for concurrent use.
type FS struct {
	dev        block.Device
	sb         superblock
	size       int64 // bytes_used: no structure lies past it
	decompress decompressor
	ids        []uint32
	root       *inode

	zerosOnce sync.Once
	zeros     []byte

	mu         sync.Mutex
	metaCache  map[int64]metaBlock
	blockCache map[int64][]byte
	blockOrder []int64
	dirCache   map[dirKey][]entry
}

var _ filesystem.Volume = (*FS)(nil)

func corrupt(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, filesystem.ErrCorrupt)...)
}

// Open reads the superblock, the compressor options, the id table and the
// root inode of dev, checking them as the kernel does at mount.
func Open(dev block.Device) (*FS, error) {
	b := make([]byte, 96)
	if _, err := dev.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("squashfs: superblock: %w", corruptEOF(err))
	}
	if binary.LittleEndian.Uint32(b) != magic {
		return nil, corrupt("squashfs: superblock: bad magic %#x", binary.LittleEndian.Uint32(b))
	}
	sb := parseSuper(b)
	switch {
	case sb.major != 4 || sb.minor != 0:
		return nil, fmt.Errorf("squashfs: version %d.%d: %w", sb.major, sb.minor, filesystem.ErrUnsupported)
	case sb.blockSize < minBlockSize || sb.blockSize > maxBlockSize || sb.blockSize&(sb.blockSize-1) != 0 || 1<<sb.blockLog != sb.blockSize:
		return nil, corrupt("squashfs: superblock: block size %d, log %d", sb.blockSize, sb.blockLog)
	case sb.bytesUsed > uint64(dev.Size()) || sb.bytesUsed < 96:
		return nil, corrupt("squashfs: superblock: %d bytes used on a device of %d", sb.bytesUsed, dev.Size())
	case sb.inodeTable >= sb.dirTable || sb.dirTable >= sb.bytesUsed || sb.idTable >= sb.bytesUsed:
		return nil, corrupt("squashfs: superblock: tables at inode %d, directory %d, id %d", sb.inodeTable, sb.dirTable, sb.idTable)
	case sb.root&0xffff >= metaSize:
		return nil, corrupt("squashfs: superblock: root inode offset %d", sb.root&0xffff)
	case sb.ids == 0:
		return nil, corrupt("squashfs: superblock: no ids")
	}
	f := &FS{
		dev:        dev,
		sb:         sb,
		size:       int64(sb.bytesUsed),
		metaCache:  map[int64]metaBlock{},
		blockCache: map[int64][]byte{},
		dirCache:   map[dirKey][]entry{},
	}
	// The options are read with the compressor's defaults, then choose
	// the decompressor (or refuse a filter it cannot undo).
	var err error
	if f.decompress, err = newDecompressor(sb.compressor, nil); err != nil {
		return nil, fmt.Errorf("squashfs: %w", err)
	}
	if sb.flags&flagCompressorOptions != 0 {
		mb, err := f.meta(96, 96)
		if err != nil {
			return nil, fmt.Errorf("squashfs: compressor options: %w", err)
		}
		if f.decompress, err = newDecompressor(sb.compressor, mb.data); err != nil {
			return nil, fmt.Errorf("squashfs: %w", err)
		}
	}
	if err := f.readIDs(); err != nil {
		return nil, fmt.Errorf("squashfs: id table: %w", err)
	}
	if f.root, err = f.inode(sb.root); err != nil {
		return nil, fmt.Errorf("squashfs: root inode: %w", err)
	}
	if !f.root.isDir() {
		return nil, corrupt("squashfs: root inode is of type %d", f.root.typ)
	}
	return f, nil
}

// Info is what blkid says about the filesystem.
func (f *FS) Info() filesystem.Info { return filesystem.Info{Type: "squashfs"} }

// readIDs reads the id table: its index of metadata block positions at
// idTable, then the blocks.
func (f *FS) readIDs() error {
	n := int(f.sb.ids)
	blocks := (n*4 + metaSize - 1) / metaSize
	index := make([]byte, blocks*8)
	if err := f.readAt(index, int64(f.sb.idTable)); err != nil {
		return err
	}
	f.ids = make([]uint32, 0, n)
	for i := range blocks {
		pos := int64(binary.LittleEndian.Uint64(index[i*8:]))
		mb, err := f.meta(pos, 0)
		if err != nil {
			return err
		}
		for j := 0; j+4 <= len(mb.data) && len(f.ids) < n; j += 4 {
			f.ids = append(f.ids, binary.LittleEndian.Uint32(mb.data[j:]))
		}
	}
	if len(f.ids) != n {
		return corrupt("%d ids of %d", len(f.ids), n)
	}
	return nil
}

// readAt reads len(p) bytes at off, which must lie within bytes_used.
func (f *FS) readAt(p []byte, off int64) error {
	if off < 0 || off > f.size || int64(len(p)) > f.size-off {
		return corrupt("%d bytes at %d past the filesystem's %d", len(p), off, f.size)
	}
	if _, err := f.dev.ReadAt(p, off); err != nil {
		return fmt.Errorf("read %d bytes at %d: %w", len(p), off, corruptEOF(err))
	}
	return nil
}

func corruptEOF(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: %w", err, filesystem.ErrCorrupt)
	}
	return err
}

// lookup resolves a valid io/fs path to its inode and its name.
func (f *FS) lookup(op, name string) (*inode, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	in := f.root
	if name == "." {
		return in, nil
	}
	for part := range strings.SplitSeq(name, "/") {
		if !in.isDir() {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		ents, err := f.entries(in)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		i := sort.Search(len(ents), func(i int) bool { return ents[i].name >= part })
		if i == len(ents) || ents[i].name != part {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		if in, err = f.inode(ents[i].ref); err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
	}
	return in, nil
}

func baseName(name string) string {
	if name == "." {
		return "."
	}
	return name[strings.LastIndexByte(name, '/')+1:]
}

// Lstat describes the named file without following a symlink.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	in, err := f.lookup("lstat", name)
	if err != nil {
		return nil, err
	}
	return f.info(in, baseName(name)), nil
}

// ReadDir lists a directory, sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	in, err := f.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if !in.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	return f.readDir(name, in)
}

func (f *FS) readDir(name string, in *inode) ([]fs.DirEntry, error) {
	ents, err := f.entries(in)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(ents))
	for i, e := range ents {
		out[i] = dirEntry{f: f, e: e}
	}
	return out, nil
}

// ReadLink returns a symlink's target.
func (f *FS) ReadLink(name string) (string, error) {
	in, err := f.lookup("readlink", name)
	if err != nil {
		return "", err
	}
	if !in.isSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	target, err := f.target(in)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return target, nil
}

// Open opens a regular file or a directory.
func (f *FS) Open(name string) (fs.File, error) {
	in, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	fi := f.info(in, baseName(name))
	switch {
	case in.isDir():
		return &dir{f: f, name: name, in: in, fi: fi}, nil
	case in.isRegular():
		fl, err := f.openFile(name, in, fi)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return fl, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
}
