package libguestfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"sync"
	"syscall"
	"time"

	"libguestfs.org/guestfs"

	"guestkit.io/batch/internal/guest"
)

// preadChunk stays well under the protocol's 4 MiB message limit.
const preadChunk = 1 << 20

// lstatBatch is how many names one lstatnslist call carries.
const lstatBatch = 1000

// FS reads the filesystems mounted by Mount, rooted at the guest's "/".
// It implements guest.FS. Calls honour the context given to FS.
//
// The guest is mounted read-only, so metadata never changes while an FS
// lives: lstat results (including "does not exist"), directory listings and
// link targets are cached, and a listed directory answers "no such entry"
// without a round trip. Sections and rules probe many paths that do not
// exist (units in five directories, config files of absent daemons).
type FS struct {
	s   *Session
	ctx context.Context

	mu    sync.Mutex
	lstat map[string]*fileInfo // nil: does not exist
	dirs  map[string]map[string]bool
	links map[string]string
}

var _ guest.FS = (*FS)(nil)

// FS returns a guest.FS over what is mounted now; ctx bounds every call.
// Use a new one after mounting something else.
func (s *Session) FS(ctx context.Context) *FS {
	return &FS{s: s, ctx: ctx, lstat: map[string]*fileInfo{}, dirs: map[string]map[string]bool{}, links: map[string]string{}}
}

// known answers lstat from the cache: (info, true) when known, with a nil
// info for "does not exist".
func (f *FS) known(name string) (*fileInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fi, ok := f.lstat[name]; ok {
		return fi, true
	}
	for p := name; p != "." && p != "/"; {
		parent := path.Dir(p)
		if ents, ok := f.dirs[parent]; ok {
			if !ents[path.Base(p)] {
				return nil, true
			}
		} else if fi, ok := f.lstat[parent]; ok && (fi == nil || !fi.IsDir() && fi.mode&fs.ModeSymlink == 0) {
			return nil, true // a missing ancestor, or one that is a plain file
		}
		p = parent
	}
	return nil, false
}

func (f *FS) remember(name string, fi *fileInfo) {
	f.mu.Lock()
	f.lstat[name] = fi
	f.mu.Unlock()
}

func notExist(op, name string) error {
	return &fs.PathError{Op: op, Path: abs(name), Err: fs.ErrNotExist}
}

func abs(name string) string { return "/" + name }

func (f *FS) pathErr(op, name string, err error) error {
	var ge *guestfs.GuestfsError
	if errors.As(err, &ge) {
		switch ge.Errno {
		case syscall.ENOENT, syscall.ENOTDIR:
			err = fs.ErrNotExist
		case syscall.EACCES, syscall.EPERM:
			err = fs.ErrPermission
		case syscall.EINVAL:
			err = fs.ErrInvalid
		default:
			err = errors.New(ge.Errmsg)
		}
	}
	return &fs.PathError{Op: op, Path: abs(name), Err: err}
}

func (f *FS) stat(op, name string, follow bool) (*fileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if fi, ok := f.known(name); ok {
		switch {
		case fi == nil:
			return nil, notExist(op, name)
		case !follow || fi.mode&fs.ModeSymlink == 0:
			return fi, nil
		}
	}
	var st *guestfs.StatNS
	err := f.s.call(f.ctx, op, func(g *guestfs.Guestfs) error {
		var err error
		if follow {
			st, err = g.Statns(abs(name))
		} else {
			st, err = g.Lstatns(abs(name))
		}
		return err
	})
	if err != nil {
		err = f.pathErr(op, name, err)
		if !follow && errors.Is(err, fs.ErrNotExist) {
			f.remember(name, nil)
		}
		return nil, err
	}
	fi := newInfo(path.Base(name), st)
	if !follow {
		f.remember(name, fi)
	}
	return fi, nil
}

// Stat follows symlinks inside the guest.
func (f *FS) Stat(name string) (fs.FileInfo, error) { return f.stat("stat", name, true) }

// Lstat does not follow symlinks.
func (f *FS) Lstat(name string) (fs.FileInfo, error) { return f.stat("lstat", name, false) }

// ReadLink returns a symlink's target as stored.
func (f *FS) ReadLink(name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	if fi, ok := f.known(name); ok && fi == nil {
		return "", notExist("readlink", name)
	}
	f.mu.Lock()
	t, ok := f.links[name]
	f.mu.Unlock()
	if ok {
		return t, nil
	}
	err := f.s.call(f.ctx, "readlink", func(g *guestfs.Guestfs) error {
		var err error
		t, err = g.Readlink(abs(name))
		return err
	})
	if err != nil {
		return "", f.pathErr("readlink", name, err)
	}
	f.mu.Lock()
	f.links[name] = t
	f.mu.Unlock()
	return t, nil
}

