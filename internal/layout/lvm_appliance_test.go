package layout_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"libguestfs.org/guestfs"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/layout"
	"guestkit.io/batch/internal/libguestfs"
	"guestkit.io/batch/internal/prereq"
)

// fileDev is a file as a block device.
type fileDev struct {
	*os.File
	size int64
}

func (f fileDev) Size() int64 { return f.size }

func openDev(t *testing.T, path string) block.Device {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return fileDev{f, st.Size()}
}

// applianceLVM is what the appliance reports: the lists, their order and
// sizes from the calls the libguestfs backend's lvmInfo makes (pvs-full,
// vgs-full, lvs, blockdev-getsize64). UUIDs and VG membership come from
// one shell call that runs what pvuuid, vguuid and lvuuid run, which
// saves about forty lvm runs of a second or two each under emulation.
type applianceLVM struct {
	PVs []layout.PV
	VGs []layout.VG
	LVs []layout.LV // VG, Name, UUID, Size
}

func readApplianceLVM(t *testing.T, g *guestfs.Guestfs) applianceLVM {
	t.Helper()
	out, err := g.Debug("sh", []string{`exec 2>&1
lvm pvs --noheadings --separator : -o pv_name,pv_uuid,vg_name | sed 's/^ */pv:/'
lvm vgs --noheadings --separator : -o vg_name,vg_uuid | sed 's/^ */vg:/'
lvm lvs --noheadings --separator : -o vg_name,lv_name,lv_uuid | sed 's/^ */lv:/'`})
	if err != nil {
		t.Fatalf("lvm listing: %v\n%s", err, out)
	}
	uuids := map[string]string{} // "pv:/dev/sda2", "vg:vg0", "lv:vg0/root" -> UUID
	pvVG := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		switch {
		case len(f) == 4 && f[0] == "pv":
			uuids["pv:"+f[1]], pvVG[f[1]] = f[2], f[3]
		case len(f) == 3 && f[0] == "vg":
			uuids["vg:"+f[1]] = f[2]
		case len(f) == 4 && f[0] == "lv":
			uuids["lv:"+f[1]+"/"+f[2]] = f[3]
		}
	}
	var a applianceLVM
	pvs, err := g.Pvs_full()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range *pvs {
		a.PVs = append(a.PVs, layout.PV{Name: p.Pv_name, UUID: uuids["pv:"+p.Pv_name], VG: pvVG[p.Pv_name], Size: int64(p.Pv_size)})
	}
	vgs, err := g.Vgs_full()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range *vgs {
		a.VGs = append(a.VGs, layout.VG{Name: v.Vg_name, UUID: uuids["vg:"+v.Vg_name], Size: int64(v.Vg_size), Free: int64(v.Vg_free), ExtentSize: int64(v.Vg_extent_size)})
	}
	lvs, err := g.Lvs()
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range lvs {
		vg, lv, _ := strings.Cut(strings.TrimPrefix(dev, "/dev/"), "/")
		size, err := g.Blockdev_getsize64(dev)
		if err != nil {
			t.Fatal(err)
		}
		a.LVs = append(a.LVs, layout.LV{VG: vg, Name: lv, UUID: uuids["lv:"+vg+"/"+lv], Size: size})
	}
	return a
}

// fixture is a scratch disk of the fixture VGs.
type fixture struct {
	file string
	dev  string // the appliance's name
}

// The fixture VGs, made in the appliance with lvm2 itself. gkstripe has
// 1 MiB extents: s2 and s3 are striped over 2 and 3 PVs with 64 KiB
// stripes, lin is linear in two segments on two PVs. gkmisc has 4 MiB
// extents and a PV with two metadata areas: a thin pool with a thin LV, a
// raid1 LV, and an old-style snapshot of a linear LV. gkwrap's PV has a
// metadata area of 60 KiB, rewritten with ever more 1000-byte tags until
// its text wraps (a text may fill half the area) around the end of the circular buffer. The sixth disk is a PV outside any VG.
const fixtureScript = `set -e
exec 2>&1
lvm pvcreate -y {D1} {D2} {D3} {D5} {D6}
lvm pvcreate -y --metadatacopies 2 {D4}
lvm pvcreate -y --metadatasize 8k --dataalignment 64k {D7}
lvm vgcreate -s 1M gkstripe {D1} {D2} {D3}
lvm lvcreate -y -n s2 -i 2 -I 64k -L 4M gkstripe {D2} {D3}
lvm lvcreate -y -n s3 -i 3 -I 64k -L 3M gkstripe
lvm lvcreate -y -n lin -L 2M gkstripe {D1}
lvm lvextend -y -L +2M gkstripe/lin {D3}
lvm vgcreate gkmisc {D4} {D5}
lvm lvcreate -y -L 8M -T gkmisc/pool -V 16M -n thin1 {D4}
lvm lvcreate -y --type raid1 -m 1 -n r1 -L 4M gkmisc {D4} {D5}
lvm lvcreate -y -n orig -L 4M gkmisc {D5}
lvm lvcreate -y -s -n snap -L 4M gkmisc/orig
lvm vgcreate gkwrap {D7}
lvm lvcreate -y -n w -L 4M gkwrap
t=$(printf '%0990d' 0)
for i in 1 2 3 4; do lvm lvchange $(for j in 1 2 3 4 5; do echo --addtag t$i$j$t; done) gkwrap/w; done
`

