package layout

import (
	"strings"
	"testing"
)

// seedTexts are the metadata texts of the seed PVs.
func seedTexts(f *testing.F) []string {
	var out []string
	for _, name := range seedNames {
		b := seed(f, name)
		d := zeroDev{b, 256 << 20}
		l, _, err := readLabel(d, d.Size())
		if err != nil {
			f.Fatal(err)
		}
		text, err := readMetadata(d, l.mdas[0])
		if err != nil || text == "" {
			f.Fatalf("%s: %v", name, err)
		}
		out = append(out, text)
	}
	return out
}

// readLVs reads the start, middle and end of every LV that Device can
// read: a readable LV's extents lie inside its devices, so reads inside
// its size must not fail.
func readLVs(t *testing.T, l *LVM) {
	buf := make([]byte, 4096)
	for _, lv := range l.LVs {
		if lv.Size < 0 {
			t.Fatalf("%s: size %d", lv.Name, lv.Size)
		}
		d, err := lv.Device()
		if err != nil {
			if lv.Unsupported == "" {
				t.Fatalf("%s: %v", lv.Name, err)
			}
			continue
		}
		for _, off := range []int64{0, d.Size() / 2, d.Size() - 4096} {
			if off < 0 {
				continue
			}
			n, err := d.ReadAt(buf, off)
			if n < int(min(4096, d.Size()-off)) {
				t.Fatalf("%s: read at %d of %d bytes: %d, %v", lv.Name, off, d.Size(), n, err)
			}
		}
	}
}

// FuzzLVMText parses metadata texts and assembles the VG they describe,
// with its first PV present, and reads its LVs.
func FuzzLVMText(f *testing.F) {
	for _, text := range seedTexts(f) {
		f.Add(text)
	}
	f.Add(`vg { id = "x" seqno = 1 extent_size = 8 physical_volumes { pv0 { id = "A" pe_start = 0 pe_count = 4 } }
logical_volumes { lv { id = "y" status = ["VISIBLE"] segment_count = 1 segment1 { start_extent = 0 extent_count = 4
type = "striped" stripe_count = 2 stripe_size = 3 stripes = ["pv0", 0, "pv0", 2] } } } }`)
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > maxMetadataText {
			return
		}
		c, err := parseVGText(text)
		if err != nil {
			return
		}
		byUUID := map[string]*foundPV{}
		var pvs []cfgEntry
		if s := c.sect.sub("physical_volumes"); s != nil {
			pvs = s.entries
		}
		for _, e := range pvs {
			if e.val.kind == cfgSection {
				id, _ := e.val.sect.str("id")
				id = strings.ReplaceAll(id, "-", "")
				byUUID[id] = &foundPV{name: "pv", dev: zeroDev{nil, 1 << 30}, label: pvLabel{uuid: id}}
				break
			}
		}
		vg, _, lvs, _, err := assembleVG(c, byUUID)
		if err != nil {
			return
		}
		if vg.Size < 0 || vg.Free < 0 || vg.Free > vg.Size {
			t.Fatalf("VG size %d, free %d", vg.Size, vg.Free)
		}
		readLVs(t, &LVM{LVs: lvs})
	})
}

// FuzzReadLVM reads a PV whose first bytes are the input and the rest
// zeros. Unless the input's first byte (in sector 0, which LVM leaves
// alone) has its low bit set, the CRCs are fixed first, so that mutations
// reach the metadata behind them.
func FuzzReadLVM(f *testing.F) {
	for _, name := range seedNames {
		b := seed(f, name)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		if len(data) > 0 && data[0]&1 == 0 {
			fixCRCs(data)
		}
		l, err := ReadLVM([]NamedDevice{{Name: "pv", Dev: zeroDev{data, 256 << 20}}})
		if l == nil {
			if err != nil {
				t.Fatalf("nil LVM with error %v", err)
			}
			return
		}
		for _, vg := range l.VGs {
			if vg.Size < 0 || vg.Free < 0 || vg.Free > vg.Size || vg.ExtentSize <= 0 {
				t.Fatalf("VG %+v", vg)
			}
		}
		readLVs(t, l)
	})
}
