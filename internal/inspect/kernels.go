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

// Bounds for hostile boot configurations.
const (
	maxBootEntries = 4096
	maxGrubDepth   = 64
)

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
		k.Default, k.Cmdline, k.DefaultSource = kernelVersion(def.kernel, k.Installed), def.args, def.source
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

// bootEntry is a GRUB menuentry or submenu, a BLS entry or an extlinux
// label.
type bootEntry struct {
	title, id, version string
	kernel, args       string
	source             string // file:line
	submenu            bool
	children           []*bootEntry
}

// bootDefault finds the entry the boot loader starts by default.
func bootDefault(r *reader) (*bootEntry, bool) {
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
	cands := []string{"boot/grub/grub.cfg", "boot/grub2/grub.cfg"}
	cands = append(cands, r.glob("kernels", "boot/efi/EFI/*/grub.cfg")...)
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
	env := map[string]string{}
	cands := []string{path.Join(path.Dir(cfg), "grubenv"), "boot/grub/grubenv", "boot/grub2/grubenv"}
	cands = append(cands, r.glob("kernels", "boot/efi/EFI/*/grubenv")...)
	for _, c := range cands {
		data := r.read("kernels", c)
		if data == nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
				env[k] = v
			}
		}
		break
	}
	return env
}

func grubDefault(r *reader) (*bootEntry, bool) {
	cfg, data := grubConfig(r)
	if data == nil {
		return nil, false
	}
	vars := grubEnv(r, cfg)
	entries := parseGrub(r, string(data), guestconf.Abs(cfg), vars)
	if len(entries) == 0 {
		return nil, false
	}
	return pickGrubEntry(entries, vars["default"]), true
}

// parseGrub reads the menu of a grub.cfg. It follows set and bare
// assignments outside entries and functions in file order (so the else
// branch of "if next_entry" leaves the persistent default), keeps submenus
// as a tree, and inserts BLS entries where blscfg runs. vars starts as
// grubenv (load_env) and ends with the variables set.
func parseGrub(r *reader, data, file string, vars map[string]string) []*bootEntry {
	type frame struct {
		kind  string // menuentry, submenu, other
		entry *bootEntry
	}
	var root []*bootEntry
	var stack []frame
	count, skipped := 0, 0 // skipped: blocks opened beyond maxGrubDepth
	push := func(f frame) {
		if len(stack) < maxGrubDepth {
			stack = append(stack, f)
		} else {
			skipped++
		}
	}
	list := func() *[]*bootEntry {
		for i := len(stack) - 1; i >= 0; i-- {
			if stack[i].kind == "submenu" {
				return &stack[i].entry.children
			}
		}
		return &root
	}
	inside := func(kind string) *bootEntry {
		for i := len(stack) - 1; i >= 0; i-- {
			if stack[i].kind == kind {
				return stack[i].entry
			}
		}
		return nil
	}
	for i, l := range strings.Split(data, "\n") {
		raw := grubWords(l, nil)
		if len(raw) == 0 {
			continue
		}
		opens := raw[len(raw)-1] == "{"
		switch w := raw[0]; {
		case w == "}":
			if skipped > 0 {
				skipped--
			} else if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			continue
		case w == "menuentry" || w == "submenu":
			if count >= maxBootEntries {
				if opens {
					push(frame{kind: "other"})
				}
				continue
			}
			count++
			e := &bootEntry{submenu: w == "submenu", source: file + ":" + strconv.Itoa(i+1)}
			e.title, e.id = grubEntryNames(raw[1:])
			l := list()
			*l = append(*l, e)
			if opens {
				push(frame{kind: w, entry: e})
			}
			continue
		case w == "blscfg" && inside("menuentry") == nil:
			for _, e := range readBLS(r, "boot/loader/entries", vars) {
				if count < maxBootEntries {
					count++
					l := list()
					*l = append(*l, e)
				}
			}
		case w == "linux" || w == "linux16" || w == "linuxefi" || w == "kernel":
			if e := inside("menuentry"); e != nil && e.kernel == "" {
				if words := grubWords(l, vars); len(words) > 1 {
					e.kernel, e.args = words[1], strings.Join(words[2:], " ")
				}
			}
		case inside("menuentry") == nil && inside("other") == nil:
			words := grubWords(l, vars)
			if len(words) > 0 && words[0] == "set" {
				words = words[1:]
			}
			if len(words) == 1 {
				if k, v, ok := strings.Cut(words[0], "="); ok && k != "" && !strings.ContainsAny(k, "[$\"'") {
					vars[k] = v
				}
			}
		}
		if opens {
			push(frame{kind: "other"})
		}
	}
	return root
}

// grubEntryNames returns the title and --id of a menuentry's arguments.
func grubEntryNames(args []string) (title, id string) {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "--class", "--users", "--hotkey", "--id", "$menuentry_id_option", "${menuentry_id_option}":
			if i+1 < len(args) {
				i++
				if a != "--class" && a != "--users" && a != "--hotkey" {
					id = args[i]
				}
			}
		case "--unrestricted", "{":
		default:
			if title == "" && !strings.HasPrefix(a, "--") {
				title = a
			}
		}
	}
	return title, id
}

