package guestconf

import (
	"errors"
	"io/fs"
	"path"
	"strings"
)

// SysctlAssignment is one "key = value" line of a sysctl.d file.
type SysctlAssignment struct {
	Key          string `json:"key"` // canonical dotted form
	Value        string `json:"value"`
	IgnoreErrors bool   `json:"ignore_errors,omitempty"` // "-" prefix
	// Exclude marks "-key" without a value: the key is excluded from globs.
	Exclude bool `json:"exclude,omitempty"`
	Source
}

// Sysctl holds every assignment in the order systemd-sysctl applies them.
type Sysctl struct {
	Files       []string
	Assignments []SysctlAssignment
}

// ParseSysctl reads sysctl configuration with systemd-sysctl precedence:
// *.conf files from /etc, /run, /usr/local/lib, /usr/lib and /lib
// sysctl.d, merged by basename (the earlier directory wins, a /dev/null
// symlink masks), sorted by basename, and /etc/sysctl.conf last. A
// sysctl.d entry that is a link to /etc/sysctl.conf (Debian's and RHEL's
// 99-sysctl.conf) is skipped because sysctl.conf is read last anyway.
// Unreadable files are errors; missing directories are not.
func ParseSysctl(fsys fs.FS) (*Sysctl, error) {
	files, err := Fragments(fsys, configDirs("sysctl.d"), ".conf")
	if err != nil {
		return nil, err
	}
	s := &Sysctl{}
	for _, f := range files {
		if r, err := Resolve(fsys, f); err == nil && r == "etc/sysctl.conf" {
			continue
		}
		if err := s.parse(fsys, f); err != nil {
			return nil, err
		}
	}
	if err := s.parse(fsys, "etc/sysctl.conf"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return s, nil
}

func (s *Sysctl) parse(fsys fs.FS, name string) error {
	data, err := ReadFile(fsys, name)
	if err != nil {
		return err
	}
	file := Abs(name)
	s.Files = append(s.Files, file)
	for i, l := range lines(data) {
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		a := SysctlAssignment{Source: Source{File: file, Line: i + 1}}
		if strings.HasPrefix(t, "-") {
			a.IgnoreErrors = true
			t = strings.TrimSpace(t[1:])
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			if !a.IgnoreErrors {
				continue // systemd-sysctl: "Line is not an assignment", ignored
			}
			a.Exclude = true
		}
		a.Key = NormalizeSysctlKey(strings.TrimSpace(k))
		a.Value = strings.TrimSpace(v)
		if a.Key == "" {
			continue
		}
		s.Assignments = append(s.Assignments, a)
	}
	return nil
}

// NormalizeSysctlKey returns the dotted form of a sysctl key. As sysctl.d(5)
// says: if the first separator is a slash, slashes and dots are swapped
// ("net/ipv4/conf/eth0.1/rp_filter" is "net.ipv4.conf.eth0/1.rp_filter");
// if it is a dot the key is already dotted.
func NormalizeSysctlKey(k string) string {
	i := strings.IndexAny(k, "./")
	if i < 0 || k[i] == '.' {
		return k
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '/':
			return '.'
		case '.':
			return '/'
		}
		return r
	}, k)
}

// Lookup returns the assignment that wins for key and the earlier ones it
// overrides. The last explicit assignment wins; glob assignments
// ("net.ipv4.conf.*.rp_filter") apply only when there is no explicit one
// and the key is not excluded with "-key".
func (s *Sysctl) Lookup(key string) (win SysctlAssignment, overridden []SysctlAssignment, ok bool) {
	key = NormalizeSysctlKey(key)
	var explicit, globbed []SysctlAssignment
	excluded := false
	for _, a := range s.Assignments {
		isGlob := hasMeta(a.Key)
		switch {
		case a.Exclude:
			if a.Key == key {
				excluded = true
			}
		case !isGlob && a.Key == key:
			explicit = append(explicit, a)
		case isGlob:
			if m, _ := path.Match(a.Key, key); m {
				globbed = append(globbed, a)
			}
		}
	}
	list := explicit
	if len(list) == 0 && !excluded {
		list = globbed
	}
	if len(list) == 0 {
		return SysctlAssignment{}, nil, false
	}
	return list[len(list)-1], list[:len(list)-1], true
}
