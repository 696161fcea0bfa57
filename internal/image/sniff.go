package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"regexp"
	"strings"

	"guestkit.io/batch/internal/result"
)

// headSize is how much of the image Sniff reads: enough for every header
// it checks (an ISO 9660 volume descriptor sits at 32 KiB, btrfs at 64 KiB).
const headSize = 64<<10 + 4096

// Header facts found by Sniff.
type Header struct {
	Format string
	// Signature names what made a raw image acceptable (mbr, gpt, ext, ...),
	// empty when nothing was recognised.
	Signature string
}

// Sniff detects the image format from its first bytes and applies the
// format-specific safety checks that need no qemu: a qcow2 backing file or
// external data file, a vmdk descriptor with external extents.
func Sniff(r io.ReaderAt, size int64, path string) (Header, error) {
	if size == 0 {
		return Header{}, newErr(result.CodeImageEmpty, path, "file is empty (0 bytes)")
	}
	n := int64(headSize)
	if size < n {
		n = size
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return Header{}, &Error{Code: result.CodeImageUnreadable, Path: path, Msg: "read header", Err: err}
	}
	switch {
	case bytes.HasPrefix(buf, []byte("QFI\xfb")):
		return Header{Format: FormatQCOW2}, checkQCOW2(buf, size, path)
	case bytes.HasPrefix(buf, []byte("KDMV")):
		return Header{Format: FormatVMDK}, checkVMDKSparse(r, buf, size, path)
	case bytes.HasPrefix(buf, []byte("COWD")):
		return Header{}, newErr(result.CodeImageFormat, path, "vmdk3 (COWD) images are not supported")
	case isVMDKDescriptor(buf):
		return Header{Format: FormatVMDK}, newErr(result.CodeImageBackingFile, path,
			"vmdk descriptor file: its extents are other files, which would be opened on the host; convert it to a monolithic image first")
	case bytes.HasPrefix(buf, []byte("vhdxfile")):
		return Header{Format: FormatVHDX}, nil
	case len(buf) >= 0x44 && binary.LittleEndian.Uint32(buf[0x40:]) == 0xbeda107f:
		return Header{Format: FormatVDI}, checkVDI(buf, path)
	case bytes.HasPrefix(buf, []byte("conectix")):
		return Header{Format: FormatVPC}, checkVPC(buf, path)
	case bytes.HasPrefix(buf, []byte("QEVM")), bytes.HasPrefix(buf, []byte("QFI")):
		return Header{}, newErr(result.CodeImageFormat, path, "qcow version 1 and QED images are not supported")
	}
	if size >= 512 {
		// A fixed VHD keeps its footer at the end only.
		foot := make([]byte, 512)
		if _, err := r.ReadAt(foot, size-512); err == nil && bytes.HasPrefix(foot, []byte("conectix")) {
			return Header{Format: FormatVPC}, checkVPC(foot, path)
		}
	}
	sig := rawSignature(buf)
	if sig == "" {
		return Header{Format: FormatRaw}, newErr(result.CodeImageFormat, path,
			"no disk image format, partition table or filesystem recognised (%s)", describe(buf))
	}
	return Header{Format: FormatRaw, Signature: sig}, nil
}

// checkQCOW2 refuses backing files and external data files, which make qemu
// open another host file named by the image (for example /etc/shadow).
func checkQCOW2(h []byte, size int64, path string) error {
	if len(h) < 72 {
		return newErr(result.CodeImageCorrupt, path, "qcow2 header truncated (%d bytes)", len(h))
	}
	version := binary.BigEndian.Uint32(h[4:])
	if version != 2 && version != 3 {
		return newErr(result.CodeImageFormat, path, "qcow2 version %d is not supported", version)
	}
	off := binary.BigEndian.Uint64(h[8:])
	blen := binary.BigEndian.Uint32(h[16:])
	if off != 0 || blen != 0 {
		name := ""
		if off < uint64(len(h)) && blen > 0 && blen <= 1023 && off+uint64(blen) <= uint64(len(h)) {
			name = string(h[off : off+uint64(blen)])
		}
		return newErr(result.CodeImageBackingFile, path, "qcow2 image has a backing file %q; backing files are refused", printable(name))
	}
	if version == 3 {
		if len(h) < 104 {
			return newErr(result.CodeImageCorrupt, path, "qcow2 v3 header truncated")
		}
		incompat := binary.BigEndian.Uint64(h[72:])
		if incompat&(1<<2) != 0 {
			return newErr(result.CodeImageBackingFile, path, "qcow2 image uses an external data file; refused")
		}
		if incompat&(1<<1) != 0 {
			return newErr(result.CodeImageCorrupt, path, "qcow2 image is marked corrupt")
		}
		if unknown := incompat &^ 0x1f; unknown != 0 {
			return newErr(result.CodeImageFormat, path, "qcow2 image has unknown incompatible features %#x", unknown)
		}
	}
	clusterBits := binary.BigEndian.Uint32(h[20:])
	if clusterBits < 9 || clusterBits > 21 {
		return newErr(result.CodeImageCorrupt, path, "qcow2 cluster_bits %d out of range", clusterBits)
	}
	if size < int64(1)<<clusterBits {
		return newErr(result.CodeImageCorrupt, path, "qcow2 image is truncated: %d bytes, smaller than one cluster", size)
	}
	return nil
}

var (
	extentLine = regexp.MustCompile(`(?m)^\s*(RW|RDONLY|NOACCESS)\s+\d+\s+(\w+)(\s+"([^"]*)")?`)
	createType = regexp.MustCompile(`(?m)^\s*createType\s*=\s*"([^"]*)"`)
	parentHint = regexp.MustCompile(`(?m)^\s*parentFileNameHint\s*=\s*"([^"]+)"`)
)