// pickGrubEntry resolves GRUB's default: an index, a title or an id,
// or a path through submenus ("1>2", "Advanced options>Debian, with
// Linux 6.1"). What does not resolve falls back to the first entry, as
// GRUB does; a submenu boots its own first entry.
func pickGrubEntry(entries []*bootEntry, spec string) *bootEntry {
	level := entries
	var pick *bootEntry
	if spec != "" {
		for part := range strings.SplitSeq(spec, ">") {
			pick = nil
			if n, err := strconv.Atoi(part); err == nil && n >= 0 && n < len(level) {
				pick = level[n]
			} else {
				for _, e := range level {
					if e.id == part || e.title == part {
						pick = e
						break
					}
				}
			}
			if pick == nil {
				break
			}
			level = pick.children
		}
	}
	if pick == nil {
		pick = entries[0]
	}
	for depth := 0; pick.submenu && len(pick.children) > 0 && depth < maxGrubDepth; depth++ {
		pick = pick.children[0]
	}
	return pick
}

// grubWords splits a grub.cfg line into words as GRUB's shell-like parser
// does: blanks separate, quotes group, # at the start of a word comments.
// With vars, $name and ${name} are expanded outside single quotes
// (unknown names expand to nothing); without, they are kept literally.
func grubWords(line string, vars map[string]string) []string {
	var out []string
	var cur strings.Builder
	inWord, sq, dq := false, false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case sq:
			if c == '\'' {
				sq = false
			} else {
				cur.WriteByte(c)
			}
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == '"':
			dq, inWord = !dq, true
		case c == '\'' && !dq:
			sq, inWord = true, true
		case c == '$' && vars != nil:
			name, n := grubVarName(line[i+1:])
			if n == 0 {
				cur.WriteByte(c)
			} else {
				cur.WriteString(vars[name])
				i += n
			}
			inWord = true
		case !dq && (c == ' ' || c == '\t' || c == '\r'):
			if inWord && cur.Len() > 0 {
				out = append(out, cur.String())
			}
			cur.Reset()
			inWord = false
		case !dq && !inWord && c == '#':
			return out
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord && cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// grubVarName reads a variable reference after $: {name} or a name.
func grubVarName(s string) (string, int) {
	if strings.HasPrefix(s, "{") {
		if end := strings.IndexByte(s, '}'); end > 0 {
			return s[1:end], end + 1
		}
		return "", 0
	}
	n := 0
	for n < len(s) && (s[n] == '_' || s[n] >= 'a' && s[n] <= 'z' || s[n] >= 'A' && s[n] <= 'Z' || s[n] >= '0' && s[n] <= '9') {
		n++
	}
	return s[:n], n
}

// readBLS reads Boot Loader Specification entries, newest version first
// (the order of RHEL's blscfg and of systemd-boot). Options may use grubenv
// variables ($kernelopts on RHEL 8).
func readBLS(r *reader, dir string, vars map[string]string) []*bootEntry {
	var out []*bootEntry
	for _, f := range r.glob("kernels", dir+"/*.conf") {
		if len(out) >= maxBootEntries {
			break
		}
		e := &bootEntry{id: strings.TrimSuffix(path.Base(f), ".conf"), source: guestconf.Abs(f)}
		var opts []string
		for _, l := range strings.Split(string(r.read("kernels", f)), "\n") {
			key, val, _ := strings.Cut(strings.TrimSpace(l), " ")
			val = strings.TrimSpace(val)
			switch key {
			case "title":
				e.title = val
			case "version":
				e.version = val
			case "linux":
				e.kernel = val
			case "options":
				opts = append(opts, val)
			}
		}
		if vars != nil {
			e.args = strings.Join(grubWords(strings.Join(opts, " "), vars), " ")
		} else {
			e.args = strings.Join(strings.Fields(strings.Join(opts, " ")), " ")
		}
		out = append(out, e)
	}
	key := func(e *bootEntry) string {
		if e.version != "" {
			return e.version
		}
		return e.id
	}
	sort.SliceStable(out, func(i, j int) bool { return versionLess(key(out[j]), key(out[i])) })
	return out
}

// systemdBootDefault reads systemd-boot's loader.conf and entries on the
// ESP or XBOOTLDR partition.
func systemdBootDefault(r *reader) (*bootEntry, bool) {
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
				if m, _ := path.Match(f[1], e.id); m {
					return e, true
				}
				if m, _ := path.Match(f[1], e.id+".conf"); m {
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
func extlinuxDefault(r *reader) (*bootEntry, bool) {
	for _, f := range []string{"boot/extlinux/extlinux.conf", "boot/extlinux.conf", "extlinux.conf", "boot/syslinux/syslinux.cfg", "boot/syslinux.cfg"} {
		data := r.read("kernels", f)
		if data == nil {
			continue
		}
		var entries []*bootEntry
		var cur, marked *bootEntry
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
				cur = &bootEntry{title: rest, id: rest, source: guestconf.Abs(f) + ":" + strconv.Itoa(i+1)}
				entries = append(entries, cur)
			case "KERNEL", "LINUX":
				if cur != nil {
					cur.kernel = rest
				}
			case "APPEND":
				if cur != nil {
					cur.args = strings.Join(strings.Fields(rest), " ")
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
			if e.id == def {
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