// ReadDir lists a directory with each entry's lstat, fetched in batches.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	if fi, ok := f.known(name); ok && fi == nil {
		return nil, notExist("readdir", name)
	}
	var names []string
	var stats []guestfs.StatNS
	err := f.s.call(f.ctx, "readdir", func(g *guestfs.Guestfs) error {
		ents, err := g.Readdir(abs(name))
		if err != nil {
			return err
		}
		for _, e := range *ents {
			if e.Name != "." && e.Name != ".." {
				names = append(names, e.Name)
			}
		}
		sort.Strings(names)
		for i := 0; i < len(names); i += lstatBatch {
			batch := names[i:min(i+lstatBatch, len(names))]
			sts, err := g.Lstatnslist(abs(name), batch)
			if err != nil {
				return err
			}
			stats = append(stats, *sts...)
		}
		return nil
	})
	if err != nil {
		return nil, f.pathErr("readdir", name, err)
	}
	if len(stats) != len(names) {
		return nil, &fs.PathError{Op: "readdir", Path: abs(name), Err: fmt.Errorf("lstatnslist returned %d entries for %d names", len(stats), len(names))}
	}
	out := make([]fs.DirEntry, 0, len(names))
	listed := make(map[string]bool, len(names))
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, n := range names {
		if stats[i].St_ino == -1 { // vanished between readdir and lstat
			continue
		}
		fi := newInfo(n, &stats[i])
		listed[n] = true
		f.lstat[path.Join(name, n)] = fi
		out = append(out, fs.FileInfoToDirEntry(fi))
	}
	f.dirs[name] = listed
	return out, nil
}

// Open opens a file for reading; directories support ReadDir.
func (f *FS) Open(name string) (fs.File, error) {
	fi, err := f.stat("open", name, true)
	if err != nil {
		return nil, err
	}
	return &file{fsys: f, name: name, info: fi}, nil
}

// ReadFileLimit reads a whole file in as few round trips as possible,
// refusing files larger than max. guest.ReadFile uses it when present.
func (f *FS) ReadFileLimit(name string, max int64) ([]byte, error) {
	fi, err := f.stat("read", name, true)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: abs(name), Err: fmt.Errorf("not a regular file (%s)", fi.Mode().Type())}
	}
	if fi.Size() > max {
		return nil, &fs.PathError{Op: "read", Path: abs(name), Err: fmt.Errorf("%d bytes > %d: %w", fi.Size(), max, guest.ErrTooLarge)}
	}
	fl := &file{fsys: f, name: name, info: fi}
	return io.ReadAll(io.LimitReader(fl, max))
}

type file struct {
	fsys *FS
	name string
	info *fileInfo
	off  int64
	dir  []fs.DirEntry
	dirs bool
}

func (fl *file) Stat() (fs.FileInfo, error) { return fl.info, nil }
func (fl *file) Close() error               { return nil }

func (fl *file) Read(p []byte) (int, error) {
	if fl.info.IsDir() {
		return 0, &fs.PathError{Op: "read", Path: abs(fl.name), Err: errors.New("is a directory")}
	}
	if len(p) == 0 {
		return 0, nil
	}
	var data []byte
	err := fl.fsys.s.call(fl.fsys.ctx, "pread", func(g *guestfs.Guestfs) error {
		var err error
		data, err = g.Pread(abs(fl.name), min(len(p), preadChunk), fl.off)
		return err
	})
	if err != nil {
		return 0, fl.fsys.pathErr("read", fl.name, err)
	}
	if len(data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, data)
	fl.off += int64(n)
	return n, nil
}

func (fl *file) ReadDir(n int) ([]fs.DirEntry, error) {
	if !fl.dirs {
		ents, err := fl.fsys.ReadDir(fl.name)
		if err != nil {
			return nil, err
		}
		fl.dir, fl.dirs = ents, true
	}
	if n <= 0 {
		out := fl.dir
		fl.dir = nil
		return out, nil
	}
	if len(fl.dir) == 0 {
		return nil, io.EOF
	}
	k := min(n, len(fl.dir))
	out := fl.dir[:k]
	fl.dir = fl.dir[k:]
	return out, nil
}

type fileInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
	owner guest.Owner
}

func newInfo(name string, st *guestfs.StatNS) *fileInfo {
	return &fileInfo{
		name:  name,
		size:  st.St_size,
		mode:  guest.UnixMode(uint32(st.St_mode)),
		mtime: time.Unix(st.St_mtime_sec, st.St_mtime_nsec),
		owner: guest.Owner{UID: uint32(st.St_uid), GID: uint32(st.St_gid)},
	}
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.size }
func (i *fileInfo) Mode() fs.FileMode  { return i.mode }
func (i *fileInfo) ModTime() time.Time { return i.mtime }
func (i *fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *fileInfo) Sys() any           { return i.owner }