// patterns are the bytes written into the readable fixture LVs.
var patterns = map[string]int{"gkstripe/s2": 4 << 20, "gkstripe/s3": 3 << 20, "gkstripe/lin": 4 << 20, "gkmisc/orig": 4 << 20}

func pattern(name string) []byte {
	r := rand.New(rand.NewChaCha8([32]byte([]byte(fmt.Sprintf("%-32s", name)))))
	b := make([]byte, patterns[name])
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
}

// applianceNames finds each drive's device name inside the appliance by
// the hash of its first 4 KiB.
func applianceNames(t *testing.T, g *guestfs.Guestfs, drives []string) []string {
	t.Helper()
	out, err := g.Debug("sh", []string{`for d in /dev/sd[a-z] /dev/sd[a-z][a-z]; do [ -b "$d" ] && echo "$d $(dd if="$d" bs=4096 count=1 2>/dev/null | sha256sum)"; done; true`})
	if err != nil {
		t.Fatalf("listing the appliance's disks: %v\n%s", err, out)
	}
	byHash := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			byHash[f[1]] = append(byHash[f[1]], f[0])
		}
	}
	names := make([]string, len(drives))
	for i, d := range drives {
		head := make([]byte, 4096)
		fd, err := os.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadFull(fd, head)
		fd.Close()
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(head)
		devs := byHash[hex.EncodeToString(sum[:])]
		if len(devs) != 1 {
			t.Fatalf("drive %d (%s): appliance devices %v with its first 4 KiB\n%s", i, d, devs, out)
		}
		names[i] = devs[0]
	}
	return names
}

