package guestconf

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// PAMLine is one rule of a /etc/pam.d file.
type PAMLine struct {
	Type string `json:"type"` // auth, account, password, session; "@include" for Debian includes
	// Quiet is the "-" type prefix: a missing module is not logged.
	Quiet   bool     `json:"quiet,omitempty"`
	Control string   `json:"control"` // required, [success=1 default=ignore], include, ...
	Module  string   `json:"module"`  // pam_unix.so, or the included file for @include/include/substack
	Args    []string `json:"args,omitempty"`
	Source
}

// ModuleName is the module's base name without directory and ".so".
func (l PAMLine) ModuleName() string {
	return strings.TrimSuffix(path.Base(l.Module), ".so")
}

// Arg returns the value of a "key=value" argument and whether it is
// present; a bare flag ("nullok") is present with an empty value.
func (l PAMLine) Arg(key string) (string, bool) {
	for _, a := range l.Args {
		k, v, _ := strings.Cut(a, "=")
		if k == key {
			return v, true
		}
	}
	return "", false
}

// ParsePAM parses a pam.d file as Linux-PAM does: a backslash at the end of
// a line continues it, "#" starts a comment, bracketed controls and
// arguments may contain blanks. The Source line is where the rule starts.
func ParsePAM(data []byte, file string) []PAMLine {
	var out []PAMLine
	ls := lines(data)
	for i := 0; i < len(ls); i++ {
		start := i
		l := ls[i]
		for strings.HasSuffix(l, `\`) && i+1 < len(ls) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + ls[i]
		}
		if c := strings.IndexByte(l, '#'); c >= 0 {
			l = l[:c]
		}
		toks := pamTokens(l)
		if len(toks) == 0 {
			continue
		}
		src := Source{File: file, Line: start + 1}
		if toks[0] == "@include" {
			if len(toks) > 1 {
				out = append(out, PAMLine{Type: "@include", Control: "include", Module: toks[1], Source: src})
			}
			continue
		}
		if len(toks) < 3 {
			continue
		}
		pl := PAMLine{Type: toks[0], Control: toks[1], Module: toks[2], Args: toks[3:], Source: src}
		if strings.HasPrefix(pl.Type, "-") {
			pl.Quiet = true
			pl.Type = pl.Type[1:]
		}
		pl.Type = strings.ToLower(pl.Type)
		out = append(out, pl)
	}
	return out
}

// pamTokens splits on blanks, keeping [ ... ] groups (with \] escapes) whole.
func pamTokens(s string) []string {
	var out []string
	var cur strings.Builder
	depth := false
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case depth && ch == '\\' && i+1 < len(s) && s[i+1] == ']':
			cur.WriteByte(']')
			i++
		case ch == '[' && cur.Len() == 0:
			depth = true
			cur.WriteByte(ch)
		case depth && ch == ']':
			depth = false
			cur.WriteByte(ch)
		case !depth && (ch == ' ' || ch == '\t'):
			flush()
		default:
			cur.WriteByte(ch)
		}
	}
	flush()
	return out
}

// ReadPAMStack reads /etc/pam.d/<service> with its includes expanded in
// place (@include, and include/substack controls, for the same type).
// Unreadable files are errors; a missing service file is an error wrapping
// fs.ErrNotExist.
func ReadPAMStack(fsys fs.FS, service string) ([]PAMLine, error) {
	return readPAM(fsys, service, "", 0)
}

func readPAM(fsys fs.FS, service, onlyType string, depth int) ([]PAMLine, error) {
	if depth > 16 {
		return nil, fmt.Errorf("/etc/pam.d/%s: includes nested too deep", service)
	}
	name := "etc/pam.d/" + service
	data, err := ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	var out []PAMLine
	for _, l := range ParsePAM(data, Abs(name)) {
		if onlyType != "" && l.Type != onlyType && l.Type != "@include" {
			continue
		}
		inc := l.Type == "@include" || l.Control == "include" || l.Control == "substack"
		if !inc {
			out = append(out, l)
			continue
		}
		t := onlyType
		if l.Type != "@include" {
			t = l.Type
		}
		sub, err := readPAM(fsys, path.Base(l.Module), t, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}
