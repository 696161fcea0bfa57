package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/guest"
)

type fileInfo struct {
	name string
	in   *inode
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.in.size }
func (fi *fileInfo) Mode() fs.FileMode  { return guest.UnixMode(fi.in.mode()) }
func (fi *fileInfo) ModTime() time.Time { return time.Unix(int64(fi.in.mtime), 0).UTC() }
func (fi *fileInfo) IsDir() bool        { return fi.in.isDir() }
func (fi *fileInfo) Sys() any           { return guest.Owner{UID: fi.in.uid, GID: fi.in.gid} }

func (f *FS) info(in *inode, name string) *fileInfo { return &fileInfo{name: name, in: in} }

type dirEntry struct {
	f *FS
	e entry
}

func (d dirEntry) Name() string      { return d.e.name }
func (d dirEntry) IsDir() bool       { return d.e.typ == typeDir }
func (d dirEntry) Type() fs.FileMode { return guest.UnixMode(typeBits[d.e.typ]).Type() }
func (d dirEntry) Info() (fs.FileInfo, error) {
	in, err := d.f.inode(d.e.ref)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: d.e.name, Err: err}
	}
	return d.f.info(in, d.e.name), nil
}

// checkpointEvery is how many blocks lie between two remembered block
// positions: a block's position is the sum of the sizes before it.
const checkpointEvery = 64

// file is an open regular file. ReadAt is safe for concurrent use; Read
// and Seek share an offset, as with os.File.
type file struct {
	f      *FS
	fi     *fileInfo
	size   int64
	bs     int64
	sizes  []uint32 // each block's size field
	checks []int64  // position of block i*checkpointEvery
	name   string
	cur    filesystem.Cursor
}

// openFile reads the block list of a regular file and checks it: every
// block within the block size and all of them inside the filesystem.
func (f *FS) openFile(name string, in *inode, fi *fileInfo) (*file, error) {
	bs := int64(f.sb.blockSize)
	n := in.size / bs
	if in.frag == invalidFrag && in.size%bs != 0 {
		n++
	}
	if n > maxBlocks {
		return nil, fmt.Errorf("file of %d blocks: %w", n, filesystem.ErrUnsupported)
	}
	fl := &file{f: f, fi: fi, name: name, size: in.size, bs: bs, sizes: make([]uint32, n)}
	if n > 0 {
		r, err := f.metaReaderPos(int64(f.sb.inodeTable), in.tailPos, in.tailOff)
		if err != nil {
			return nil, fmt.Errorf("block list: %w", err)
		}
		raw := make([]byte, 4*n)
		if err := r.read(raw); err != nil {
			return nil, fmt.Errorf("block list: %w", err)
		}
		for i := range fl.sizes {
			fl.sizes[i] = binary.LittleEndian.Uint32(raw[4*i:])
		}
	}
	pos := int64(in.blocksStart)
	if in.blocksStart > uint64(f.size) {
		return nil, corrupt("blocks at %d past the filesystem's %d bytes", in.blocksStart, f.size)
	}
	for i, s := range fl.sizes {
		if i%checkpointEvery == 0 {
			fl.checks = append(fl.checks, pos)
		}
		c := int64(s &^ (1 << 24))
		if c > bs {
			return nil, corrupt("block %d of %d bytes", i, c)
		}
		pos += c
	}
	if pos > f.size {
		return nil, corrupt("blocks end at %d past the filesystem's %d bytes", pos, f.size)
	}
	return fl, nil
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
	for len(p) > 0 && off < fl.size {
		i := off / fl.bs
		data, err := fl.block(i)
		if err != nil {
			return read, &fs.PathError{Op: "read", Path: fl.fi.name, Err: err}
		}
		n := copy(p, data[off-i*fl.bs:])
		read += n
		p, off = p[n:], off+int64(n)
	}
	if len(p) > 0 {
		return read, io.EOF
	}
	return read, nil
}

