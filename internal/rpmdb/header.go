package rpmdb

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// Tag data types (rpmTagType).
const (
	typeNull        = 0
	typeChar        = 1
	typeInt8        = 2
	typeInt16       = 3
	typeInt32       = 4
	typeInt64       = 5
	typeString      = 6
	typeBin         = 7
	typeStringArray = 8
	typeI18NString  = 9
)

// Tags this package reads or that header import treats specially.
const (
	tagHeaderImage      = 61
	tagHeaderSignatures = 62
	tagHeaderImmutable  = 63
	tagI18NTable        = 100
	tagSHA1Header       = 269
	tagSHA256Header     = 273
	tagName             = 1000
	tagVersion          = 1001
	tagRelease          = 1002
	tagEpoch            = 1003
	tagSummary          = 1004
	tagDescription      = 1005
	tagURL              = 1020
	tagArch             = 1022
	tagOldFilenames     = 1027
	tagBasenames        = 1117
)

// The bounds of rpm's header.c (hdrchkTags, hdrchkData, hdrchkArray,
// headerMaxbytes): a blob outside them is refused as rpm refuses it.
const (
	headerTagsMax  = 0x0000ffff
	headerDataMax  = 0x0fffffff
	headerArrayMax = 0x000fffff
	headerMaxBytes = 256 << 20
	entrySize      = 16 // struct entryInfo_s on disk
)

var typeAlign = [16]int64{1, 1, 1, 2, 4, 8, 1, 1, 1, 1}
var typeSizes = [16]int64{0, 1, 1, 2, 4, 8, -1, 1, -1, -1}

// errHeader is wrapped by every header blob rpm itself would refuse (and
// skip while iterating the database).
var errHeader = errors.New("bad rpm header")

// entryInfo is one index entry, in host order, with rpm's C signedness.
type entryInfo struct {
	tag    int32
	typ    uint32
	offset int32
	count  uint32
}

// entry is an imported index entry: its data starts at data[0]; length is
// what rpm computed for it (bounded by the data store).
type entry struct {
	entryInfo
	data []byte
}

// header is an imported header: entries sorted by tag as rpm sorts them.
type header struct {
	entries []entry
}

func readEntry(b []byte) entryInfo {
	return entryInfo{
		tag:    int32(binary.BigEndian.Uint32(b)),
		typ:    binary.BigEndian.Uint32(b[4:]),
		offset: int32(binary.BigEndian.Uint32(b[8:])),
		count:  binary.BigEndian.Uint32(b[12:]),
	}
}

// blob is a header blob checked as rpm's hdrblobInit checks it.
type blob struct {
	b         []byte
	il, dl    int64
	pe        []byte // the index entries
	data      []byte // the data store
	regionTag int32
	ril, rdl  int64
}

func herr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errHeader}, args...)...)
}

