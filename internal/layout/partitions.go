// Package layout reads how a disk is laid out, from its bytes alone: the
// partition table (MBR with extended and logical partitions, GPT), every
// structure bounded, since disks come from strangers. It reads through an
// io.ReaderAt, so the same code serves the libguestfs appliance's device
// and a direct reader.
package layout

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// Partition is one entry of a partition table.
type Partition struct {
	Number int
	Start  int64 // bytes
	Size   int64 // bytes
	Type   string
	Name   string // GPT only
	// UUID is what PARTUUID= names: the GPT unique partition GUID, or
	// the MBR disk signature and the partition number ("1b2c3d4e-01").
	UUID string
}

const sector = 512

// maxLogical bounds the EBR chain of an MBR extended partition.
const maxLogical = 128

// readAt reads n bytes of the device at off.
type readAt func(off int64, n int) ([]byte, error)

// ErrNoTable: the disk has no partition table (a whole-disk filesystem or
// physical volume).
var ErrNoTable = errors.New("no partition table")

// Partitions reads the partition table of a disk of size bytes: "msdos" or
// "gpt" and the partitions in table order, or ErrNoTable. On a broken
// table it returns what it read before the break, and the error.
func Partitions(r io.ReaderAt, size int64) (string, []Partition, error) {
	read := func(off int64, n int) ([]byte, error) {
		if off < 0 || n < 0 || off > size || int64(n) > size-off {
			return nil, fmt.Errorf("read of %d bytes at %d: past the disk's %d bytes", n, off, size)
		}
		b := make([]byte, n)
		if _, err := r.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && off+int64(n) == size) {
			return nil, fmt.Errorf("read of %d bytes at %d: %w", n, off, err)
		}
		return b, nil
	}
	return parsePartitions(read, size)
}

func parsePartitions(read readAt, diskSize int64) (string, []Partition, error) {
	if diskSize < 2*sector {
		return "", nil, ErrNoTable
	}
	head, err := read(0, 2*sector)
	if err != nil {
		return "", nil, err
	}
	if len(head) < 2*sector {
		return "", nil, ErrNoTable
	}
	if string(head[sector:sector+8]) == "EFI PART" {
		parts, err := parseGPT(read, head[sector:2*sector], diskSize)
		return "gpt", parts, err
	}
	if head[510] != 0x55 || head[511] != 0xaa {
		return "", nil, ErrNoTable
	}
	var parts []Partition
	var ext *Partition
	for i := 0; i < 4; i++ {
		e := head[446+16*i : 446+16*i+16]
		if e[0] != 0 && e[0] != 0x80 {
			return "", nil, ErrNoTable // a FAT boot sector, not an MBR
		}
		typ := e[4]
		if typ == 0 {
			continue
		}
		if typ == 0xee {
			return "", nil, fmt.Errorf("protective MBR without a GPT header")
		}
		p := Partition{
			Number: i + 1,
			Start:  int64(binary.LittleEndian.Uint32(e[8:])) * sector,
			Size:   int64(binary.LittleEndian.Uint32(e[12:])) * sector,
			Type:   fmt.Sprintf("0x%02x", typ),
		}
		if p.Start+p.Size > diskSize {
			return "", nil, fmt.Errorf("MBR partition %d ends at %d, past the disk's %d bytes", p.Number, p.Start+p.Size, diskSize)
		}
		parts = append(parts, p)
		if typ == 0x05 || typ == 0x0f || typ == 0x85 {
			ext = &p
		}
	}
	// PARTUUID of MBR partitions, as blkid derives it.
	for i := range parts {
		parts[i].UUID = mbrPartUUID(head, parts[i].Number)
	}
	if ext != nil {
		// Logical partitions found before a broken link are kept.
		logical, err := parseEBR(read, ext.Start, ext.Size, diskSize)
		for i := range logical {
			logical[i].UUID = mbrPartUUID(head, logical[i].Number)
		}
		parts = append(parts, logical...)
		if err != nil {
			return "msdos", parts, err
		}
	}
	return "msdos", parts, nil
}

