// Package image decides whether a disk image is safe to hand to libguestfs:
// it detects the format from the bytes, refuses anything that would make
// qemu open a second file (backing files, external data files, vmdk
// extents), checks the image's metadata and verifies checksums.
package image

import (
	"errors"
	"fmt"

	"guestkit.io/batch/internal/result"
)

// Formats the runner accepts. They are qemu block driver names.
const (
	FormatQCOW2 = "qcow2"
	FormatRaw   = "raw"
	FormatVMDK  = "vmdk"
	FormatVDI   = "vdi"
	FormatVHDX  = "vhdx"
	FormatVPC   = "vpc" // VHD
)

// Error is a problem with the image itself; Code says which.
type Error struct {
	Code result.Code
	Path string
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("image %s: %s", e.Path, e.Msg)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the result code of an image error, or "" if err is not one.
func CodeOf(err error) result.Code {
	var ie *Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

func newErr(code result.Code, path, format string, args ...any) *Error {
	return &Error{Code: code, Path: path, Msg: fmt.Sprintf(format, args...)}
}
