package filesystem

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"guestkit.io/batch/internal/guest"
)

// MaxLinks bounds the symlinks followed while resolving one path, as
// Linux does (ELOOP after 40).
const MaxLinks = 40

// Mount is one volume at a guest path ("/", "/boot").
type Mount struct {
	Path   string
	Volume Volume
}

// Tree joins the volumes of one OS root at their mountpoints into one
// guest.FS rooted at the guest's "/". Symbolic links resolve inside the
// guest: ".." stops at "/", and an absolute target starts again at the
// guest's "/", never the host's. It is safe for concurrent use.
type Tree struct {
	mounts []Mount // longest path first
}

var _ guest.FS = (*Tree)(nil)

// NewTree mounts the volumes; "/" must be among them. A mountpoint whose
// directory does not resolve to a directory on the volumes below it is
// refused, as mount(2) would refuse it.
func NewTree(mounts []Mount) (*Tree, []error) {
	sorted := append([]Mount(nil), mounts...)
	for i := range sorted {
		sorted[i].Path = path.Clean("/" + sorted[i].Path)
	}
	// Shortest first, so each mountpoint is checked on what is mounted
	// below it.
	sort.SliceStable(sorted, func(i, j int) bool { return len(sorted[i].Path) < len(sorted[j].Path) })
	t := &Tree{}
	var errs []error
	for _, m := range sorted {
		if m.Path == "/" {
			if len(t.mounts) > 0 {
				errs = append(errs, fmt.Errorf("mount on /: / is already mounted"))
				continue
			}
			t.mounts = []Mount{m}
			continue
		}
		if len(t.mounts) == 0 {
			errs = append(errs, fmt.Errorf("mount on %s: nothing is mounted on /", m.Path))
			continue
		}
		// As mount(2): the mountpoint's own symlinks are followed.
		at, err := t.resolve("mount", strings.TrimPrefix(m.Path, "/"), true)
		var fi fs.FileInfo
		if err == nil {
			fi, err = t.lstat("mount", at)
		}
		if err != nil || !fi.IsDir() {
			errs = append(errs, fmt.Errorf("mount on %s: mountpoint is not a directory: %v", m.Path, errOr(err, "not a directory")))
			continue
		}
		m.Path = at
		t.mounts = append([]Mount{m}, t.mounts...)
		sort.SliceStable(t.mounts, func(i, j int) bool { return len(t.mounts[i].Path) > len(t.mounts[j].Path) })
	}
	if len(t.mounts) == 0 {
		return nil, append(errs, errors.New("nothing is mounted on /"))
	}
	return t, errs
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}

// at returns the volume that holds the guest path p (clean, absolute) and
// the path inside it.
func (t *Tree) at(p string) (Volume, string, bool) {
	for _, m := range t.mounts {
		if p == m.Path {
			return m.Volume, ".", true
		}
		if m.Path == "/" {
			return m.Volume, strings.TrimPrefix(p, "/"), false
		}
		if strings.HasPrefix(p, m.Path+"/") {
			return m.Volume, strings.TrimPrefix(p, m.Path+"/"), false
		}
	}
	return nil, "", false // unreachable: "/" is always mounted
}

// resolve turns an io/fs path into a clean absolute guest path with no
// symlink in it, following the final component too when follow is set.
func (t *Tree) resolve(op, name string, follow bool) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	var todo []string
	if name != "." {
		todo = strings.Split(name, "/")
	}
	cur := "/"
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		last := len(todo) == 0
		if last && !follow {
			return next, nil
		}
		vol, in, _ := t.at(next)
		fi, err := vol.Lstat(in)
		if err != nil {
			return "", &fs.PathError{Op: op, Path: "/" + name, Err: unwrapPath(err)}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if !last && !fi.IsDir() {
				return "", &fs.PathError{Op: op, Path: "/" + name, Err: fs.ErrNotExist}
			}
			cur = next
			continue
		}
		if links++; links > MaxLinks {
			return "", &fs.PathError{Op: op, Path: "/" + name, Err: fmt.Errorf("more than %d symbolic links: %w", MaxLinks, fs.ErrInvalid)}
		}
		target, err := vol.ReadLink(in)
		if err != nil {
			return "", &fs.PathError{Op: op, Path: "/" + name, Err: unwrapPath(err)}
		}
		if target == "" {
			return "", &fs.PathError{Op: op, Path: "/" + name, Err: fs.ErrNotExist}
		}
		if strings.HasPrefix(target, "/") {
			cur = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return cur, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// lstat stats a resolved path; a mountpoint shows its volume's root.
func (t *Tree) lstat(op, p string) (fs.FileInfo, error) {
	vol, in, _ := t.at(p)
	fi, err := vol.Lstat(in)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: p, Err: unwrapPath(err)}
	}
	if p == "/" {
		return named{fi, "."}, nil
	}
	return named{fi, path.Base(p)}, nil
}

// named renames a FileInfo: a volume's root is called "." inside it but
// has the mountpoint's name in the tree.
type named struct {
	fs.FileInfo
	name string
}

func (n named) Name() string { return n.name }

// Stat follows symlinks.
func (t *Tree) Stat(name string) (fs.FileInfo, error) {
	p, err := t.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return t.lstat("stat", p)
}

// Lstat does not follow a final symlink.
func (t *Tree) Lstat(name string) (fs.FileInfo, error) {
	p, err := t.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return t.lstat("lstat", p)
}

// ReadLink returns a symlink's target as stored.
func (t *Tree) ReadLink(name string) (string, error) {
	p, err := t.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	vol, in, _ := t.at(p)
	s, err := vol.ReadLink(in)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: p, Err: unwrapPath(err)}
	}
	return s, nil
}

// ReadDir lists a directory; an entry that is a mountpoint describes the
// mounted volume's root, as stat(2) does.
func (t *Tree) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := t.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	vol, in, _ := t.at(p)
	ents, err := vol.ReadDir(in)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: p, Err: unwrapPath(err)}
	}
	for i, e := range ents {
		child := path.Join(p, e.Name())
		if _, _, isMount := t.at(child); isMount {
			if fi, err := t.lstat("readdir", child); err == nil {
				ents[i] = fs.FileInfoToDirEntry(fi)
			}
		}
	}
	return ents, nil
}

// Open opens a file or directory, following symlinks.
func (t *Tree) Open(name string) (fs.File, error) {
	p, err := t.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	vol, in, _ := t.at(p)
	f, err := vol.Open(in)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: unwrapPath(err)}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: p, Err: unwrapPath(err)}
	}
	if fi.IsDir() {
		// Listed through the tree, so that mountpoints show their volumes.
		return &dirFile{File: f, tree: t, path: p}, nil
	}
	return f, nil
}

// dirFile is an open directory of the tree.
type dirFile struct {
	fs.File
	tree *Tree
	path string
	ents []fs.DirEntry
	read bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.tree.lstat("stat", d.path) }

// ReadDir follows fs.ReadDirFile: n > 0 reads in batches.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		ents, err := d.tree.ReadDir(fsPath(d.path))
		if err != nil {
			return nil, err
		}
		d.ents, d.read = ents, true
	}
	if n <= 0 {
		ents := d.ents
		d.ents = nil
		return ents, nil
	}
	if len(d.ents) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.ents))
	ents := d.ents[:n]
	d.ents = d.ents[n:]
	return ents, nil
}

// fsPath turns a clean absolute guest path into an io/fs path.
func fsPath(p string) string {
	if p == "/" {
		return "."
	}
	return strings.TrimPrefix(p, "/")
}
