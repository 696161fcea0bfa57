package inspect

import (
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"guestkit.io/batch/internal/guestconf"
)

// kernelImage matches the names distributions give kernel images in /boot.
var kernelImage = regexp.MustCompile(`^(vmlinuz|vmlinux|kernel|bzImage)-(.+)$`)

// maxBootEntries bounds the entries read from hostile boot configurations.
const maxBootEntries = guestconf.MaxBootEntries

// readKernels lists /boot kernels and finds the boot default from GRUB
// (grub.cfg with submenus, grubenv, BLS entries through blscfg),
// systemd-boot (loader.conf and BLS entries) or extlinux.
func readKernels(r *reader) *Kernels {
	k := &Kernels{Installed: []Kernel{}}
	ents, err := guestconf.ReadDir(r.fsys, "boot")
	if err != nil {
		r.notExistOK("kernels", "boot", err)
	}
	names := map[string]bool{}
	for _, e := range ents {
		names[e.Name()] = true
	}
	mods := moduleDirs(r)
	for _, e := range ents {
		n := e.Name()
		m := kernelImage.FindStringSubmatch(n)
		if m == nil || e.IsDir() || strings.HasSuffix(n, ".hmac") || strings.HasSuffix(n, ".sig") || strings.HasSuffix(n, ".asc") {
			continue
		}
		v := m[2]
		kern := Kernel{Version: v, Path: "/boot/" + n}
		for _, cand := range []string{"initrd.img-" + v, "initramfs-" + v + ".img", "initrd-" + v, "initramfs-" + v, "initrd-" + v + ".img"} {
			if names[cand] {
				kern.Initrd = "/boot/" + cand
				break
			}
		}
		if mods[v] {
			kern.Modules = true
		} else if full := flavourVersion(mods, v); full != "" {
			// Alpine names the image by flavour (vmlinuz-lts); the version
			// is the modules directory's (6.6.31-0-lts).
			kern.Version, kern.Modules = full, true
		}
		k.Installed = append(k.Installed, kern)
	}
	sort.SliceStable(k.Installed, func(i, j int) bool { return versionLess(k.Installed[j].Version, k.Installed[i].Version) })
	def, found := bootDefault(r)
	switch {
	case found:
		k.Default, k.Cmdline, k.DefaultSource = kernelVersion(def.Kernel, k.Installed), def.Args, def.Source.String()
	case len(k.Installed) > 0:
		k.Default = k.Installed[0].Version
		k.DefaultSource = "newest installed kernel (no boot loader entry found)"
	default:
		return nil
	}
	return k
}

// moduleDirs lists the names under /lib/modules and /usr/lib/modules.
func moduleDirs(r *reader) map[string]bool {
	out := map[string]bool{}
	for _, d := range []string{"lib/modules", "usr/lib/modules"} {
		ents, err := guestconf.ReadDir(r.fsys, d)
		if err != nil {
			r.notExistOK("kernels", d, err)
			continue
		}
		for _, e := range ents {
			out[e.Name()] = true
		}
	}
	return out
}

// flavourVersion returns the newest module directory named <version>-<flavour>.
func flavourVersion(mods map[string]bool, flavour string) string {
	best := ""
	for m := range mods {
		if strings.HasSuffix(m, "-"+flavour) && (best == "" || versionLess(best, m)) {
			best = m
		}
	}
	return best
}

// kernelVersion maps a boot entry's kernel path to an installed kernel's
// version, or to the version in the image's name.
func kernelVersion(kernel string, installed []Kernel) string {
	if kernel == "" {
		return ""
	}
	base := path.Base(kernel)
	for _, k := range installed {
		if path.Base(k.Path) == base {
			return k.Version
		}
	}
	if m := kernelImage.FindStringSubmatch(base); m != nil {
		return m[2]
	}
	return base
}

// bootDefault finds the entry the boot loader starts by default.
func bootDefault(r *reader) (*guestconf.BootEntry, bool) {
	if e, ok := grubDefault(r); ok {
		return e, true
	}
	if e, ok := systemdBootDefault(r); ok {
		return e, true
	}
	return extlinuxDefault(r)
}

// grubConfig returns the first grub.cfg that defines entries; an EFI stub
// that only chains to /boot/grub2/grub.cfg does not count.
func grubConfig(r *reader) (string, []byte) {
	cands := append(guestconf.GrubConfigs(), r.glob("kernels", "boot/efi/EFI/*/grub.cfg")...)
	for _, c := range cands {
		data := r.read("kernels", c)
		s := string(data)
		if strings.Contains(s, "menuentry") || strings.Contains(s, "submenu") || strings.Contains(s, "blscfg") {
			return c, data
		}
	}
	return "", nil
}

// grubEnv reads the grubenv next to grub.cfg (load_env's $prefix/grubenv),
// or any other grubenv when that one is missing.
func grubEnv(r *reader, cfg string) map[string]string {
	cands := []string{path.Join(path.Dir(cfg), "grubenv"), "boot/grub/grubenv", "boot/grub2/grubenv"}
	cands = append(cands, r.glob("kernels", "boot/efi/EFI/*/grubenv")...)
	for _, c := range cands {
		if data := r.read("kernels", c); data != nil {
			return guestconf.ParseGrubEnv(data)
		}
	}
	return map[string]string{}
}

