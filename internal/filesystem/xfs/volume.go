package xfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/guest"
)

var _ filesystem.Volume = (*FS)(nil)

var (
	errNotDir     = fmt.Errorf("not a directory: %w", fs.ErrNotExist)
	errNotLink    = fmt.Errorf("not a symbolic link: %w", fs.ErrInvalid)
	errNotDirFile = fmt.Errorf("not a directory: %w", fs.ErrInvalid)
	errNotOpen    = fmt.Errorf("neither a regular file nor a directory: %w", fs.ErrInvalid)
)

// resolve walks name from the root without following symlinks.
func (f *FS) resolve(name string) (*inode, error) {
	if !fs.ValidPath(name) {
		return nil, fs.ErrInvalid
	}
	n, err := f.inode(f.sb.rootIno)
	if err != nil {
		return nil, err
	}
	if name == "." {
		return n, nil
	}
	for _, c := range strings.Split(name, "/") {
		if !n.isDir() {
			return nil, errNotDir
		}
		e, ok, err := f.lookup(n, c)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fs.ErrNotExist
		}
		if n, err = f.inode(e.ino); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// Lstat describes name itself, a symlink included.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	n, err := f.resolve(name)
	if err != nil {
		return nil, pathErr("lstat", name, err)
	}
	return &fileInfo{name: path.Base(name), n: n}, nil
}

// ReadLink returns the target of the symlink name.
func (f *FS) ReadLink(name string) (string, error) {
	n, err := f.resolve(name)
	if err == nil && !n.isLink() {
		err = errNotLink
	}
	var t string
	if err == nil {
		t, err = f.readLink(n)
	}
	if err != nil {
		return "", pathErr("readlink", name, err)
	}
	return t, nil
}

// ReadDir lists directory name sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := f.resolve(name)
	if err == nil && !n.isDir() {
		err = errNotDirFile
	}
	var des []fs.DirEntry
	if err == nil {
		des, err = f.dirEntries(n)
	}
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	return des, nil
}

func (f *FS) dirEntries(n *inode) ([]fs.DirEntry, error) {
	ents, err := f.dir(n)
	if err != nil {
		return nil, err
	}
	des := make([]fs.DirEntry, len(ents))
	for i, e := range ents {
		d := &dirEntry{f: f, e: e}
		if t, ok := ftypeMode(e.ftype); ok {
			d.typ = t
		} else {
			// No file type in the directory: the inode says.
			c, err := f.inode(e.ino)
			if err != nil {
				return nil, fmt.Errorf("entry %q: %w", e.name, err)
			}
			d.typ = guest.UnixMode(c.mode).Type()
		}
		des[i] = d
	}
	return des, nil
}

