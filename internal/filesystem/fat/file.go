package fat

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"time"

	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/guest"
)

// Linux's vfat without options: uid and gid 0, and the mount's umask
// (022) applied to 0777 for files and directories alike; a read-only
// file loses its write bits.
const (
	dirMode  = 0o040755
	fileMode = 0o100755
)

type fileInfo struct {
	name  string
	attr  byte
	size  int64
	mtime time.Time
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.size }
func (fi *fileInfo) ModTime() time.Time { return fi.mtime }
func (fi *fileInfo) IsDir() bool        { return fi.attr&attrDir != 0 }
func (fi *fileInfo) Sys() any           { return guest.Owner{} }
func (fi *fileInfo) Mode() fs.FileMode {
	if fi.attr&attrDir != 0 {
		return guest.UnixMode(dirMode)
	}
	m := uint32(fileMode)
	if fi.attr&attrReadOnly != 0 {
		m &^= 0o222
	}
	return guest.UnixMode(m)
}

type dirEntry struct {
	f *FS
	d dirent
}

func (e dirEntry) Name() string               { return e.d.name }
func (e dirEntry) IsDir() bool                { return e.d.attr&attrDir != 0 }
func (e dirEntry) Type() fs.FileMode          { return (&fileInfo{attr: e.d.attr}).Mode().Type() }
func (e dirEntry) Info() (fs.FileInfo, error) { return e.f.stat("stat", e.d.name, e.d) }

// run is a stretch of contiguous clusters of a file.
type run struct {
	first int64  // index of the run's first cluster in the file
	start uint32 // its cluster number
	n     int64
}

func makeRuns(cl []uint32) []run {
	var runs []run
	for i, c := range cl {
		if k := len(runs) - 1; k >= 0 && runs[k].start+uint32(runs[k].n) == c {
			runs[k].n++
			continue
		}
		runs = append(runs, run{first: int64(i), start: c, n: 1})
	}
	return runs
}

// file is an open regular file.
type file struct {
	f    *FS
	fi   *fileInfo
	name string
	size int64
	runs []run
	cur  filesystem.Cursor
}

func (fl *file) Stat() (fs.FileInfo, error) { return fl.fi, nil }
func (fl *file) Close() error               { return nil }

func (fl *file) Read(p []byte) (int, error) { return fl.cur.Read(fl, p) }

func (fl *file) Seek(offset int64, whence int) (int64, error) {
	return fl.cur.Seek(fl.name, fl.size, offset, whence)
}

func (fl *file) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("readat: negative offset")
	}
	read := 0
	cs := fl.f.clusterSize
	for len(p) > 0 && off < fl.size {
		idx := off / cs
		k := sort.Search(len(fl.runs), func(i int) bool { return fl.runs[i].first+fl.runs[i].n > idx })
		r := fl.runs[k]
		inRun := off - r.first*cs
		want := min(int64(len(p)), r.n*cs-inRun, fl.size-off)
		dev := fl.f.clusterOffset(r.start) + inRun
		n, err := fl.f.dev.ReadAt(p[:want], dev)
		read += n
		if err != nil {
			return read, fmt.Errorf("read at %d: %w", dev, corruptEOF(err))
		}
		p, off = p[want:], off+want
	}
	if len(p) > 0 {
		return read, io.EOF
	}
	return read, nil
}

// dir is an open directory.
type dir struct {
	f    *FS
	name string
	d    dirent
	fi   *fileInfo
	ents []fs.DirEntry
	read bool
}

func (d *dir) Stat() (fs.FileInfo, error) { return d.fi, nil }
func (d *dir) Close() error               { return nil }
func (d *dir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}

func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		ents, err := d.f.readDir("readdir", d.name, d.d)
		if err != nil {
			return nil, err
		}
		d.ents, d.read = ents, true
	}
	if n <= 0 {
		out := d.ents
		d.ents = nil
		return out, nil
	}
	if len(d.ents) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.ents))
	out := d.ents[:n]
	d.ents = d.ents[n:]
	return out, nil
}