// parseBlob is hdrblobInit(uh, uc, 0, 0): lengths, the region and every
// index entry.
func parseBlob(b []byte) (*blob, error) {
	if len(b) < 8 {
		return nil, herr("blob of %d bytes has no intro", len(b))
	}
	h := &blob{b: b}
	h.il = int64(int32(binary.BigEndian.Uint32(b)))
	h.dl = int64(int32(binary.BigEndian.Uint32(b[4:])))
	if h.il < 0 || h.il > headerTagsMax {
		return nil, herr("%d index entries out of range", h.il)
	}
	if h.dl < 0 || h.dl > headerDataMax {
		return nil, herr("data store of %d bytes out of range", h.dl)
	}
	pvlen := 8 + h.il*entrySize + h.dl
	if pvlen >= headerMaxBytes || pvlen != int64(len(b)) {
		return nil, herr("blob is %d bytes, 8 + 16 * %d entries + %d data make %d", len(b), h.il, h.dl, pvlen)
	}
	h.pe = b[8 : 8+h.il*entrySize]
	h.data = b[8+h.il*entrySize:]
	if err := h.verifyRegion(); err != nil {
		return nil, err
	}
	if err := h.verifyInfo(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *blob) entryAt(i int64) entryInfo { return readEntry(h.pe[i*entrySize:]) }

// verifyRegion is hdrblobVerifyRegion with no expected region tag.
func (h *blob) verifyRegion() error {
	if h.il < 1 {
		return herr("region: no tags")
	}
	e := h.entryAt(0)
	if e.tag != tagHeaderSignatures && e.tag != tagHeaderImmutable && e.tag != tagHeaderImage {
		return nil // no region: a legacy header
	}
	if e.typ != typeBin || e.count != entrySize {
		return herr("region tag %d: type %d count %d", e.tag, e.typ, e.count)
	}
	end := int64(e.offset) + entrySize
	if end < 0 || end > h.dl {
		return herr("region tag %d: trailer offset %d outside %d data bytes", e.tag, e.offset, h.dl)
	}
	// The trailer may start before the data store (a negative offset):
	// rpm reads it from the blob there, never before the blob.
	at := 8 + h.il*entrySize + int64(e.offset)
	if at < 0 {
		return herr("region tag %d: trailer offset %d before the blob", e.tag, e.offset)
	}
	h.rdl = end
	tr := readEntry(h.b[at:])
	troff := -int64(tr.offset)
	if e.tag == tagHeaderSignatures && tr.tag == tagHeaderImage {
		tr.tag = tagHeaderSignatures
	}
	if tr.tag != e.tag || tr.typ != typeBin || tr.count != entrySize {
		return herr("region trailer: tag %d type %d offset %d count %d", tr.tag, tr.typ, tr.offset, tr.count)
	}
	h.ril = troff / entrySize
	if troff%entrySize != 0 || h.ril < 0 || h.ril > h.il || h.rdl < 0 || h.rdl > h.dl {
		return herr("region %d size: ril %d il %d rdl %d dl %d", e.tag, h.ril, h.il, h.rdl, h.dl)
	}
	h.regionTag = e.tag
	return nil
}

// verifyInfo is hdrblobVerifyInfo: every entry's tag, type, count,
// alignment and range, entries in offset order without overlap, and (in
// an immutable region) each known tag with the type rpm declares.
func (h *blob) verifyInfo() error {
	first := int64(0)
	if h.regionTag != 0 {
		first = 1
	}
	typechk := h.regionTag == tagHeaderImmutable || h.regionTag == tagHeaderImage
	end := int64(0)
	for i := first; i < h.il; i++ {
		e := h.entryAt(i)
		off := int64(e.offset)
		bad := func(why string) error {
			return herr("tag[%d]: %s: tag %d type %d offset %d count %d", i-first, why, e.tag, e.typ, e.offset, e.count)
		}
		switch {
		case end > off:
			return bad("overlaps the previous entry")
		case e.tag < tagI18NTable:
			return bad("tag below 100")
		case e.typ > typeI18NString:
			return bad("bad type")
		case e.count < 1 || int64(e.count) > h.dl:
			return bad("bad count")
		case off&(typeAlign[e.typ]-1) != 0:
			return bad("misaligned")
		case off < 0 || off > h.dl:
			return bad("offset out of range")
		case e.typ != typeBin && e.count&^headerArrayMax != 0:
			return bad("array too large")
		case typechk && badTagType(e.tag, e.typ):
			return bad("type differs from the tag's")
		}
		n := dataLength(e.typ, h.data[off:], e.count)
		end = off + n
		if n <= 0 || end > h.dl {
			return bad("data does not fit")
		}
		if h.regionTag != 0 && end > h.rdl-entrySize && off < h.rdl {
			return bad("data overlaps the region trailer")
		}
	}
	return nil
}

// badTagType is hdrchkTagType.
func badTagType(tag int32, typ uint32) bool {
	want, known := tagTypes[uint32(tag)]
	if !known || want == typ {
		return false
	}
	return !(isStringType(want) && isStringType(typ))
}

func isStringType(t uint32) bool {
	return t == typeString || t == typeStringArray || t == typeI18NString
}

// dataLength is rpm's dataLength on disk data p (which ends where the
// data store ends): -1 when the data does not fit.
func dataLength(typ uint32, p []byte, count uint32) int64 {
	switch typ {
	case typeString:
		if count != 1 {
			return -1
		}
		return strtaglen(p, 1)
	case typeStringArray, typeI18NString:
		return strtaglen(p, count)
	}
	if typ > 15 || typeSizes[typ] == -1 {
		return -1
	}
	n := typeSizes[typ] * int64(count)
	if n > int64(len(p)) {
		return -1
	}
	return n
}

// strtaglen is the length of count NUL-terminated strings at the start
// of p, terminators included, or -1.
func strtaglen(p []byte, count uint32) int64 {
	if count == 0 {
		return -1
	}
	n := int64(0)
	for ; count > 0; count-- {
		i := bytes.IndexByte(p[n:], 0)
		if i < 0 {
			return -1
		}
		n += int64(i) + 1
	}
	return n
}

// checkDigests is the part of headerCheck that a query with signature
// checking off (as the appliance's librpm runs) still does: a SHA1 or
// SHA256 header digest that is malformed or does not match the immutable
// region makes rpm skip the header.
func (h *blob) checkDigests() error {
	for _, d := range []struct {
		tag  int32
		size int64
		sum  func([]byte) []byte
	}{
		{tagSHA1Header, 41, func(b []byte) []byte { s := sha1.Sum(b); return s[:] }},
		{tagSHA256Header, 65, func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }},
	} {
		e, ok := h.find(d.tag)
		if !ok {
			continue
		}
		if typeSizes[e.typ&0xf] != 1 && typeSizes[e.typ&0xf] != -1 {
			continue // hdrblobGet refuses it: the digest counts as absent
		}
		p := h.data[e.offset:]
		n := dataLength(e.typ, p, e.count)
		if e.typ != typeString || e.count != 1 || n != d.size {
			return herr("tag %d: malformed header digest", d.tag)
		}
		want := string(p[:n-1])
		if !validHex(want) {
			return herr("tag %d: header digest is not hex", d.tag)
		}
		region := make([]byte, 0, 16+h.ril*entrySize+h.rdl)
		region = append(region, 0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0)
		region = binary.BigEndian.AppendUint32(region, uint32(h.ril))
		region = binary.BigEndian.AppendUint32(region, uint32(h.rdl))
		region = append(region, h.pe[:h.ril*entrySize]...)
		region = append(region, h.data[:h.rdl]...)
		if got := hex.EncodeToString(d.sum(region)); !equalFold(got, want) {
			return herr("tag %d: header digest %s, computed %s", d.tag, want, got)
		}
	}
	return nil
}

