package guestconf

import (
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// GRUB configuration: grub.cfg read through GRUB's own lexing (GrubWords),
// as a list of commands for rules that look at single lines and as a menu
// tree for finding the entry that boots; grubenv; and the Boot Loader
// Specification entries that GRUB's blscfg and systemd-boot read.

// Bounds for hostile boot configurations.
const (
	MaxBootEntries = 4096
	MaxGrubDepth   = 64
)

// GrubConfigs are the grub.cfg files grub-mkconfig writes, Debian's then
// RHEL's (io/fs paths).
func GrubConfigs() []string { return []string{"boot/grub/grub.cfg", "boot/grub2/grub.cfg"} }

// GrubCommand is one line of grub.cfg that holds a command.
type GrubCommand struct {
	// Words are the line split by GrubWords, variables not expanded.
	Words []string `json:"words"`
	// Text is the line as written.
	Text string `json:"text"`
	Source
}

// Expand splits the line again with vars expanded.
func (c GrubCommand) Expand(vars map[string]string) []string { return GrubWords(c.Text, vars) }

// ParseGrubCommands lists the commands of grub.cfg data in file order;
// blank and comment-only lines are left out.
func ParseGrubCommands(data []byte, file string) []GrubCommand {
	var out []GrubCommand
	// Not lines(): a \r inside quotes belongs to the word, as in GRUB.
	for i, l := range strings.Split(string(data), "\n") {
		if w := GrubWords(l, nil); len(w) > 0 {
			out = append(out, GrubCommand{Words: w, Text: l, Source: Source{File: file, Line: i + 1}})
		}
	}
	return out
}

// ReadGrubCommands reads a grub.cfg and lists its commands.
func ReadGrubCommands(fsys fs.FS, name string) ([]GrubCommand, error) {
	data, err := ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	return ParseGrubCommands(data, Abs(name)), nil
}

// GrubWords splits a grub.cfg line into words as GRUB's shell-like parser
// does: blanks separate, quotes group, # at the start of a word comments.
// With vars, $name and ${name} are expanded outside single quotes
// (unknown names expand to nothing); without, they are kept literally.
func GrubWords(line string, vars map[string]string) []string {
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

// IsGrubLinux reports the commands that load a Linux kernel; their
// arguments are the kernel command line.
func IsGrubLinux(word string) bool {
	switch word {
	case "linux", "linux16", "linuxefi", "kernel":
		return true
	}
	return false
}

// ParseGrubEnv parses a grubenv block: name=value lines, # comments and
// the # padding ignored.
func ParseGrubEnv(data []byte) map[string]string {
	env := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			env[k] = v
		}
	}
	return env
}

// BootEntry is a GRUB menuentry or submenu, a Boot Loader Specification
// entry, or another boot loader's entry.
type BootEntry struct {
	Title, ID, Version string
	Kernel, Args       string
	Source             Source
	Submenu            bool
	Children           []*BootEntry
}

// grubFrame is an open { block of grub.cfg.
type grubFrame struct {
	kind  string // menuentry, submenu, other
	entry *BootEntry
}

// grubMenu is the state of ParseGrubMenu.
type grubMenu struct {
	root    []*BootEntry
	stack   []grubFrame
	count   int
	skipped int // blocks opened beyond MaxGrubDepth
	vars    map[string]string
	bls     func() []*BootEntry
}

// ParseGrubMenu builds the menu of grub.cfg from its commands. It follows
// set and bare assignments outside menu entries in file order, function
// bodies included (so the else branch of "if next_entry" leaves the
// persistent default, and the last assignment wins), keeps
// submenus as a tree, and inserts the entries bls returns where blscfg
// runs (bls may be nil). vars starts as grubenv (load_env) and ends with
// the variables set.
func ParseGrubMenu(cmds []GrubCommand, vars map[string]string, bls func() []*BootEntry) []*BootEntry {
	m := &grubMenu{vars: vars, bls: bls}
	for _, c := range cmds {
		m.command(c)
	}
	return m.root
}

func (m *grubMenu) command(c GrubCommand) {
	opens := c.Words[len(c.Words)-1] == "{"
	switch w := c.Words[0]; {
	case w == "}":
		m.close()
		return
	case w == "menuentry" || w == "submenu":
		m.entry(c, opens)
		return
	case w == "blscfg" && m.inside("menuentry") == nil:
		m.blscfg()
	case IsGrubLinux(w):
		if e := m.inside("menuentry"); e != nil && e.Kernel == "" {
			if words := c.Expand(m.vars); len(words) > 1 {
				e.Kernel, e.Args = words[1], strings.Join(words[2:], " ")
			}
		}
	case m.inside("menuentry") == nil:
		m.assign(c)
	}
	if opens {
		m.push(grubFrame{kind: "other"})
	}
}

