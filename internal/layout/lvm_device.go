package layout

import (
	"fmt"
	"io"
	"sort"

	"guestkit.io/batch/internal/block"
)

// lvSeg is a segment of a linear or striped LV: a byte range of the LV
// spread over its areas in chunks of chunk bytes, the device-mapper
// striped target's mapping (one area: linear).
type lvSeg struct {
	start, size int64 // in the LV
	chunk       int64
	areas       []lvArea
}

// lvArea is a byte range of a PV's device.
type lvArea struct {
	dev       block.Device
	off, size int64
}

// lvDevice reads an LV through its segments. The segments are contiguous
// from 0 to size (ReadLVM checked it).
type lvDevice struct {
	size int64
	segs []lvSeg
}

func (d *lvDevice) Size() int64 { return d.size }

func (d *lvDevice) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("logical volume read at negative offset %d", off)
	}
	if off >= d.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > d.size-off {
		p, eof = p[:d.size-off], io.EOF
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		i := sort.Search(len(d.segs), func(i int) bool { return d.segs[i].start+d.segs[i].size > pos })
		if i == len(d.segs) {
			return n, fmt.Errorf("logical volume read at %d: no segment maps it", pos)
		}
		s := &d.segs[i]
		rel := pos - s.start
		var a *lvArea
		var aoff, run int64
		if len(s.areas) == 1 {
			a, aoff, run = &s.areas[0], rel, s.size-rel
		} else {
			k := int64(len(s.areas))
			chunk, within := rel/s.chunk, rel%s.chunk
			a = &s.areas[chunk%k]
			aoff, run = (chunk/k)*s.chunk+within, min(s.chunk-within, s.size-rel)
		}
		if aoff >= a.size {
			return n, fmt.Errorf("logical volume read at %d: maps past its stripe's %d bytes", pos, a.size)
		}
		m := int(min(run, a.size-aoff, int64(len(p)-n)))
		if err := readFull(a.dev, p[n:n+m], a.off+aoff); err != nil {
			return n, fmt.Errorf("logical volume read at %d (device offset %d): %w", pos, a.off+aoff, err)
		}
		n += m
	}
	return n, eof
}
