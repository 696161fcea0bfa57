package fat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/filesystem"
)

// blkid's vfat magics, in its order, at their offsets.
var magics = []struct {
	off   int
	magic string
}{
	{0x52, "MSWIN"}, {0x52, "FAT32   "}, {0x36, "MSDOS"}, {0x36, "FAT16   "},
	{0x36, "FAT12   "}, {0x36, "FAT     "}, {0, "\xeb"}, {0, "\xe9"}, {0x1fe, "\x55\xaa"},
}

// maxProbeLoop is blkid's bound on the FAT32 root clusters searched for
// the label.
const maxProbeLoop = 100

// Probe says whether dev holds a FAT filesystem and gives its label and
// UUID as `blkid -p` does: the root directory's volume-label entry wins
// over the boot sector's label unless it is "NO NAME", and the UUID is the
// volume serial number, "XXXX-XXXX".
func Probe(dev block.Device) (filesystem.Info, bool) {
	b := make([]byte, 512)
	if _, err := dev.ReadAt(b, 0); err != nil {
		return filesystem.Info{}, false
	}
	return probe(dev, b)
}

func probe(dev block.Device, b []byte) (filesystem.Info, bool) {
	weak := true
	found := false
	for _, m := range magics {
		if string(b[m.off:m.off+len(m.magic)]) == m.magic {
			found, weak = true, len(m.magic) <= 2
			break
		}
	}
	if !found {
		return filesystem.Info{}, false
	}
	if weak {
		if b[0x1fe] != 0x55 || b[0x1ff] != 0xaa {
			return filesystem.Info{}, false
		}
		if t := string(b[0x36:0x3e]); t == "JFS     " || t == "HPFS    " {
			return filesystem.Info{}, false
		}
	}
	bs, err := parseBoot(b)
	if err != nil {
		return filesystem.Info{}, false
	}
	// blkid's cluster count, in 32 bits as it computes it.
	fatSize := bs.fatLength * bs.fats
	dirSize := uint32(bs.rootSectors())
	count := (bs.totalSectors - (bs.reserved + fatSize + dirSize)) / bs.secPerClus
	max := uint32(maxFAT12)
	switch {
	case bs.fat32:
		max = maxFAT32
	case count > maxFAT12:
		max = maxFAT16
	}
	if count > max {
		return filesystem.Info{}, false
	}
	secSize := int64(bs.bytesPerSec)
	var volLabel []byte
	var bootLabel, serial []byte
	if !bs.fat32 {
		volLabel = searchLabel(dev, int64(bs.reserved+fatSize)*secSize, int64(bs.rootEntries))
		bootLabel, serial = b[0x2b:0x36], b[0x27:0x2b]
	} else {
		clusterBytes := int64(bs.secPerClus) * secSize
		entries := uint32(uint64(bs.fatLength) * uint64(secSize) / 4)
		next := bs.rootCluster
		for loop := maxProbeLoop - 1; next != 0 && next < entries && loop > 0; loop-- {
			off := (int64(bs.reserved+fatSize) + int64(next-2)*int64(bs.secPerClus)) * secSize
			if volLabel = searchLabel(dev, off, clusterBytes/32); volLabel != nil {
				break
			}
			var e [4]byte
			if _, err := dev.ReadAt(e[:], int64(bs.reserved)*secSize+int64(next)*4); err != nil {
				break
			}
			next = binary.LittleEndian.Uint32(e[:]) & 0x0fffffff
		}
		bootLabel, serial = b[0x47:0x52], b[0x43:0x47]
	}
	if volLabel == nil || string(volLabel) == "NO NAME    " {
		volLabel = bootLabel
	}
	info := filesystem.Info{Type: "vfat"}
	if string(volLabel) != "NO NAME    " {
		info.Label = labelString(volLabel)
	}
	info.UUID = fmt.Sprintf("%02X%02X-%02X%02X", serial[3], serial[2], serial[1], serial[0])
	return info, true
}

// searchLabel is blkid's search_fat_label: the first volume-label entry
// among the first entries of the directory at off, up to a free one.
func searchLabel(dev block.Device, off, entries int64) []byte {
	const chunk = 128
	for i := int64(0); i < entries; i += chunk {
		n := min(chunk, entries-i)
		buf := make([]byte, n*32)
		if _, err := dev.ReadAt(buf, off+i*32); err != nil {
			return nil
		}
		for j := int64(0); j < n; j++ {
			e := buf[j*32 : j*32+32]
			if e[0] == 0 {
				return nil
			}
			if e[0] == 0xe5 || e[20] != 0 || e[21] != 0 || e[26] != 0 || e[27] != 0 || e[11]&0x3f == attrLongName {
				continue
			}
			if e[11]&(attrVolume|attrDir) == attrVolume {
				return bytes.Clone(e[:11])
			}
		}
	}
	return nil
}

// labelString is blkid's label: the bytes up to a NUL, trailing
// whitespace dropped.
func labelString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimRight(string(b), " \t\n\r\v\f")
}
