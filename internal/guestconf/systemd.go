package guestconf

import (
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// unitDirs is the systemd system unit search path, highest priority first.
func unitDirs() []string {
	return []string{
		"etc/systemd/system",
		"run/systemd/system",
		"usr/local/lib/systemd/system",
		"usr/lib/systemd/system",
		"lib/systemd/system",
	}
}

// UnitState says whether a unit starts at boot, and why.
type UnitState struct {
	Name string `json:"name"`
	// UnitFile is the guest path of the unit file, "" when none exists.
	UnitFile string `json:"unit_file,omitempty"`
	// Names are the unit's name and its aliases.
	Names   []string `json:"names"`
	Enabled bool     `json:"enabled"`
	Masked  bool     `json:"masked"`
	// Evidence lists the links that enable or mask the unit.
	Evidence []Source `json:"evidence,omitempty"`
}

// Systemd answers questions about units of one guest. It caches directory
// listings, so use one per guest and evaluation; it is not safe for
// concurrent use.
type Systemd struct {
	fsys     fs.FS
	wantDirs []string // every *.wants / *.requires directory, found once
	scanned  bool
	scanErr  error
}

// NewSystemd returns a unit reader for fsys.
func NewSystemd(fsys fs.FS) *Systemd { return &Systemd{fsys: fsys} }

// Unit reports the state of a unit ("ssh.service", "tmp.mount"). Enabled
// means: a *.wants/ or *.requires/ directory under /etc, /run, /usr/lib or
// /lib systemd/system holds an entry with the unit's name or one of its
// aliases, or (units without a unit file only) a SysV rc?.d S-link or an
// OpenRC runlevel link exists. Masked (a /dev/null link in /etc or /run)
// means disabled whatever the links say.
func (s *Systemd) Unit(name string) (UnitState, error) {
	st := UnitState{Name: name, Names: []string{name}}
	for _, d := range unitDirs()[:2] {
		p := d + "/" + name
		if IsDevNull(s.fsys, p) {
			st.Masked = true
			st.Evidence = append(st.Evidence, Source{File: Abs(p)})
			return st, nil
		}
	}
	// Find the unit file; a symlinked unit file is an alias of its target.
	real := name
	for _, d := range unitDirs() {
		p := d + "/" + name
		if _, err := fs.Lstat(s.fsys, p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return st, err
		}
		rp, err := Resolve(s.fsys, p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // dangling link
			}
			return st, err
		}
		st.UnitFile = Abs(rp)
		real = path.Base(rp)
		break
	}
	if real != name {
		st.Names = append(st.Names, real)
	}
	if err := s.scan(); err != nil {
		return st, err
	}
	// Aliases: top-level links in /etc/systemd/system to the real unit
	// (what "systemctl enable" makes from Alias=), and Alias= itself.
	if ents, err := ReadDir(s.fsys, unitDirs()[0]); err == nil {
		for _, e := range ents {
			p := unitDirs()[0] + "/" + e.Name()
			if e.Type()&fs.ModeSymlink == 0 {
				continue
			}
			t, err := fs.ReadLink(s.fsys, p)
			if err == nil && path.Base(t) == real && !slices.Contains(st.Names, e.Name()) {
				st.Names = append(st.Names, e.Name())
			}
		}
	}
	if st.UnitFile != "" {
		if vals, err := UnitValues(s.fsys, real, "Install", "Alias"); err == nil {
			for _, v := range vals {
				for _, a := range strings.Fields(v.Value) {
					if !slices.Contains(st.Names, a) {
						st.Names = append(st.Names, a)
					}
				}
			}
		}
	}
	for _, wd := range s.wantDirs {
		for _, n := range st.Names {
			p := wd + "/" + n
			if _, err := fs.Lstat(s.fsys, p); err == nil && !IsDevNull(s.fsys, p) {
				st.Enabled = true
				st.Evidence = append(st.Evidence, Source{File: Abs(p)})
			}
		}
	}
	if st.UnitFile == "" && !st.Enabled {
		s.legacyInit(&st)
	}
	return st, nil
}

// legacyInit looks for SysV rc.d start links (run by systemd's
// sysv-generator when no unit file exists) and OpenRC runlevel links.
func (s *Systemd) legacyInit(st *UnitState) {
	base := strings.TrimSuffix(st.Name, ".service")
	for _, rl := range []string{"rc2.d", "rc3.d", "rc4.d", "rc5.d"} {
		ents, err := ReadDir(s.fsys, "etc/"+rl)
		if err != nil {
			continue
		}
		for _, e := range ents {
			n := e.Name()
			if len(n) > 3 && n[0] == 'S' && strings.TrimLeft(n[1:], "0123456789") == base {
				st.Enabled = true
				st.Evidence = append(st.Evidence, Source{File: Abs("etc/" + rl + "/" + n)})
			}
		}
	}
	if ents, err := ReadDir(s.fsys, "etc/runlevels"); err == nil {
		for _, lvl := range ents {
			p := "etc/runlevels/" + lvl.Name() + "/" + base
			if _, err := fs.Lstat(s.fsys, p); err == nil {
				st.Enabled = true
				st.Evidence = append(st.Evidence, Source{File: Abs(p)})
			}
		}
	}
}

func (s *Systemd) scan() error {
	if s.scanned {
		return s.scanErr
	}
	s.scanned = true
	seen := map[string]bool{}
	for _, d := range unitDirs() {
		real, err := Resolve(s.fsys, d)
		if err != nil || seen[real] {
			continue // absent, or /lib is /usr/lib
		}
		seen[real] = true
		ents, err := fs.ReadDir(s.fsys, real)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.scanErr = err
				return err
			}
			continue
		}
		for _, e := range ents {
			n := e.Name()
			if e.IsDir() && (strings.HasSuffix(n, ".wants") || strings.HasSuffix(n, ".requires")) {
				s.wantDirs = append(s.wantDirs, d+"/"+n)
			}
		}
	}
	return nil
}

// UnitValues returns the assignments of key in section of a unit, from the
// unit file and then its drop-ins (<unit>.d/*.conf, merged by basename
// across the unit directories, sorted), in the order systemd applies them.
// An empty assignment resets the list, as systemd does for list settings.
func UnitValues(fsys fs.FS, unit, section, key string) ([]INIEntry, error) {
	var files []string
	for _, d := range unitDirs() {
		p := d + "/" + unit
		if _, err := Stat(fsys, p); err == nil {
			files = append(files, p)
			break
		}
	}
	var dropDirs []string
	for _, d := range unitDirs() {
		dropDirs = append(dropDirs, d+"/"+unit+".d")
	}
	drops, err := Fragments(fsys, dropDirs, ".conf")
	if err != nil {
		return nil, err
	}
	files = append(files, drops...)
	var out []INIEntry
	for _, f := range files {
		data, err := ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		for _, e := range ParseINI(data, Abs(f)) {
			if strings.EqualFold(e.Section, section) && e.Key == key {
				if e.Value == "" {
					out = out[:0]
					continue
				}
				out = append(out, e)
			}
		}
	}
	return out, nil
}
