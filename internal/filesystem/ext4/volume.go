package ext4

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/guest"
)

// lookup resolves name (an io/fs path) to its inode without following
// symbolic links.
func (f *FS) lookup(name string) (*inode, error) {
	if !fs.ValidPath(name) {
		return nil, fs.ErrInvalid
	}
	in, err := f.inode(rootIno)
	if err != nil || name == "." {
		return in, err
	}
	for _, comp := range strings.Split(name, "/") {
		if !in.isDir() {
			return nil, fmt.Errorf("a component is not a directory: %w", fs.ErrNotExist)
		}
		ents, err := f.dirEntries(in)
		if err != nil {
			return nil, err
		}
		i := sort.Search(len(ents), func(i int) bool { return ents[i].name >= comp })
		if i == len(ents) || ents[i].name != comp {
			return nil, fs.ErrNotExist
		}
		if in, err = f.inode(ents[i].ino); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// Lstat describes name itself, a symbolic link included.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	in, err := f.lookup(name)
	if err != nil {
		return nil, pathError("lstat", name, err)
	}
	return fileInfo{name: path.Base(name), in: in}, nil
}

// ReadDir lists directory name, sorted, without "." and "..".
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	in, err := f.lookup(name)
	if err != nil {
		return nil, pathError("readdir", name, err)
	}
	list, err := f.readDir(in)
	if err != nil {
		return nil, pathError("readdir", name, err)
	}
	return list, nil
}

func (f *FS) readDir(in *inode) ([]fs.DirEntry, error) {
	if !in.isDir() {
		return nil, fmt.Errorf("not a directory: %w", fs.ErrInvalid)
	}
	ents, err := f.dirEntries(in)
	if err != nil {
		return nil, err
	}
	list := make([]fs.DirEntry, len(ents))
	for i, d := range ents {
		e := &dirEntry{f: f, d: d}
		if d.typ == 0 {
			// No type in the entry (ext2 without filetype): the inode has it.
			if e.in, err = f.inode(d.ino); err != nil {
				return nil, fmt.Errorf("entry %q: %w", d.name, err)
			}
		}
		list[i] = e
	}
	return list, nil
}

// ReadLink returns the target of symbolic link name, as stored.
func (f *FS) ReadLink(name string) (string, error) {
	in, err := f.lookup(name)
	if err == nil {
		var target string
		if target, err = f.readLink(in); err == nil {
			return target, nil
		}
	}
	return "", pathError("readlink", name, err)
}

func (f *FS) readLink(in *inode) (string, error) {
	if !in.isSymlink() {
		return "", fmt.Errorf("not a symbolic link: %w", fs.ErrInvalid)
	}
	if in.flags&flagEncrypt != 0 {
		return "", fmt.Errorf("symbolic link inode %d is encrypted: %w", in.ino, filesystem.ErrUnsupported)
	}
	if in.size == 0 || in.size > maxSymlink || in.size > uint64(f.sb.blockSize) {
		return "", fmt.Errorf("symbolic link inode %d: %d bytes: %w", in.ino, in.size, filesystem.ErrCorrupt)
	}
	var b []byte
	if f.fastSymlink(in) {
		if in.size >= nBlocks {
			return "", fmt.Errorf("fast symbolic link inode %d: %d bytes: %w", in.ino, in.size, filesystem.ErrCorrupt)
		}
		b = in.iblock[:in.size]
	} else {
		b = make([]byte, in.size)
		if _, err := f.readData(in, b, 0); err != nil {
			return "", err
		}
	}
	if strings.IndexByte(string(b), 0) >= 0 {
		return "", fmt.Errorf("symbolic link inode %d: NUL in the target: %w", in.ino, filesystem.ErrCorrupt)
	}
	return string(b), nil
}

