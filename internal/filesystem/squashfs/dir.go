package squashfs

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// entry is one directory entry.
type entry struct {
	name string
	ref  uint64 // the inode's reference
	typ  uint16 // its basic type
}

type dirKey struct {
	block uint32
	off   uint16
	size  int64
}

// entries returns a directory's entries, sorted by name, cached per
// directory.
func (f *FS) entries(in *inode) ([]entry, error) {
	// An empty listing takes no bytes, so it starts where the next
	// directory's does: the size is part of the key.
	key := dirKey{in.dirBlock, in.dirOff, in.size}
	f.mu.Lock()
	ents, ok := f.dirCache[key]
	f.mu.Unlock()
	if ok {
		return ents, nil
	}
	ents, err := f.parseDir(in)
	if err != nil {
		return nil, fmt.Errorf("directory at %d+%d: %w", in.dirBlock, in.dirOff, err)
	}
	f.mu.Lock()
	if len(f.dirCache) >= maxDirCache {
		clear(f.dirCache)
	}
	f.dirCache[key] = ents
	f.mu.Unlock()
	return ents, nil
}

// parseDir reads a directory's listing: headers, each followed by up to
// 256 entries whose inodes share one metadata block. Its file_size counts
// three bytes more than the listing (for "." and "..").
func (f *FS) parseDir(in *inode) ([]entry, error) {
	size := in.size - 3
	if size <= 0 {
		return nil, nil
	}
	if size > maxDirListing {
		return nil, corrupt("listing of %d bytes", size)
	}
	r, err := f.metaReaderAt(int64(f.sb.dirTable), uint64(in.dirBlock), int(in.dirOff))
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	var ents []entry
	var b [12]byte
	for done := int64(0); done < size; {
		if size-done < 12 {
			return nil, corrupt("listing ends inside a header at %d of %d bytes", done, size)
		}
		if err := r.read(b[:12]); err != nil {
			return nil, err
		}
		done += 12
		count, start := int64(le.Uint32(b[0:]))+1, le.Uint32(b[4:])
		if count > 256 {
			return nil, corrupt("header of %d entries", count)
		}
		for range count {
			if size-done < 8 {
				return nil, corrupt("listing ends inside an entry at %d of %d bytes", done, size)
			}
			if err := r.read(b[:8]); err != nil {
				return nil, err
			}
			off, typ, n := le.Uint16(b[0:]), le.Uint16(b[4:]), int64(le.Uint16(b[6:]))+1
			done += 8 + n
			if done > size || n > 256 {
				return nil, corrupt("entry name of %d bytes at %d of %d", n, done, size)
			}
			if off >= metaSize || typ == 0 || typ > 14 {
				return nil, corrupt("entry of type %d at offset %d", typ, off)
			}
			if typ > 7 {
				typ -= 7
			}
			name := make([]byte, n)
			if err := r.read(name); err != nil {
				return nil, err
			}
			s := string(name)
			if s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
				continue
			}
			ents = append(ents, entry{name: s, ref: uint64(start)<<16 | uint64(off), typ: typ})
		}
	}
	sort.SliceStable(ents, func(i, j int) bool { return ents[i].name < ents[j].name })
	return ents, nil
}