// parseEBR follows the chain of extended boot records. Offsets of the next
// EBR are relative to the extended partition, of the logical partition to
// its EBR.
func parseEBR(read readAt, extStart, extSize, diskSize int64) ([]Partition, error) {
	var out []Partition
	seen := map[int64]bool{}
	ebr := extStart
	for n := 5; n < 5+maxLogical; n++ {
		if seen[ebr] || ebr < extStart || ebr >= extStart+extSize {
			return out, fmt.Errorf("EBR chain loops or leaves the extended partition at %d", ebr)
		}
		seen[ebr] = true
		b, err := read(ebr, sector)
		if err != nil {
			return out, err
		}
		if len(b) < sector || b[510] != 0x55 || b[511] != 0xaa {
			return out, fmt.Errorf("bad EBR signature at %d", ebr)
		}
		e := b[446:462]
		if e[4] != 0 {
			p := Partition{
				Number: n,
				Start:  ebr + int64(binary.LittleEndian.Uint32(e[8:]))*sector,
				Size:   int64(binary.LittleEndian.Uint32(e[12:])) * sector,
				Type:   fmt.Sprintf("0x%02x", e[4]),
			}
			if p.Start+p.Size > diskSize {
				return out, fmt.Errorf("logical partition %d ends past the disk", n)
			}
			out = append(out, p)
		}
		next := b[462:478]
		if next[4] == 0 {
			return out, nil
		}
		ebr = extStart + int64(binary.LittleEndian.Uint32(next[8:]))*sector
	}
	return out, fmt.Errorf("more than %d logical partitions", maxLogical)
}

func parseGPT(read readAt, hdr []byte, diskSize int64) ([]Partition, error) {
	entriesLBA := binary.LittleEndian.Uint64(hdr[72:])
	count := binary.LittleEndian.Uint32(hdr[80:])
	esize := binary.LittleEndian.Uint32(hdr[84:])
	if esize < 128 || esize > 4096 || count == 0 || count > 1024 {
		return nil, fmt.Errorf("GPT header: %d entries of %d bytes", count, esize)
	}
	total := int(count * esize)
	if entriesLBA == 0 || entriesLBA >= uint64(diskSize/sector) || int64(entriesLBA)*sector > diskSize-int64(total) {
		return nil, fmt.Errorf("GPT entries at LBA %d out of the disk", entriesLBA)
	}
	off := int64(entriesLBA) * sector
	b, err := read(off, total)
	if err != nil {
		return nil, err
	}
	var out []Partition
	for i := 0; i < int(count) && (i+1)*int(esize) <= len(b); i++ {
		e := b[i*int(esize) : (i+1)*int(esize)]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		first, last := binary.LittleEndian.Uint64(e[32:]), binary.LittleEndian.Uint64(e[40:])
		if last < first || last >= uint64(diskSize/sector) {
			return out, fmt.Errorf("GPT partition %d: sectors %d-%d out of the disk", i+1, first, last)
		}
		out = append(out, Partition{
			Number: i + 1,
			Start:  int64(first) * sector,
			Size:   int64(last-first+1) * sector,
			Type:   guidString(e[:16]),
			Name:   utf16Name(e[56:128]),
			UUID:   strings.ToLower(guidString(e[16:32])),
		})
	}
	return out, nil
}

// mbrPartUUID is blkid's PARTUUID of an MBR partition: the disk
// signature, a dash, the partition number; none without a signature.
func mbrPartUUID(mbr []byte, n int) string {
	sig := binary.LittleEndian.Uint32(mbr[440:])
	if sig == 0 {
		return ""
	}
	return fmt.Sprintf("%08x-%02x", sig, n)
}

// guidString formats a GPT GUID (mixed-endian) as parted and sgdisk print it.
func guidString(b []byte) string {
	return strings.ToUpper(fmt.Sprintf("%08X-%04X-%04X-%X-%X",
		binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint16(b[4:]), binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16]))
}

func utf16Name(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, string(utf16.Decode(u)))
}

// IsPV says whether a device holds an LVM2 physical volume: a label in
// one of the first four sectors with a right CRC and PV header, as LVM
// itself requires (lvm.go reads it).
func IsPV(r io.ReaderAt) bool {
	_, _, err := readLabel(r, -1)
	return err == nil
}
