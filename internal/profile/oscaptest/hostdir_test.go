package oscaptest

import (
	"io/fs"
	"os"
	"sort"
	"syscall"

	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/guest"
)

// hostDir is a filesystem.Volume over a directory of this machine: the
// extracted root. filesystem.Tree on top of it resolves symlinks inside
// the guest (an absolute target starts at the root, never the host's /),
// as it does for the ext4 and xfs readers of a real image; os.Root keeps
// every access under the directory.
type hostDir struct{ root *os.Root }

var _ filesystem.Volume = hostDir{}

func (h hostDir) Lstat(name string) (fs.FileInfo, error) {
	fi, err := h.root.Lstat(name)
	if err != nil {
		return nil, err
	}
	return ownedInfo{fi}, nil
}

func (h hostDir) ReadLink(name string) (string, error) { return h.root.Readlink(name) }

func (h hostDir) ReadDir(name string) ([]fs.DirEntry, error) {
	f, err := h.root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, 0, len(ents))
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			return nil, err
		}
		out = append(out, fs.FileInfoToDirEntry(ownedInfo{fi}))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

func (h hostDir) Open(name string) (fs.File, error) {
	fi, err := h.root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	f, err := h.root.Open(name)
	if err != nil {
		return nil, err
	}
	return ownedFile{f}, nil
}

// ownedInfo reports the owner as guest.Owner, the way every guest.FS does.
type ownedInfo struct{ fs.FileInfo }

func (o ownedInfo) Sys() any {
	if st, ok := o.FileInfo.Sys().(*syscall.Stat_t); ok {
		return guest.Owner{UID: st.Uid, GID: st.Gid}
	}
	return nil
}

type ownedFile struct{ *os.File }

func (f ownedFile) Stat() (fs.FileInfo, error) {
	fi, err := f.File.Stat()
	if err != nil {
		return nil, err
	}
	return ownedInfo{fi}, nil
}

// dirFS is the guest.FS of the root extracted in dir.
func dirFS(dir string) (guest.FS, func(), error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, err
	}
	t, errs := filesystem.NewTree([]filesystem.Mount{{Path: "/", Volume: hostDir{r}}})
	if len(errs) > 0 {
		r.Close()
		return nil, nil, errs[0]
	}
	return t, func() { r.Close() }, nil
}
