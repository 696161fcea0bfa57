package inspect

import (
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"guestkit.io/batch/internal/guestconf"
)

var (
	// kernelImage matches the names distributions give kernel images in /boot.
	kernelImage = regexp.MustCompile(`^(vmlinuz|vmlinux|kernel|bzImage)-(.+)$`)
	menuEntry   = regexp.MustCompile(`^menuentry\s+['"]([^'"]*)['"]`)
)

// readKernels lists /boot kernels and finds the boot default from GRUB
// (grubenv saved_entry, BLS entries, menuentries with set default).
func readKernels(r *reader) *Kernels {
	k := &Kernels{Installed: []Kernel{}}
	ents, _ := guestconf.ReadDir(r.fsys, "boot")
	names := map[string]bool{}
	for _, e := range ents {
		names[e.Name()] = true
	}
	for _, e := range ents {
		m := kernelImage.FindStringSubmatch(e.Name())
		if m == nil || strings.HasSuffix(e.Name(), ".hmac") || strings.HasSuffix(e.Name(), ".sig") {
			continue
		}
		v := m[2]
		kern := Kernel{Version: v, Path: "/boot/" + e.Name()}
		for _, cand := range []string{"initrd.img-" + v, "initramfs-" + v + ".img", "initrd-" + v, "initramfs-" + v, "initrd-" + v + ".img"} {
			if names[cand] {
				kern.Initrd = "/boot/" + cand
				break
			}
		}
		kern.Modules = r.exists("lib/modules/"+v) || r.exists("usr/lib/modules/"+v)
		k.Installed = append(k.Installed, kern)
	}
	// Alpine and others name the image without a version ("vmlinuz-lts");
	// the version is then the modules directory.
	sort.Slice(k.Installed, func(i, j int) bool { return versionLess(k.Installed[j].Version, k.Installed[i].Version) })
	def, cmdline, src := grubDefault(r)
	if def != "" {
		k.Default, k.Cmdline, k.DefaultSource = def, cmdline, src
	} else if len(k.Installed) > 0 {
		k.Default = k.Installed[0].Version
		k.DefaultSource = "newest installed kernel (no boot loader entry found)"
	}
	if len(k.Installed) == 0 && def == "" {
		return nil
	}
	return k
}

type bootEntry struct {
	title, id, kernel, args, source string
}

// grubDefault returns the default kernel's version, its command line and
// where that was found.
func grubDefault(r *reader) (version, cmdline, source string) {
	env := map[string]string{}
	for _, p := range []string{"boot/grub/grubenv", "boot/grub2/grubenv", "boot/efi/EFI/*/grubenv"} {
		for _, f := range r.glob("kernels", p) {
			for _, l := range strings.Split(string(r.read("kernels", f)), "\n") {
				if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
					env[k] = v
				}
			}
		}
	}
	var entries []bootEntry
	for _, f := range r.glob("kernels", "boot/loader/entries/*.conf") {
		e := bootEntry{id: strings.TrimSuffix(path.Base(f), ".conf"), source: guestconf.Abs(f)}
		for _, l := range strings.Split(string(r.read("kernels", f)), "\n") {
			key, val, _ := strings.Cut(strings.TrimSpace(l), " ")
			val = strings.TrimSpace(val)
			switch key {
			case "title":
				e.title = val
			case "linux":
				e.kernel = val
			case "options":
				e.args = val
			}
		}
		entries = append(entries, e)
	}
	// BLS sorts newest first.
	sort.SliceStable(entries, func(i, j int) bool { return versionLess(entries[j].id, entries[i].id) })
	setDefault := ""
	for _, cfg := range []string{"boot/grub/grub.cfg", "boot/grub2/grub.cfg"} {
		data := r.read("kernels", cfg)
		if data == nil {
			continue
		}
		var cur *bootEntry
		depth := 0
		for i, l := range strings.Split(string(data), "\n") {
			t := strings.TrimSpace(l)
			switch {
			case strings.HasPrefix(t, "set default="):
				setDefault = strings.Trim(strings.TrimPrefix(t, "set default="), `"'`)
			case strings.HasPrefix(t, "menuentry ") && depth <= 1:
				title := ""
				if q := menuEntry.FindStringSubmatch(t); q != nil {
					title = q[1]
				}
				entries = append(entries, bootEntry{title: title, source: guestconf.Abs(cfg) + ":" + strconv.Itoa(i+1)})
				cur = &entries[len(entries)-1]
			case (strings.HasPrefix(t, "linux ") || strings.HasPrefix(t, "linux16 ") || strings.HasPrefix(t, "linuxefi ")) && cur != nil && cur.kernel == "":
				f := fields(t)
				if len(f) >= 2 {
					cur.kernel = f[1]
					cur.args = strings.Join(f[2:], " ")
				}
			}
			depth += strings.Count(t, "{") - strings.Count(t, "}")
			if depth == 0 {
				cur = nil
			}
		}
		break
	}
	if len(entries) == 0 {
		return "", "", ""
	}
	pick := entries[0]
	want := env["saved_entry"]
	if setDefault != "" && !strings.Contains(setDefault, "$") {
		want = setDefault
	}
	if want != "" {
		if n, err := strconv.Atoi(want); err == nil && n >= 0 && n < len(entries) {
			pick = entries[n]
		} else {
			for _, e := range entries {
				if e.id == want || e.title == want {
					pick = e
					break
				}
			}
		}
	}
	v := path.Base(pick.kernel)
	if m := kernelImage.FindStringSubmatch(v); m != nil {
		v = m[2]
	}
	return v, pick.args, pick.source
}

// versionLess compares dotted versions numerically where it can.
func versionLess(a, b string) bool {
	as, bs := splitVersion(a), splitVersion(b)
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, ex := strconv.Atoi(as[i])
		y, ey := strconv.Atoi(bs[i])
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
