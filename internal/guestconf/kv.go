package guestconf

import (
	"errors"
	"io/fs"
	"strings"
)

// KV is one key/value line.
type KV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Source
}

// INIEntry is one key=value line of an INI-style file (systemd units and
// configs, dnf.conf, *.repo).
type INIEntry struct {
	Section string `json:"section"`
	KV
}

// ParseINI parses [section] headers and key=value lines; # and ; start
// comments at the beginning of a line; a trailing backslash continues a
// line (systemd). Values are trimmed; keys keep their case.
func ParseINI(data []byte, file string) []INIEntry {
	var out []INIEntry
	section := ""
	ls := lines(data)
	for i := 0; i < len(ls); i++ {
		start := i
		t := strings.TrimSpace(ls[i])
		for strings.HasSuffix(t, `\`) && i+1 < len(ls) {
			i++
			t = strings.TrimSpace(strings.TrimSuffix(t, `\`)) + " " + strings.TrimSpace(ls[i])
		}
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			section = strings.TrimSpace(t[1 : len(t)-1])
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			continue
		}
		out = append(out, INIEntry{Section: section, KV: KV{
			Key: strings.TrimSpace(k), Value: strings.TrimSpace(v),
			Source: Source{File: file, Line: start + 1},
		}})
	}
	return out
}

// ParseEqualKV parses "key = value" lines (pwquality.conf, faillock.conf,
// /etc/selinux/config, ufw.conf, timesyncd-like files without sections).
// Lines starting with # or ; are comments; surrounding quotes are removed.
// A line with no "=" yields the key with an empty value (faillock flags).
func ParseEqualKV(data []byte, file string) []KV {
	var out []KV
	for i, l := range lines(data) {
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		k, v, _ := strings.Cut(t, "=")
		out = append(out, KV{Key: strings.TrimSpace(k), Value: unquote(strings.TrimSpace(v)), Source: Source{File: file, Line: i + 1}})
	}
	return out
}

// ParseSpaceKV parses "KEY VALUE" lines as login.defs does: # comments,
// the value is the rest of the line, trimmed and unquoted.
func ParseSpaceKV(data []byte, file string) []KV {
	var out []KV
	for i, l := range lines(data) {
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' {
			continue
		}
		f := strings.Fields(t)
		v := ""
		if len(f) > 1 {
			v = strings.TrimSpace(t[len(f[0]):])
		}
		out = append(out, KV{Key: f[0], Value: unquote(v), Source: Source{File: file, Line: i + 1}})
	}
	return out
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// Last returns the last entry with key (case-sensitive unless fold).
func Last(kvs []KV, key string, fold bool) (KV, bool) {
	for i := len(kvs) - 1; i >= 0; i-- {
		if kvs[i].Key == key || (fold && strings.EqualFold(kvs[i].Key, key)) {
			return kvs[i], true
		}
	}
	return KV{}, false
}

// LoginDefs is /etc/login.defs.
type LoginDefs struct {
	File    string
	Entries []KV
}

// Get returns the value shadow-utils uses for key: the last definition.
func (d *LoginDefs) Get(key string) (KV, bool) { return Last(d.Entries, key, false) }

// ParseLoginDefs reads /etc/login.defs, or /usr/etc/login.defs (the
// vendor file of libeconf-based shadow on SUSE) when /etc has none.
func ParseLoginDefs(fsys fs.FS) (*LoginDefs, error) {
	var firstErr error
	for _, p := range []string{"etc/login.defs", "usr/etc/login.defs"} {
		data, err := ReadFile(fsys, p)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		return &LoginDefs{File: Abs(p), Entries: ParseSpaceKV(data, Abs(p))}, nil
	}
	return nil, firstErr
}

// SystemdConfigFiles lists the files of a systemd daemon configuration
// such as "coredump.conf" or "timesyncd.conf" in the order systemd reads
// them: the main file (first of /etc, /run, /usr/local/lib, /usr/lib under
// systemd/), then drop-ins <name>.d/*.conf merged by basename and sorted.
func SystemdConfigFiles(fsys fs.FS, name string) ([]string, error) {
	var files []string
	for _, d := range configDirs("systemd") {
		p := d + "/" + name
		if _, err := Stat(fsys, p); err == nil {
			files = append(files, p)
			break
		}
	}
	drops, err := Fragments(fsys, configDirs("systemd/"+name+".d"), ".conf")
	if err != nil {
		return nil, err
	}
	return append(files, drops...), nil
}

// SystemdConfigValue returns the last assignment of key in section across
// the files of SystemdConfigFiles.
func SystemdConfigValue(fsys fs.FS, name, section, key string) (INIEntry, bool, error) {
	files, err := SystemdConfigFiles(fsys, name)
	if err != nil {
		return INIEntry{}, false, err
	}
	var win INIEntry
	found := false
	for _, f := range files {
		data, err := ReadFile(fsys, f)
		if err != nil {
			return INIEntry{}, false, err
		}
		for _, e := range ParseINI(data, Abs(f)) {
			if strings.EqualFold(e.Section, section) && e.Key == key {
				win, found = e, true
			}
		}
	}
	return win, found, nil
}