// Open opens a regular file (an io.ReaderAt and io.Seeker too) or a
// directory.
func (f *FS) Open(name string) (fs.File, error) {
	n, err := f.resolve(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	fi := &fileInfo{name: path.Base(name), n: n}
	switch {
	case n.isDir():
		return &dirFile{f: f, fi: fi, name: name}, nil
	case !n.isReg():
		return nil, pathErr("open", name, errNotOpen)
	case n.flags&diflagRealtime != 0:
		return nil, pathErr("open", name, fmt.Errorf("inode %d is on the realtime device: %w", n.ino, filesystem.ErrUnsupported))
	}
	exts, err := f.extents(n)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return &file{f: f, fi: fi, name: name, exts: exts}, nil
}

type fileInfo struct {
	name string
	n    *inode
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.n.size }
func (fi *fileInfo) Mode() fs.FileMode  { return guest.UnixMode(fi.n.mode) }
func (fi *fileInfo) ModTime() time.Time { return fi.n.mtime }
func (fi *fileInfo) IsDir() bool        { return fi.n.isDir() }
func (fi *fileInfo) Sys() any           { return guest.Owner{UID: fi.n.uid, GID: fi.n.gid} }

type dirEntry struct {
	f   *FS
	e   dirent
	typ fs.FileMode
}

func (d *dirEntry) Name() string      { return d.e.name }
func (d *dirEntry) IsDir() bool       { return d.typ.IsDir() }
func (d *dirEntry) Type() fs.FileMode { return d.typ }
func (d *dirEntry) Info() (fs.FileInfo, error) {
	n, err := d.f.inode(d.e.ino)
	if err != nil {
		return nil, pathErr("stat", d.e.name, err)
	}
	return &fileInfo{name: d.e.name, n: n}, nil
}
func (d *dirEntry) String() string { return fs.FormatDirEntry(d) }

// dirFile is an open directory.
type dirFile struct {
	f    *FS
	fi   *fileInfo
	name string

	mu   sync.Mutex
	ents []fs.DirEntry
	read bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.fi, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, pathErr("read", d.name, errors.New("is a directory"))
}

func (d *dirFile) ReadDir(count int) ([]fs.DirEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.read {
		ents, err := d.f.dirEntries(d.fi.n)
		if err != nil {
			return nil, pathErr("readdir", d.name, err)
		}
		d.ents, d.read = ents, true
	}
	if count <= 0 {
		ents := d.ents
		d.ents = nil
		return ents, nil
	}
	if len(d.ents) == 0 {
		return nil, io.EOF
	}
	k := min(count, len(d.ents))
	ents := d.ents[:k:k]
	d.ents = d.ents[k:]
	return ents, nil
}

// file is an open regular file.
type file struct {
	f    *FS
	fi   *fileInfo
	name string
	exts []extent
	cur  filesystem.Cursor
}

func (r *file) Stat() (fs.FileInfo, error) { return r.fi, nil }
func (r *file) Close() error               { return nil }

func (r *file) Read(p []byte) (int, error) { return r.cur.Read(r, p) }

func (r *file) Seek(offset int64, whence int) (int64, error) {
	return r.cur.Seek(r.name, r.fi.n.size, offset, whence)
}

// ReadAt reads the file's bytes; holes, unwritten extents and the part
// past the last extent read as zeroes. Device reads cover whole blocks.
func (r *file) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, pathErr("read", r.name, fs.ErrInvalid)
	}
	size := r.fi.n.size
	if off >= size {
		return 0, io.EOF
	}
	want := p
	if int64(len(p)) > size-off {
		want = p[:size-off]
	}
	sb := r.f.sb
	bs := int64(sb.blockSize)
	done := 0
	var scratch []byte
	for done < len(want) {
		pos := off + int64(done)
		blk := uint64(pos) >> sb.blockLog
		in := pos - int64(blk)<<sb.blockLog // offset inside the block
		rest := want[done:]
		i, mapped := findExtent(r.exts, blk)
		if !mapped || r.exts[i].unwritten {
			// Zeroes up to the next extent (or the end). Block numbers
			// go up to 2^54: compare in blocks before turning to bytes.
			n := int64(len(rest))
			var stop uint64
			switch {
			case mapped:
				stop = r.exts[i].end()
			case i < len(r.exts):
				stop = r.exts[i].off
			}
			if stop > blk && stop-blk <= uint64(n>>sb.blockLog)+1 {
				n = min(n, int64(stop-blk)<<sb.blockLog-in)
			}
			clear(rest[:n])
			done += int(n)
			continue
		}
		e := r.exts[i]
		// Whole blocks of this extent, at most maxReadChunk bytes.
		nblk := min(int64(e.end()-blk), (in+int64(len(rest))+bs-1)/bs, maxReadChunk/bs)
		lin := e.lin + blk - e.off
		n := min(nblk*bs-in, int64(len(rest)))
		if in == 0 && n == nblk*bs {
			if err := r.f.readBlocks(rest[:n], lin); err != nil {
				return done, pathErr("read", r.name, err)
			}
		} else {
			if int64(cap(scratch)) < nblk*bs {
				scratch = make([]byte, nblk*bs)
			}
			buf := scratch[:nblk*bs]
			if err := r.f.readBlocks(buf, lin); err != nil {
				return done, pathErr("read", r.name, err)
			}
			copy(rest[:n], buf[in:])
		}
		done += int(n)
	}
	if len(want) < len(p) {
		return done, io.EOF
	}
	return done, nil
}
