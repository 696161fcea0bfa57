package btrfs

import (
	"encoding/binary"
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

const inodeItemSize = 160

// ref names an inode: a tree (subvolume) and an object id in it. empty is
// the kernel's stand-in directory for a subvolume entry it cannot enter
// (a snapshot's copy of a nested subvolume's entry).
type ref struct {
	tree  uint64
	ino   uint64
	empty bool
}

type inode struct {
	size  uint64
	uid   uint32
	gid   uint32
	mode  uint32
	mtime time.Time
}

func (i inode) isDir() bool     { return i.mode&0o170000 == 0o040000 }
func (i inode) isReg() bool     { return i.mode&0o170000 == 0o100000 }
func (i inode) isSymlink() bool { return i.mode&0o170000 == 0o120000 }

type dentKey struct {
	tree, ino uint64
	name      string
}

// inode reads the INODE_ITEM of r.
func (f *FS) inode(r ref) (inode, error) {
	if r.empty {
		return inode{mode: 0o040755}, nil
	}
	if in, ok := f.inodes.get(r); ok {
		return in, nil
	}
	root, err := f.root(r.tree)
	if err != nil {
		return inode{}, err
	}
	b, err := f.lookup(root.tree, key{r.ino, typeInodeItem, 0})
	if errors.Is(err, errNotFound) {
		return inode{}, corrupt("btrfs tree %d: inode %d has no inode item", r.tree, r.ino)
	}
	if err != nil {
		return inode{}, err
	}
	if len(b) < inodeItemSize {
		return inode{}, corrupt("btrfs tree %d: inode item %d has %d bytes", r.tree, r.ino, len(b))
	}
	le := binary.LittleEndian
	in := inode{
		size:  le.Uint64(b[16:]),
		uid:   le.Uint32(b[44:]),
		gid:   le.Uint32(b[48:]),
		mode:  le.Uint32(b[52:]),
		mtime: time.Unix(int64(le.Uint64(b[136:])), int64(le.Uint32(b[144:])%1e9)),
	}
	if in.size > 1<<62 {
		return inode{}, corrupt("btrfs tree %d: inode %d has size %d", r.tree, r.ino, in.size)
	}
	f.inodes.put(r, in)
	return in, nil
}

// follow turns a directory entry of dir into the inode it names, entering
// a subvolume as the kernel does: through the ROOT_REF that links it
// there, or else to an empty stand-in directory.
func (f *FS) follow(dir ref, it dirEntryRaw) (ref, error) {
	switch it.loc.typ {
	case typeInodeItem:
		return ref{tree: dir.tree, ino: it.loc.obj}, nil
	case typeRootItem:
		empty := ref{tree: dir.tree, ino: emptySubvolDirID, empty: true}
		sub := it.loc.obj
		b, err := f.lookup(f.rootTree(), key{dir.tree, typeRootRef, sub})
		if errors.Is(err, errNotFound) {
			return empty, nil
		}
		if err != nil {
			return ref{}, err
		}
		if len(b) < 18 || 18+int(binary.LittleEndian.Uint16(b[16:])) > len(b) {
			return ref{}, corrupt("btrfs root tree: reference from tree %d to %d truncated", dir.tree, sub)
		}
		if binary.LittleEndian.Uint64(b) != dir.ino || string(b[18:18+int(binary.LittleEndian.Uint16(b[16:]))]) != it.name {
			return empty, nil
		}
		r, err := f.root(sub)
		if errors.Is(err, errNotFound) || err == nil && r.refs == 0 {
			return empty, nil
		}
		if err != nil {
			return ref{}, err
		}
		return ref{tree: sub, ino: r.dirid}, nil
	}
	return ref{}, corrupt("btrfs tree %d: entry %q of directory %d points to a key of type %d", dir.tree, it.name, dir.ino, it.loc.typ)
}

// lookupName finds name in directory dir.
func (f *FS) lookupName(dir ref, name string) (ref, error) {
	if dir.empty {
		return ref{}, errNotFound
	}
	dk := dentKey{dir.tree, dir.ino, name}
	if r, ok := f.dentries.get(dk); ok {
		return r, nil
	}
	root, err := f.root(dir.tree)
	if err != nil {
		return ref{}, err
	}
	it, err := f.dirLookup(root.tree, dir.ino, name)
	if err != nil {
		return ref{}, err
	}
	r, err := f.follow(dir, it)
	if err != nil {
		return ref{}, err
	}
	f.dentries.put(dk, r)
	return r, nil
}

// Volume returns subvolume id's tree as a Volume. Subvolumes nested in it
// appear with their content, as the kernel shows them.
func (f *FS) Volume(id uint64) (filesystem.Volume, error) {
	if id != fsTreeObjectID && (id < firstFreeObjectID || id > lastFreeObjectID) {
		return nil, fmt.Errorf("btrfs: %d is not a subvolume id: %w", id, fs.ErrNotExist)
	}
	r, err := f.root(id)
	if errors.Is(err, errNotFound) {
		return nil, fmt.Errorf("btrfs: no subvolume %d: %w", id, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	v := &volume{f: f, root: ref{tree: id, ino: r.dirid}}
	if _, err := v.resolve("."); err != nil {
		return nil, err
	}
	return v, nil
}

type volume struct {
	f    *FS
	root ref
}

type resolved struct {
	ref
	inode
}

func (v *volume) resolve(name string) (resolved, error) {
	if !fs.ValidPath(name) {
		return resolved{}, fs.ErrInvalid
	}
	r := v.root
	in, err := v.f.inode(r)
	if err != nil {
		return resolved{}, err
	}
	if name == "." {
		if !in.isDir() {
			return resolved{}, corrupt("btrfs tree %d: root inode %d is not a directory", r.tree, r.ino)
		}
		return resolved{r, in}, nil
	}
	for _, comp := range strings.Split(name, "/") {
		if !in.isDir() {
			return resolved{}, fs.ErrNotExist
		}
		if r, err = v.f.lookupName(r, comp); err != nil {
			return resolved{}, err
		}
		if in, err = v.f.inode(r); err != nil {
			return resolved{}, err
		}
	}
	return resolved{r, in}, nil
}

func pathErr(op, name string, err error) error {
	if errors.Is(err, errNotFound) {
		err = fs.ErrNotExist
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}

func (v *volume) Lstat(name string) (fs.FileInfo, error) {
	r, err := v.resolve(name)
	if err != nil {
		return nil, pathErr("lstat", name, err)
	}
	return fileInfo{path.Base(name), r.inode}, nil
}

func (v *volume) ReadDir(name string) ([]fs.DirEntry, error) {
	r, err := v.resolve(name)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	if !r.isDir() {
		return nil, pathErr("readdir", name, fs.ErrInvalid)
	}
	ents, err := v.f.readDir(r.ref)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	return ents, nil
}

// readDir lists directory dir through its DIR_INDEX items, sorted by name.
func (f *FS) readDir(dir ref) ([]fs.DirEntry, error) {
	if dir.empty {
		return []fs.DirEntry{}, nil
	}
	root, err := f.root(dir.tree)
	if err != nil {
		return nil, err
	}
	ents := []fs.DirEntry{}
	err = f.walk(root.tree, key{dir.ino, typeDirIndex, 0}, func(k key, b []byte) (bool, error) {
		if k.obj != dir.ino || k.typ != typeDirIndex {
			return false, nil
		}
		items, err := parseDirItems(b, "directory index")
		if err != nil {
			return false, err
		}
		for _, it := range items {
			if it.name == "." || it.name == ".." || strings.ContainsAny(it.name, "/\x00") {
				return false, corrupt("btrfs tree %d: directory %d has an entry named %q", dir.tree, dir.ino, it.name)
			}
			t, ok := ftMode(it.ft)
			if !ok {
				return false, corrupt("btrfs tree %d: entry %q of directory %d has type %d", dir.tree, it.name, dir.ino, it.ft)
			}
			ents = append(ents, dirEntry{f: f, dir: dir, it: it, typ: t})
		}
		if len(ents) > maxDirCount {
			return false, unsupported("btrfs tree %d: directory %d has more than %d entries", dir.tree, dir.ino, maxDirCount)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	return ents, nil
}

// ftMode is the type a directory entry gives its inode (BTRFS_FT_*).
func ftMode(ft uint8) (fs.FileMode, bool) {
	switch ft {
	case 1:
		return 0, true
	case 2:
		return fs.ModeDir, true
	case 3:
		return fs.ModeDevice | fs.ModeCharDevice, true
	case 4:
		return fs.ModeDevice, true
	case 5:
		return fs.ModeNamedPipe, true
	case 6:
		return fs.ModeSocket, true
	case 7:
		return fs.ModeSymlink, true
	}
	return 0, false
}

type dirEntry struct {
	f   *FS
	dir ref
	it  dirEntryRaw
	typ fs.FileMode
}

func (e dirEntry) Name() string      { return e.it.name }
func (e dirEntry) IsDir() bool       { return e.typ.IsDir() }
func (e dirEntry) Type() fs.FileMode { return e.typ }
func (e dirEntry) Info() (fs.FileInfo, error) {
	r, err := e.f.follow(e.dir, e.it)
	if err != nil {
		return nil, pathErr("lstat", e.it.name, err)
	}
	in, err := e.f.inode(r)
	if err != nil {
		return nil, pathErr("lstat", e.it.name, err)
	}
	return fileInfo{e.it.name, in}, nil
}

type fileInfo struct {
	name string
	in   inode
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return int64(fi.in.size) }
func (fi fileInfo) Mode() fs.FileMode  { return guest.UnixMode(fi.in.mode) }
func (fi fileInfo) ModTime() time.Time { return fi.in.mtime }
func (fi fileInfo) IsDir() bool        { return fi.in.isDir() }
func (fi fileInfo) Sys() any           { return guest.Owner{UID: fi.in.uid, GID: fi.in.gid} }

func (v *volume) ReadLink(name string) (string, error) {
	r, err := v.resolve(name)
	if err != nil {
		return "", pathErr("readlink", name, err)
	}
	if !r.isSymlink() {
		return "", pathErr("readlink", name, fs.ErrInvalid)
	}
	if r.size == 0 || r.size > maxLinkLen {
		return "", pathErr("readlink", name, corrupt("btrfs tree %d: symlink %d has %d bytes", r.tree, r.ino, r.size))
	}
	root, err := v.f.root(r.tree)
	if err != nil {
		return "", pathErr("readlink", name, err)
	}
	b := make([]byte, r.size)
	if err := v.f.readData(root.tree, r.tree, r.ino, b, 0); err != nil {
		return "", pathErr("readlink", name, err)
	}
	return string(b), nil
}

func (v *volume) Open(name string) (fs.File, error) {
	r, err := v.resolve(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	fi := fileInfo{path.Base(name), r.inode}
	switch {
	case r.isDir():
		return &dirFile{f: v.f, r: r.ref, fi: fi, name: name}, nil
	case r.isReg():
		root, err := v.f.root(r.tree)
		if err != nil {
			return nil, pathErr("open", name, err)
		}
		return &file{f: v.f, t: root.tree, r: r.ref, fi: fi, name: name}, nil
	}
	return nil, pathErr("open", name, fs.ErrInvalid)
}

type dirFile struct {
	f    *FS
	r    ref
	fi   fileInfo
	name string

	mu     sync.Mutex
	ents   []fs.DirEntry
	loaded bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.fi, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, pathErr("read", d.name, fs.ErrInvalid)
}

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.loaded {
		ents, err := d.f.readDir(d.r)
		if err != nil {
			return nil, pathErr("readdir", d.name, err)
		}
		d.ents, d.loaded = ents, true
	}
	if n <= 0 {
		out := d.ents
		d.ents = nil
		if out == nil {
			out = []fs.DirEntry{}
		}
		return out, nil
	}
	if len(d.ents) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.ents))
	out := d.ents[:n:n]
	d.ents = d.ents[n:]
	return out, nil
}

// file is an open regular file; ReadAt is safe for concurrent use.
type file struct {
	f    *FS
	t    treeRoot
	r    ref
	fi   fileInfo
	name string
	cur  filesystem.Cursor
}

func (fl *file) Stat() (fs.FileInfo, error) { return fl.fi, nil }
func (fl *file) Close() error               { return nil }

func (fl *file) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, pathErr("read", fl.name, fs.ErrInvalid)
	}
	size := fl.fi.Size()
	if off >= size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > size-off {
		n = int(size - off)
	}
	if err := fl.f.readData(fl.t, fl.r.tree, fl.r.ino, p[:n], uint64(off)); err != nil {
		return 0, pathErr("read", fl.name, err)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (fl *file) Read(p []byte) (int, error) { return fl.cur.Read(fl, p) }

func (fl *file) Seek(offset int64, whence int) (int64, error) {
	return fl.cur.Seek(fl.name, fl.fi.Size(), offset, whence)
}
