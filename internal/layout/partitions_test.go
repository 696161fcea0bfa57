package layout

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func mbrEntry(b []byte, i int, typ byte, startLBA, sectors uint32) {
	e := b[446+16*i:]
	e[4] = typ
	binary.LittleEndian.PutUint32(e[8:], startLBA)
	binary.LittleEndian.PutUint32(e[12:], sectors)
}

func sig(b []byte) { b[510], b[511] = 0x55, 0xaa }

func reader(disk []byte) readAt {
	return func(off int64, n int) ([]byte, error) {
		if off < 0 || off+int64(n) > int64(len(disk)) {
			return nil, errors.New("out of range")
		}
		return disk[off : off+int64(n)], nil
	}
}

func TestParseMBRWithLogicalPartitions(t *testing.T) {
	disk := make([]byte, 64<<20)
	sig(disk)
	mbrEntry(disk, 0, 0x83, 2048, 20480)   // sda1: 1 MiB + 10 MiB
	mbrEntry(disk, 1, 0x05, 30720, 100000) // extended
	// First EBR at the start of the extended partition.
	ebr1 := disk[30720*512:]
	sig(ebr1)
	mbrEntry(ebr1, 0, 0x82, 2048, 4096)   // sda5 (swap), relative to this EBR
	mbrEntry(ebr1, 1, 0x05, 10000, 20000) // next EBR, relative to the extended start
	ebr2 := disk[(30720+10000)*512:]
	sig(ebr2)
	mbrEntry(ebr2, 0, 0x8e, 2048, 8192) // sda6 (LVM)
	pt, parts, err := parsePartitions(reader(disk), int64(len(disk)))
	if err != nil || pt != "msdos" {
		t.Fatalf("pt %q err %v", pt, err)
	}
	want := []Partition{
		{Number: 1, Start: 2048 * 512, Size: 20480 * 512, Type: "0x83"},
		{Number: 2, Start: 30720 * 512, Size: 100000 * 512, Type: "0x05"},
		{Number: 5, Start: (30720 + 2048) * 512, Size: 4096 * 512, Type: "0x82"},
		{Number: 6, Start: (30720 + 10000 + 2048) * 512, Size: 8192 * 512, Type: "0x8e"},
	}
	if len(parts) != len(want) {
		t.Fatalf("parts = %+v", parts)
	}
	for i := range want {
		if parts[i] != want[i] {
			t.Errorf("part %d = %+v, want %+v", i, parts[i], want[i])
		}
	}
}

func TestParseMBRHostile(t *testing.T) {
	disk := make([]byte, 8<<20)
	sig(disk)
	mbrEntry(disk, 0, 0x05, 2048, 8192)
	ebr := disk[2048*512:]
	sig(ebr)
	mbrEntry(ebr, 0, 0x83, 1, 10)
	mbrEntry(ebr, 1, 0x05, 0, 10) // next EBR is itself: a loop
	_, parts, err := parsePartitions(reader(disk), int64(len(disk)))
	if err == nil || !strings.Contains(err.Error(), "loops") {
		t.Fatalf("err = %v, want a loop error", err)
	}
	if len(parts) != 2 {
		t.Errorf("parts before the loop should be kept: %+v", parts)
	}
	big := make([]byte, 1<<20)
	sig(big)
	mbrEntry(big, 0, 0x83, 2048, 1<<30) // past the end of the disk
	if _, _, err := parsePartitions(reader(big), int64(len(big))); err == nil || !strings.Contains(err.Error(), "past the disk") {
		t.Errorf("err = %v, want past the disk", err)
	}
	if _, _, err := parsePartitions(reader(make([]byte, 4096)), 4096); !errors.Is(err, ErrNoTable) {
		t.Errorf("blank disk: err = %v, want ErrNoTable", err)
	}
}

func TestParseGPT(t *testing.T) {
	disk := make([]byte, 16<<20)
	sig(disk)
	mbrEntry(disk, 0, 0xee, 1, 0xffffffff)
	h := disk[512:]
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint64(h[72:], 2) // entries at LBA 2
	binary.LittleEndian.PutUint32(h[80:], 128)
	binary.LittleEndian.PutUint32(h[84:], 128)
	e := disk[1024:]
	// Linux filesystem type 0FC63DAF-8483-4772-8E79-3D69D8477DE4, mixed-endian.
	copy(e, []byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4})
	binary.LittleEndian.PutUint64(e[32:], 2048)
	binary.LittleEndian.PutUint64(e[40:], 4095)
	for i, r := range "root" {
		binary.LittleEndian.PutUint16(e[56+2*i:], uint16(r))
	}
	pt, parts, err := parsePartitions(reader(disk), int64(len(disk)))
	if err != nil || pt != "gpt" || len(parts) != 1 {
		t.Fatalf("pt %q parts %+v err %v", pt, parts, err)
	}
	p := parts[0]
	if p.Number != 1 || p.Start != 2048*512 || p.Size != 2048*512 || p.Type != "0FC63DAF-8483-4772-8E79-3D69D8477DE4" || p.Name != "root" {
		t.Errorf("part = %+v", p)
	}
	binary.LittleEndian.PutUint64(e[40:], 1<<40) // past the disk
	if _, _, err := parsePartitions(reader(disk), int64(len(disk))); err == nil {
		t.Error("GPT entry past the disk accepted")
	}
	// Sector numbers that wrap to negative offsets.
	binary.LittleEndian.PutUint64(e[32:], 1<<64-16)
	binary.LittleEndian.PutUint64(e[40:], 1<<64-1)
	if _, parts, err := Partitions(bytes.NewReader(disk), int64(len(disk))); err == nil {
		t.Errorf("GPT entry at sector 2^64-16 accepted: %+v", parts)
	}
}

func FuzzParsePartitions(f *testing.F) {
	f.Add(make([]byte, 1024))
	f.Fuzz(func(t *testing.T, head []byte) {
		disk := make([]byte, 1<<20)
		copy(disk, head)
		_, _, _ = parsePartitions(reader(disk), int64(len(disk)))
	})
}
