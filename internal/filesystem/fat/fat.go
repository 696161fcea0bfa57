// Package fat reads FAT12, FAT16 and FAT32 filesystems (EFI system
// partitions, /boot/efi) as Linux's vfat driver shows them when mounted
// without options: VFAT long names, 8.3 names with the Windows NT case
// flags, case-insensitive lookup, every file owned by root with mode 0755.
//
// It is written here rather than taken from a library because the readers
// at hand either lack FAT12/16, load whole tables and directory trees into
// memory, or do not bound cluster chains; a guest's ESP is hostile input.
package fat

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/filesystem"
)

const (
	attrReadOnly = 0x01
	attrVolume   = 0x08
	attrDir      = 0x10
	attrLongName = 0x0f

	// maxDirSize is Linux's FAT_MAX_DIR_SIZE (65536 entries): no directory
	// is legitimately longer, so a longer chain is corrupt.
	maxDirSize = 1 << 21

	// Linux's MAX_FAT12 and MAX_FAT16: the largest cluster counts.
	maxFAT12 = 0xff4
	maxFAT16 = 0xfff4
	maxFAT32 = 0x0ffffff6

	// fatChunk is the unit in which FAT sectors are read and cached.
	fatChunk     = 64 << 10
	maxFATChunks = 64
	maxDirCache  = 256
)

// bootSector is the BIOS parameter block, as much as both FAT12/16 and
// FAT32 share, plus the fields of each.
type bootSector struct {
	raw          []byte
	bytesPerSec  uint32
	secPerClus   uint32
	reserved     uint32
	fats         uint32
	rootEntries  uint32
	totalSectors uint32
	fatLength    uint32 // sectors per FAT
	fat32        bool
	rootCluster  uint32
	media        byte
}

func parseBoot(b []byte) (bootSector, error) {
	bs := bootSector{raw: b}
	bs.bytesPerSec = uint32(binary.LittleEndian.Uint16(b[0x0b:]))
	bs.secPerClus = uint32(b[0x0d])
	bs.reserved = uint32(binary.LittleEndian.Uint16(b[0x0e:]))
	bs.fats = uint32(b[0x10])
	bs.rootEntries = uint32(binary.LittleEndian.Uint16(b[0x11:]))
	bs.totalSectors = uint32(binary.LittleEndian.Uint16(b[0x13:]))
	bs.media = b[0x15]
	bs.fatLength = uint32(binary.LittleEndian.Uint16(b[0x16:]))
	if bs.totalSectors == 0 {
		bs.totalSectors = binary.LittleEndian.Uint32(b[0x20:])
	}
	if bs.fatLength == 0 {
		bs.fatLength = binary.LittleEndian.Uint32(b[0x24:])
		bs.fat32 = bs.fatLength != 0
		bs.rootCluster = binary.LittleEndian.Uint32(b[0x2c:])
	}
	switch {
	case bs.bytesPerSec < 512 || bs.bytesPerSec > 4096 || bs.bytesPerSec&(bs.bytesPerSec-1) != 0:
		return bs, fmt.Errorf("boot sector: %d bytes per sector", bs.bytesPerSec)
	case bs.secPerClus == 0 || bs.secPerClus&(bs.secPerClus-1) != 0:
		return bs, fmt.Errorf("boot sector: %d sectors per cluster", bs.secPerClus)
	case bs.reserved == 0:
		return bs, fmt.Errorf("boot sector: no reserved sectors")
	case bs.fats == 0:
		return bs, fmt.Errorf("boot sector: no FAT")
	case bs.media != 0xf0 && bs.media < 0xf8:
		return bs, fmt.Errorf("boot sector: media byte %#x", bs.media)
	case bs.fatLength == 0:
		return bs, fmt.Errorf("boot sector: FAT length 0")
	}
	return bs, nil
}

// layout is what the boot sector says about where things are.
func (bs bootSector) rootSectors() uint64 {
	return (uint64(bs.rootEntries)*32 + uint64(bs.bytesPerSec) - 1) / uint64(bs.bytesPerSec)
}

func (bs bootSector) dataStart() uint64 {
	return uint64(bs.reserved) + uint64(bs.fats)*uint64(bs.fatLength) + bs.rootSectors()
}

// clusters is the number of data clusters, numbered 2..clusters+1.
func (bs bootSector) clusters() uint64 {
	ds := bs.dataStart()
	if uint64(bs.totalSectors) <= ds {
		return 0
	}
	return (uint64(bs.totalSectors) - ds) / uint64(bs.secPerClus)
}

