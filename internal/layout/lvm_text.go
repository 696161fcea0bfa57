package layout

import (
	"fmt"
	"strconv"
	"strings"
)

// The LVM2 metadata text is in the syntax of LVM's configuration files
// (libdevmapper's config parser): sections `name { ... }`, assignments
// `name = value`, values that are strings, integers, floats or flat lists
// of those, and `#` comments. This parser reads that syntax only; the
// meaning of the keys is lvm.go's business.

// Bounds of the parser. Real metadata nests five levels deep (VG,
// logical_volumes, LV, segment, and no deeper) and has about 30 items per
// LV, so these leave a wide margin and still cap memory at a few tens of
// MiB for the largest text we accept (maxMetadataText).
const (
	maxCfgDepth = 32
	maxCfgItems = 256 << 10 // sections, assignments and list elements
)

type cfgKind uint8

const (
	cfgString cfgKind = iota + 1
	cfgInt
	cfgFloat
	cfgList
	cfgSection
)

// cfgValue is one value. Lists hold scalars only, as in libdevmapper.
type cfgValue struct {
	kind cfgKind
	str  string // cfgString; the token's text for cfgFloat
	num  int64  // cfgInt
	list []cfgValue
	sect *cfgSect
}

type cfgEntry struct {
	name string
	val  cfgValue
}

// cfgSect is a section: its entries in file order. Names may repeat;
// lookups take the first, as libdevmapper does.
type cfgSect struct {
	entries []cfgEntry
}

func (s *cfgSect) get(name string) (cfgValue, bool) {
	if s == nil {
		return cfgValue{}, false
	}
	for _, e := range s.entries {
		if e.name == name {
			return e.val, true
		}
	}
	return cfgValue{}, false
}

// sub is the subsection name, or nil.
func (s *cfgSect) sub(name string) *cfgSect {
	v, ok := s.get(name)
	if !ok || v.kind != cfgSection {
		return nil
	}
	return v.sect
}

func (s *cfgSect) str(name string) (string, bool) {
	v, ok := s.get(name)
	if !ok || v.kind != cfgString {
		return "", false
	}
	return v.str, true
}

func (s *cfgSect) int(name string) (int64, bool) {
	v, ok := s.get(name)
	if !ok || v.kind != cfgInt {
		return 0, false
	}
	return v.num, true
}

// strList is a list of strings (status and flags); other elements are
// skipped.
func (s *cfgSect) strList(name string) []string {
	v, ok := s.get(name)
	if !ok || v.kind != cfgList {
		return nil
	}
	var out []string
	for _, e := range v.list {
		if e.kind == cfgString {
			out = append(out, e.str)
		}
	}
	return out
}

// parseCfg parses a whole metadata text into its top-level section.
func parseCfg(text string) (*cfgSect, error) {
	p := &cfgParser{s: text}
	root, err := p.section(0, true)
	if err != nil {
		return nil, err
	}
	return root, nil
}

type cfgParser struct {
	s     string
	pos   int
	items int
}

func (p *cfgParser) errorf(format string, a ...any) error {
	line := 1 + strings.Count(p.s[:p.pos], "\n")
	return fmt.Errorf("LVM metadata text, line %d (byte %d): %s", line, p.pos, fmt.Sprintf(format, a...))
}

