package layout

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"

	"guestkit.io/batch/internal/block"
)

// The on-disk structures of an LVM2 physical volume (lvm2's
// lib/format_text/layout.h and lib/label/label.h):
//
//   - a label in one of the first four sectors: "LABELONE", its own
//     sector number, a CRC of the rest of the sector, the offset of the PV
//     header and the type "LVM2 001";
//   - the PV header: the PV's UUID, the device size, then two lists of
//     {offset, size} pairs ended by a zero pair, the data areas (where the
//     extents start) and the metadata areas;
//   - each metadata area starts with a 512-byte header (CRC, magic,
//     version, its own start and size, and the location of the current
//     metadata text in the area); the rest of the area is a circular
//     buffer, so a text may wrap from the area's end to just after the
//     header. The text has its own CRC.
const (
	labelSectors   = 4
	labelID        = "LABELONE"
	labelType      = "LVM2 001"
	pvUUIDLen      = 32
	mdaHeaderSize  = 512
	mdaMagic       = " LVM2 x[5A%r0N*>"
	mdaVersion     = 1
	rawLocnIgnored = 1 // the area holds no metadata (pvchange --metadataignore)
	// lvmInitialCRC is the initial value of LVM's CRC-32 (INITIAL_CRC).
	lvmInitialCRC = 0xf597a6cf
	// maxMetadataText caps the metadata text read from one area. LVM
	// writes each new text beside the previous one in the circular buffer,
	// so a text fills at most half the area: under 512 KiB with the
	// default 1 MiB area, which is enough for about a thousand LVs. 4 MiB
	// admits areas made eight times larger with --metadatasize while
	// keeping the text and its parse to a few tens of MiB.
	maxMetadataText = 4 << 20
)

// lvmCRC is LVM's calc_crc: the reflected CRC-32 (IEEE polynomial) with
// no inversion on the way in or out, so it chains over pieces.
func lvmCRC(crc uint32, b []byte) uint32 {
	return ^crc32.Update(^crc, crc32.IEEETable, b)
}

// diskLocn is an area of the PV: byte offset and size.
type diskLocn struct{ offset, size uint64 }

// pvLabel is what the label sector says about a PV.
type pvLabel struct {
	sector  int
	uuid    string // 32 characters, no dashes
	devSize uint64 // bytes
	data    []diskLocn
	mdas    []diskLocn
}

// errNoLabel: the device has no LVM2 label.
var errNoLabel = errors.New("no LVM2 label")

// readLabel finds the LVM2 label in the first four sectors of a device
// and decodes its PV header. A sector that says LABELONE with a wrong CRC
// or sector number is ignored, as LVM does, and reported in bad.
func readLabel(r io.ReaderAt, size int64) (l pvLabel, bad []string, err error) {
	n := int64(labelSectors * sector)
	if size >= 0 && size < n {
		n = size - size%sector
	}
	if n < sector {
		return l, nil, errNoLabel
	}
	b := make([]byte, n)
	if m, err := r.ReadAt(b, 0); m < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			b = b[:m-m%sector]
		} else {
			return l, nil, fmt.Errorf("reading the LVM label sectors: %w", err)
		}
	}
	for i := 0; (i+1)*sector <= len(b); i++ {
		s := b[i*sector : (i+1)*sector]
		if string(s[:8]) != labelID {
			continue
		}
		if got := binary.LittleEndian.Uint64(s[8:]); got != uint64(i) {
			bad = append(bad, fmt.Sprintf("LVM label in sector %d says it is in sector %d: ignored", i, got))
			continue
		}
		if want, got := binary.LittleEndian.Uint32(s[16:]), lvmCRC(lvmInitialCRC, s[20:]); want != got {
			bad = append(bad, fmt.Sprintf("LVM label in sector %d: CRC %#08x, computed %#08x: ignored", i, want, got))
			continue
		}
		if string(s[24:32]) != labelType {
			bad = append(bad, fmt.Sprintf("LVM label in sector %d has type %q, not %q: ignored", i, s[24:32], labelType))
			continue
		}
		l, err := parsePVHeader(s, i)
		if err != nil {
			return l, bad, err
		}
		return l, bad, nil
	}
	return l, bad, errNoLabel
}

