package layout

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The seeds in testdata/lvm are the first sectors of real PVs made by
// lvm2 2.03 (label, metadata area header and metadata texts; the rest of
// the PV is zeros): the LVM test image's PV, and three PVs of the fixture
// VGs that TestLVMAgreesWithAppliance builds: gkstripe's first PV,
// gkmisc's PV with two metadata areas (thin pool, raid1, snapshot), and
// gkwrap's PV, whose current text wraps around the end of its 60 KiB
// metadata area. The expected values below are what the appliance
// reported for those disks.

// zeroDev is a device of size bytes that starts with b and is zeros
// after it.
type zeroDev struct {
	b    []byte
	size int64
}

func (d zeroDev) Size() int64 { return d.size }

func (d zeroDev) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset")
	}
	if off >= d.size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > d.size-off {
		p, eof = p[:d.size-off], io.EOF
	}
	n := 0
	if off < int64(len(d.b)) {
		n = copy(p, d.b[off:])
	}
	clear(p[n:])
	return len(p), eof
}

func seed(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "lvm", name+".bin.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var seedNames = []string{"lvm-image-pv", "gkstripe-pv", "gkmisc-pv", "gkwrap-pv"}

func lvLine(lv LV) string {
	return fmt.Sprintf("%s/%s %s %d %s %t", lv.VG, lv.Name, lv.UUID, lv.Size, lv.Layout, lv.Unsupported != "")
}

func TestReadLVMSeeds(t *testing.T) {
	tests := []struct {
		seed    string
		size    int64
		pv      PV
		vg      VG
		missing int
		lvs     []string // lvLine, with whether Unsupported
		problem string   // the one problem expected
	}{{
		seed: "lvm-image-pv", size: 245366784,
		pv: PV{Name: "/dev/sda2", UUID: "3HaLxd-pBOf-5YQg-zNIE-mDqM-lQ70-dASYzr", VG: "vg0", Size: 243269632},
		vg: VG{Name: "vg0", UUID: "KYWMKj-4b8j-ChBa-D5D2-lewU-L528-cJdZMI", Size: 243269632, Free: 16777216, ExtentSize: 4 << 20, Seqno: 4},
		lvs: []string{
			`vg0/root an1COr-18cG-pD96-wkkx-Mbts-LFO2-0D2ub0 125829120 linear false`,
			`vg0/swap 9EaRdl-sDR3-CWTg-opUi-ezd6-gXeu-r7pvcj 33554432 linear false`,
			`vg0/var S7sw1T-8vNb-Hb78-479U-J2EF-MDhl-lviHtk 67108864 linear false`,
		},
	}, {
		seed: "gkmisc-pv", size: 64 << 20, missing: 1,
		// The seed has the first of the PV's two metadata areas only.
		problem: "metadata area header at 66060288: bad magic (another copy was read)",
		pv:      PV{Name: "/dev/sda2", UUID: "0h2Ifg-Lte0-g6GF-1Y9S-apSj-Y8L2-HkGlkU", VG: "gkmisc", Size: 62914560},
		vg:      VG{Name: "gkmisc", UUID: "eJ9Fd7-kQPY-94E3-CUUF-OQYd-st9s-Y6ZTed", Size: 125829120, Free: 62914560, ExtentSize: 4 << 20, Seqno: 11},
		lvs: []string{
			`gkmisc/orig xIMQYA-CaQ4-3R1m-q39J-tdFH-p8La-XPCr3v 8388608 linear true`, // its PV is missing
			`gkmisc/r1 lOhW1A-nZ3k-WL8j-rVcy-r1xX-fJAI-hHF4FD 8388608 raid1 true`,
			`gkmisc/snap yf7SnV-M95R-AuCo-QL87-40OJ-76w1-z1xjaY 8388608 snapshot true`,
			`gkmisc/thin1 f06SgB-kH1m-PYLC-htfG-dC67-UFs7-7oPkTQ 33554432 thin true`,
		},
	}, {
		seed: "gkstripe-pv", size: 64 << 20, missing: 2,
		pv: PV{Name: "/dev/sda2", UUID: "9NzcAC-6if0-6maz-oY1f-4NQB-CqdF-p4pZrf", VG: "gkstripe", Size: 62914560},
		vg: VG{Name: "gkstripe", UUID: "kz94Ks-xhoU-PYZm-gNkP-ditX-abeM-5k3kol", Size: 188743680, Free: 130023424, ExtentSize: 4 << 20, Seqno: 5},
		lvs: []string{
			`gkstripe/lin D9oC2W-ZeQ1-SD2n-UqDd-y1Rw-eJAb-S4Vfd2 16777216 linear true`,
			`gkstripe/s2 gRdn4B-VnT2-fuhU-WPwh-l1kz-9kSY-upu3bX 16777216 striped true`,
			`gkstripe/s3 lkeOh4-K70K-S8gh-600W-enpW-7Dzh-e2mZWe 25165824 striped true`,
		},
	}, {
		seed: "gkwrap-pv", size: 64 << 20,
		pv: PV{Name: "/dev/sda2", UUID: "mqLSk1-yPub-GV0l-OCfp-lCmr-vziE-f0VEGG", VG: "gkwrap", Size: 67043328},
		vg: VG{Name: "gkwrap", UUID: "quqlPw-TxuW-6Br6-aWLe-Zxmp-EWTA-baE773", Size: 67043328, Free: 65208320, ExtentSize: 64 << 10, Seqno: 8},
		lvs: []string{
			`gkwrap/s DPR5E6-13pq-1jhx-5Lpk-M9PC-KjUQ-eBOOy5 524288 linear false`,
			`gkwrap/w 26n4aI-CMo1-BJQf-BvpA-114K-WzrE-uXPHCB 1310720 linear false`, // two segments
		},
	}}
	for _, tt := range tests {
		t.Run(tt.seed, func(t *testing.T) {
			l, err := ReadLVM([]NamedDevice{{Name: "/dev/sda2", Dev: zeroDev{seed(t, tt.seed), tt.size}}})
			if err != nil {
				t.Fatal(err)
			}
			if tt.problem == "" && len(l.Problems) > 0 || tt.problem != "" && (len(l.Problems) != 1 || !strings.Contains(l.Problems[0], tt.problem)) {
				t.Errorf("problems: %q, want %q", l.Problems, tt.problem)
			}
			if len(l.PVs) != 1 || l.PVs[0] != tt.pv {
				t.Errorf("PVs %+v, want %+v", l.PVs, tt.pv)
			}
			if len(l.VGs) != 1 || len(l.VGs[0].MissingPVs) != tt.missing {
				t.Fatalf("VGs %+v, want %+v with %d missing PVs", l.VGs, tt.vg, tt.missing)
			}
			l.VGs[0].MissingPVs = nil
			if fmt.Sprint(l.VGs[0]) != fmt.Sprint(tt.vg) {
				t.Errorf("VG %+v, want %+v", l.VGs[0], tt.vg)
			}
			var got []string
			for _, lv := range l.LVs {
				got = append(got, lvLine(lv))
				if _, err := lv.Device(); (err != nil) != (lv.Unsupported != "") {
					t.Errorf("%s: Device error %v, unsupported %q", lv.Name, err, lv.Unsupported)
				}
				if tt.missing > 0 && (lv.Layout == "linear" || lv.Layout == "striped") {
					if !strings.Contains(lv.Unsupported, "is missing") {
						t.Errorf("%s: unsupported %q, want a missing PV", lv.Name, lv.Unsupported)
					}
				}
			}
			if tt.seed == "gkwrap-pv" {
				if wraps, err := MetadataWraps(zeroDev{seed(t, tt.seed), tt.size}); !wraps || err != nil {
					t.Errorf("the seed's metadata does not wrap (%v)", err)
				}
				if n := LVSegments(l.LVs[1]); n != 2 {
					t.Errorf("w has %d segments, want 2", n)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.lvs, "\n") {
				t.Errorf("LVs:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.lvs, "\n"))
			}
		})
	}
}

// TestLVMCRC checks lvmCRC against the label and metadata checksums lvm2
// wrote, and that it chains over pieces as the wrapped text needs.
func TestLVMCRC(t *testing.T) {
	b := seed(t, "lvm-image-pv")
	s := b[512:1024]
	if got, want := lvmCRC(lvmInitialCRC, s[20:]), binary.LittleEndian.Uint32(s[16:]); got != want {
		t.Errorf("label CRC %#x, lvm2 wrote %#x", got, want)
	}
	data := []byte("some metadata text, in two pieces")
	if lvmCRC(lvmCRC(lvmInitialCRC, data[:7]), data[7:]) != lvmCRC(lvmInitialCRC, data) {
		t.Error("lvmCRC does not chain")
	}
}

func TestPrintUUID(t *testing.T) {
	if got := printUUID("3HaLxdpBOf5YQgzNIEmDqMlQ70dASYzr"); got != "3HaLxd-pBOf-5YQg-zNIE-mDqM-lQ70-dASYzr" {
		t.Errorf("printUUID: %s", got)
	}
}

// TestLVMBrokenPV spoils the real PV's structures one at a time.
func TestLVMBrokenPV(t *testing.T) {
	orig := seed(t, "lvm-image-pv")
	const size = 245366784
	read := func(b []byte) (*LVM, error) {
		return ReadLVM([]NamedDevice{{Name: "pv", Dev: zeroDev{b, size}}})
	}
	mda := 4096
	textOff := mda + int(binary.LittleEndian.Uint64(orig[mda+40:]))
	tests := []struct {
		name    string
		spoil   func(b []byte)
		fixCRCs bool
		want    string // in the error or problems; "" for no PV at all
	}{
		{"label CRC", func(b []byte) { b[600] ^= 1 }, false, "CRC"},
		{"label sector number", func(b []byte) { b[520] = 3 }, false, "says it is in sector 3"},
		{"PV header offset", func(b []byte) { binary.LittleEndian.PutUint32(b[512+20:], 600) }, true, "PV header offset"},
		{"mda header CRC", func(b []byte) { b[mda+100] ^= 1 }, false, "metadata area header at 4096: CRC"},
		{"mda magic", func(b []byte) { b[mda+5] = 'X' }, true, "bad magic"},
		{"mda start", func(b []byte) { b[mda+25]++ }, true, "says it starts at"},
		{"text CRC", func(b []byte) { b[textOff+20] ^= 1 }, false, "metadata text of"},
		{"text outside the area", func(b []byte) { binary.LittleEndian.PutUint64(b[mda+48:], 1<<40) }, true, "outside the area"},
		{"text syntax", func(b []byte) { b[textOff+4] = '}' }, true, "LVM metadata text, line 1"},
		{"mda outside the device", func(b []byte) { binary.LittleEndian.PutUint64(b[512+112:], size) }, true, "outside the device"},
		{"extent size", func(b []byte) { replaceText(b, textOff, "extent_size = 8192", "extent_size = 0000") }, true, "extent_size 0"},
		{"extents outside the PV", func(b []byte) { replaceText(b, textOff, "pe_count = 58", "pe_count = 28") }, true, "outside pv's 28"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bytes.Clone(orig)
			tt.spoil(b)
			if tt.fixCRCs {
				fixCRCs(b)
			}
			l, err := read(b)
			all := fmt.Sprint(err)
			if l != nil {
				all += fmt.Sprint(l.Problems)
				for _, lv := range l.LVs {
					all += lv.Unsupported
				}
			}
			if !strings.Contains(all, tt.want) {
				t.Errorf("got %v %+v, want %q", err, l, tt.want)
			}
		})
	}
}

// replaceText replaces old by new, of the same length, in the metadata
// text at off.
func replaceText(b []byte, off int, old, new string) {
	i := bytes.Index(b[off:], []byte(old))
	if i < 0 || len(old) != len(new) {
		panic("replaceText: " + old)
	}
	copy(b[off+i:], new)
}

// fixCRCs recomputes the label's, the metadata area headers' and the
// metadata texts' CRCs of the PV that starts b, for the parts inside b,
// so that spoilt or fuzzed structures reach the code behind the checks.
func fixCRCs(b []byte) {
	for i := 0; i < labelSectors && (i+1)*sector <= len(b); i++ {
		s := b[i*sector : (i+1)*sector]
		if string(s[:8]) != labelID {
			continue
		}
		off := int(binary.LittleEndian.Uint32(s[20:]))
		for p, list := off+pvUUIDLen+8, 0; off >= 0 && p+16 <= sector && list < 2; p += 16 {
			o, n := binary.LittleEndian.Uint64(s[p:]), binary.LittleEndian.Uint64(s[p+8:])
			if o == 0 {
				list++
				continue
			}
			if list == 1 && o <= uint64(len(b)) && uint64(len(b))-o >= mdaHeaderSize {
				h := b[o : o+mdaHeaderSize]
				to, tn := binary.LittleEndian.Uint64(h[40:]), binary.LittleEndian.Uint64(h[48:])
				if to < n && tn <= n-mdaHeaderSize && tn <= uint64(len(b)) {
					first := min(tn, n-to)
					rest := tn - first
					if o+to <= uint64(len(b)) && first <= uint64(len(b))-o-to && mdaHeaderSize+rest <= uint64(len(b))-o {
						text := append(bytes.Clone(b[o+to:o+to+first]), b[o+mdaHeaderSize:o+mdaHeaderSize+rest]...)
						binary.LittleEndian.PutUint32(h[56:], lvmCRC(lvmInitialCRC, text))
					}
				}
				binary.LittleEndian.PutUint32(h, lvmCRC(lvmInitialCRC, h[4:]))
			}
		}
		binary.LittleEndian.PutUint32(s[16:], lvmCRC(lvmInitialCRC, s[20:]))
		return
	}
}