// find is hdrblobGet's lookup: the first index entry with the tag. Its
// offset was checked by verifyInfo.
func (h *blob) find(tag int32) (entryInfo, bool) {
	for i := int64(0); i < h.il; i++ {
		if e := h.entryAt(i); e.tag == tag {
			return e, true
		}
	}
	return entryInfo{}, false
}

func validHex(s string) bool {
	if len(s)%2 != 0 || len(s) < 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func equalFold(a, b string) bool {
	return len(a) == len(b) && bytes.EqualFold([]byte(a), []byte(b))
}

// swab is regionSwab with fast set (rpmdbNextIterator imports with
// HEADERIMPORT_FAST): it loads n entries starting at index entry first and
// returns the data length they account for, starting from dl, or -1.
func (h *blob) swab(out []entry, first, n, dl int64) ([]entry, int64) {
	for i := int64(0); i < n; i++ {
		e := h.entryAt(first + i)
		if e.typ > typeI18NString || e.count&^headerDataMax != 0 || e.offset < 0 || int64(e.offset)&^headerDataMax != 0 ||
			int64(e.offset)&(typeAlign[e.typ]-1) != 0 {
			return nil, -1
		}
		off := int64(e.offset)
		if off >= h.dl {
			return nil, -1
		}
		var length int64
		if n-i > 1 && typeSizes[e.typ] == -1 {
			length = int64(h.entryAt(first+i+1).offset) - off
		} else {
			length = dataLength(e.typ, h.data[off:], e.count)
		}
		if length < 0 || length&^headerDataMax != 0 {
			return nil, -1
		}
		if d := alignDiff(e.typ, dl); d > 0 {
			dl += d
		}
		out = append(out, entry{entryInfo: e, data: h.data[off:]})
		dl += length
	}
	return out, dl
}

func alignDiff(typ uint32, size int64) int64 {
	ts := typeSizes[typ]
	if ts > 1 {
		if d := ts - uint32mod(size, ts); d != ts {
			return d
		}
	}
	return 0
}

// uint32mod is C's (unsigned int) size % ts.
func uint32mod(size, ts int64) int64 { return int64(uint32(size) % uint32(ts)) }

// importHeader is hdrblobImport with fast set: the region's entries, then
// the dribble entries written after it, which replace region entries of
// the same tag; then sorted by tag as headerSort does (glibc's qsort is a
// stable merge sort here).
func (h *blob) importHeader() (*header, error) {
	e0 := h.entryAt(0)
	var ents []entry
	if e0.tag >= tagI18NTable {
		// A v3 header without a region: every entry is loaded.
		var rdlen int64
		ents, rdlen = h.swab(nil, 0, h.il, 0)
		if rdlen != h.dl {
			return nil, herr("legacy header data length %d, want %d", rdlen, h.dl)
		}
	} else {
		ril := h.il
		if e0.offset != 0 {
			ril = h.ril
		}
		if ril < 1 {
			return nil, herr("region of %d entries", ril)
		}
		region, rdlen := h.swab(nil, 1, ril-1, 0)
		if rdlen < 0 {
			return nil, herr("region entries do not load")
		}
		ents = region
		if ril < h.il {
			dribbles, n := h.swab(nil, ril, h.il-ril, rdlen)
			if n < 0 {
				return nil, herr("dribble entries do not load")
			}
			rdlen = n
			drop := map[int32]bool{}
			for _, d := range dribbles {
				drop[d.tag] = true
				if d.tag == tagBasenames {
					drop[tagOldFilenames] = true
				}
			}
			kept := ents[:0:0]
			for _, e := range ents {
				if !drop[e.tag] {
					kept = append(kept, e)
				}
			}
			ents = append(kept, dribbles...)
		}
		if rdlen+entrySize != h.dl {
			return nil, herr("data length %d, want %d", rdlen+entrySize, h.dl)
		}
		// The region entry itself sorts first (tag 61..63): lookups of
		// tags >= 100 never see it, so it is left out.
	}
	sort.SliceStable(ents, func(i, j int) bool { return ents[i].tag < ents[j].tag })
	return &header{entries: ents}, nil
}

// parseHeader turns a database record into a header as rpmdbNextIterator
// does: headerCheck (structure and header digests), then headerImport,
// then the NAME tag must be there. Any failure means rpm skips the record.
func parseHeader(b []byte) (*header, error) {
	bl, err := parseBlob(b)
	if err != nil {
		return nil, err
	}
	if err := bl.checkDigests(); err != nil {
		return nil, err
	}
	h, err := bl.importHeader()
	if err != nil {
		return nil, err
	}
	if _, ok := h.find(tagName); !ok {
		return nil, herr("no NAME tag")
	}
	return h, nil
}

// find is findEntry(h, tag, RPM_NULL_TYPE).
func (h *header) find(tag int32) (*entry, bool) {
	i := h.search(tag)
	if i < 0 {
		return nil, false
	}
	return &h.entries[i], true
}

// search is glibc's bsearch over the sorted entries, so that duplicate
// tags resolve to the entry rpm would find; -1 when absent.
func (h *header) search(tag int32) int {
	l, u := 0, len(h.entries)
	for l < u {
		i := (l + u) / 2
		switch t := h.entries[i].tag; {
		case tag < t:
			u = i
		case tag > t:
			l = i + 1
		default:
			return i
		}
	}
	return -1
}

// findTyped is findEntry with a type: from the bsearch hit, backwards
// while the tag matches and the type does not.
func (h *header) findTyped(tag int32, typ uint32) (*entry, bool) {
	i := h.search(tag)
	if i < 0 {
		return nil, false
	}
	for h.entries[i].tag == tag && h.entries[i].typ != typ && i > 0 {
		i--
	}
	if h.entries[i].tag == tag && h.entries[i].typ == typ {
		return &h.entries[i], true
	}
	return nil, false
}

// cstring is the NUL-terminated string at the start of p (verifyInfo made
// sure the terminator is there; without one, all of p).
func cstring(p []byte) string {
	if i := bytes.IndexByte(p, 0); i >= 0 {
		return string(p[:i])
	}
	return string(p)
}

// nthString is the n-th of the NUL-terminated strings at the start of p.
func nthString(p []byte, n uint32) string {
	for ; n > 0; n-- {
		i := bytes.IndexByte(p, 0)
		if i < 0 {
			return ""
		}
		p = p[i+1:]
	}
	return cstring(p)
}

// format is headerFormat(h, "%{TAG}") in the appliance's daemon, which
// runs with LC_ALL=C: "(none)" for a missing tag, the first element of an
// array, numbers in decimal, binary data in hex, and for an I18N string
// the one the header's locale table files under "C" (else the first).
func (h *header) format(tag int32) string {
	e, ok := h.find(tag)
	if !ok {
		return "(none)"
	}
	switch e.typ {
	case typeString, typeStringArray:
		return cstring(e.data)
	case typeI18NString:
		return h.i18n(e)
	case typeChar, typeInt8, typeInt16, typeInt32, typeInt64:
		return strconv.FormatUint(number(e), 10)
	case typeBin:
		return hex.EncodeToString(e.data[:e.count])
	}
	return "(none)"
}

// i18n is copyI18NEntry for LANGUAGE unset and LC_ALL=C: only a table
// entry that is exactly "C" matches.
func (h *header) i18n(e *entry) string {
	table, ok := h.findTyped(tagI18NTable, typeStringArray)
	if !ok {
		return cstring(e.data)
	}
	for n := uint32(0); n < e.count && n < table.count; n++ {
		if nthString(table.data, n) == "C" {
			return nthString(e.data, n)
		}
	}
	return cstring(e.data)
}

// number is rpmtdGetNumber of the first element (the data is big-endian
// on disk; verifyInfo made sure it fits).
func number(e *entry) uint64 {
	switch e.typ {
	case typeInt64:
		return binary.BigEndian.Uint64(e.data)
	case typeInt32:
		return uint64(binary.BigEndian.Uint32(e.data))
	case typeInt16:
		return uint64(binary.BigEndian.Uint16(e.data))
	case typeInt8, typeChar:
		return uint64(e.data[0])
	}
	return 0
}

// epoch is headerGetNumber(h, RPMTAG_EPOCH) stored in the int32 app2_epoch.
func (h *header) epoch() int {
	e, ok := h.find(tagEpoch)
	if !ok || e.count != 1 {
		return 0
	}
	return int(int32(number(e)))
}