// FS is a FAT filesystem. It is safe for concurrent use.
type FS struct {
	dev         block.Device
	info        filesystem.Info
	bits        int // 12, 16 or 32
	clusterSize int64
	clusters    uint32
	fatOffset   int64
	fatBytes    int64
	rootOffset  int64 // FAT12/16: the fixed root directory
	rootSize    int64
	rootCluster uint32 // FAT32
	dataOffset  int64

	mu       sync.Mutex
	fatCache map[int64][]byte
	dirCache map[uint32][]dirent
}

var _ filesystem.Volume = (*FS)(nil)

// Open reads the boot sector of dev and checks the geometry as Linux does
// at mount.
func Open(dev block.Device) (*FS, error) {
	b := make([]byte, 512)
	if _, err := dev.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("fat: boot sector: %w", err)
	}
	bs, err := parseBoot(b)
	if err != nil {
		return nil, fmt.Errorf("fat: %w: %w", err, filesystem.ErrCorrupt)
	}
	if !bs.fat32 && bs.rootEntries == 0 {
		return nil, fmt.Errorf("fat: boot sector: no root directory entries: %w", filesystem.ErrCorrupt)
	}
	clusters := bs.clusters()
	if clusters == 0 {
		return nil, fmt.Errorf("fat: boot sector: no data clusters in %d sectors: %w", bs.totalSectors, filesystem.ErrCorrupt)
	}
	f := &FS{
		dev:         dev,
		clusterSize: int64(bs.bytesPerSec) * int64(bs.secPerClus),
		fatOffset:   int64(bs.reserved) * int64(bs.bytesPerSec),
		fatBytes:    int64(bs.fatLength) * int64(bs.bytesPerSec),
		dataOffset:  int64(bs.dataStart()) * int64(bs.bytesPerSec),
		fatCache:    map[int64][]byte{},
		dirCache:    map[uint32][]dirent{},
	}
	var max uint64
	switch {
	case bs.fat32:
		f.bits, max = 32, maxFAT32
	case clusters <= maxFAT12:
		f.bits, max = 12, maxFAT12
	default:
		f.bits, max = 16, maxFAT16
	}
	if clusters > max {
		return nil, fmt.Errorf("fat: boot sector: %d clusters for FAT%d: %w", clusters, f.bits, filesystem.ErrCorrupt)
	}
	if entries := uint64(f.fatBytes) * 8 / uint64(f.bits); clusters+2 > entries {
		return nil, fmt.Errorf("fat: boot sector: a FAT of %d bytes cannot hold %d clusters: %w", f.fatBytes, clusters, filesystem.ErrCorrupt)
	}
	f.clusters = uint32(clusters)
	if f.fatOffset+f.fatBytes > dev.Size() {
		return nil, fmt.Errorf("fat: FAT at %d (%d bytes) past the device's %d bytes: %w", f.fatOffset, f.fatBytes, dev.Size(), filesystem.ErrCorrupt)
	}
	if bs.fat32 {
		if !f.valid(bs.rootCluster) {
			return nil, fmt.Errorf("fat: boot sector: root cluster %d: %w", bs.rootCluster, filesystem.ErrCorrupt)
		}
		f.rootCluster = bs.rootCluster
	} else {
		f.rootOffset = f.fatOffset + int64(bs.fats)*f.fatBytes
		f.rootSize = int64(bs.rootEntries) * 32
	}
	f.info, _ = probe(dev, b)
	return f, nil
}

// Info is what blkid says about the filesystem.
func (f *FS) Info() filesystem.Info { return f.info }

// valid reports whether c is a data cluster number.
func (f *FS) valid(c uint32) bool { return c >= 2 && c-2 < f.clusters }

func (f *FS) clusterOffset(c uint32) int64 {
	return f.dataOffset + int64(c-2)*f.clusterSize
}

