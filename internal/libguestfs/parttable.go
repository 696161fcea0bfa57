package libguestfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
)

// A partition table parsed from the disk's first sectors, read with one
// pread_device: parted and sfdisk cost a process spawn each inside the
// appliance, which is most of the cost of a storage report under TCG.

type partEntry struct {
	Number int
	Start  int64 // bytes
	Size   int64 // bytes
	Type   string
	Name   string // GPT only
}

const sector = 512

// maxLogical bounds the EBR chain of an MBR extended partition.
const maxLogical = 128

// readAt reads n bytes of the device at off.
type readAt func(off int64, n int) ([]byte, error)

var errNoTable = errors.New("no partition table")

// parsePartitions returns "msdos" or "gpt" and the partitions, or
// errNoTable for a disk without a table (a whole-disk filesystem or PV).
func parsePartitions(read readAt, diskSize int64) (string, []partEntry, error) {
	head, err := read(0, 2*sector)
	if err != nil {
		return "", nil, err
	}
	if len(head) < 2*sector {
		return "", nil, errNoTable
	}
	if string(head[sector:sector+8]) == "EFI PART" {
		parts, err := parseGPT(read, head[sector:2*sector], diskSize)
		return "gpt", parts, err
	}
	if head[510] != 0x55 || head[511] != 0xaa {
		return "", nil, errNoTable
	}
	var parts []partEntry
	var ext *partEntry
	for i := 0; i < 4; i++ {
		e := head[446+16*i : 446+16*i+16]
		if e[0] != 0 && e[0] != 0x80 {
			return "", nil, errNoTable // a FAT boot sector, not an MBR
		}
		typ := e[4]
		if typ == 0 {
			continue
		}
		if typ == 0xee {
			return "", nil, fmt.Errorf("protective MBR without a GPT header")
		}
		p := partEntry{
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
	if ext != nil {
		// Logical partitions found before a broken link are kept.
		logical, err := parseEBR(read, ext.Start, ext.Size, diskSize)
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
func parseEBR(read readAt, extStart, extSize, diskSize int64) ([]partEntry, error) {
	var out []partEntry
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
			p := partEntry{
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

func parseGPT(read readAt, hdr []byte, diskSize int64) ([]partEntry, error) {
	entriesLBA := int64(binary.LittleEndian.Uint64(hdr[72:]))
	count := binary.LittleEndian.Uint32(hdr[80:])
	esize := binary.LittleEndian.Uint32(hdr[84:])
	if esize < 128 || esize > 4096 || count == 0 || count > 1024 {
		return nil, fmt.Errorf("GPT header: %d entries of %d bytes", count, esize)
	}
	total := int(count * esize)
	off := entriesLBA * sector
	if off <= 0 || off+int64(total) > diskSize {
		return nil, fmt.Errorf("GPT entries at %d out of the disk", off)
	}
	b, err := read(off, total)
	if err != nil {
		return nil, err
	}
	var out []partEntry
	for i := 0; i < int(count) && (i+1)*int(esize) <= len(b); i++ {
		e := b[i*int(esize) : (i+1)*int(esize)]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		first := int64(binary.LittleEndian.Uint64(e[32:]))
		last := int64(binary.LittleEndian.Uint64(e[40:]))
		if last < first || (last+1)*sector > diskSize {
			return out, fmt.Errorf("GPT partition %d: sectors %d-%d out of the disk", i+1, first, last)
		}
		out = append(out, partEntry{
			Number: i + 1,
			Start:  first * sector,
			Size:   (last - first + 1) * sector,
			Type:   guidString(e[:16]),
			Name:   utf16Name(e[56:128]),
		})
	}
	return out, nil
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
