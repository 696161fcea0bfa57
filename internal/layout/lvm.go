package layout

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"guestkit.io/batch/internal/block"
)

// LVM2, read from the disks' bytes: the physical volumes among a set of
// block devices, the newest metadata of each volume group, and the
// logical volumes mapped onto the PVs' extents. Linear and striped LVs
// can be read; thin, RAID, mirror, snapshot, cache and other kinds are
// listed with the reason they cannot, so the caller falls back to the
// appliance. Names, sizes and the choice of listed LVs follow what the
// libguestfs appliance reports (pvs-full, vgs-full, lvs and
// blockdev-getsize64), the reference the direct backend is compared with.

// Bounds on the metadata's structures, beyond the parser's. LVM itself
// allows at most 128 stripes (MAX_STRIPES) and two metadata areas per PV.
const (
	maxStripes     = 128
	maxSegments    = 1 << 16
	maxPVMetadatas = 2
)

// NamedDevice is a block device and the name the inspection gives it
// (the appliance's name, such as "/dev/sda2").
type NamedDevice struct {
	Name string
	Dev  block.Device
}

// LVM is what the devices hold, in the order the appliance lists them
// (see ReadLVM): VGs, PVs by VG then outside any VG, and the LVs that
// `lvs` lists, by VG and name.
type LVM struct {
	PVs []PV
	VGs []VG
	LVs []LV
	// Problems are what did not stop the reading: labels ignored for a
	// bad CRC, a metadata area that failed while another copy was good,
	// duplicate PVs.
	Problems []string
}

// PV is a physical volume. Size is the extents' total in a VG, else the
// device size from the PV header, as pvs reports it.
type PV struct {
	Name, UUID, VG string
	Size           int64
}

// VG is a volume group. Sizes are in bytes. MissingPVs are the UUIDs of
// PVs its metadata lists that none of the devices holds.
type VG struct {
	Name, UUID string
	Size, Free int64
	ExtentSize int64
	Seqno      int64
	MissingPVs []string
}

// LV is a logical volume. Layout is "linear", "striped", or the LVM
// segment type that is neither ("thin", "raid1", "mirror", "snapshot",
// "cache"...). Unsupported says why Device cannot read it; "" when it
// can.
type LV struct {
	VG, Name, UUID string
	Size           int64
	Layout         string
	Unsupported    string
	segs           []lvSeg
}

// Device is the LV's bytes, read through the PVs' devices.
func (lv LV) Device() (block.Device, error) {
	if lv.Unsupported != "" {
		return nil, fmt.Errorf("logical volume %s/%s: %s", lv.VG, lv.Name, lv.Unsupported)
	}
	return &lvDevice{size: lv.Size, segs: lv.segs}, nil
}

// foundPV is a device with an LVM2 label.
type foundPV struct {
	name   string
	dev    block.Device
	label  pvLabel
	good   int     // metadata texts read and parsed
	failed []error // metadata areas that could not be read or parsed
	vg     string  // the VG whose metadata lists it
}

// vgCopy is one VG's metadata text, parsed.
type vgCopy struct {
	name, id string
	seqno    int64
	sect     *cfgSect
	from     string // the device it was read from
}

