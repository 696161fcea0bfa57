package libguestfs

/*
#cgo LDFLAGS: -lguestfs
#include <guestfs.h>
static void quiet(void *h) { guestfs_set_error_handler((guestfs_h *)h, NULL, NULL); }
*/
import "C"

import (
	"unsafe"

	"libguestfs.org/guestfs"
)

// silence removes libguestfs's default error handler, which prints every
// failed call to stderr: ENOENT is an answer for us, not an error, and the
// errors that matter are returned and logged with context. The Go bindings
// do not expose the call; their handle's only field is the C handle.
func silence(g *guestfs.Guestfs) {
	C.quiet(*(*unsafe.Pointer)(unsafe.Pointer(g)))
}
