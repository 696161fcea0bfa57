package rpmdb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// maxFallbackFile bounds a database file that has to be read whole
// because its fs.File offers no io.ReaderAt.
const maxFallbackFile = 256 << 20

// file is a database file read at offsets, every read checked against
// its size.
type file struct {
	name string
	r    io.ReaderAt
	size int64
	c    io.Closer
}

func openFile(fsys fs.FS, name string) (*file, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("/%s: not a regular file: %w", name, ErrCorrupt)
	}
	if ra, ok := f.(io.ReaderAt); ok {
		return &file{name: name, r: ra, size: fi.Size(), c: f}, nil
	}
	defer f.Close()
	if fi.Size() > maxFallbackFile {
		return nil, fmt.Errorf("/%s: %d bytes, more than %d to read whole: %w", name, fi.Size(), maxFallbackFile, ErrUnsupported)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFallbackFile+1))
	if err != nil {
		return nil, fmt.Errorf("/%s: %w", name, err)
	}
	return bytesFile(name, b), nil
}

func bytesFile(name string, b []byte) *file {
	return &file{name: name, r: bytes.NewReader(b), size: int64(len(b))}
}

func (f *file) Close() error {
	if f.c != nil {
		return f.c.Close()
	}
	return nil
}

// read returns n bytes at off, or an error naming what was read when they
// are not all in the file.
func (f *file) read(off, n int64, what string) ([]byte, error) {
	if off < 0 || n < 0 || off > f.size || n > f.size-off {
		return nil, fmt.Errorf("%s: %d bytes at offset %d past the end (%d bytes): %w", what, n, off, f.size, ErrCorrupt)
	}
	b := make([]byte, n)
	if m, err := f.r.ReadAt(b, off); int64(m) != n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%s: read %d bytes at offset %d: %w", what, n, off, err)
	}
	return b, nil
}
