package guestconf

import (
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

// FstabEntry is one line of /etc/fstab.
type FstabEntry struct {
	Spec       string   `json:"spec"`
	MountPoint string   `json:"mount_point"`
	Type       string   `json:"type"`
	Options    []string `json:"options"`
	Dump       int      `json:"dump"`
	Pass       int      `json:"pass"`
	Source
}

// HasOption reports whether opt is among the mount options.
func (e FstabEntry) HasOption(opt string) bool { return slices.Contains(e.Options, opt) }

// ParseFstab reads /etc/fstab. Fields are blank-separated with octal
// escapes (\040 for a space) decoded; missing trailing fields take
// mount(8)'s defaults.
func ParseFstab(fsys fs.FS) ([]FstabEntry, error) {
	data, err := ReadFile(fsys, "etc/fstab")
	if err != nil {
		return nil, err
	}
	return ParseFstabData(data, "/etc/fstab"), nil
}

// ParseFstabData parses fstab content.
func ParseFstabData(data []byte, file string) []FstabEntry {
	var out []FstabEntry
	for i, l := range lines(data) {
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' {
			continue
		}
		f := strings.Fields(t)
		if len(f) < 2 {
			continue
		}
		e := FstabEntry{Spec: unoctal(f[0]), MountPoint: unoctal(f[1]), Source: Source{File: file, Line: i + 1}}
		if len(f) > 2 {
			e.Type = f[2]
		}
		opts := "defaults"
		if len(f) > 3 {
			opts = f[3]
		}
		e.Options = strings.Split(unoctal(opts), ",")
		if len(f) > 4 {
			e.Dump, _ = strconv.Atoi(f[4])
		}
		if len(f) > 5 {
			e.Pass, _ = strconv.Atoi(f[5])
		}
		out = append(out, e)
	}
	return out
}

// FindMount returns the entry mounted last on mountPoint (a later mount
// on the same point covers the earlier one).
func FindMount(entries []FstabEntry, mountPoint string) (FstabEntry, bool) {
	mp := strings.TrimSuffix(mountPoint, "/")
	for i := len(entries) - 1; i >= 0; i-- {
		if strings.TrimSuffix(entries[i].MountPoint, "/") == mp && entries[i].Type != "swap" {
			return entries[i], true
		}
	}
	return FstabEntry{}, false
}

func unoctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