// block returns the bytes of the file's block i: a data block, or the
// tail in its fragment.
func (fl *file) block(i int64) ([]byte, error) {
	want := min(fl.bs, fl.size-i*fl.bs)
	if i >= int64(len(fl.sizes)) {
		return fl.f.fragmentTail(fl.fi.in, int(want))
	}
	s := fl.sizes[i]
	if s == 0 {
		return fl.f.zeroBlock()[:want], nil // a sparse block
	}
	pos := fl.checks[i/checkpointEvery]
	for j := i / checkpointEvery * checkpointEvery; j < i; j++ {
		pos += int64(fl.sizes[j] &^ (1 << 24))
	}
	data, err := fl.f.dataBlock(pos, s)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", i, err)
	}
	if int64(len(data)) < want {
		return nil, corrupt("block %d at %d: %d bytes of %d", i, pos, len(data), want)
	}
	return data[:want], nil
}

// zeroBlock is one block of zeros, shared read-only by every sparse block.
func (f *FS) zeroBlock() []byte {
	f.zerosOnce.Do(func() { f.zeros = make([]byte, f.sb.blockSize) })
	return f.zeros
}

// dataBlock reads and decompresses the data block at pos whose size
// field is s, through a small cache.
func (f *FS) dataBlock(pos int64, s uint32) ([]byte, error) {
	f.mu.Lock()
	data, ok := f.blockCache[pos]
	f.mu.Unlock()
	if ok {
		return data, nil
	}
	raw := make([]byte, s&^(1<<24))
	if err := f.readAt(raw, pos); err != nil {
		return nil, err
	}
	data = raw
	if s&(1<<24) == 0 {
		var err error
		if data, err = f.decompress(raw, int(f.sb.blockSize)); err != nil {
			return nil, corrupt("data block at %d: %v", pos, err)
		}
	}
	f.mu.Lock()
	if _, ok := f.blockCache[pos]; !ok {
		if len(f.blockOrder) >= maxBlockCache {
			delete(f.blockCache, f.blockOrder[0])
			f.blockOrder = f.blockOrder[1:]
		}
		f.blockCache[pos] = data
		f.blockOrder = append(f.blockOrder, pos)
	}
	f.mu.Unlock()
	return data, nil
}

// fragmentTail returns the n bytes of in's tail in its fragment block.
func (f *FS) fragmentTail(in *inode, n int) ([]byte, error) {
	if in.frag == invalidFrag {
		return nil, corrupt("tail without a fragment")
	}
	var idx [8]byte
	if err := f.readAt(idx[:], int64(f.sb.fragTable)+8*int64(in.frag/512)); err != nil {
		return nil, fmt.Errorf("fragment index: %w", err)
	}
	mb, err := f.meta(int64(binary.LittleEndian.Uint64(idx[:])), 96)
	if err != nil {
		return nil, fmt.Errorf("fragment table: %w", err)
	}
	o := int(in.frag%512) * 16
	if o+16 > len(mb.data) {
		return nil, corrupt("fragment %d past its table block's %d bytes", in.frag, len(mb.data))
	}
	start, size := binary.LittleEndian.Uint64(mb.data[o:]), binary.LittleEndian.Uint32(mb.data[o+8:])
	if int64(size&^(1<<24)) > int64(f.sb.blockSize) || start > uint64(f.size) {
		return nil, corrupt("fragment %d: %d bytes at %d", in.frag, size&^(1<<24), start)
	}
	if size == 0 {
		return nil, corrupt("fragment %d is empty", in.frag)
	}
	data, err := f.dataBlock(int64(start), size)
	if err != nil {
		return nil, fmt.Errorf("fragment %d: %w", in.frag, err)
	}
	if int64(in.fragOff)+int64(n) > int64(len(data)) {
		return nil, corrupt("tail of %d bytes at %d in fragment %d of %d bytes", n, in.fragOff, in.frag, len(data))
	}
	return data[in.fragOff : int(in.fragOff)+n], nil
}

// dir is an open directory.
type dir struct {
	f    *FS
	name string
	in   *inode
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
		ents, err := d.f.readDir(d.name, d.in)
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