// parsePVHeader decodes the PV header inside the label sector s (the
// label's CRC covers the whole sector, so the header must lie in it).
func parsePVHeader(s []byte, sectorNo int) (pvLabel, error) {
	l := pvLabel{sector: sectorNo}
	off := int(binary.LittleEndian.Uint32(s[20:]))
	if off < 32 || off > sector-pvUUIDLen-8 {
		return l, fmt.Errorf("LVM label in sector %d: PV header offset %d outside the sector", sectorNo, off)
	}
	uuid := s[off : off+pvUUIDLen]
	for _, c := range uuid {
		if !uuidChar(c) {
			return l, fmt.Errorf("LVM PV header in sector %d: bad UUID %q", sectorNo, uuid)
		}
	}
	l.uuid = string(uuid)
	l.devSize = binary.LittleEndian.Uint64(s[off+pvUUIDLen:])
	p := off + pvUUIDLen + 8
	for list := 0; list < 2; list++ {
		for {
			if p+16 > sector {
				return l, fmt.Errorf("LVM PV header in sector %d: area list runs past the sector", sectorNo)
			}
			d := diskLocn{binary.LittleEndian.Uint64(s[p:]), binary.LittleEndian.Uint64(s[p+8:])}
			p += 16
			if d.offset == 0 {
				break
			}
			if list == 0 {
				l.data = append(l.data, d)
			} else {
				l.mdas = append(l.mdas, d)
			}
		}
	}
	return l, nil
}

func uuidChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '!' || c == '#'
}

// printUUID is LVM's printed form of a 32-character UUID: 6-4-4-4-4-4-6.
func printUUID(u string) string {
	if len(u) != pvUUIDLen {
		return u
	}
	var b strings.Builder
	for i, n := range []int{6, 4, 4, 4, 4, 4, 6} {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(u[:n])
		u = u[n:]
	}
	return b.String()
}

// readMetadata reads the current metadata text of the metadata area m of
// dev. It returns "" with no error when the area holds no metadata (a PV
// outside any VG, or an ignored area).
func readMetadata(dev block.Device, m diskLocn) (string, error) {
	size := dev.Size()
	if m.offset > uint64(size) || m.size > uint64(size)-m.offset || m.size < 2*mdaHeaderSize {
		return "", fmt.Errorf("LVM metadata area of %d bytes at %d: outside the device's %d bytes or too small", m.size, m.offset, size)
	}
	start := int64(m.offset)
	h := make([]byte, mdaHeaderSize)
	if err := readFull(dev, h, start); err != nil {
		return "", fmt.Errorf("LVM metadata area header at %d: %w", start, err)
	}
	if string(h[4:20]) != mdaMagic {
		return "", fmt.Errorf("LVM metadata area header at %d: bad magic", start)
	}
	if want, got := binary.LittleEndian.Uint32(h), lvmCRC(lvmInitialCRC, h[4:]); want != got {
		return "", fmt.Errorf("LVM metadata area header at %d: CRC %#08x, computed %#08x", start, want, got)
	}
	if v := binary.LittleEndian.Uint32(h[20:]); v != mdaVersion {
		return "", fmt.Errorf("LVM metadata area header at %d: version %d", start, v)
	}
	if s := binary.LittleEndian.Uint64(h[24:]); s != m.offset {
		return "", fmt.Errorf("LVM metadata area header at %d: says it starts at %d", start, s)
	}
	if s := binary.LittleEndian.Uint64(h[32:]); s != m.size {
		return "", fmt.Errorf("LVM metadata area header at %d: size %d, PV header says %d", start, s, m.size)
	}
	// raw_locns[0] is the committed text; [1] a precommitted one that
	// LVM itself only reads while it writes.
	off := binary.LittleEndian.Uint64(h[40:])
	n := binary.LittleEndian.Uint64(h[48:])
	sum := binary.LittleEndian.Uint32(h[56:])
	flags := binary.LittleEndian.Uint32(h[60:])
	if off == 0 || n == 0 || flags&rawLocnIgnored != 0 {
		return "", nil
	}
	if off < mdaHeaderSize || off >= m.size || n > m.size-mdaHeaderSize || n > maxMetadataText {
		return "", fmt.Errorf("LVM metadata text of %d bytes at %d in the area at %d: outside the area of %d bytes or over %d bytes",
			n, off, start, m.size, maxMetadataText)
	}
	text := make([]byte, n)
	first := n
	if off+n > m.size { // wraps to just after the header
		first = m.size - off
	}
	if err := readFull(dev, text[:first], start+int64(off)); err != nil {
		return "", fmt.Errorf("LVM metadata text at %d: %w", start+int64(off), err)
	}
	if first < n {
		if err := readFull(dev, text[first:], start+mdaHeaderSize); err != nil {
			return "", fmt.Errorf("LVM metadata text at %d: %w", start+mdaHeaderSize, err)
		}
	}
	if got := lvmCRC(lvmInitialCRC, text); got != sum {
		return "", fmt.Errorf("LVM metadata text of %d bytes at %d in the area at %d: CRC %#08x, computed %#08x", n, off, start, sum, got)
	}
	return string(bytes.TrimRight(text, "\x00")), nil
}

// readFull reads exactly len(b) bytes at off.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}
