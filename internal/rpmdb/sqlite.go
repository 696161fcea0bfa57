package rpmdb

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// A minimal read-only SQLite reader: the one query rpm runs to iterate
// ("SELECT hnum, blob FROM 'Packages'", a scan of a rowid table in rowid
// order) over the database file and its write-ahead log. It follows the
// file format (https://www.sqlite.org/fileformat2.html) with every page
// number, cell, payload and overflow chain checked.
//
// Not modernc.org/sqlite: that is about 150 MB of transpiled C and libc
// to build (minutes on two cores) and link for one table scan; its fs.FS
// VFS has no shared memory, so a database in WAL mode (as rpm leaves it)
// needs workarounds; and its memory is not bounded by this package. A
// scan of one rowid table is a few hundred lines that the fuzz target
// covers.

const (
	sqliteHeader    = 100
	sqliteMaxDepth  = 64 // SQLite's own cursors stop at 20 levels
	sqliteLeafTable = 0x0d
	sqliteInterior  = 0x05
	walHeader       = 32
	walFrameHeader  = 24
)

type sqliteDB struct {
	f        *file
	wal      *file
	pageSize int64
	usable   int64
	npages   uint32
	frames   map[uint32]int64 // page number -> offset of its newest committed frame's data in the WAL
}

func readSQLite(f, wal *file, visit visitFunc) error {
	db, err := openSQLite(f, wal)
	if err != nil {
		return err
	}
	root, err := db.tableRoot("Packages")
	if err != nil {
		return err
	}
	return db.scan(root, func(rowid int64, rec []byte) (bool, error) {
		cols, err := parseRecord(rec, 2)
		if err != nil {
			return false, fmt.Errorf("table Packages, row %d: %w", rowid, err)
		}
		key := uint32(rowid)
		if cols[0].kind == colInt {
			key = uint32(cols[0].i)
		}
		switch cols[1].kind {
		case colNull:
			return false, nil // rpm ends its iteration on a row without a blob
		case colInt:
			return visit(key, []byte(strconv.FormatInt(cols[1].i, 10)))
		}
		return visit(key, cols[1].b)
	})
}

