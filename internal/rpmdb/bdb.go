package rpmdb

import (
	"encoding/binary"
	"fmt"
)

// visitFunc receives each record of a backend in the backend's order;
// false stops the iteration.
type visitFunc func(key uint32, blob []byte) (bool, error)

// BerkeleyDB page types and item types (db_page.h).
const (
	bdbPageHashUnsorted = 2
	bdbPageOverflow     = 7
	bdbPageHashMeta     = 8
	bdbPageHash         = 13
	bdbItemKeyData      = 1
	bdbItemOffPage      = 3
	bdbPageHeader       = 26
)

// bdb is a BerkeleyDB hash database read as rpm's bdb_ro reads it: the
// buckets in order, each bucket's page chain, the key/value pairs of each
// page, big items through their overflow chains.
type bdb struct {
	f         *file
	bo        binary.ByteOrder
	pagesize  int64
	lastpage  uint32
	maxbucket uint32
	spares    [32]uint32
	seen      []bool // hash pages already visited: a chain that loops is corrupt
}

func readBDB(f *file, visit visitFunc) error {
	db, err := openBDB(f)
	if err != nil {
		return err
	}
	return db.iterate(visit)
}

func openBDB(f *file) (*bdb, error) {
	meta, err := f.read(0, 512, "BerkeleyDB meta page")
	if err != nil {
		return nil, err
	}
	db := &bdb{f: f}
	switch magic := binary.LittleEndian.Uint32(meta[12:]); magic {
	case 0x00061561:
		db.bo = binary.LittleEndian
	case 0x61150600:
		db.bo = binary.BigEndian
	case 0x00053162, 0x62310500:
		return nil, fmt.Errorf("BerkeleyDB btree Packages: %w", ErrUnsupported)
	default:
		return nil, fmt.Errorf("BerkeleyDB meta page: magic %#x is not a hash database: %w", magic, ErrCorrupt)
	}
	u32 := func(i int) uint32 { return db.bo.Uint32(meta[4*i:]) }
	if v := u32(4); v < 8 || v > 10 {
		return nil, fmt.Errorf("BerkeleyDB meta page: hash version %d: %w", v, ErrUnsupported)
	}
	ps := u32(5)
	if ps < 512 || ps > 65536 || ps&(ps-1) != 0 {
		return nil, fmt.Errorf("BerkeleyDB meta page: page size %d: %w", ps, ErrCorrupt)
	}
	db.pagesize = int64(ps)
	db.lastpage = u32(8)
	db.maxbucket = u32(18)
	for i := range db.spares {
		db.spares[i] = u32(24 + i)
	}
	// Pages past the end fail when read; the visited set covers the file.
	db.seen = make([]bool, f.size/db.pagesize+1)
	return db, nil
}

// page reads page pgno and checks that it says it is that page.
func (db *bdb) page(pgno uint32) ([]byte, error) {
	if pgno == 0 || pgno > db.lastpage {
		return nil, fmt.Errorf("BerkeleyDB page %d outside 1..%d: %w", pgno, db.lastpage, ErrCorrupt)
	}
	p, err := db.f.read(int64(pgno)*db.pagesize, db.pagesize, fmt.Sprintf("BerkeleyDB page %d", pgno))
	if err != nil {
		return nil, err
	}
	if got := db.bo.Uint32(p[8:]); got != pgno {
		return nil, fmt.Errorf("BerkeleyDB page %d says it is page %d: %w", pgno, got, ErrCorrupt)
	}
	return p, nil
}

// hashPage reads a page of a bucket's chain, once in the whole iteration.
func (db *bdb) hashPage(pgno uint32) ([]byte, error) {
	p, err := db.page(pgno)
	if err != nil {
		return nil, err
	}
	if db.seen[pgno] {
		return nil, fmt.Errorf("BerkeleyDB hash page %d reached twice: %w", pgno, ErrCorrupt)
	}
	db.seen[pgno] = true
	if t := p[25]; t != bdbPageHash && t != bdbPageHashUnsorted && t != bdbPageHashMeta {
		return nil, fmt.Errorf("BerkeleyDB page %d: type %d is not a hash page: %w", pgno, t, ErrCorrupt)
	}
	return p, nil
}

func (db *bdb) bucketPage(bucket uint32) (uint32, error) {
	i := 0
	for b := bucket; b != 0; b >>= 1 {
		i++
	}
	if i >= len(db.spares) {
		return 0, fmt.Errorf("BerkeleyDB bucket %d: %w", bucket, ErrCorrupt)
	}
	return bucket + db.spares[i], nil
}