// ReadLVM finds the PVs among devs and reads their VGs and LVs. Give devs
// in the order the appliance scans them (its device names' order, each
// disk followed by its partitions) to get its order of VGs and PVs. It
// returns nil, nil when no device has an LVM label, and an LVM with only
// Problems when the labels it found were all ignored (bad CRC). Metadata that is unreadable
// everywhere a PV could get it from, or a VG whose metadata makes no
// sense, is an error; what was read besides is returned with it. A VG
// with a missing PV is no error: the LVs on it are Unsupported.
func ReadLVM(devs []NamedDevice) (*LVM, error) {
	out := &LVM{}
	var errs []error
	var pvs []*foundPV
	byUUID := map[string]*foundPV{}
	newest := map[string]*vgCopy{} // by VG UUID
	var found []string             // VG UUIDs in the order the devices show them
	parsed := map[[sha256.Size]byte]bool{}
	for _, d := range devs {
		l, bad, err := readLabel(d.Dev, d.Dev.Size())
		for _, b := range bad {
			out.Problems = append(out.Problems, d.Name+": "+b)
		}
		if errors.Is(err, errNoLabel) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.Name, err))
			continue
		}
		if prev := byUUID[l.uuid]; prev != nil {
			out.Problems = append(out.Problems, fmt.Sprintf("%s: duplicate of PV %s on %s: ignored", d.Name, printUUID(l.uuid), prev.name))
			continue
		}
		p := &foundPV{name: d.Name, dev: d.Dev, label: l}
		pvs = append(pvs, p)
		byUUID[l.uuid] = p
		mdas := l.mdas
		if len(mdas) > maxPVMetadatas {
			out.Problems = append(out.Problems, fmt.Sprintf("%s: %d metadata areas, only the first %d read", d.Name, len(mdas), maxPVMetadatas))
			mdas = mdas[:maxPVMetadatas]
		}
		for _, m := range mdas {
			text, err := readMetadata(d.Dev, m)
			if err != nil {
				p.failed = append(p.failed, err)
				continue
			}
			if text == "" {
				continue
			}
			sum := sha256.Sum256([]byte(text))
			if parsed[sum] {
				p.good++
				continue
			}
			c, err := parseVGText(text)
			if err != nil {
				p.failed = append(p.failed, fmt.Errorf("metadata area at %d: %w", m.offset, err))
				continue
			}
			parsed[sum] = true
			p.good++
			c.from = d.Name
			old := newest[c.id]
			if old == nil {
				found = append(found, c.id)
			}
			if old == nil || c.seqno > old.seqno {
				newest[c.id] = c
			}
		}
	}
	if len(pvs) == 0 && len(errs) == 0 && len(out.Problems) == 0 {
		return nil, nil
	}

	// The appliance's pvs-full and vgs-full run lvm with --unbuffered, so
	// they list VGs unsorted, in the order of lvmcache's list: each VG
	// found while scanning the devices is put at its head. PVs follow
	// their VG, in the order of its metadata, and the PVs outside any VG
	// come last, in scanning order.
	slices.Reverse(found)
	for _, id := range found {
		c := newest[id]
		vg, members, lvs, problems, err := assembleVG(c, byUUID)
		out.Problems = append(out.Problems, problems...)
		if err != nil {
			errs = append(errs, fmt.Errorf("VG %s (metadata from %s): %w", c.name, c.from, err))
			continue
		}
		for _, other := range out.VGs {
			if other.Name == vg.Name {
				out.Problems = append(out.Problems, fmt.Sprintf("two VGs named %s: %s and %s", vg.Name, other.UUID, vg.UUID))
			}
		}
		out.VGs = append(out.VGs, vg)
		for _, m := range members {
			p := m.dev
			if p.vg != "" {
				out.Problems = append(out.Problems, fmt.Sprintf("%s: listed by VGs %s and %s", p.name, p.vg, vg.Name))
				continue
			}
			p.vg = vg.Name
			out.PVs = append(out.PVs, PV{Name: p.name, UUID: printUUID(p.label.uuid), VG: vg.Name, Size: m.peCount * vg.ExtentSize})
		}
		out.LVs = append(out.LVs, lvs...)
	}
	for _, p := range pvs {
		for _, err := range p.failed {
			if p.good > 0 || p.vg != "" {
				out.Problems = append(out.Problems, fmt.Sprintf("%s: %v (another copy was read)", p.name, err))
			}
		}
		if p.vg != "" {
			continue
		}
		if len(p.failed) > 0 && p.good == 0 {
			errs = append(errs, fmt.Errorf("%s: no readable LVM metadata: %w", p.name, errors.Join(p.failed...)))
			continue
		}
		size := int64(p.label.devSize)
		if p.label.devSize == 0 || p.label.devSize > math.MaxInt64 {
			size = p.dev.Size()
		}
		out.PVs = append(out.PVs, PV{Name: p.name, UUID: printUUID(p.label.uuid), Size: size})
	}
	slices.SortStableFunc(out.LVs, func(a, b LV) int { return cmp.Or(cmp.Compare(a.VG, b.VG), cmp.Compare(a.Name, b.Name)) })
	if len(errs) > 0 {
		return out, fmt.Errorf("LVM: %w", errors.Join(errs...))
	}
	return out, nil
}