// next returns the FAT entry of cluster c, and end true when c is the
// last of its chain. A free or out-of-range entry is corrupt, as it is
// for Linux.
func (f *FS) next(c uint32) (n uint32, end bool, err error) {
	var off int64
	switch f.bits {
	case 12:
		off = int64(c) + int64(c)/2
	case 16:
		off = int64(c) * 2
	default:
		off = int64(c) * 4
	}
	var buf [4]byte
	width := 2
	if f.bits == 32 {
		width = 4
	}
	if err := f.readFAT(buf[:width], off); err != nil {
		return 0, false, err
	}
	var bad uint32
	switch f.bits {
	case 12:
		n = uint32(binary.LittleEndian.Uint16(buf[:]))
		if c&1 != 0 {
			n >>= 4
		}
		n &= 0xfff
		bad = 0xff7
	case 16:
		n = uint32(binary.LittleEndian.Uint16(buf[:]))
		bad = 0xfff7
	default:
		n = binary.LittleEndian.Uint32(buf[:]) & 0x0fffffff
		bad = 0x0ffffff7
	}
	// Linux ends a chain at a bad-cluster mark as at an end mark.
	if n >= bad {
		return 0, true, nil
	}
	if !f.valid(n) {
		return 0, false, fmt.Errorf("FAT entry of cluster %d: %#x: %w", c, n, filesystem.ErrCorrupt)
	}
	return n, false, nil
}

// readFAT reads len(p) bytes of the first FAT at off, through a small
// cache of chunks.
func (f *FS) readFAT(p []byte, off int64) error {
	for len(p) > 0 {
		if off >= f.fatBytes {
			return fmt.Errorf("FAT offset %d past its %d bytes: %w", off, f.fatBytes, filesystem.ErrCorrupt)
		}
		base := off / fatChunk * fatChunk
		chunk, err := f.fatChunk(base)
		if err != nil {
			return err
		}
		n := copy(p, chunk[off-base:])
		p, off = p[n:], off+int64(n)
	}
	return nil
}

func (f *FS) fatChunk(base int64) ([]byte, error) {
	f.mu.Lock()
	c, ok := f.fatCache[base]
	f.mu.Unlock()
	if ok {
		return c, nil
	}
	c = make([]byte, min(fatChunk, f.fatBytes-base))
	if _, err := f.dev.ReadAt(c, f.fatOffset+base); err != nil {
		return nil, fmt.Errorf("FAT at %d: %w", f.fatOffset+base, err)
	}
	f.mu.Lock()
	if len(f.fatCache) >= maxFATChunks {
		clear(f.fatCache)
	}
	f.fatCache[base] = c
	f.mu.Unlock()
	return c, nil
}

// chain returns the clusters from start, at most max of them; a longer
// chain (a loop included) is corrupt.
func (f *FS) chain(start uint32, max int64) ([]uint32, error) {
	if !f.valid(start) {
		return nil, fmt.Errorf("first cluster %d: %w", start, filesystem.ErrCorrupt)
	}
	var out []uint32
	for c := start; ; {
		if int64(len(out)) >= max {
			return nil, fmt.Errorf("cluster chain from %d longer than %d clusters: %w", start, max, filesystem.ErrCorrupt)
		}
		out = append(out, c)
		n, end, err := f.next(c)
		if err != nil {
			return nil, err
		}
		if end {
			return out, nil
		}
		c = n
	}
}

// readClusters reads the whole of the clusters into one buffer.
func (f *FS) readClusters(cl []uint32) ([]byte, error) {
	buf := make([]byte, int64(len(cl))*f.clusterSize)
	for i, c := range cl {
		off := f.clusterOffset(c)
		if _, err := f.dev.ReadAt(buf[int64(i)*f.clusterSize:int64(i+1)*f.clusterSize], off); err != nil {
			return nil, fmt.Errorf("cluster %d at %d: %w", c, off, corruptEOF(err))
		}
	}
	return buf, nil
}

// corruptEOF turns a read past the device's end, which only a pointer
// past it causes, into a corrupt filesystem.
func corruptEOF(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: %w", err, filesystem.ErrCorrupt)
	}
	return err
}

// root is the root directory as an entry.
func (f *FS) root() dirent {
	return dirent{root: true, name: ".", attr: attrDir, cluster: f.rootCluster}
}

