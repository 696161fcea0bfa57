package inspect

import (
	"errors"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"guestkit.io/batch/internal/guestconf"
)

// systemUnitDirs is systemd's system unit search path, highest priority
// first (guestconf keeps its own copy unexported).
func systemUnitDirs() []string {
	return []string{"etc/systemd/system", "run/systemd/system", "usr/local/lib/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"}
}

// readServices lists what starts at boot under the image's init system:
// for systemd, units pulled in by *.wants/*.requires links (what `systemctl
// enable` writes, and the vendor's static links), minus masked units, plus
// SysV scripts in rc[2-5].d that have no native unit (systemd-sysv-generator
// runs those); for SysV init, rc?.d S-links; for OpenRC, runlevel links.
// Each unit or script is listed once.
func readServices(r *reader) *Services {
	s := &Services{Enabled: []Service{}, InitSystem: initSystem(r)}
	byKey := map[string]int{}
	add := func(svc Service) {
		key := svc.Source + "\x00" + svc.Name
		if i, ok := byKey[key]; ok {
			s.Enabled[i].WantedBy = joinWords(s.Enabled[i].WantedBy, svc.WantedBy)
			return
		}
		byKey[key] = len(s.Enabled)
		s.Enabled = append(s.Enabled, svc)
	}
	masked := maskedUnits(r)
	unknown := s.InitSystem == ""
	if s.InitSystem == "systemd" || unknown {
		readSystemdLinks(r, masked, add)
	}
	switch {
	case s.InitSystem == "systemd":
		readSysV(r, []string{"2", "3", "4", "5"}, func(name string) bool {
			return masked[name+".service"] || hasUnitFile(r, name+".service")
		}, add)
	case s.InitSystem == "sysv" || unknown:
		readSysV(r, []string{"S", "1", "2", "3", "4", "5"}, func(string) bool { return false }, add)
	}
	if s.InitSystem == "openrc" || unknown {
		readOpenRC(r, add)
	}
	for m := range masked {
		s.Masked = append(s.Masked, m)
	}
	sort.Strings(s.Masked)
	sort.SliceStable(s.Enabled, func(i, j int) bool {
		a, b := s.Enabled[i], s.Enabled[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		return a.Name < b.Name
	})
	return s
}

// initSystem names the init that boots the image, from what /sbin/init
// resolves to, then from what is installed.
func initSystem(r *reader) string {
	inittabOpenRC := strings.Contains(string(r.read("services", "etc/inittab")), "openrc")
	if real, err := guestconf.Resolve(r.fsys, "sbin/init"); err == nil {
		switch path.Base(real) {
		case "systemd":
			return "systemd"
		case "openrc-init":
			return "openrc"
		case "init", "busybox", "upstart":
			// sysvinit or busybox init, which may hand over to OpenRC.
			if inittabOpenRC {
				return "openrc"
			}
			return "sysv"
		}
	}
	switch {
	case r.exists("usr/lib/systemd/systemd") || r.exists("lib/systemd/systemd"):
		return "systemd"
	case inittabOpenRC || r.exists("sbin/openrc") || r.exists("etc/runlevels"):
		return "openrc"
	case len(r.glob("services", "etc/systemd/system/*.wants")) > 0:
		// Links that systemctl enable wrote: systemd. Debian keeps
		// /etc/rc?.d on systemd systems too, so those do not decide.
		return "systemd"
	case r.exists("etc/inittab") || r.exists("etc/rc2.d") || r.exists("etc/rc.d/rc3.d"):
		return "sysv"
	case r.exists("etc/systemd/system"):
		return "systemd" // a tree without binaries, as in a chroot export
	}
	return ""
}

// maskedUnits returns the units linked to /dev/null in /etc or /run.
func maskedUnits(r *reader) map[string]bool {
	masked := map[string]bool{}
	for _, dir := range systemUnitDirs()[:2] {
		ents, err := guestconf.ReadDir(r.fsys, dir)
		if err != nil {
			r.notExistOK("services", dir, err)
			continue
		}
		for _, e := range ents {
			if e.Type()&fs.ModeSymlink != 0 && guestconf.IsDevNull(r.fsys, path.Join(dir, e.Name())) {
				masked[e.Name()] = true
			}
		}
	}
	return masked
}

// readSystemdLinks adds the units linked from *.wants and *.requires
// directories of every unit directory, each real directory once (with a
// merged /usr, /lib/systemd/system is /usr/lib/systemd/system).
func readSystemdLinks(r *reader, masked map[string]bool, add func(Service)) {
	seen := map[string]bool{}
	for _, dir := range systemUnitDirs() {
		real, err := guestconf.Resolve(r.fsys, dir)
		if err != nil {
			r.notExistOK("services", dir, err)
			continue
		}
		if seen[real] {
			continue
		}
		seen[real] = true
		ents, err := guestconf.ReadDir(r.fsys, real)
		if err != nil {
			r.notExistOK("services", real, err)
			continue
		}
		for _, d := range ents {
			target, ok := strings.CutSuffix(d.Name(), ".wants")
			if !ok {
				target, ok = strings.CutSuffix(d.Name(), ".requires")
			}
			if !ok {
				continue
			}
			wants := path.Join(real, d.Name())
			links, err := guestconf.ReadDir(r.fsys, wants)
			if err != nil {
				r.problem("services", guestconf.Abs(wants), err)
				continue
			}
			for _, l := range links {
				name, file := unitName(r, path.Join(wants, l.Name()))
				if name == "" || masked[name] || masked[l.Name()] || !isServiceUnit(name) {
					continue
				}
				add(Service{Name: name, Source: "systemd", WantedBy: target, Path: file})
			}
		}
	}
}

// unitName returns the name a wants-link starts and the unit file it
// points to. A link named after an alias starts the real unit; a template
// instance (getty@tty1.service -> getty@.service) keeps its instance name.
// A dangling link still names a unit (its file may be on a filesystem that
// did not mount), with no file. A link to /dev/null starts nothing.
func unitName(r *reader, link string) (name, file string) {
	name = path.Base(link)
	if guestconf.IsDevNull(r.fsys, link) {
		return "", ""
	}
	real, err := guestconf.Resolve(r.fsys, link)
	if err != nil {
		return name, ""
	}
	base := path.Base(real)
	if base != name && !strings.Contains(base, "@.") && path.Ext(base) == path.Ext(name) {
		name = base
	}
	return name, guestconf.Abs(real)
}

// hasUnitFile reports whether a native unit file exists for name.
func hasUnitFile(r *reader, name string) bool {
	for _, d := range systemUnitDirs() {
		if _, err := guestconf.Stat(r.fsys, d+"/"+name); err == nil {
			return true
		}
	}
	return false
}

// readSysV adds the S-links of /etc/rc<level>.d (or /etc/rc.d/rc<level>.d
// on RHEL 6) for the given levels; rc0 and rc6 run at halt and reboot.
func readSysV(r *reader, levels []string, skip func(string) bool, add func(Service)) {
	for _, lvl := range levels {
		dir := "etc/rc" + lvl + ".d"
		if !r.exists(dir) {
			dir = "etc/rc.d/rc" + lvl + ".d"
		}
		ents, err := guestconf.ReadDir(r.fsys, dir)
		if err != nil {
			r.notExistOK("services", dir, err)
			continue
		}
		for _, e := range ents {
			n := e.Name()
			if len(n) < 2 || n[0] != 'S' {
				continue
			}
			name := strings.TrimLeft(n[1:], "0123456789")
			if name == "" || name == n[1:] || skip(name) {
				continue
			}
			add(Service{Name: name, Source: "sysv", WantedBy: "runlevel " + lvl, Path: "/etc/init.d/" + name})
		}
	}
}

// readOpenRC adds the services of every runlevel but shutdown.
func readOpenRC(r *reader, add func(Service)) {
	lvls, err := guestconf.ReadDir(r.fsys, "etc/runlevels")
	if err != nil {
		r.notExistOK("services", "etc/runlevels", err)
		return
	}
	for _, lvl := range lvls {
		if lvl.Name() == "shutdown" || !lvl.IsDir() {
			continue
		}
		dir := "etc/runlevels/" + lvl.Name()
		ents, err := guestconf.ReadDir(r.fsys, dir)
		if err != nil {
			r.problem("services", guestconf.Abs(dir), err)
			continue
		}
		for _, e := range ents {
			if e.IsDir() {
				continue // a stacked runlevel
			}
			add(Service{Name: e.Name(), Source: "openrc", WantedBy: lvl.Name(), Path: "/etc/init.d/" + e.Name()})
		}
	}
}

// joinWords merges space-separated word lists, sorted and without
// duplicates; "runlevel 2" and "runlevel 3" give "runlevel 2 3".
func joinWords(a, b string) string {
	prefix := ""
	if p, ok := strings.CutPrefix(a, "runlevel "); ok {
		prefix, a = "runlevel ", p
		b = strings.TrimPrefix(b, "runlevel ")
	}
	w := append(strings.Fields(a), strings.Fields(b)...)
	slices.Sort(w)
	return prefix + strings.Join(slices.Compact(w), " ")
}

// isServiceUnit keeps units that run something: services, sockets, timers
// and paths, not targets, mounts or devices.
func isServiceUnit(name string) bool {
	switch path.Ext(name) {
	case ".service", ".socket", ".timer", ".path":
		return true
	}
	return false
}

// notExistOK records err as a problem of section unless it says the file
// is absent.
func (r *reader) notExistOK(section, name string, err error) {
	if !errors.Is(err, fs.ErrNotExist) {
		r.problem(section, guestconf.Abs(name), err)
	}
}