// parseVGText parses a metadata text: its first section is the VG.
func parseVGText(text string) (*vgCopy, error) {
	root, err := parseCfg(text)
	if err != nil {
		return nil, err
	}
	for _, e := range root.entries {
		if e.val.kind != cfgSection {
			continue
		}
		c := &vgCopy{name: e.name, sect: e.val.sect}
		var ok bool
		if c.id, ok = c.sect.str("id"); !ok || c.id == "" {
			return nil, fmt.Errorf("VG %s: no id", e.name)
		}
		if c.seqno, ok = c.sect.int("seqno"); !ok {
			return nil, fmt.Errorf("VG %s: no seqno", e.name)
		}
		return c, nil
	}
	return nil, errors.New("LVM metadata text has no VG section")
}

// vgPV is a PV as the VG's metadata describes it.
type vgPV struct {
	key, uuid string // "pv0"; UUID without dashes
	peStart   int64  // bytes
	peCount   int64
	dev       *foundPV
}

// mul is a*b for non-negative a and b, and false on overflow.
func mul(a, b int64) (int64, bool) {
	if a < 0 || b < 0 || (a != 0 && b > math.MaxInt64/a) {
		return 0, false
	}
	return a * b, true
}

// assembleVG reads a VG's metadata: its PVs, matched to the devices by
// UUID, and its LVs, mapped onto the PVs.
func assembleVG(c *vgCopy, byUUID map[string]*foundPV) (vg VG, members []*vgPV, lvs []LV, problems []string, err error) {
	vg = VG{Name: c.name, UUID: c.id, Seqno: c.seqno}
	es, ok := c.sect.int("extent_size")
	if !ok || es <= 0 || es > math.MaxUint32 {
		return vg, nil, nil, nil, fmt.Errorf("extent_size %d sectors", es)
	}
	esBytes := es * sector
	vg.ExtentSize = esBytes
	pvSect := c.sect.sub("physical_volumes")
	if pvSect == nil {
		return vg, nil, nil, nil, errors.New("no physical_volumes section")
	}
	pvs := map[string]*vgPV{}
	var extents int64
	for _, e := range pvSect.entries {
		if e.val.kind != cfgSection {
			continue
		}
		s := e.val.sect
		id, _ := s.str("id")
		start, ok1 := s.int("pe_start")
		count, ok2 := s.int("pe_count")
		if id == "" || !ok1 || !ok2 || start < 0 || count < 0 || count > math.MaxUint32 {
			return vg, nil, nil, nil, fmt.Errorf("PV %s: bad id, pe_start or pe_count", e.name)
		}
		p := &vgPV{key: e.name, uuid: strings.ReplaceAll(id, "-", "")}
		var ok3, ok4 bool
		p.peStart, ok3 = mul(start, sector)
		area, ok4 := mul(count, esBytes)
		if !ok3 || !ok4 || p.peStart > math.MaxInt64-area {
			return vg, nil, nil, nil, fmt.Errorf("PV %s: extents overflow", e.name)
		}
		p.peCount = count
		if _, dup := pvs[e.name]; dup {
			return vg, nil, nil, nil, fmt.Errorf("PV %s listed twice", e.name)
		}
		pvs[e.name] = p
		if extents += count; extents > math.MaxInt64/esBytes {
			return vg, nil, nil, nil, errors.New("VG size overflows")
		}
		if d := byUUID[p.uuid]; d != nil {
			p.dev = d
			members = append(members, p)
		} else {
			vg.MissingPVs = append(vg.MissingPVs, printUUID(p.uuid))
		}
	}
	vg.Size = extents * esBytes
	lockType, _ := c.sect.str("lock_type")

	lvSect := c.sect.sub("logical_volumes")
	var infos []*lvInfo
	byName := map[string]*lvInfo{}
	var used int64
	if lvSect != nil {
		for _, e := range lvSect.entries {
			if e.val.kind != cfgSection {
				continue
			}
			lv := parseLV(e.name, e.val.sect, es)
			infos = append(infos, lv)
			if byName[e.name] == nil {
				byName[e.name] = lv
			}
			for _, s := range lv.segs {
				for _, st := range s.stripes {
					if pvs[st.name] != nil {
						used += s.count / int64(len(s.stripes))
					}
				}
			}
		}
	}
	if free := extents - used; free >= 0 {
		vg.Free = free * esBytes
	} else {
		problems = append(problems, fmt.Sprintf("VG %s: its LVs use %d extents, more than its %d", c.name, used, extents))
	}

	for _, lv := range infos {
		if !slices.Contains(lv.status, "VISIBLE") || slices.Contains(lv.flags, "ACTIVATION_SKIP") || slices.Contains(lv.status, "ACTIVATION_SKIP") {
			continue
		}
		if lockType == "sanlock" && lv.name == "lvmlock" {
			continue // lvmlockd's own LV, private
		}
		out := LV{VG: c.name, Name: lv.name, UUID: lv.id, Size: lv.size, Layout: lv.layout(), Unsupported: lv.bad}
		switch out.Layout {
		case "thin-pool", "cache-pool", "vdo-pool":
			continue // pools are private: lvs does not list them
		case "snapshot":
			// The snapshot's visible name and UUID are its copy-on-write
			// LV's; its size is the origin's.
			cow, _ := lv.segs[0].sect.str("cow_store")
			cl := byName[cow]
			if cl == nil {
				problems = append(problems, fmt.Sprintf("VG %s: snapshot %s has no copy-on-write LV %q", c.name, lv.name, cow))
				continue
			}
			out.Name, out.UUID = cl.name, cl.id
		}
		if out.Unsupported == "" {
			switch out.Layout {
			case "linear", "striped":
				out.segs, out.Unsupported = mapLV(lv, pvs, esBytes)
			default:
				out.Unsupported = fmt.Sprintf("%s volume: the direct reader maps only linear and striped volumes", out.Layout)
			}
		}
		lvs = append(lvs, out)
	}
	return vg, members, lvs, problems, nil
}

