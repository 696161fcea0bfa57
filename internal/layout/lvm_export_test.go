package layout

import (
	"encoding/binary"
	"fmt"

	"guestkit.io/batch/internal/block"
)

// LVSegments is how many segments Device maps for lv.
func LVSegments(lv LV) int { return len(lv.segs) }

// MetadataWraps says whether the current metadata text of the PV's first
// metadata area wraps around the end of its circular buffer.
func MetadataWraps(dev block.Device) (bool, error) {
	l, _, err := readLabel(dev, dev.Size())
	if err != nil {
		return false, err
	}
	if len(l.mdas) == 0 {
		return false, fmt.Errorf("no metadata area")
	}
	h := make([]byte, mdaHeaderSize)
	if err := readFull(dev, h, int64(l.mdas[0].offset)); err != nil {
		return false, err
	}
	off, n := binary.LittleEndian.Uint64(h[40:]), binary.LittleEndian.Uint64(h[48:])
	return off+n > l.mdas[0].size, nil
}

// MetadataAreas are the offsets and sizes of the PV's metadata areas.
func MetadataAreas(dev block.Device) ([][2]int64, error) {
	l, _, err := readLabel(dev, dev.Size())
	var out [][2]int64
	for _, m := range l.mdas {
		out = append(out, [2]int64{int64(m.offset), int64(m.size)})
	}
	return out, err
}
