// Package block gives the rest of the direct backend one view of a guest
// disk: its bytes in raw form, whatever the image format, read-only.
package block

import (
	"fmt"
	"io"
)

// Device is a block device: a whole disk, a partition or a logical
// volume. Reads past Size fail.
type Device interface {
	io.ReaderAt
	Size() int64
}

// Section is the part of d from off for size bytes (a partition).
func Section(d Device, off, size int64) (Device, error) {
	if off < 0 || size < 0 || off > d.Size() || size > d.Size()-off {
		return nil, fmt.Errorf("section of %d bytes at %d: outside the device's %d bytes", size, off, d.Size())
	}
	return section{io.NewSectionReader(d, off, size)}, nil
}

type section struct{ *io.SectionReader }
