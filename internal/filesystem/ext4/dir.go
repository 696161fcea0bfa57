package ext4

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"guestkit.io/batch/internal/filesystem"
)

// dirent is one directory entry; typ is the dirent's file type (1 regular
// to 7 symlink), 0 when the filesystem records none.
type dirent struct {
	name string
	ino  uint32
	typ  uint8
}

var direntTypes = [8]fs.FileMode{
	0,                                 // unknown
	0,                                 // regular
	fs.ModeDir,                        // directory
	fs.ModeDevice | fs.ModeCharDevice, // character device
	fs.ModeDevice,                     // block device
	fs.ModeNamedPipe,                  // fifo
	fs.ModeSocket,                     // socket
	fs.ModeSymlink,                    // symlink
}

// dirEntries returns the entries of directory in, without "." and "..",
// sorted by name (cached).
func (f *FS) dirEntries(in *inode) ([]dirent, error) {
	f.mu.Lock()
	ents, ok := f.dirs[in.ino]
	f.mu.Unlock()
	if ok {
		return ents, nil
	}
	if in.flags&flagEncrypt != 0 {
		return nil, fmt.Errorf("directory inode %d is encrypted: %w", in.ino, filesystem.ErrUnsupported)
	}
	if in.flags&flagCasefold != 0 {
		return nil, fmt.Errorf("directory inode %d is casefolded: %w", in.ino, filesystem.ErrUnsupported)
	}
	var err error
	if in.flags&flagInlineData != 0 {
		ents, err = f.readInlineDir(in)
	} else {
		ents, err = f.readBlockDir(in)
	}
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ents, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(ents); i++ {
		if ents[i].name == ents[i-1].name {
			return nil, fmt.Errorf("directory inode %d: %q twice: %w", in.ino, ents[i].name, filesystem.ErrCorrupt)
		}
	}
	size := 0
	for _, e := range ents {
		size += len(e.name) + 32
	}
	f.mu.Lock()
	if f.dirBytes+size > dirCacheBytes {
		clear(f.dirs)
		f.dirBytes = 0
	}
	f.dirs[in.ino] = ents
	f.dirBytes += size
	f.mu.Unlock()
	return ents, nil
}

// readInlineDir reads a directory stored in its inode: the parent's inode
// number, then entries in the rest of i_block and in system.data.
func (f *FS) readInlineDir(in *inode) ([]dirent, error) {
	var ents []dirent
	if err := f.parseDirents(in.iblock[4:], in.ino, "i_block", 0, &ents); err != nil {
		return nil, err
	}
	if len(in.inline) > 0 {
		if err := f.parseDirents(in.inline, in.ino, "system.data", 0, &ents); err != nil {
			return nil, err
		}
	}
	return ents, nil
}

// readBlockDir reads every block of a directory and parses it linearly.
// An htree's root and index blocks need no special case: the root's ".."
// entry and each index block's empty entry span the index data, as they
// are laid out for exactly this kind of reader. Holes and unwritten
// extents are skipped, as the kernel's readdir skips them.
func (f *FS) readBlockDir(in *inode) ([]dirent, error) {
	bs := uint64(f.sb.blockSize)
	if in.size > maxDirSize {
		return nil, fmt.Errorf("directory inode %d: %d bytes, more than the reader's %d: %w", in.ino, in.size, maxDirSize, filesystem.ErrUnsupported)
	}
	if in.size%bs != 0 {
		return nil, fmt.Errorf("directory inode %d: size %d is not a whole number of blocks: %w", in.ino, in.size, filesystem.ErrCorrupt)
	}
	var ents []dirent
	var buf []byte
	for l := uint64(0); l < in.size/bs; {
		r, err := f.mapBlock(in, l)
		if err != nil {
			return nil, err
		}
		r.n = min(r.n, in.size/bs-l, maxReadChunk/bs)
		if r.phys != 0 {
			if uint64(cap(buf)) < r.n*bs {
				buf = make([]byte, r.n*bs)
			}
			b := buf[:r.n*bs]
			if err := f.readBlocks(b, r.phys, "directory inode", uint64(in.ino)); err != nil {
				return nil, err
			}
			for i := uint64(0); i < r.n; i++ {
				if err := f.parseDirents(b[i*bs:(i+1)*bs], in.ino, "", r.phys+i, &ents); err != nil {
					return nil, err
				}
			}
		}
		l += r.n
	}
	return ents, nil
}

// recLen decodes rec_len, which for 64 KiB blocks keeps two high bits in
// the low ones (ext4_rec_len_from_disk).
func (f *FS) recLen(v uint16) int {
	if f.sb.blockSize < 65536 {
		return int(v)
	}
	if v == 65535 || v == 0 {
		return 65536
	}
	return int(v&65532) | int(v&3)<<16
}

// parseDirents appends the live entries of one directory block (blk) or
// inline area (area) to ents, with the kernel's checks
// (ext4_check_dir_entry).
func (f *FS) parseDirents(b []byte, dir uint32, area string, blk uint64, ents *[]dirent) error {
	le := binary.LittleEndian
	for off := 0; off < len(b); {
		bad := func(format string, a ...any) error {
			where := area
			if where == "" {
				where = fmt.Sprintf("block %d", blk)
			}
			return fmt.Errorf("directory inode %d, %s, entry at %d: "+format+": %w", append([]any{dir, where, off}, append(a, filesystem.ErrCorrupt)...)...)
		}
		if off+8 > len(b) {
			return bad("truncated")
		}
		ino := le.Uint32(b[off:])
		rl := f.recLen(le.Uint16(b[off+4:]))
		nameLen := int(b[off+6])
		typ := b[off+7]
		if rl < 12 || rl%4 != 0 || rl < (8+nameLen+3)&^3 || rl > len(b)-off {
			return bad("record length %d for a %d-byte name", rl, nameLen)
		}
		if ino != 0 {
			if ino > f.sb.inodesCount {
				return bad("inode %d of %d", ino, f.sb.inodesCount)
			}
			name := string(b[off+8 : off+8+nameLen])
			switch {
			case name == "." || name == "..":
			case name == "" || strings.ContainsAny(name, "/\x00"):
				return bad("name %q", name)
			default:
				if f.sb.incompat&incompatFiletype == 0 || typ >= uint8(len(direntTypes)) {
					typ = 0
				}
				if len(*ents) >= maxDirEntries {
					return fmt.Errorf("directory inode %d: more than %d entries: %w", dir, maxDirEntries, filesystem.ErrUnsupported)
				}
				*ents = append(*ents, dirent{name: name, ino: ino, typ: typ})
			}
		}
		off += rl
	}
	return nil
}
