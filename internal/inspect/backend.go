package inspect

import (
	"context"

	"guestkit.io/batch/internal/guest"
)

// Backend is what inspection needs from a launched appliance. libguestfs
// implements it; tests use a fake that serves fstest trees.
type Backend interface {
	// Roots returns the OS roots found on the disk (inspect_os).
	Roots(ctx context.Context) ([]string, error)
	// OSFacts returns the identity of a root: everything but the sections
	// read from files and the applications.
	OSFacts(ctx context.Context, root string) (OS, error)
	// Mount mounts a root's filesystems read-only at their mountpoints and
	// returns a view of the guest. Problems with secondary mountpoints are
	// reported, not fatal.
	Mount(ctx context.Context, root string) (guest.FS, []Problem, error)
	// Applications lists installed packages of the mounted root.
	Applications(ctx context.Context, root string) ([]Application, error)
	// Unmount unmounts everything Mount mounted.
	Unmount(ctx context.Context) error
	// Storage describes the disk: devices, partitions, LVM, filesystems.
	// known are filesystems the OS roots already described.
	Storage(ctx context.Context, known []Filesystem) (Storage, []Problem, error)
}