// lvInfo is an LV section of the metadata.
type lvInfo struct {
	name, id      string
	status, flags []string
	segs          []segInfo
	size          int64 // bytes
	bad           string
}

type segInfo struct {
	start, count int64 // extents
	typ          string
	stripeSize   int64 // sectors
	stripes      []stripeRef
	sect         *cfgSect
}

type stripeRef struct {
	name string // a PV key such as "pv0", or an LV's name
	pe   int64
}

// layout names the LV's kind as lvs' segtype does.
func (lv *lvInfo) layout() string {
	if len(lv.segs) == 0 {
		return "linear"
	}
	striped := false
	for _, s := range lv.segs {
		if s.typ != "striped" {
			return s.typ
		}
		if len(s.stripes) > 1 {
			striped = true
		}
	}
	if striped {
		return "striped"
	}
	return "linear"
}

// parseLV reads an LV section. Anything wrong in it makes the LV
// unreadable (lv.bad), not the VG.
func parseLV(name string, s *cfgSect, es int64) *lvInfo {
	lv := &lvInfo{name: name}
	lv.id, _ = s.str("id")
	lv.status = s.strList("status")
	lv.flags = s.strList("flags")
	n, ok := s.int("segment_count")
	if !ok || n < 0 || n > maxSegments {
		lv.bad = fmt.Sprintf("segment_count %d", n)
		return lv
	}
	segSects := map[string]*cfgSect{}
	for _, e := range s.entries {
		if e.val.kind == cfgSection && strings.HasPrefix(e.name, "segment") {
			if segSects[e.name] == nil {
				segSects[e.name] = e.val.sect
			}
		}
	}
	var next int64 // the next segment's start extent
	for i := int64(1); i <= n; i++ {
		ss := segSects[fmt.Sprintf("segment%d", i)]
		if ss == nil {
			lv.bad = fmt.Sprintf("segment%d missing", i)
			return lv
		}
		seg, err := parseSegment(ss)
		if err != nil {
			lv.bad = fmt.Sprintf("segment%d: %v", i, err)
			return lv
		}
		if seg.start != next {
			lv.bad = fmt.Sprintf("segment%d starts at extent %d, not %d", i, seg.start, next)
			return lv
		}
		next += seg.count // both at most MaxUint32, so no overflow
		if next > math.MaxUint32 {
			lv.bad = "more than 2^32 extents"
			return lv
		}
		lv.segs = append(lv.segs, seg)
	}
	size, ok := mul(next, es*sector)
	if !ok {
		lv.bad = "size overflows"
		return lv
	}
	lv.size = size
	return lv
}