// TestLVMAgreesWithAppliance reads the LVM of the LVM test images and of
// fixtures made in the appliance, and compares everything with what the
// appliance reports through the calls the libguestfs backend makes: PVs,
// VGs and listed LVs with names, UUIDs and sizes in the same order; the
// fixture LVs' bytes against patterns the appliance wrote through
// device-mapper; the images' LVs' filesystem UUIDs against blkid and
// byte ranges against pread-device. One appliance launch serves all.
func TestLVMAgreesWithAppliance(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the test images, qemu-img and the libguestfs appliance")
	}
	dir := os.Getenv("GUESTKIT_TEST_IMAGES")
	if dir == "" {
		prereq.Missing(t, "no test images: run `make test`, or set GUESTKIT_TEST_IMAGES")
	}
	tmp := t.TempDir()
	var images []string
	for _, name := range []string{"lvm.qcow2", "profile-rhel-hardened.qcow2"} {
		src := filepath.Join(dir, name)
		if _, err := os.Stat(src); err != nil {
			prereq.Missing(t, "test image missing: %v", err)
		}
		raw := filepath.Join(tmp, strings.TrimSuffix(name, ".qcow2")+".raw")
		if out, err := exec.Command("qemu-img", "convert", "-f", "qcow2", "-O", "raw", src, raw).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img convert: %v\n%s", err, out)
		}
		images = append(images, raw)
	}
	var fixtures []fixture
	for i := 1; i <= 7; i++ {
		f := filepath.Join(tmp, fmt.Sprintf("d%d.img", i))
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(f, 64<<20); err != nil {
			t.Fatal(err)
		}
		// A marker, so that the appliance's own name for the drive can
		// be found by content (see applianceNames).
		if err := os.WriteFile(f, []byte(fmt.Sprintf("guestkit fixture d%d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(f, 64<<20); err != nil {
			t.Fatal(err)
		}
		fixtures = append(fixtures, fixture{file: f})
	}
	for name := range patterns {
		if err := os.WriteFile(filepath.Join(tmp, strings.ReplaceAll(name, "/", "-")), pattern(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	g, err := guestfs.Create()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Set_backend("direct"); err != nil {
		t.Fatal(err)
	}
	if libguestfs.KVMUsable() != nil {
		if err := g.Set_backend_settings([]string{"force_tcg"}); err != nil {
			t.Fatal(err)
		}
	}
	drives := slices.Clone(images)
	for _, f := range fixtures {
		drives = append(drives, f.file)
	}
	for i, f := range drives {
		opts := &guestfs.OptargsAdd_drive{Format_is_set: true, Format: "raw", Readonly_is_set: true, Readonly: i < len(images)}
		if err := g.Add_drive(f, opts); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := g.Launch(); err != nil {
		t.Fatalf("appliance launch: %v", err)
	}
	// The appliance's own names for the drives: debug sh and lvm's
	// output use them, and they follow the order the kernel found the
	// disks in, which is not always the order they were added.
	names := applianceNames(t, g, drives)
	script := fixtureScript
	for i := range fixtures {
		fixtures[i].dev = names[len(images)+i]
		script = strings.ReplaceAll(script, fmt.Sprintf("{D%d}", i+1), fixtures[i].dev)
	}
	t.Logf("appliance launched in %v", time.Since(start))
	if out, err := g.Debug("sh", []string{script}); err != nil {
		t.Fatalf("making the fixtures: %v\n%s", err, out)
	}
	for name := range patterns {
		if err := g.Upload(filepath.Join(tmp, strings.ReplaceAll(name, "/", "-")), "/dev/"+name); err != nil {
			t.Fatalf("writing %s: %v", name, err)
		}
	}
	if err := g.Sync(); err != nil {
		t.Fatal(err)
	}
	t.Logf("fixtures made and written at %v", time.Since(start))
	want := readApplianceLVM(t, g)
	t.Logf("LVM listed at %v", time.Since(start))
	// Filesystem UUIDs and byte ranges of the images' LVs.
	type sample struct {
		off  int64
		data []byte
	}
	blkids := map[string]map[string]string{}
	samples := map[string][]sample{}
	for _, lv := range want.LVs {
		if strings.HasPrefix(lv.VG, "gk") {
			continue
		}
		dev := "/dev/" + lv.VG + "/" + lv.Name
		if blkids[dev], err = g.Blkid(dev); err != nil {
			t.Fatalf("blkid %s: %v", dev, err)
		}
		for _, off := range []int64{0, lv.Size / 2 &^ 4095, lv.Size - 4096} {
			b, err := g.Pread_device(dev, 4096, off)
			if err != nil {
				t.Fatalf("pread-device %s: %v", dev, err)
			}
			samples[dev] = append(samples[dev], sample{off, b})
		}
	}
	t.Logf("LVs sampled at %v", time.Since(start))
	if err := g.Shutdown(); err != nil {
		t.Fatal(err)
	}

	// The same devices as the appliance sees them: whole disks and
	// partitions, with its names.
	var devs []layout.NamedDevice
	for i, f := range drives {
		d := openDev(t, f)
		_, parts, err := layout.Partitions(d, d.Size())
		if err != nil && err != layout.ErrNoTable {
			t.Fatal(err)
		}
		devs = append(devs, layout.NamedDevice{Name: names[i], Dev: d})
		for _, p := range parts {
			s, err := block.Section(d, p.Start, p.Size)
			if err != nil {
				t.Fatal(err)
			}
			devs = append(devs, layout.NamedDevice{Name: fmt.Sprintf("%s%d", names[i], p.Number), Dev: s})
		}
	}
	got, err := layout.ReadLVM(devs)
	if err != nil {
		t.Fatalf("ReadLVM: %v", err)
	}
	if len(got.Problems) > 0 {
		t.Errorf("problems: %q", got.Problems)
	}
	for i := range got.VGs {
		got.VGs[i].Seqno, got.VGs[i].MissingPVs = 0, nil
	}
	if !slices.Equal(got.PVs, want.PVs) {
		t.Errorf("PVs:\n got %+v\nwant %+v", got.PVs, want.PVs)
	}
	if !slices.EqualFunc(got.VGs, want.VGs, func(a, b layout.VG) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
		t.Errorf("VGs:\n got %+v\nwant %+v", got.VGs, want.VGs)
	}
	var gotLVs []string
	for _, lv := range got.LVs {
		gotLVs = append(gotLVs, fmt.Sprintf("%s/%s %s %d", lv.VG, lv.Name, lv.UUID, lv.Size))
	}
	var wantLVs []string
	for _, lv := range want.LVs {
		wantLVs = append(wantLVs, fmt.Sprintf("%s/%s %s %d", lv.VG, lv.Name, lv.UUID, lv.Size))
	}
	if !slices.Equal(gotLVs, wantLVs) {
		t.Errorf("LVs:\n got %q\nwant %q", gotLVs, wantLVs)
	}

	// Kinds, and which can be read.
	layouts := map[string]string{
		"gkstripe/s2": "striped", "gkstripe/s3": "striped", "gkstripe/lin": "linear", "gkmisc/orig": "linear",
		"gkmisc/thin1": "thin", "gkmisc/r1": "raid1", "gkmisc/snap": "snapshot", "gkwrap/w": "linear",
	}
	lvs := map[string]layout.LV{}
	for _, lv := range got.LVs {
		lvs[lv.VG+"/"+lv.Name] = lv
		wantLayout, ok := layouts[lv.VG+"/"+lv.Name]
		if !ok {
			wantLayout = "linear" // the images'
		}
		if lv.Layout != wantLayout {
			t.Errorf("%s/%s: layout %q, want %q", lv.VG, lv.Name, lv.Layout, wantLayout)
		}
		readable := lv.Layout == "linear" || lv.Layout == "striped"
		if readable != (lv.Unsupported == "") {
			t.Errorf("%s/%s (%s): unsupported %q", lv.VG, lv.Name, lv.Layout, lv.Unsupported)
		}
		if !readable && !strings.Contains(lv.Unsupported, lv.Layout) {
			t.Errorf("%s/%s: the reason %q does not name %s", lv.VG, lv.Name, lv.Unsupported, lv.Layout)
		}
		if _, err := lv.Device(); (err == nil) != readable {
			t.Errorf("%s/%s: Device error %v", lv.VG, lv.Name, err)
		}
	}
	if n := layout.LVSegments(lvs["gkstripe/lin"]); n != 2 {
		t.Errorf("gkstripe/lin has %d segments, want 2 (the fixture should span two PVs)", n)
	}

	t.Run("fixture bytes", func(t *testing.T) {
		for name := range patterns {
			d, err := lvs[name].Device()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			b := make([]byte, d.Size())
			if n, err := d.ReadAt(b, 0); n != len(b) || err != nil {
				t.Fatalf("%s: read %d of %d bytes: %v", name, n, len(b), err)
			}
			if p := pattern(name); !bytes.Equal(b[:len(p)], p) {
				i := 0
				for i < len(p) && b[i] == p[i] {
					i++
				}
				t.Errorf("%s: bytes differ from what the appliance wrote, first at %d", name, i)
			}
			// An unaligned read across stripe chunks and past the end.
			off := d.Size() - 64<<10 - 3
			buf := make([]byte, 128<<10)
			n, err := d.ReadAt(buf, off)
			if n != 64<<10+3 || err == nil || !bytes.Equal(buf[:n], b[off:]) {
				t.Errorf("%s: read across the end: %d bytes, %v", name, n, err)
			}
		}
	})

	t.Run("image LVs", func(t *testing.T) {
		for dev, s := range samples {
			vg, name, _ := strings.Cut(strings.TrimPrefix(dev, "/dev/"), "/")
			d, err := lvs[vg+"/"+name].Device()
			if err != nil {
				t.Fatalf("%s: %v", dev, err)
			}
			for _, s := range s {
				b := make([]byte, len(s.data))
				if _, err := d.ReadAt(b, s.off); err != nil || !bytes.Equal(b, s.data) {
					t.Errorf("%s: bytes at %d differ from pread-device (%v)", dev, s.off, err)
				}
			}
			id := blkids[dev]
			fsUUID, err := superblockUUID(d, id["TYPE"])
			if err != nil {
				t.Errorf("%s: %v", dev, err)
			} else if fsUUID != id["UUID"] {
				t.Errorf("%s: %s UUID %s in the superblock, blkid says %s", dev, id["TYPE"], fsUUID, id["UUID"])
			}
		}
		if len(samples) < 6 {
			t.Errorf("compared %d image LVs, want the 6 of lvm and profile-rhel-hardened", len(samples))
		}
	})

	fixtureDev := func(t *testing.T, i int) block.Device {
		b, err := os.ReadFile(fixtures[i].file)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.NewReader(b)
	}
	t.Run("wrapped metadata", func(t *testing.T) {
		wraps, err := layout.MetadataWraps(fixtureDev(t, 6))
		if err != nil || !wraps {
			t.Errorf("gkwrap's metadata does not wrap (%v): add lvchange calls to the fixture script", err)
		}
		// gkwrap's VG, read from that PV alone, agrees (checked above).
	})

	t.Run("missing PV", func(t *testing.T) {
		// gkstripe without its PV on d1: lin and s3 lose a PV, s2 does not.
		var part []layout.NamedDevice
		for i := 1; i < 5; i++ {
			part = append(part, layout.NamedDevice{Name: fixtures[i].dev, Dev: fixtureDev(t, i)})
		}
		l, err := layout.ReadLVM(part)
		if err != nil {
			t.Fatal(err)
		}
		var vg layout.VG
		for _, v := range l.VGs {
			if v.Name == "gkstripe" {
				vg = v
			}
		}
		if len(vg.MissingPVs) != 1 || vg.Size != want.VGs[slices.IndexFunc(want.VGs, func(v layout.VG) bool { return v.Name == "gkstripe" })].Size {
			t.Errorf("gkstripe: %+v, want one missing PV and the same size", vg)
		}
		for _, lv := range l.LVs {
			if lv.VG != "gkstripe" {
				continue
			}
			missing := strings.Contains(lv.Unsupported, "missing") && strings.Contains(lv.Unsupported, vg.MissingPVs[0])
			if missing != (lv.Name != "s2") {
				t.Errorf("%s: unsupported %q", lv.Name, lv.Unsupported)
			}
		}
	})

	t.Run("corrupt metadata", func(t *testing.T) {
		// d4 has two metadata areas: spoil the first's text, then both.
		b, err := os.ReadFile(fixtures[3].file)
		if err != nil {
			t.Fatal(err)
		}
		areas, err := layout.MetadataAreas(bytes.NewReader(b))
		if err != nil || len(areas) != 2 {
			t.Fatalf("d4's metadata areas: %v %v", areas, err)
		}
		spoil := func(b []byte, area [2]int64) {
			h := b[area[0]:]
			off := binary.LittleEndian.Uint64(h[40:])
			h[off+10] ^= 0xff
		}
		one := slices.Clone(b)
		spoil(one, areas[0])
		l, err := layout.ReadLVM([]layout.NamedDevice{{Name: "d4", Dev: bytes.NewReader(one)}})
		if err != nil || len(l.VGs) != 1 || l.VGs[0].Name != "gkmisc" || len(l.Problems) != 1 || !strings.Contains(l.Problems[0], "CRC") {
			t.Errorf("one area spoilt: %+v, %v", l, err)
		}
		both := slices.Clone(one)
		spoil(both, areas[1])
		l, err = layout.ReadLVM([]layout.NamedDevice{{Name: "d4", Dev: bytes.NewReader(both)}})
		if err == nil || !strings.Contains(err.Error(), "CRC") || l == nil || len(l.VGs) != 0 {
			t.Errorf("both areas spoilt: %+v, %v; want a CRC error", l, err)
		}
		// The other PV of gkmisc still has the metadata.
		l, err = layout.ReadLVM([]layout.NamedDevice{{Name: "d4", Dev: bytes.NewReader(both)}, {Name: "d5", Dev: fixtureDev(t, 4)}})
		if err != nil || len(l.VGs) != 1 || len(l.PVs) != 2 || l.PVs[0].VG != "gkmisc" {
			t.Errorf("both areas of d4 spoilt, d5 fine: %+v, %v", l, err)
		}
	})
}

// superblockUUID reads a filesystem's UUID where blkid finds it.
func superblockUUID(d block.Device, typ string) (string, error) {
	b := make([]byte, 4096)
	if _, err := d.ReadAt(b, 0); err != nil {
		return "", err
	}
	var u []byte
	switch typ {
	case "ext2", "ext3", "ext4":
		if binary.LittleEndian.Uint16(b[1024+56:]) != 0xef53 {
			return "", fmt.Errorf("no ext superblock magic")
		}
		u = b[1024+104 : 1024+120]
	case "xfs":
		if string(b[:4]) != "XFSB" {
			return "", fmt.Errorf("no XFS superblock magic")
		}
		u = b[32:48]
	case "swap":
		if string(b[4086:4096]) != "SWAPSPACE2" {
			return "", fmt.Errorf("no swap signature")
		}
		u = b[1024+12 : 1024+28]
	default:
		return "", fmt.Errorf("type %q not checked", typ)
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[:4], u[4:6], u[6:8], u[8:10], u[10:]), nil
}