func grubDefault(r *reader) (*guestconf.BootEntry, bool) {
	cfg, data := grubConfig(r)
	if data == nil {
		return nil, false
	}
	vars := grubEnv(r, cfg)
	bls := func() []*guestconf.BootEntry { return readBLS(r, "boot/loader/entries", vars) }
	entries := guestconf.ParseGrubMenu(guestconf.ParseGrubCommands(data, guestconf.Abs(cfg)), vars, bls)
	if len(entries) == 0 {
		return nil, false
	}
	return guestconf.GrubDefault(entries, vars["default"]), true
}

// readBLS reads Boot Loader Specification entries, newest version first
// (the order of RHEL's blscfg and of systemd-boot). Options may use grubenv
// variables ($kernelopts on RHEL 8).
func readBLS(r *reader, dir string, vars map[string]string) []*guestconf.BootEntry {
	var out []*guestconf.BootEntry
	for _, f := range r.glob("kernels", dir+"/*.conf") {
		if len(out) >= maxBootEntries {
			break
		}
		kvs := guestconf.ParseBLS(r.read("kernels", f), guestconf.Abs(f))
		out = append(out, guestconf.BLSEntry(f, kvs, vars))
	}
	key := func(e *guestconf.BootEntry) string {
		if e.Version != "" {
			return e.Version
		}
		return e.ID
	}
	sort.SliceStable(out, func(i, j int) bool { return versionLess(key(out[j]), key(out[i])) })
	return out
}

// systemdBootDefault reads systemd-boot's loader.conf and entries on the
// ESP or XBOOTLDR partition.
func systemdBootDefault(r *reader) (*guestconf.BootEntry, bool) {
	for _, base := range []string{"boot", "boot/efi", "efi"} {
		entries := readBLS(r, base+"/loader/entries", nil)
		if len(entries) == 0 {
			continue
		}
		for _, l := range strings.Split(string(r.read("kernels", base+"/loader/loader.conf")), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 || f[0] != "default" {
				continue
			}
			for _, e := range entries {
				if m, _ := path.Match(f[1], e.ID); m {
					return e, true
				}
				if m, _ := path.Match(f[1], e.ID+".conf"); m {
					return e, true
				}
			}
		}
		return entries[0], true
	}
	return nil, false
}

// extlinuxDefault reads extlinux/syslinux configuration (Alpine's default
// boot loader on BIOS): DEFAULT names a label, else MENU DEFAULT marks one,
// else the first label boots.
func extlinuxDefault(r *reader) (*guestconf.BootEntry, bool) {
	for _, f := range []string{"boot/extlinux/extlinux.conf", "boot/extlinux.conf", "extlinux.conf", "boot/syslinux/syslinux.cfg", "boot/syslinux.cfg"} {
		data := r.read("kernels", f)
		if data == nil {
			continue
		}
		var entries []*guestconf.BootEntry
		var cur, marked *guestconf.BootEntry
		def := ""
		for i, l := range strings.Split(string(data), "\n") {
			w := strings.Fields(l)
			if len(w) == 0 || strings.HasPrefix(w[0], "#") {
				continue
			}
			rest := strings.TrimSpace(strings.TrimSpace(l)[len(w[0]):])
			switch strings.ToUpper(w[0]) {
			case "DEFAULT":
				def = rest
			case "LABEL":
				if len(entries) >= maxBootEntries {
					cur = nil
					continue
				}
				cur = &guestconf.BootEntry{Title: rest, ID: rest, Source: guestconf.Source{File: guestconf.Abs(f), Line: i + 1}}
				entries = append(entries, cur)
			case "KERNEL", "LINUX":
				if cur != nil {
					cur.Kernel = rest
				}
			case "APPEND":
				if cur != nil {
					cur.Args = strings.Join(strings.Fields(rest), " ")
				}
			case "MENU":
				if cur != nil && len(w) > 1 && strings.EqualFold(w[1], "DEFAULT") {
					marked = cur
				}
			}
		}
		if len(entries) == 0 {
			continue
		}
		for _, e := range entries {
			if e.ID == def {
				return e, true
			}
		}
		if marked != nil {
			return marked, true
		}
		return entries[0], true
	}
	return nil, false
}

// versionLess compares dotted versions numerically where it can.
func versionLess(a, b string) bool {
	as, bs := splitVersion(a), splitVersion(b)
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, ex := strconv.ParseUint(as[i], 10, 64)
		y, ey := strconv.ParseUint(bs[i], 10, 64)
		if ex == nil && ey == nil {
			if x != y {
				return x < y
			}
			continue
		}
		if as[i] != bs[i] {
			return as[i] < bs[i]
		}
	}
	return len(as) < len(bs)
}

func splitVersion(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == '.' || r == '-' || r == '_' || r == '+' || r == '~' })
}