// fastSymlink is ext4_inode_is_fast_symlink: a link stored in i_block is
// one that owns no block but its extended attribute block.
func (f *FS) fastSymlink(in *inode) bool {
	if in.flags&flagInlineData != 0 {
		return false
	}
	if in.flags&flagEAInode != 0 {
		return in.size < nBlocks
	}
	ea := uint64(0)
	if in.fileACL != 0 {
		ea = uint64(f.sb.blockSize) >> 9
		if f.sb.roCompat&roCompatBigalloc != 0 {
			ea <<= f.sb.logCluster - f.sb.logBlockSize
		}
	}
	return in.blocks == ea
}

// Open opens a regular file (an io.ReaderAt and io.Seeker too) or a
// directory (an fs.ReadDirFile).
func (f *FS) Open(name string) (fs.File, error) {
	in, err := f.lookup(name)
	if err != nil {
		return nil, pathError("open", name, err)
	}
	info := fileInfo{name: path.Base(name), in: in}
	switch {
	case in.isDir():
		return &dirFile{f: f, info: info, path: name}, nil
	case in.isRegular():
		if in.flags&flagEncrypt != 0 {
			return nil, pathError("open", name, fmt.Errorf("inode %d is encrypted: %w", in.ino, filesystem.ErrUnsupported))
		}
		return &file{f: f, info: info, path: name}, nil
	}
	return nil, pathError("open", name, fmt.Errorf("%s is neither a file nor a directory: %w", info.Mode().Type(), fs.ErrInvalid))
}

// fileInfo describes an inode under the name it was found by.
type fileInfo struct {
	name string
	in   *inode
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return int64(i.in.size) }
func (i fileInfo) Mode() fs.FileMode  { return guest.UnixMode(uint32(i.in.mode)) }
func (i fileInfo) ModTime() time.Time { return i.in.mtime }
func (i fileInfo) IsDir() bool        { return i.in.isDir() }
func (i fileInfo) Sys() any           { return guest.Owner{UID: i.in.uid, GID: i.in.gid} }

// dirEntry is one entry of ReadDir; in is loaded when the entry carries
// no type, or by Info.
type dirEntry struct {
	f  *FS
	d  dirent
	in *inode
}

func (e *dirEntry) Name() string { return e.d.name }
func (e *dirEntry) IsDir() bool  { return e.Type().IsDir() }
func (e *dirEntry) Type() fs.FileMode {
	if e.in != nil {
		return guest.UnixMode(uint32(e.in.mode)).Type()
	}
	return direntTypes[e.d.typ]
}

func (e *dirEntry) Info() (fs.FileInfo, error) {
	in := e.in
	if in == nil {
		var err error
		if in, err = e.f.inode(e.d.ino); err != nil {
			return nil, pathError("lstat", e.d.name, err)
		}
	}
	return fileInfo{name: e.d.name, in: in}, nil
}

func (e *dirEntry) String() string { return fs.FormatDirEntry(e) }

// file is an open regular file.
type file struct {
	f    *FS
	info fileInfo
	path string
	cur  filesystem.Cursor
}

func (h *file) Stat() (fs.FileInfo, error) { return h.info, nil }
func (h *file) Close() error               { return nil }

func (h *file) ReadAt(p []byte, off int64) (int, error) {
	n, err := h.f.readData(h.info.in, p, off)
	if err != nil && err != io.EOF {
		err = pathError("read", h.path, err)
	}
	return n, err
}

func (h *file) Read(p []byte) (int, error) { return h.cur.Read(h, p) }

func (h *file) Seek(offset int64, whence int) (int64, error) {
	return h.cur.Seek(h.path, h.info.Size(), offset, whence)
}

// dirFile is an open directory.
type dirFile struct {
	f    *FS
	info fileInfo
	path string

	mu      sync.Mutex
	entries []fs.DirEntry
	read    bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, pathError("read", d.path, errors.New("is a directory"))
}

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.read {
		list, err := d.f.readDir(d.info.in)
		if err != nil {
			return nil, pathError("readdir", d.path, err)
		}
		d.entries, d.read = list, true
	}
	if n <= 0 {
		list := d.entries
		d.entries = nil
		return list, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.entries))
	list := d.entries[:n:n]
	d.entries = d.entries[n:]
	return list, nil
}
