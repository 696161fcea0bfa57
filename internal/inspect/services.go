package inspect

import (
	"path"
	"sort"
	"strings"

	"guestkit.io/batch/internal/guestconf"
)

// readServices lists what starts at boot: systemd units pulled in by
// *.wants/*.requires links under /etc (what `systemctl enable` writes) and
// the vendor directories, masked units, SysV rc?.d S-links and OpenRC
// runlevel links.
func readServices(r *reader) *Services {
	s := &Services{Enabled: []Service{}}
	seen := map[string]bool{}
	add := func(svc Service) {
		key := svc.Source + "\x00" + svc.Name + "\x00" + svc.WantedBy
		if !seen[key] {
			seen[key] = true
			s.Enabled = append(s.Enabled, svc)
		}
	}
	masked := map[string]bool{}
	for _, dir := range []string{"etc/systemd/system", "run/systemd/system"} {
		ents, _ := guestconf.ReadDir(r.fsys, dir)
		for _, e := range ents {
			if guestconf.IsDevNull(r.fsys, path.Join(dir, e.Name())) {
				masked[e.Name()] = true
			}
		}
	}
	for _, dir := range []string{"etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"} {
		for _, wants := range append(r.glob("services", dir+"/*.wants"), r.glob("services", dir+"/*.requires")...) {
			target := strings.TrimSuffix(strings.TrimSuffix(path.Base(wants), ".wants"), ".requires")
			ents, err := guestconf.ReadDir(r.fsys, wants)
			if err != nil {
				r.problem("services", "/"+wants, err)
				continue
			}
			for _, e := range ents {
				name := e.Name()
				if masked[name] || !isServiceUnit(name) {
					continue
				}
				svc := Service{Name: name, Source: "systemd", WantedBy: target}
				if real, err := guestconf.Resolve(r.fsys, path.Join(wants, name)); err == nil {
					svc.Path = guestconf.Abs(real)
				}
				add(svc)
			}
		}
	}
	if len(s.Enabled) > 0 || r.exists("etc/systemd/system") {
		s.InitSystem = "systemd"
	}
	for _, rc := range r.glob("services", "etc/rc[0-6S].d") {
		level := strings.TrimSuffix(strings.TrimPrefix(path.Base(rc), "rc"), ".d")
		ents, _ := guestconf.ReadDir(r.fsys, rc)
		for _, e := range ents {
			n := e.Name()
			if len(n) < 4 || n[0] != 'S' || n[1] < '0' || n[1] > '9' || n[2] < '0' || n[2] > '9' {
				continue
			}
			name := n[3:]
			if masked[name+".service"] {
				continue
			}
			add(Service{Name: name, Source: "sysv", WantedBy: "runlevel " + level, Path: "/etc/init.d/" + name})
		}
		if s.InitSystem == "" && len(ents) > 0 {
			s.InitSystem = "sysv"
		}
	}
	for _, lvl := range r.glob("services", "etc/runlevels/*") {
		ents, _ := guestconf.ReadDir(r.fsys, lvl)
		for _, e := range ents {
			add(Service{Name: e.Name(), Source: "openrc", WantedBy: path.Base(lvl), Path: "/etc/init.d/" + e.Name()})
		}
		s.InitSystem = "openrc"
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
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.WantedBy < b.WantedBy
	})
	return s
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