// entries returns the entries of directory d, parsed, cached by first
// cluster.
func (f *FS) entries(d dirent) ([]dirent, error) {
	key := d.cluster
	f.mu.Lock()
	ents, ok := f.dirCache[key]
	f.mu.Unlock()
	if ok {
		return ents, nil
	}
	var raw []byte
	if key == 0 && !d.root {
		return nil, fmt.Errorf("directory %q at cluster 0: %w", d.short, filesystem.ErrCorrupt)
	}
	if key == 0 {
		// The fixed root directory of FAT12/16.
		raw = make([]byte, f.rootSize)
		if _, err := f.dev.ReadAt(raw, f.rootOffset); err != nil {
			return nil, fmt.Errorf("root directory at %d: %w", f.rootOffset, corruptEOF(err))
		}
	} else {
		cl, err := f.chain(key, max(1, maxDirSize/f.clusterSize))
		if err != nil {
			return nil, fmt.Errorf("directory at cluster %d: %w", key, err)
		}
		if raw, err = f.readClusters(cl); err != nil {
			return nil, fmt.Errorf("directory at cluster %d: %w", key, err)
		}
	}
	ents = parseDir(raw, f.bits == 32)
	f.mu.Lock()
	if len(f.dirCache) >= maxDirCache {
		clear(f.dirCache)
	}
	f.dirCache[key] = ents
	f.mu.Unlock()
	return ents, nil
}

// dirSize is what Linux reports as a directory's size: its clusters, or
// the fixed root's entries.
func (f *FS) dirSize(d dirent) (int64, error) {
	if d.root && d.cluster == 0 {
		return f.rootSize, nil
	}
	cl, err := f.chain(d.cluster, max(1, maxDirSize/f.clusterSize))
	if err != nil {
		return 0, err
	}
	return int64(len(cl)) * f.clusterSize, nil
}

// lookup finds name, a valid io/fs path.
func (f *FS) lookup(op, name string) (dirent, error) {
	if !fs.ValidPath(name) {
		return dirent{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	d := f.root()
	if name == "." {
		return d, nil
	}
	for part := range strings.SplitSeq(name, "/") {
		if d.attr&attrDir == 0 {
			return dirent{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		ents, err := f.entries(d)
		if err != nil {
			return dirent{}, &fs.PathError{Op: op, Path: name, Err: err}
		}
		found := false
		for _, e := range ents {
			if e.matches(part) {
				d, found = e, true
				break
			}
		}
		if !found {
			return dirent{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
	}
	return d, nil
}

func (f *FS) stat(op, name string, d dirent) (*fileInfo, error) {
	fi := &fileInfo{name: d.name, attr: d.attr, size: int64(d.size), mtime: d.mtime}
	if name == "." {
		fi.mtime = time.Unix(0, 0).UTC()
	}
	if d.attr&attrDir != 0 {
		size, err := f.dirSize(d)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		fi.size = size
	}
	return fi, nil
}

// Lstat describes the named file; FAT has no symlinks.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	d, err := f.lookup("lstat", name)
	if err != nil {
		return nil, err
	}
	return f.stat("lstat", name, d)
}

// ReadDir lists a directory, sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	d, err := f.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if d.attr&attrDir == 0 {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	return f.readDir("readdir", name, d)
}

func (f *FS) readDir(op, name string, d dirent) ([]fs.DirEntry, error) {
	ents, err := f.entries(d)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	out := make([]fs.DirEntry, 0, len(ents))
	for _, e := range ents {
		out = append(out, dirEntry{f: f, d: e})
	}
	return out, nil
}

// ReadLink always fails: FAT has no symlinks.
func (f *FS) ReadLink(name string) (string, error) {
	if _, err := f.lookup("readlink", name); err != nil {
		return "", err
	}
	return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
}

// Open opens a file or a directory. A regular file's cluster chain is
// checked whole here: it must hold the file's size, no more and no less.
func (f *FS) Open(name string) (fs.File, error) {
	d, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	fi, err := f.stat("open", name, d)
	if err != nil {
		return nil, err
	}
	if d.attr&attrDir != 0 {
		return &dir{f: f, name: name, d: d, fi: fi}, nil
	}
	file := &file{f: f, fi: fi, name: name, size: int64(d.size)}
	if d.size > 0 {
		need := (int64(d.size) + f.clusterSize - 1) / f.clusterSize
		if need > int64(f.clusters) {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("size %d needs %d clusters of %d: %w", d.size, need, f.clusters, filesystem.ErrCorrupt)}
		}
		cl, err := f.chain(d.cluster, need)
		if err == nil && int64(len(cl)) != need {
			err = fmt.Errorf("cluster chain from %d: %d clusters for %d bytes: %w", d.cluster, len(cl), d.size, filesystem.ErrCorrupt)
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		file.runs = makeRuns(cl)
	}
	return file, nil
}