func isVMDKDescriptor(h []byte) bool {
	s := string(h[:min(len(h), 4096)])
	return strings.Contains(s, "# Disk DescriptorFile") || (strings.Contains(s, "createType") && extentLine.MatchString(s))
}

// checkVMDKSparse accepts single-file sparse vmdk (monolithicSparse and
// streamOptimized). Their embedded descriptor names the file itself; any
// other createType spreads the disk over files we would open on the host.
func checkVMDKSparse(r io.ReaderAt, h []byte, size int64, path string) error {
	if len(h) < 512 {
		return newErr(result.CodeImageCorrupt, path, "vmdk header truncated")
	}
	descOff := int64(binary.LittleEndian.Uint64(h[28:])) * 512
	descLen := int64(binary.LittleEndian.Uint64(h[36:])) * 512
	if descOff == 0 || descLen == 0 {
		// An extent without a descriptor is part of a multi-file disk.
		return newErr(result.CodeImageBackingFile, path, "vmdk sparse extent without an embedded descriptor: part of a multi-file disk; refused")
	}
	if descLen > 1<<20 || descOff+descLen > size {
		return newErr(result.CodeImageCorrupt, path, "vmdk descriptor out of bounds (offset %d, length %d, file %d)", descOff, descLen, size)
	}
	d := make([]byte, descLen)
	if _, err := r.ReadAt(d, descOff); err != nil && !errors.Is(err, io.EOF) {
		return &Error{Code: result.CodeImageUnreadable, Path: path, Msg: "read vmdk descriptor", Err: err}
	}
	desc := string(bytes.TrimRight(d, "\x00"))
	ct := ""
	if m := createType.FindStringSubmatch(desc); m != nil {
		ct = m[1]
	}
	if ct != "monolithicSparse" && ct != "streamOptimized" {
		return newErr(result.CodeImageBackingFile, path, "vmdk createType %q uses external extent files; refused", printable(ct))
	}
	if m := parentHint.FindStringSubmatch(desc); m != nil {
		return newErr(result.CodeImageBackingFile, path, "vmdk image has a parent file %q; refused", printable(m[1]))
	}
	if n := len(extentLine.FindAllString(desc, -1)); n != 1 {
		return newErr(result.CodeImageBackingFile, path, "vmdk %s image declares %d extents; exactly one is allowed", ct, n)
	}
	return nil
}

// checkVDI refuses differencing images, which have a parent.
func checkVDI(h []byte, path string) error {
	if len(h) < 0x50 {
		return newErr(result.CodeImageCorrupt, path, "vdi header truncated")
	}
	if typ := binary.LittleEndian.Uint32(h[0x4c:]); typ == 4 {
		return newErr(result.CodeImageBackingFile, path, "vdi differencing image (has a parent); refused")
	}
	return nil
}

// checkVPC refuses differencing VHDs (disk type 4), which have a parent.
func checkVPC(footer []byte, path string) error {
	if len(footer) < 64 {
		return newErr(result.CodeImageCorrupt, path, "vhd footer truncated")
	}
	if typ := binary.BigEndian.Uint32(footer[60:]); typ == 4 {
		return newErr(result.CodeImageBackingFile, path, "vhd differencing image (has a parent); refused")
	}
	return nil
}

// rawSignature names a partition table or filesystem at the start of a raw
// image, or "" when there is none.
func rawSignature(b []byte) string {
	at := func(off int, sig string) bool {
		return len(b) >= off+len(sig) && string(b[off:off+len(sig)]) == sig
	}
	switch {
	case at(512, "EFI PART"):
		return "gpt"
	case at(512, "LABELONE"), at(24, "LVM2 001"), at(536, "LVM2 001"):
		return "lvm"
	case len(b) >= 1082 && binary.LittleEndian.Uint16(b[1080:]) == 0xef53:
		return "ext"
	case at(0, "XFSB"):
		return "xfs"
	case at(65536+64, "_BHRfS_M"):
		return "btrfs"
	case at(3, "NTFS    "):
		return "ntfs"
	case at(32769, "CD001"):
		return "iso9660"
	case at(0x52, "FAT32   "), at(0x36, "FAT16   "), at(0x36, "FAT12   "):
		return "fat"
	case at(4096-10, "SWAPSPACE2"):
		return "swap"
	case len(b) >= 512 && b[510] == 0x55 && b[511] == 0xaa && validMBR(b):
		return "mbr"
	}
	return ""
}

// validMBR requires at least one partition entry with a sane status byte,
// so that random data ending in 55 aa is not taken for a disk.
func validMBR(b []byte) bool {
	found := false
	for i := 0; i < 4; i++ {
		e := b[446+16*i : 446+16*(i+1)]
		if e[0] != 0 && e[0] != 0x80 {
			return false
		}
		if e[4] != 0 {
			found = true
		}
	}
	return found
}

func describe(b []byte) string {
	text := 0
	for _, c := range b[:min(len(b), 512)] {
		if c == '\n' || c == '\t' || c == '\r' || (c >= 0x20 && c < 0x7f) {
			text++
		}
	}
	if n := min(len(b), 512); n > 0 && text*100/n > 95 {
		return "looks like a text file"
	}
	if bytes.Count(b, []byte{0}) == len(b) {
		return "starts with zeros only"
	}
	return "unrecognised binary data"
}

// printable makes a name from an untrusted image safe to log.
func printable(s string) string {
	if len(s) > 256 {
		s = s[:256] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
