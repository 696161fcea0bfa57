package fat

import (
	"encoding/binary"
	"sort"
	"strings"
	"time"
	"unicode/utf16"
)

// dirent is one directory entry as Linux's vfat shows it.
type dirent struct {
	root    bool
	name    string // the long name, or the short name when there is none
	short   string // the 8.3 name as displayed, also matched on lookup
	attr    byte
	cluster uint32
	size    uint32
	mtime   time.Time
}

// matches is Linux vfat's lookup: ASCII case-insensitive (the default
// iocharset), against the long name or the 8.3 alias, trailing dots
// ignored.
func (d dirent) matches(name string) bool {
	if t := strings.TrimRight(name, "."); t != "" {
		name = t
	}
	return asciiEqualFold(d.name, name) || asciiEqualFold(d.short, name)
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// parseDir parses raw directory entries the way Linux's vfat readdir
// does: a deleted, free or volume-label slot is skipped (Linux does not
// stop at the first free slot); a run of long-name slots names the short
// entry after it when its order numbers and checksum agree, and is
// ignored otherwise, leaving the 8.3 name.
func parseDir(raw []byte, fat32 bool) []dirent {
	n := len(raw) / 32
	slot := func(i int) []byte { return raw[i*32 : i*32+32] }
	skip := func(s []byte) bool {
		return s[0] == 0xe5 || s[11] != attrLongName && (s[11]&attrVolume != 0 || s[0] == 0)
	}
	var out []dirent
	for i := 0; i < n; i++ {
		if skip(slot(i)) {
			continue
		}
		var long []uint16
		if slot(i)[11] == attrLongName {
			var ok bool
			long, i, ok = parseLong(raw, i)
			if i >= n {
				break
			}
			if !ok || skip(slot(i)) {
				continue
			}
		}
		d := shortEntry(slot(i), fat32)
		if long != nil {
			d.name = decodeLong(long)
		}
		if d.name == "" || d.name == "." || d.name == ".." || strings.ContainsAny(d.name, "/\x00") {
			continue
		}
		out = append(out, d)
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].name < out[b].name })
	return out
}

// parseLong follows Linux's fat_parse_long from the long-name slot at i.
// It returns the name (nil when the checksum disagrees, so the 8.3 name
// stands), the index of the slot to parse as the short entry, and false
// when the slots are invalid and the slot at the returned index is to be
// skipped.
func parseLong(raw []byte, i int) ([]uint16, int, bool) {
	n := len(raw) / 32
restart:
	s := raw[i*32 : i*32+32]
	id := s[0]
	if id&0x40 == 0 {
		return nil, i, false
	}
	slots := int(id &^ 0x40)
	if slots == 0 || slots > 20 {
		return nil, i, false
	}
	sum := s[13]
	name := make([]uint16, slots*13)
	for k := slots; ; {
		k--
		o := k * 13
		for j, p := range [13]int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
			name[o+j] = binary.LittleEndian.Uint16(s[p:])
		}
		i++
		if i >= n {
			return nil, i, false
		}
		s = raw[i*32 : i*32+32]
		if k == 0 {
			break
		}
		if s[11] != attrLongName {
			// Not a long name after all: parse this slot afresh.
			return nil, i, true
		}
		if int(s[0]&^0x40) != k || s[13] != sum {
			goto restart
		}
	}
	switch {
	case s[0] == 0xe5:
		return nil, i, false
	case s[11] == attrLongName:
		goto restart
	case s[0] == 0 || s[11]&attrVolume != 0:
		return nil, i, false
	}
	if checksum(s[:11]) != sum {
		return nil, i, true
	}
	for k, c := range name {
		if c == 0 {
			return name[:k], i, true
		}
	}
	return name, i, true
}

func checksum(name []byte) byte {
	var sum byte
	for _, c := range name {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	return sum
}

func decodeLong(u []uint16) string {
	return string(utf16.Decode(u))
}

// shortEntry decodes the 8.3 entry s.
func shortEntry(s []byte, fat32 bool) dirent {
	d := dirent{attr: s[11]}
	d.cluster = uint32(binary.LittleEndian.Uint16(s[26:]))
	if fat32 {
		d.cluster |= uint32(binary.LittleEndian.Uint16(s[20:])) << 16
	}
	d.size = binary.LittleEndian.Uint32(s[28:])
	if d.attr&attrDir != 0 {
		d.size = 0
	}
	d.short = shortName(s[:11], s[12])
	d.name = d.short
	d.mtime = fatTime(binary.LittleEndian.Uint16(s[24:]), binary.LittleEndian.Uint16(s[22:]))
	return d
}

// shortName renders an 8.3 name as Linux's vfat does by default
// (shortname=mixed, codepage 437, utf8): the Windows NT flags in the
// reserved byte lower-case the base (0x08) and the extension (0x10).
func shortName(raw []byte, nt byte) string {
	base := strings.TrimRight(string(raw[:8]), " ")
	ext := strings.TrimRight(string(raw[8:11]), " ")
	var b strings.Builder
	put := func(s string, lower bool) {
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c >= 0x80:
				b.WriteRune(cp437[c-0x80])
			case lower && 'A' <= c && c <= 'Z':
				b.WriteByte(c + 'a' - 'A')
			default:
				b.WriteByte(c)
			}
		}
	}
	if len(base) > 0 && base[0] == 0x05 {
		base = "\xe5" + base[1:]
	}
	put(base, nt&0x08 != 0)
	if ext != "" {
		b.WriteByte('.')
		put(ext, nt&0x10 != 0)
	}
	return b.String()
}

// fatTime decodes a FAT date and time, taken as UTC as the appliance's
// kernel takes them (tz=UTC). Linux clamps month and day to at least 1.
func fatTime(date, tm uint16) time.Time {
	year := 1980 + int(date>>9)
	month := max(1, int(date>>5&0xf))
	day := max(1, int(date&0x1f))
	return time.Date(year, time.Month(month), day, int(tm>>11), int(tm>>5&0x3f), int(tm&0x1f)*2, 0, time.UTC)
}
