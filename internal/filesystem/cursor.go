package filesystem

import (
	"io"
	"io/fs"
	"sync"
)

// Cursor is an open file's offset, which Read and Seek share as an
// os.File's do, over the file's own ReadAt. The readers' files embed one;
// it is safe for concurrent use.
type Cursor struct {
	mu  sync.Mutex
	off int64
}

// Read reads from f at the offset and moves the offset past what it read.
func (c *Cursor) Read(f io.ReaderAt, p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	n, err := f.ReadAt(p, c.off)
	c.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// Seek sets the offset of the file name, of size bytes, as io.Seeker
// does; an unknown whence or a negative offset is an fs.PathError
// wrapping fs.ErrInvalid.
func (c *Cursor) Seek(name string, size, offset int64, whence int) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += c.off
	case io.SeekEnd:
		offset += size
	default:
		return 0, &fs.PathError{Op: "seek", Path: name, Err: fs.ErrInvalid}
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: name, Err: fs.ErrInvalid}
	}
	c.off = offset
	return offset, nil
}
