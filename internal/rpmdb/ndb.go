package rpmdb

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// ndb layout (rpm's lib/backend/ndb/rpmpkg.c): a 32-byte header, slot
// pages of 16-byte slots (pkgidx, blkoff, blkcnt), and blobs in 16-byte
// blocks, each a head (magic, pkgidx, generation, length), the header
// blob, padding, and a tail (adler32, length, magic) in its last bytes.
const (
	ndbMagic     = 'R' | 'p'<<8 | 'm'<<16 | 'P'<<24
	ndbSlotMagic = 'S' | 'l'<<8 | 'o'<<16 | 't'<<24
	ndbHeadMagic = 'B' | 'l'<<8 | 'b'<<16 | 'S'<<24
	ndbTailMagic = 'B' | 'l'<<8 | 'b'<<16 | 'E'<<24
	ndbPage      = 4096
	ndbSlot      = 16
	ndbBlock     = 16
	ndbHead      = 16
	ndbTail      = 12
	ndbHeader    = 32
)

type ndbSlotEntry struct {
	pkgidx, blkoff, blkcnt uint32
}

func readNDB(f *file, visit visitFunc) error {
	slots, err := ndbSlots(f)
	if err != nil {
		return err
	}
	// rpmpkgList: the packages in the order of their blobs in the file.
	sort.SliceStable(slots, func(i, j int) bool { return slots[i].blkoff < slots[j].blkoff })
	first := map[uint32]ndbSlotEntry{} // rpmpkgFindSlot finds the first of a pkgidx
	for _, s := range slots {
		if _, ok := first[s.pkgidx]; !ok {
			first[s.pkgidx] = s
		}
	}
	for _, s := range slots {
		b, err := ndbBlob(f, first[s.pkgidx])
		if err != nil {
			return err
		}
		if more, err := visit(s.pkgidx, b); err != nil || !more {
			return err
		}
	}
	return nil
}

// ndbSlots is rpmpkgReadHeader and rpmpkgReadSlots: every slot of every
// slot page must carry its magic; used slots point past the slot pages
// and inside the file.
func ndbSlots(f *file) ([]ndbSlotEntry, error) {
	h, err := f.read(0, ndbHeader, "ndb header")
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if m := le.Uint32(h); m != ndbMagic {
		return nil, fmt.Errorf("ndb header: magic %#x: %w", m, ErrCorrupt)
	}
	if v := le.Uint32(h[4:]); v != 0 {
		return nil, fmt.Errorf("ndb header: version %d: %w", v, ErrUnsupported)
	}
	if f.size%ndbBlock != 0 {
		return nil, fmt.Errorf("ndb: file size %d is not a multiple of %d: %w", f.size, ndbBlock, ErrCorrupt)
	}
	fileblks := uint64(f.size / ndbBlock)
	npages := int64(le.Uint32(h[12:]))
	if npages*ndbPage > f.size {
		return nil, fmt.Errorf("ndb header: %d slot pages past the end of %d bytes: %w", npages, f.size, ErrCorrupt)
	}
	minblkoff := uint64(npages) * (ndbPage / ndbBlock)
	var slots []ndbSlotEntry
	for pg := int64(0); pg < npages; pg++ {
		p, err := f.read(pg*ndbPage, ndbPage, fmt.Sprintf("ndb slot page %d", pg))
		if err != nil {
			return nil, err
		}
		start := int64(0)
		if pg == 0 {
			start = ndbHeader
		}
		for o := start; o < ndbPage; o += ndbSlot {
			s := p[o:]
			slotno := (pg*ndbPage + o) / ndbSlot
			if le.Uint32(s) != ndbSlotMagic {
				return nil, fmt.Errorf("ndb slot %d: bad magic: %w", slotno, ErrCorrupt)
			}
			e := ndbSlotEntry{pkgidx: le.Uint32(s[4:]), blkoff: le.Uint32(s[8:]), blkcnt: le.Uint32(s[12:])}
			if e.blkoff == 0 {
				continue // a free slot
			}
			if uint64(e.blkoff)+uint64(e.blkcnt) > fileblks {
				return nil, fmt.Errorf("ndb slot %d: blocks %d+%d past the end (%d): %w", slotno, e.blkoff, e.blkcnt, fileblks, ErrCorrupt)
			}
			if e.pkgidx == 0 || e.blkcnt == 0 || uint64(e.blkoff) < minblkoff {
				return nil, fmt.Errorf("ndb slot %d: package %d at block %d (%d blocks): %w", slotno, e.pkgidx, e.blkoff, e.blkcnt, ErrCorrupt)
			}
			slots = append(slots, e)
		}
	}
	return slots, nil
}

// ndbBlob is rpmpkgReadBlob as rpmpkgGet calls it (the adler32 is not
// checked there): head and tail must agree with the slot.
func ndbBlob(f *file, s ndbSlotEntry) ([]byte, error) {
	what := fmt.Sprintf("ndb blob of package %d at block %d", s.pkgidx, s.blkoff)
	if s.blkcnt < (ndbHead+ndbTail+ndbBlock-1)/ndbBlock {
		return nil, fmt.Errorf("%s: %d blocks: %w", what, s.blkcnt, ErrCorrupt)
	}
	off := int64(s.blkoff) * ndbBlock
	end := off + int64(s.blkcnt)*ndbBlock
	head, err := f.read(off, ndbHead, what)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if le.Uint32(head) != ndbHeadMagic || le.Uint32(head[4:]) != s.pkgidx {
		return nil, fmt.Errorf("%s: bad head: %w", what, ErrCorrupt)
	}
	n := int64(le.Uint32(head[12:]))
	if int64(s.blkcnt) != (ndbHead+n+ndbTail+ndbBlock-1)/ndbBlock {
		return nil, fmt.Errorf("%s: %d bytes do not fill %d blocks: %w", what, n, s.blkcnt, ErrCorrupt)
	}
	if n > MaxRecord {
		return nil, fmt.Errorf("%s: %d bytes, more than %d: %w", what, n, MaxRecord, ErrCorrupt)
	}
	tail, err := f.read(end-ndbTail, ndbTail, what)
	if err != nil {
		return nil, err
	}
	if int64(le.Uint32(tail[4:])) != n || le.Uint32(tail[8:]) != ndbTailMagic {
		return nil, fmt.Errorf("%s: bad tail: %w", what, ErrCorrupt)
	}
	return f.read(off+ndbHead, n, what)
}
