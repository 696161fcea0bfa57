package rpmdb

import (
	"io/fs"
	"path"
	"sort"
	"strings"

	"guestkit.io/batch/internal/guest"
)

// maxMacroFile bounds one rpm macro file; the largest real one
// (/usr/lib/rpm/macros) is about 50 KB.
const maxMacroFile = 1 << 20

// maxMacroFiles bounds the macro files read from one glob.
const maxMacroFiles = 256

// macros holds the definitions of the guest's rpm macro files: the last
// definition of a name wins, as later files override earlier ones.
type macros map[string]string

// macroFiles are the macro files librpm 4.18 (as Debian builds it, the
// appliance's) reads, in its order, that a guest can hold; the platform
// file (named by %{_target}) and ~/.rpmmacros are left out.
var macroFiles = []string{
	"usr/lib/rpm/macros",
	"usr/lib/rpm/macros.d/macros.*",
	"usr/lib/rpm/debian/macros",
	"etc/rpm/macros.*",
	"etc/rpm/macros",
}

func loadMacros(fsys fs.FS) macros {
	m := macros{}
	for _, pat := range macroFiles {
		names := []string{pat}
		if strings.Contains(pat, "*") {
			names = nil
			ents, err := fs.ReadDir(fsys, path.Dir(pat))
			if err != nil {
				continue
			}
			for _, e := range ents {
				if ok, _ := path.Match(path.Base(pat), e.Name()); ok {
					names = append(names, path.Join(path.Dir(pat), e.Name()))
				}
			}
			sort.Strings(names)
			if len(names) > maxMacroFiles {
				names = names[:maxMacroFiles]
			}
		}
		for _, n := range names {
			data, err := guest.ReadFile(fsys, n, maxMacroFile)
			if err != nil {
				continue
			}
			m.parse(string(data))
		}
	}
	return m
}

// parse reads the definitions of one macro file: "%name body" at the
// start of a line (continued by a trailing backslash). Parametric
// macros are recorded with an impossible body, so that expanding them
// fails.
func (m macros) parse(text string) {
	cont := false
	for _, line := range strings.Split(text, "\n") {
		prev := cont
		cont = strings.HasSuffix(line, "\\")
		if prev {
			continue // a continuation line: part of the previous body
		}
		line = strings.TrimLeft(line, " \t")
		if !strings.HasPrefix(line, "%") {
			continue
		}
		line = line[1:]
		n := 0
		for n < len(line) && isMacroChar(line[n], n == 0) {
			n++
		}
		if n == 0 {
			continue
		}
		name, rest := line[:n], line[n:]
		switch {
		case strings.HasPrefix(rest, "("), cont:
			m[name] = "%(" // parametric or multi-line: not a path
		case rest == "" || rest[0] == ' ' || rest[0] == '\t':
			m[name] = strings.TrimSpace(rest)
		}
	}
}

func isMacroChar(c byte, first bool) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
}

// maxExpandSteps bounds the macro references one expansion follows in
// all: depth alone does not bound the work of bodies that name another
// macro several times ("%a %{b}%{b}", "%b %{c}%{c}"...: 2^depth).
const maxExpandSteps = 4096

// expandAll expands s (see expand) within maxExpandSteps.
func (m macros) expandAll(s string) (string, bool) {
	steps := 0
	return m.expand(s, 0, &steps)
}

// expand expands s with the subset of rpm's macro language that paths
// use: %name, %{name}, %{?name}, %{?name:x}, %{!?name:x} and %%. It
// reports false for anything else (shell, lua, builtins, undefined
// names) and past its depth, length and step bounds.
func (m macros) expand(s string, depth int, steps *int) (string, bool) {
	if *steps++; depth > 16 || *steps > maxExpandSteps {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if b.Len() > 4096 {
			return "", false
		}
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return "", false
		}
		switch s[i+1] {
		case '%':
			b.WriteByte('%')
			i += 2
			continue
		case '{':
			end := closingBrace(s[i:])
			if end < 0 {
				return "", false
			}
			inner := s[i+2 : i+end]
			i += end + 1
			v, ok := m.expandBraced(inner, depth, steps)
			if !ok {
				return "", false
			}
			b.WriteString(v)
			continue
		}
		n := 0
		for i+1+n < len(s) && isMacroChar(s[i+1+n], n == 0) {
			n++
		}
		if n == 0 {
			return "", false
		}
		body, ok := m[s[i+1:i+1+n]]
		if !ok {
			return "", false
		}
		v, ok := m.expand(body, depth+1, steps)
		if !ok {
			return "", false
		}
		b.WriteString(v)
		i += 1 + n
	}
	return b.String(), true
}

// closingBrace is the index of the brace that closes s's first "{", or -1.
func closingBrace(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				return i
			}
		}
	}
	return -1
}

func (m macros) expandBraced(inner string, depth int, steps *int) (string, bool) {
	neg := false
	cond := false
	if strings.HasPrefix(inner, "!?") {
		neg, cond, inner = true, true, inner[2:]
	} else if strings.HasPrefix(inner, "?") {
		cond, inner = true, inner[1:]
	}
	name, alt, hasAlt := strings.Cut(inner, ":")
	if name == "" || strings.IndexFunc(name, func(r rune) bool { return r > 127 || !isMacroChar(byte(r), false) }) >= 0 {
		return "", false
	}
	if !cond && hasAlt {
		return "", false // a builtin such as %{expand:...} or %{lua:...}
	}
	body, defined := m[name]
	if cond {
		if defined == neg {
			return "", true
		}
		if hasAlt {
			return m.expand(alt, depth+1, steps)
		}
	} else if !defined {
		return "", false
	}
	return m.expand(body, depth+1, steps)
}

// dbpath is %{_dbpath} as an io/fs path, when it expands to an absolute
// path.
func (m macros) dbpath() (string, bool) {
	body, ok := m["_dbpath"]
	if !ok {
		return "", false
	}
	p, ok := m.expandAll(body)
	if !ok || !strings.HasPrefix(p, "/") {
		return "", false
	}
	return guest.Clean(p)
}

// backend is %{?_db_backend}.
func (m macros) backend() string {
	v, ok := m.expandAll("%{?_db_backend}")
	if !ok {
		return ""
	}
	return strings.TrimSpace(v)
}