func parseSegment(s *cfgSect) (segInfo, error) {
	seg := segInfo{sect: s}
	var ok1, ok2 bool
	seg.start, ok1 = s.int("start_extent")
	seg.count, ok2 = s.int("extent_count")
	seg.typ, _ = s.str("type")
	if !ok1 || !ok2 || seg.start < 0 || seg.start > math.MaxUint32 || seg.count <= 0 || seg.count > math.MaxUint32 || seg.typ == "" {
		return seg, errors.New("bad start_extent, extent_count or type")
	}
	if seg.typ != "striped" {
		return seg, nil
	}
	n, ok := s.int("stripe_count")
	if !ok || n < 1 || n > maxStripes {
		return seg, fmt.Errorf("stripe_count %d", n)
	}
	if seg.count%n != 0 {
		return seg, fmt.Errorf("%d extents over %d stripes", seg.count, n)
	}
	if n > 1 {
		seg.stripeSize, ok = s.int("stripe_size")
		if !ok || seg.stripeSize <= 0 || seg.stripeSize > math.MaxUint32 {
			return seg, fmt.Errorf("stripe_size %d", seg.stripeSize)
		}
	}
	v, _ := s.get("stripes")
	if v.kind != cfgList || int64(len(v.list)) != 2*n {
		return seg, fmt.Errorf("stripes: want %d pairs", n)
	}
	for i := 0; i < len(v.list); i += 2 {
		name, pe := v.list[i], v.list[i+1]
		if name.kind != cfgString || pe.kind != cfgInt || pe.num < 0 || pe.num > math.MaxUint32 {
			return seg, fmt.Errorf("stripe %d: bad name or extent", i/2)
		}
		seg.stripes = append(seg.stripes, stripeRef{name.str, pe.num})
	}
	return seg, nil
}

// mapLV resolves a linear or striped LV's segments to byte ranges of the
// PVs' devices, or says why it cannot.
func mapLV(lv *lvInfo, pvs map[string]*vgPV, esBytes int64) ([]lvSeg, string) {
	var out []lvSeg
	for i, s := range lv.segs {
		k := int64(len(s.stripes))
		areaLen := s.count / k
		seg := lvSeg{start: s.start * esBytes, size: s.count * esBytes, chunk: s.stripeSize * sector}
		if k > 1 && areaLen*esBytes%seg.chunk != 0 {
			// device-mapper's striped target refuses this too
			return nil, fmt.Sprintf("segment%d: stripes of %d bytes are not a multiple of the stripe size %d", i+1, areaLen*esBytes, seg.chunk)
		}
		for j, st := range s.stripes {
			p := pvs[st.name]
			switch {
			case p == nil:
				return nil, fmt.Sprintf("segment%d stripe %d is on %q, not a physical volume", i+1, j, st.name)
			case p.dev == nil:
				return nil, fmt.Sprintf("physical volume %s (%s) is missing", st.name, printUUID(p.uuid))
			case st.pe > p.peCount || areaLen > p.peCount-st.pe:
				return nil, fmt.Sprintf("segment%d stripe %d: extents %d+%d outside %s's %d", i+1, j, st.pe, areaLen, p.dev.name, p.peCount)
			}
			a := lvArea{dev: p.dev.dev, off: p.peStart + st.pe*esBytes, size: areaLen * esBytes}
			if a.off > p.dev.dev.Size()-a.size {
				return nil, fmt.Sprintf("segment%d stripe %d: extents end at byte %d, past the end of %s (%d bytes)",
					i+1, j, a.off+a.size, p.dev.name, p.dev.dev.Size())
			}
			seg.areas = append(seg.areas, a)
		}
		out = append(out, seg)
	}
	return out, ""
}
