package block

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
)

// preflight checks what qemu would silently get wrong or open besides the
// image, before the daemon starts:
//   - qemu reads the part of a cluster past the end of a truncated file as
//     zeroes, without an error, so every qcow2 table and data cluster must
//     lie inside the file;
//   - a qcow2 backing file or external data file, and a vmdk descriptor's
//     extents, are other files: refused, though the daemon is also told
//     to open no backing file.
//
// image.Probe runs the same kind of checks (qemu-img check); these are the
// block layer's own, so that it never presents a wrong disk as complete.
func preflight(path, format string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("open %s: not a regular file (%s): %w", path, st.Mode().Type(), ErrUnsupported)
	}
	if err := checkImage(f, st.Size(), format); err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	return nil
}

// checkImage runs preflight's checks on the image's size bytes read from
// r: a file, or a device such as a remote object.
func checkImage(r io.ReaderAt, size int64, format string) error {
	switch format {
	case "qcow2":
		return checkQCOW2(r, size)
	case "vmdk":
		return checkVMDK(r)
	}
	return nil
}

// readFailed tells a failed read (a device's error: EIO, a connection
// reset, an image changed) from a short image, which is corrupt.
func readFailed(err error) bool {
	return err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF)
}

// checkVMDK accepts the monolithic formats (sparse and streamOptimized,
// magic KDMV, and the old COWD); a text descriptor names its extents,
// which are other files.
func checkVMDK(r io.ReaderAt) error {
	var m [4]byte
	if _, err := r.ReadAt(m[:], 0); err != nil {
		if readFailed(err) {
			return fmt.Errorf("vmdk magic: %w", err)
		}
		return fmt.Errorf("vmdk magic: %w: %w", err, ErrCorrupt)
	}
	switch string(m[:]) {
	case "KDMV", "COWD":
		return nil
	}
	return fmt.Errorf("vmdk is a descriptor (magic %q), whose extents are other files: %w", m[:], ErrRefused)
}

const (
	qcow2Magic = "QFI\xfb"
	// qemu's own limit on the L1 table (QCOW_MAX_L1_SIZE).
	qcow2MaxL1Bytes  = 32 << 20
	qcow2OffsetMask  = 0x00fffffffffffe00
	qcow2Compressed  = 1 << 62
	qcow2ZeroCluster = 1 << 0

	qcow2IncompatCorrupt  = 1 << 1
	qcow2IncompatDataFile = 1 << 2
	qcow2IncompatExtL2    = 1 << 4
)