func (db *bdb) iterate(visit visitFunc) error {
	bucket := uint32(0)
	pg, err := db.bucketPage(0)
	if err != nil {
		return err
	}
	for {
		p, err := db.hashPage(pg)
		if err != nil {
			return fmt.Errorf("bucket %d: %w", bucket, err)
		}
		n := int64(db.bo.Uint16(p[20:]))
		for idx := int64(0); idx+1 < n; idx += 2 {
			key, val, err := db.pair(p, pg, idx)
			if err != nil {
				return err
			}
			k := uint32(0)
			if len(key) == 4 {
				k = db.bo.Uint32(key)
			}
			if more, err := visit(k, val); err != nil || !more {
				return err
			}
		}
		if pg = db.bo.Uint32(p[16:]); pg != 0 {
			continue
		}
		if bucket >= db.maxbucket {
			return nil
		}
		bucket++
		if pg, err = db.bucketPage(bucket); err != nil {
			return err
		}
	}
}

// pair reads the key and value of item pair idx on hash page p.
func (db *bdb) pair(p []byte, pgno uint32, idx int64) (key, val []byte, err error) {
	if bdbPageHeader+2*idx+4 > db.pagesize {
		return nil, nil, fmt.Errorf("BerkeleyDB page %d: item %d past the page: %w", pgno, idx, ErrCorrupt)
	}
	koff := int64(db.bo.Uint16(p[bdbPageHeader+2*idx:]))
	voff := int64(db.bo.Uint16(p[bdbPageHeader+2*idx+2:]))
	if koff >= db.pagesize || voff >= db.pagesize {
		return nil, nil, fmt.Errorf("BerkeleyDB page %d: item %d at %d/%d past the page: %w", pgno, idx, koff, voff, ErrCorrupt)
	}
	klen := db.pagesize - koff
	if idx > 0 {
		klen = int64(db.bo.Uint16(p[bdbPageHeader+2*idx-2:])) - koff
	}
	if key, err = db.item(p, koff, klen); err != nil {
		return nil, nil, fmt.Errorf("BerkeleyDB page %d: key %d: %w", pgno, idx, err)
	}
	if val, err = db.item(p, voff, koff-voff); err != nil {
		return nil, nil, fmt.Errorf("BerkeleyDB page %d: value %d: %w", pgno, idx+1, err)
	}
	return key, val, nil
}

// item is hash_getkv: an item on the page, or an off-page item.
func (db *bdb) item(p []byte, off, n int64) ([]byte, error) {
	if n <= 0 || off+n > db.pagesize {
		return nil, fmt.Errorf("item of %d bytes at %d: %w", n, off, ErrCorrupt)
	}
	switch p[off] {
	case bdbItemKeyData:
		return p[off+1 : off+n], nil
	case bdbItemOffPage:
		if n != 12 {
			return nil, fmt.Errorf("off-page item of %d bytes at %d: %w", n, off, ErrCorrupt)
		}
		return db.overflow(db.bo.Uint32(p[off+4:]), db.bo.Uint32(p[off+8:]))
	}
	return nil, fmt.Errorf("item type %d at %d: %w", p[off], off, ErrCorrupt)
}

// overflow reads a big item of size bytes from its overflow chain. The
// chain visits at most as many pages as the file has.
func (db *bdb) overflow(pgno, size uint32) ([]byte, error) {
	if size == 0 || size > MaxRecord {
		return nil, fmt.Errorf("overflow item of %d bytes at page %d: %w", size, pgno, ErrCorrupt)
	}
	out := make([]byte, 0, size)
	for pages := uint32(0); uint32(len(out)) < size; pages++ {
		if int(pages) >= len(db.seen) {
			return nil, fmt.Errorf("overflow chain from page %d loops: %w", pgno, ErrCorrupt)
		}
		p, err := db.page(pgno)
		if err != nil {
			return nil, fmt.Errorf("overflow chain: %w", err)
		}
		if p[25] != bdbPageOverflow {
			return nil, fmt.Errorf("overflow page %d: type %d: %w", pgno, p[25], ErrCorrupt)
		}
		n := int64(db.bo.Uint16(p[22:]))
		if n == 0 || n+bdbPageHeader > db.pagesize || n > int64(size)-int64(len(out)) {
			return nil, fmt.Errorf("overflow page %d: %d bytes: %w", pgno, n, ErrCorrupt)
		}
		out = append(out, p[bdbPageHeader:bdbPageHeader+n]...)
		pgno = db.bo.Uint32(p[16:])
	}
	return out, nil
}