// skip passes blanks and comments.
func (p *cfgParser) skip() {
	for p.pos < len(p.s) {
		switch c := p.s[p.pos]; {
		case c == '#':
			if i := strings.IndexByte(p.s[p.pos:], '\n'); i >= 0 {
				p.pos += i + 1
			} else {
				p.pos = len(p.s)
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			p.pos++
		default:
			return
		}
	}
}

func (p *cfgParser) count() error {
	p.items++
	if p.items > maxCfgItems {
		return p.errorf("more than %d items", maxCfgItems)
	}
	return nil
}

// section reads entries up to the closing brace, or to the end of the
// text at the top level.
func (p *cfgParser) section(depth int, top bool) (*cfgSect, error) {
	if depth > maxCfgDepth {
		return nil, p.errorf("sections nested deeper than %d", maxCfgDepth)
	}
	s := &cfgSect{}
	for {
		p.skip()
		if p.pos >= len(p.s) {
			if !top {
				return nil, p.errorf("unterminated section")
			}
			return s, nil
		}
		if p.s[p.pos] == '}' {
			if top {
				return nil, p.errorf("unexpected '}'")
			}
			p.pos++
			return s, nil
		}
		name := p.ident()
		if name == "" {
			return nil, p.errorf("expected a name, found %q", p.s[p.pos])
		}
		if err := p.count(); err != nil {
			return nil, err
		}
		p.skip()
		if p.pos >= len(p.s) {
			return nil, p.errorf("%q has no value", name)
		}
		switch p.s[p.pos] {
		case '{':
			p.pos++
			sub, err := p.section(depth+1, false)
			if err != nil {
				return nil, err
			}
			s.entries = append(s.entries, cfgEntry{name, cfgValue{kind: cfgSection, sect: sub}})
		case '=':
			p.pos++
			p.skip()
			v, err := p.value(true)
			if err != nil {
				return nil, err
			}
			s.entries = append(s.entries, cfgEntry{name, v})
		default:
			return nil, p.errorf("expected '=' or '{' after %q", name)
		}
	}
}

// ident reads a name: libdevmapper takes anything up to a blank, '#',
// '=', '{' or '}', so names may start with a digit (LV "0data").
func (p *cfgParser) ident() string {
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c <= ' ' || c == '#' || c == '=' || c == '{' || c == '}' || c == '"' || c == '\'' || c == 0x7f {
			break
		}
		p.pos++
	}
	return p.s[start:p.pos]
}

func (p *cfgParser) value(listOK bool) (cfgValue, error) {
	if p.pos >= len(p.s) {
		return cfgValue{}, p.errorf("missing value")
	}
	switch c := p.s[p.pos]; {
	case c == '"' || c == '\'':
		return p.quoted(c)
	case c == '[':
		if !listOK {
			return cfgValue{}, p.errorf("list inside a list")
		}
		return p.list()
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return cfgValue{}, p.errorf("unexpected %q in a value", c)
	}
}

// quoted reads a string; a backslash keeps the next byte as is.
func (p *cfgParser) quoted(q byte) (cfgValue, error) {
	start := p.pos
	p.pos++
	var b strings.Builder
	plain := true // no escapes: the value is a slice of the text
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case c == q:
			p.pos++
			if plain {
				return cfgValue{kind: cfgString, str: p.s[start+1 : p.pos-1]}, nil
			}
			return cfgValue{kind: cfgString, str: b.String()}, nil
		case c == '\\' && q == '"' && p.pos+1 < len(p.s):
			if plain {
				b.WriteString(p.s[start+1 : p.pos])
				plain = false
			}
			b.WriteByte(p.s[p.pos+1])
			p.pos += 2
		default:
			if !plain {
				b.WriteByte(c)
			}
			p.pos++
		}
	}
	p.pos = start
	return cfgValue{}, p.errorf("unterminated string")
}

func (p *cfgParser) number() (cfgValue, error) {
	start := p.pos
	if c := p.s[p.pos]; c == '-' || c == '+' {
		p.pos++
	}
	float := false
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '.' && !float {
			float = true
		} else if c < '0' || c > '9' {
			break
		}
		p.pos++
	}
	tok := p.s[start:p.pos]
	if float {
		if _, err := strconv.ParseFloat(tok, 64); err != nil {
			p.pos = start
			return cfgValue{}, p.errorf("bad number %q", tok)
		}
		return cfgValue{kind: cfgFloat, str: tok}, nil
	}
	n, err := strconv.ParseInt(tok, 10, 64)
	if err != nil {
		p.pos = start
		return cfgValue{}, p.errorf("bad integer %q", tok)
	}
	return cfgValue{kind: cfgInt, num: n}, nil
}

// list reads `[ v, v, ... ]`; commas are optional between values, as in
// libdevmapper.
func (p *cfgParser) list() (cfgValue, error) {
	p.pos++ // '['
	v := cfgValue{kind: cfgList}
	for {
		p.skip()
		if p.pos >= len(p.s) {
			return cfgValue{}, p.errorf("unterminated list")
		}
		switch p.s[p.pos] {
		case ']':
			p.pos++
			return v, nil
		case ',':
			p.pos++
			continue
		}
		if err := p.count(); err != nil {
			return cfgValue{}, err
		}
		e, err := p.value(false)
		if err != nil {
			return cfgValue{}, err
		}
		v.list = append(v.list, e)
	}
}