// entry adds a menuentry or submenu to the menu level it is in.
func (m *grubMenu) entry(c GrubCommand, opens bool) {
	if m.count >= MaxBootEntries {
		if opens {
			m.push(grubFrame{kind: "other"})
		}
		return
	}
	m.count++
	kind := c.Words[0]
	e := &BootEntry{Submenu: kind == "submenu", Source: c.Source}
	e.Title, e.ID = grubEntryNames(c.Words[1:])
	l := m.list()
	*l = append(*l, e)
	if opens {
		m.push(grubFrame{kind: kind, entry: e})
	}
}

// blscfg inserts the BLS entries where the blscfg command runs.
func (m *grubMenu) blscfg() {
	if m.bls == nil {
		return
	}
	for _, e := range m.bls() {
		if m.count < MaxBootEntries {
			m.count++
			l := m.list()
			*l = append(*l, e)
		}
	}
}

// assign records "set k=v" or "k=v" outside entries and functions.
func (m *grubMenu) assign(c GrubCommand) {
	words := c.Expand(m.vars)
	if len(words) > 0 && words[0] == "set" {
		words = words[1:]
	}
	if len(words) == 1 {
		if k, v, ok := strings.Cut(words[0], "="); ok && k != "" && !strings.ContainsAny(k, "[$\"'") {
			m.vars[k] = v
		}
	}
}

func (m *grubMenu) push(f grubFrame) {
	if len(m.stack) < MaxGrubDepth {
		m.stack = append(m.stack, f)
	} else {
		m.skipped++
	}
}

// close ends the innermost block, untracked ones first.
func (m *grubMenu) close() {
	if m.skipped > 0 {
		m.skipped--
	} else if len(m.stack) > 0 {
		m.stack = m.stack[:len(m.stack)-1]
	}
}

// list is the menu level new entries go to: the innermost submenu's.
func (m *grubMenu) list() *[]*BootEntry {
	for i := len(m.stack) - 1; i >= 0; i-- {
		if m.stack[i].kind == "submenu" {
			return &m.stack[i].entry.Children
		}
	}
	return &m.root
}

// inside returns the entry of the innermost open menuentry or submenu.
func (m *grubMenu) inside(kind string) *BootEntry {
	for i := len(m.stack) - 1; i >= 0; i-- {
		if m.stack[i].kind == kind {
			return m.stack[i].entry
		}
	}
	return nil
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

// GrubDefault resolves GRUB's default among non-empty entries: an index,
// a title or an id, or a path through submenus ("1>2", "Advanced
// options>Debian, with Linux 6.1"). What does not resolve falls back to
// the first entry, as GRUB does; a submenu boots its own first entry.
func GrubDefault(entries []*BootEntry, spec string) *BootEntry {
	level := entries
	var pick *BootEntry
	if spec != "" {
		for part := range strings.SplitSeq(spec, ">") {
			pick = nil
			if n, err := strconv.Atoi(part); err == nil && n >= 0 && n < len(level) {
				pick = level[n]
			} else {
				for _, e := range level {
					if e.ID == part || e.Title == part {
						pick = e
						break
					}
				}
			}
			if pick == nil {
				break
			}
			level = pick.Children
		}
	}
	if pick == nil {
		pick = entries[0]
	}
	for depth := 0; pick.Submenu && len(pick.Children) > 0 && depth < MaxGrubDepth; depth++ {
		pick = pick.Children[0]
	}
	return pick
}

// ParseBLS splits a Boot Loader Specification entry into its "key value"
// lines (the key ends at the first blank; the value is trimmed), in file
// order; blank and # lines are left out.
func ParseBLS(data []byte, file string) []KV {
	var out []KV
	for i, l := range lines(data) {
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' {
			continue
		}
		k, v := t, ""
		if n := strings.IndexAny(t, " \t"); n >= 0 {
			k, v = t[:n], strings.TrimSpace(t[n:])
		}
		out = append(out, KV{Key: k, Value: v, Source: Source{File: file, Line: i + 1}})
	}
	return out
}

// BLSEntry is the boot entry of the BLS file name (io/fs path) with lines
// kvs: the last title, version and linux win, options lines are joined.
// With vars (GRUB's blscfg) options are split as GRUB does with variables
// expanded ($kernelopts from grubenv on RHEL 8); without (systemd-boot)
// only blanks are normalised.
func BLSEntry(name string, kvs []KV, vars map[string]string) *BootEntry {
	e := &BootEntry{ID: strings.TrimSuffix(path.Base(name), ".conf"), Source: Source{File: Abs(name)}}
	var opts []string
	for _, kv := range kvs {
		switch kv.Key {
		case "title":
			e.Title = kv.Value
		case "version":
			e.Version = kv.Value
		case "linux":
			e.Kernel = kv.Value
		case "options":
			opts = append(opts, kv.Value)
		}
	}
	if vars != nil {
		e.Args = strings.Join(GrubWords(strings.Join(opts, " "), vars), " ")
	} else {
		e.Args = strings.Join(strings.Fields(strings.Join(opts, " ")), " ")
	}
	return e
}
