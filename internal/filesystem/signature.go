package filesystem

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"guestkit.io/batch/internal/block"
)

// Signature recognises, as blkid does, what the direct backend's readers
// do not read: swap (its label and UUID are reported), encrypted volumes,
// RAID members and foreign filesystems. The caller falls back to the
// appliance for all of them but swap.
func Signature(dev block.Device) (Info, bool) {
	for _, s := range signatures {
		if info, ok := s(dev); ok {
			return info, true
		}
	}
	return Info{}, false
}

var signatures = []func(block.Device) (Info, bool){
	swapSignature, luksSignature, ntfsSignature,
	magicAt("BitLocker", 3, "-FVE-FS-"),
	magicAt("exfat", 3, "EXFAT   "),
	magicAt("iso9660", 32769, "CD001"),
	magicAt("jfs", 32768, "JFS1"),
	magicAt("reiserfs", 65536+52, "ReIsEr2Fs"),
	magicAt("reiserfs", 65536+52, "ReIsEr3Fs"),
	magicAt("reiserfs", 65536+52, "ReIsErFs"),
	magicAt("f2fs", 1024, "\x10\x20\xf5\xf2"),
	magicAt("hfsplus", 1024, "H+"),
	magicAt("hfsplus", 1024, "HX"),
	magicAt("nilfs2", 1024+6, "\x34\x34"),
	magicAt("bcache", 4096+24, "\xc6\x85\x73\xf6\x4e\x1a\x45\xca\x82\x65\xf5\x7f\x48\xba\x6d\x81"),
	mdSignature, zfsSignature, ufsSignature,
}

func read(dev block.Device, off int64, n int) []byte {
	if off < 0 || off+int64(n) > dev.Size() {
		return nil
	}
	b := make([]byte, n)
	if _, err := dev.ReadAt(b, off); err != nil {
		return nil
	}
	return b
}

func magicAt(typ string, off int64, magic string) func(block.Device) (Info, bool) {
	return func(dev block.Device) (Info, bool) {
		b := read(dev, off, len(magic))
		return Info{Type: typ}, b != nil && string(b) == magic
	}
}

// FormatUUID prints 16 bytes as blkid prints filesystem UUIDs.
func FormatUUID(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// CString is a NUL-terminated on-disk string.
func CString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// swapSignature: the Linux swap header at the end of the first page, for
// the page sizes Linux uses.
func swapSignature(dev block.Device) (Info, bool) {
	for _, page := range []int64{4096, 8192, 16384, 65536} {
		m := read(dev, page-10, 10)
		if m == nil || string(m) != "SWAPSPACE2" && string(m) != "SWAP-SPACE" {
			continue
		}
		info := Info{Type: "swap"}
		if string(m) == "SWAPSPACE2" {
			if h := read(dev, 1024, 44); h != nil {
				if !allZero(h[12:28]) {
					info.UUID = FormatUUID(h[12:28])
				}
				info.Label = CString(h[28:44])
			}
		}
		return info, true
	}
	return Info{}, false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func luksSignature(dev block.Device) (Info, bool) {
	h := read(dev, 0, 208)
	if h == nil || string(h[:6]) != "LUKS\xba\xbe" {
		return Info{}, false
	}
	info := Info{Type: "crypto_LUKS", UUID: CString(h[168:208])}
	if binary.BigEndian.Uint16(h[6:8]) == 2 {
		info.Label = CString(h[24:72])
	}
	return info, true
}

func ntfsSignature(dev block.Device) (Info, bool) {
	h := read(dev, 0, 512)
	if h == nil || string(h[3:11]) != "NTFS    " {
		return Info{}, false
	}
	return Info{Type: "ntfs", UUID: fmt.Sprintf("%016X", binary.LittleEndian.Uint64(h[0x48:0x50]))}, true
}

// mdSignature: an MD RAID superblock (0.90 and 1.0 near the end, 1.1 at
// the start, 1.2 at 4 KiB).
func mdSignature(dev block.Device) (Info, bool) {
	const magic = 0xa92b4efc
	size := dev.Size()
	offs := []int64{0, 4096}
	if size >= 128<<10 {
		offs = append(offs, (size&^(64<<10-1))-64<<10, (size-8<<10)&^(4<<10-1))
	}
	for _, off := range offs {
		b := read(dev, off, 4)
		if b != nil && (binary.LittleEndian.Uint32(b) == magic || binary.BigEndian.Uint32(b) == magic) {
			return Info{Type: "linux_raid_member"}, true
		}
	}
	return Info{}, false
}

// zfsSignature: an uberblock magic in the first label's uberblock array.
func zfsSignature(dev block.Device) (Info, bool) {
	b := read(dev, 128<<10, 8)
	if b != nil && (binary.LittleEndian.Uint64(b) == 0x00bab10c || binary.BigEndian.Uint64(b) == 0x00bab10c) {
		return Info{Type: "zfs_member"}, true
	}
	return Info{}, false
}

// ufsSignature: the UFS1/UFS2 superblock magic at its usual places.
func ufsSignature(dev block.Device) (Info, bool) {
	for _, off := range []int64{0, 8192, 65536, 262144} {
		b := read(dev, off+0x55c, 4)
		if b == nil {
			continue
		}
		for _, m := range []uint32{0x00011954, 0x19540119, 0x00195612, 0x05231994} {
			if binary.LittleEndian.Uint32(b) == m || binary.BigEndian.Uint32(b) == m {
				return Info{Type: "ufs"}, true
			}
		}
	}
	return Info{}, false
}