func openSQLite(f, wal *file) (*sqliteDB, error) {
	h, err := f.read(0, sqliteHeader, "sqlite header")
	if err != nil {
		return nil, err
	}
	if string(h[:16]) != "SQLite format 3\x00" {
		return nil, fmt.Errorf("sqlite header: bad magic: %w", ErrCorrupt)
	}
	ps := int64(binary.BigEndian.Uint16(h[16:]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps > 65536 || ps&(ps-1) != 0 {
		return nil, fmt.Errorf("sqlite header: page size %d: %w", ps, ErrCorrupt)
	}
	if h[18] > 2 || h[19] > 2 {
		return nil, fmt.Errorf("sqlite header: file format %d/%d: %w", h[18], h[19], ErrUnsupported)
	}
	if enc := binary.BigEndian.Uint32(h[56:]); enc > 1 {
		return nil, fmt.Errorf("sqlite header: text encoding %d (UTF-16): %w", enc, ErrUnsupported)
	}
	db := &sqliteDB{f: f, pageSize: ps, usable: ps - int64(h[20])}
	if db.usable < 480 {
		return nil, fmt.Errorf("sqlite header: %d usable bytes per page: %w", db.usable, ErrCorrupt)
	}
	db.npages = uint32(f.size / ps)
	if n := binary.BigEndian.Uint32(h[28:]); n != 0 && binary.BigEndian.Uint32(h[24:]) == binary.BigEndian.Uint32(h[92:]) && int64(n) <= f.size/ps {
		db.npages = n
	}
	if h[18] == 2 && wal != nil && wal.size > 0 {
		if err := db.readWAL(wal); err != nil {
			return nil, err
		}
	}
	return db, nil
}

// readWAL finds the committed frames of the write-ahead log as SQLite's
// recovery does without a wal-index: frames whose salts match the WAL
// header and whose running checksum holds, up to the last commit frame.
// A log whose header does not hold is empty.
func (db *sqliteDB) readWAL(wal *file) error {
	h, err := wal.read(0, walHeader, "sqlite WAL header")
	if err != nil {
		return nil // shorter than a header: nothing committed
	}
	magic := binary.BigEndian.Uint32(h)
	if magic&^1 != 0x377f0682 || binary.BigEndian.Uint32(h[4:]) != 3007000 {
		return nil
	}
	if int64(binary.BigEndian.Uint32(h[8:])) != db.pageSize {
		return nil
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if magic&1 != 0 {
		bo = binary.BigEndian
	}
	s1, s2 := walChecksum(bo, h[:24], 0, 0)
	if s1 != binary.BigEndian.Uint32(h[24:]) || s2 != binary.BigEndian.Uint32(h[28:]) {
		return nil
	}
	type frame struct {
		pgno uint32
		off  int64
	}
	var frames []frame
	commits, size := 0, uint32(0)
	frameSize := walFrameHeader + db.pageSize
	for off := int64(walHeader); off+frameSize <= wal.size; off += frameSize {
		fr, err := wal.read(off, frameSize, "sqlite WAL frame")
		if err != nil {
			return err
		}
		pgno := binary.BigEndian.Uint32(fr)
		if pgno == 0 || string(fr[8:16]) != string(h[16:24]) {
			break
		}
		s1, s2 = walChecksum(bo, fr[:8], s1, s2)
		s1, s2 = walChecksum(bo, fr[walFrameHeader:], s1, s2)
		if s1 != binary.BigEndian.Uint32(fr[16:]) || s2 != binary.BigEndian.Uint32(fr[20:]) {
			break
		}
		frames = append(frames, frame{pgno, off + walFrameHeader})
		if commit := binary.BigEndian.Uint32(fr[4:]); commit != 0 {
			commits, size = len(frames), commit
		}
	}
	if commits == 0 {
		return nil
	}
	db.frames = map[uint32]int64{}
	for _, fr := range frames[:commits] {
		db.frames[fr.pgno] = fr.off
	}
	db.npages, db.wal = size, wal
	return nil
}

// walChecksum continues SQLite's WAL checksum over b (a multiple of 8
// bytes), its words in the byte order the WAL magic names.
func walChecksum(bo binary.ByteOrder, b []byte, s1, s2 uint32) (uint32, uint32) {
	for i := 0; i+8 <= len(b); i += 8 {
		s1 += bo.Uint32(b[i:]) + s2
		s2 += bo.Uint32(b[i+4:]) + s1
	}
	return s1, s2
}

// page reads page n (1-based), from the WAL when it holds a newer copy.
func (db *sqliteDB) page(n uint32) ([]byte, error) {
	if n == 0 || n > db.npages {
		return nil, fmt.Errorf("sqlite page %d outside 1..%d: %w", n, db.npages, ErrCorrupt)
	}
	what := fmt.Sprintf("sqlite page %d", n)
	if off, ok := db.frames[n]; ok {
		return db.wal.read(off, db.pageSize, what)
	}
	return db.f.read(int64(n-1)*db.pageSize, db.pageSize, what)
}

// tableRoot finds a table's root page in sqlite_schema (page 1); names
// compare case-insensitively, as SQL identifiers do.
func (db *sqliteDB) tableRoot(name string) (uint32, error) {
	root := uint32(0)
	err := db.scan(1, func(rowid int64, rec []byte) (bool, error) {
		cols, err := parseRecord(rec, 4)
		if err != nil {
			return false, fmt.Errorf("sqlite_schema row %d: %w", rowid, err)
		}
		if cols[0].text() == "table" && strings.EqualFold(cols[1].text(), name) {
			if cols[3].kind != colInt || cols[3].i <= 0 || cols[3].i > int64(db.npages) {
				return false, fmt.Errorf("sqlite_schema: table %s has root page %v: %w", name, cols[3].i, ErrCorrupt)
			}
			root = uint32(cols[3].i)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	if root == 0 {
		return 0, fmt.Errorf("sqlite: no %s table: %w", name, ErrCorrupt)
	}
	return root, nil
}

// scan visits the rows of the rowid table rooted at page root in rowid
// order. Each page is visited once: a tree that loops is corrupt.
func (db *sqliteDB) scan(root uint32, row func(rowid int64, rec []byte) (bool, error)) error {
	seen := map[uint32]bool{}
	_, err := db.walk(root, 0, seen, row)
	return err
}

func (db *sqliteDB) walk(n uint32, depth int, seen map[uint32]bool, row func(int64, []byte) (bool, error)) (bool, error) {
	if depth > sqliteMaxDepth {
		return false, fmt.Errorf("sqlite b-tree deeper than %d at page %d: %w", sqliteMaxDepth, n, ErrCorrupt)
	}
	if seen[n] {
		return false, fmt.Errorf("sqlite page %d reached twice: %w", n, ErrCorrupt)
	}
	seen[n] = true
	p, err := db.page(n)
	if err != nil {
		return false, err
	}
	hdr := int64(0)
	if n == 1 {
		hdr = sqliteHeader
	}
	kind := p[hdr]
	ptrs := hdr + 8
	if kind == sqliteInterior {
		ptrs = hdr + 12
	} else if kind != sqliteLeafTable {
		return false, fmt.Errorf("sqlite page %d: type %#x is not a table b-tree page: %w", n, kind, ErrCorrupt)
	}
	ncells := int64(binary.BigEndian.Uint16(p[hdr+3:]))
	if ptrs+2*ncells > db.usable {
		return false, fmt.Errorf("sqlite page %d: %d cells overflow the page: %w", n, ncells, ErrCorrupt)
	}
	for i := int64(0); i < ncells; i++ {
		c := int64(binary.BigEndian.Uint16(p[ptrs+2*i:]))
		if c < ptrs+2*ncells || c >= db.usable {
			return false, fmt.Errorf("sqlite page %d: cell %d at %d: %w", n, i, c, ErrCorrupt)
		}
		cell := p[c:db.usable]
		if kind == sqliteInterior {
			if len(cell) < 4 {
				return false, fmt.Errorf("sqlite page %d: cell %d truncated: %w", n, i, ErrCorrupt)
			}
			more, err := db.walk(binary.BigEndian.Uint32(cell), depth+1, seen, row)
			if err != nil || !more {
				return more, err
			}
			continue
		}
		rowid, rec, err := db.leafCell(cell)
		if err != nil {
			return false, fmt.Errorf("sqlite page %d: cell %d: %w", n, i, err)
		}
		if more, err := row(rowid, rec); err != nil || !more {
			return more, err
		}
	}
	if kind == sqliteInterior {
		return db.walk(binary.BigEndian.Uint32(p[hdr+8:]), depth+1, seen, row)
	}
	return true, nil
}

// leafCell reads a table leaf cell: payload size, rowid, the payload (its
// tail in overflow pages when it does not fit the page).
func (db *sqliteDB) leafCell(cell []byte) (int64, []byte, error) {
	size, n := uvarint(cell)
	if n == 0 {
		return 0, nil, fmt.Errorf("bad payload size: %w", ErrCorrupt)
	}
	rowid, n2 := uvarint(cell[n:])
	if n2 == 0 {
		return 0, nil, fmt.Errorf("bad rowid: %w", ErrCorrupt)
	}
	cell = cell[n+n2:]
	if size > MaxRecord {
		return 0, nil, fmt.Errorf("row %d: payload of %d bytes: %w", int64(rowid), size, ErrCorrupt)
	}
	p := int64(size)
	u := db.usable
	local := p
	if x := u - 35; p > x {
		m := ((u-12)*32/255 - 23)
		k := m + (p-m)%(u-4)
		local = m
		if k <= x {
			local = k
		}
	}
	if local > int64(len(cell)) || (local < p && local+4 > int64(len(cell))) {
		return 0, nil, fmt.Errorf("row %d: payload past the page: %w", int64(rowid), ErrCorrupt)
	}
	out := make([]byte, 0, p)
	out = append(out, cell[:local]...)
	if local == p {
		return int64(rowid), out, nil
	}
	next := binary.BigEndian.Uint32(cell[local:])
	for pages := uint32(0); int64(len(out)) < p; pages++ {
		if pages >= db.npages {
			return 0, nil, fmt.Errorf("row %d: overflow chain loops: %w", int64(rowid), ErrCorrupt)
		}
		op, err := db.page(next)
		if err != nil {
			return 0, nil, fmt.Errorf("row %d: overflow: %w", int64(rowid), err)
		}
		take := min(u-4, p-int64(len(out)))
		out = append(out, op[4:4+take]...)
		next = binary.BigEndian.Uint32(op)
	}
	return int64(rowid), out, nil
}

// uvarint is SQLite's big-endian varint (up to 9 bytes); n is 0 when b
// ends first.
func uvarint(b []byte) (v uint64, n int) {
	for i := 0; i < 9; i++ {
		if i >= len(b) {
			return 0, 0
		}
		if i == 8 {
			return v<<8 | uint64(b[i]), 9
		}
		v = v<<7 | uint64(b[i]&0x7f)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}

const (
	colNull = iota
	colInt
	colFloat
	colBlob
	colText
)

type column struct {
	kind int
	i    int64
	b    []byte
}

func (c column) text() string {
	if c.kind == colText {
		return string(c.b)
	}
	return ""
}

// parseRecord decodes the first n columns of a record; missing ones (a
// row written before a column was added) are NULL.
func parseRecord(rec []byte, n int) ([]column, error) {
	cols := make([]column, n)
	hs, k := uvarint(rec)
	if k == 0 || hs > uint64(len(rec)) || hs < uint64(k) {
		return nil, fmt.Errorf("record header of %d bytes in %d: %w", hs, len(rec), ErrCorrupt)
	}
	hdr := rec[k:hs]
	body := rec[hs:]
	for i := 0; i < n && len(hdr) > 0; i++ {
		st, m := uvarint(hdr)
		if m == 0 {
			return nil, fmt.Errorf("record column %d: bad serial type: %w", i, ErrCorrupt)
		}
		hdr = hdr[m:]
		var size uint64
		switch {
		case st == 0, st == 8, st == 9:
			size = 0
		case st <= 4:
			size = st
		case st == 5:
			size = 6
		case st == 6, st == 7:
			size = 8
		case st >= 12:
			size = (st - 12) / 2
		default:
			return nil, fmt.Errorf("record column %d: serial type %d: %w", i, st, ErrCorrupt)
		}
		if size > uint64(len(body)) {
			return nil, fmt.Errorf("record column %d: %d bytes past the record: %w", i, size, ErrCorrupt)
		}
		v := body[:size]
		body = body[size:]
		switch {
		case st == 0:
			cols[i].kind = colNull
		case st == 8, st == 9:
			cols[i] = column{kind: colInt, i: int64(st - 8)}
		case st <= 6:
			x := int64(int8(v[0]))
			for _, c := range v[1:] {
				x = x<<8 | int64(c)
			}
			cols[i] = column{kind: colInt, i: x}
		case st == 7:
			cols[i].kind = colFloat
		case st%2 == 0:
			cols[i] = column{kind: colBlob, b: v}
		default:
			cols[i] = column{kind: colText, b: v}
		}
	}
	return cols, nil
}