// checkQCOW2 reads the header, the L1 table and every L2 table, and checks
// that every table and every allocated cluster of the guest disk lies
// inside the file's size bytes. Work and memory are bounded by qemu's own
// limits: an L1 table of at most 32 MiB and one cluster (at most 2 MiB)
// per L2 table read.
func checkQCOW2(r io.ReaderAt, size int64) error {
	h := make([]byte, 104)
	if n, err := r.ReadAt(h, 0); n < 72 {
		if readFailed(err) {
			return fmt.Errorf("qcow2 header: %w", err)
		}
		return fmt.Errorf("qcow2 header: %d bytes: %v: %w", n, err, ErrCorrupt)
	}
	be := binary.BigEndian
	if string(h[:4]) != qcow2Magic {
		return fmt.Errorf("qcow2 header: magic %q: %w", h[:4], ErrCorrupt)
	}
	version := be.Uint32(h[4:])
	if version != 2 && version != 3 {
		return fmt.Errorf("qcow2 header: version %d: %w", version, ErrUnsupported)
	}
	if off := be.Uint64(h[8:]); off != 0 {
		return fmt.Errorf("qcow2 header: backing file name at %d: %w", off, ErrRefused)
	}
	clusterBits := be.Uint32(h[20:])
	if clusterBits < 9 || clusterBits > 21 {
		return fmt.Errorf("qcow2 header: cluster bits %d: %w", clusterBits, ErrCorrupt)
	}
	cluster := int64(1) << clusterBits
	vsize := be.Uint64(h[24:])
	if vsize > 1<<62 {
		return fmt.Errorf("qcow2 header: virtual size %d: %w", vsize, ErrCorrupt)
	}
	if m := be.Uint32(h[32:]); m != 0 {
		return fmt.Errorf("qcow2 header: encryption method %d: %w", m, ErrUnsupported)
	}
	l1Size, l1Off := be.Uint32(h[36:]), be.Uint64(h[40:])
	entryBytes := int64(8) // an L2 entry; 16 with extended L2 (its subcluster bitmap)
	if version == 3 {
		if hl := be.Uint32(h[100:]); hl < 104 {
			return fmt.Errorf("qcow2 header: header length %d: %w", hl, ErrCorrupt)
		}
		incompat := be.Uint64(h[72:])
		if incompat&qcow2IncompatCorrupt != 0 {
			return fmt.Errorf("qcow2 header: marked corrupt: %w", ErrCorrupt)
		}
		if incompat&qcow2IncompatDataFile != 0 {
			return fmt.Errorf("qcow2 header: external data file: %w", ErrRefused)
		}
		if incompat&qcow2IncompatExtL2 != 0 {
			entryBytes = 16
		}
	}
	if int64(l1Size)*8 > qcow2MaxL1Bytes {
		return fmt.Errorf("qcow2 L1 table: %d entries, more than qemu allows: %w", l1Size, ErrCorrupt)
	}
	if err := inFile("L1 table", l1Off, int64(l1Size)*8, cluster, size); err != nil {
		return err
	}
	l1 := make([]byte, int64(l1Size)*8)
	if _, err := r.ReadAt(l1, int64(l1Off)); err != nil {
		return fmt.Errorf("qcow2 L1 table at %d: %w", l1Off, err)
	}
	l2 := make([]byte, cluster)
	l2Entries := cluster / entryBytes
	span := l2Entries * cluster // guest bytes one L2 table maps
	for i := range int64(l1Size) {
		l2Off := be.Uint64(l1[i*8:]) & qcow2OffsetMask
		if l2Off == 0 || i*span >= int64(vsize) {
			continue // unallocated, or past the disk: qemu never reads it
		}
		if err := inFile(fmt.Sprintf("L2 table %d", i), l2Off, cluster, cluster, size); err != nil {
			return err
		}
		if _, err := r.ReadAt(l2, int64(l2Off)); err != nil {
			return fmt.Errorf("qcow2 L2 table %d at %d: %w", i, l2Off, err)
		}
		for j := range l2Entries {
			guest := i*span + j*cluster
			if guest >= int64(vsize) {
				break
			}
			e := be.Uint64(l2[j*entryBytes:])
			what := func() string { return fmt.Sprintf("cluster at guest offset %d (L2 table %d entry %d)", guest, i, j) }
			if e&qcow2Compressed != 0 {
				// Only the start is checked: qemu reads the compressed
				// bytes up to a sector boundary that may lie past the end,
				// and a stream cut short fails to inflate (an error).
				shift := 62 - (clusterBits - 8)
				if host := e & (1<<shift - 1); host >= uint64(size) {
					return fmt.Errorf("qcow2 compressed %s: data at %d past the end of the %d-byte file: %w", what(), host, size, ErrCorrupt)
				}
				continue
			}
			host := e & qcow2OffsetMask
			if host == 0 || (version == 3 && e&qcow2ZeroCluster != 0) {
				continue // reads as zeroes without touching the file
			}
			need := min(cluster, int64(vsize)-guest)
			if entryBytes == 16 {
				// Extended L2: only the allocated subclusters (the low
				// 32 bits of the bitmap) are read, and qemu writes
				// no more of the cluster than them.
				alloc := uint32(be.Uint64(l2[j*entryBytes+8:]))
				if alloc == 0 {
					continue
				}
				need = min(need, int64(32-bits.LeadingZeros32(alloc))*(cluster/32))
			}
			if err := inFile(what(), host, need, cluster, size); err != nil {
				return err
			}
		}
	}
	return nil
}

// inFile checks that n bytes at off lie inside a file of size bytes and
// that off is aligned.
func inFile(what string, off uint64, n, align, size int64) error {
	if off%uint64(align) != 0 {
		return fmt.Errorf("qcow2 %s at %d: not aligned to %d: %w", what, off, align, ErrCorrupt)
	}
	if off > uint64(size) || n > size-int64(off) {
		return fmt.Errorf("qcow2 %s: %d bytes at %d, past the end of the %d-byte file: %w", what, n, off, size, ErrCorrupt)
	}
	return nil
}
