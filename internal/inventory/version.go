package inventory

import (
	"fmt"
	"strings"

	"guestkit.io/batch/internal/pkgversion"
)

// Range is a version range: conditions that must all hold.
type Range struct {
	text  string
	conds []condition
}

type condition struct {
	op      string // =, !=, <, <=, >, >=
	version string
}

// maxRange bounds a range's text; a range is typed by a person.
const maxRange = 1024

// ParseRange reads comma-separated conditions, each an operator (=, ==,
// !=, <, <=, >, >=; = when absent) and a version: ">=3.0.0,<3.0.15". The
// empty string is the range of every version.
func ParseRange(s string) (Range, error) {
	r := Range{text: strings.TrimSpace(s)}
	if r.text == "" {
		return r, nil
	}
	if len(s) > maxRange {
		return r, fmt.Errorf("version range: %d bytes, over %d", len(s), maxRange)
	}
	for part := range strings.SplitSeq(r.text, ",") {
		part = strings.TrimSpace(part)
		op := "="
		for _, o := range []string{">=", "<=", "!=", "==", ">", "<", "="} {
			if rest, ok := strings.CutPrefix(part, o); ok {
				op, part = o, strings.TrimSpace(rest)
				break
			}
		}
		if op == "==" {
			op = "="
		}
		switch {
		case part == "":
			return r, fmt.Errorf("version range %q: a condition without a version", s)
		case strings.ContainsAny(part, " \t<>=!"):
			return r, fmt.Errorf("version range %q: %q is not one operator and a version", s, part)
		}
		r.conds = append(r.conds, condition{op: op, version: part})
	}
	return r, nil
}

// String is the range as given, trimmed.
func (r Range) String() string { return r.text }

// Any says whether r holds every version.
func (r Range) Any() bool { return len(r.conds) == 0 }

// Contains says whether version v of package format f is in r, compared
// as f's package manager compares versions. A format pkgversion does not
// know is an error (pkgversion.ErrFormat): it cannot be compared.
func (r Range) Contains(f pkgversion.Format, v string) (bool, error) {
	for _, c := range r.conds {
		n, err := pkgversion.Compare(f, v, c.version)
		if err != nil {
			return false, err
		}
		var ok bool
		switch c.op {
		case "=":
			ok = n == 0
		case "!=":
			ok = n != 0
		case "<":
			ok = n < 0
		case "<=":
			ok = n <= 0
		case ">":
			ok = n > 0
		case ">=":
			ok = n >= 0
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

// invalidBounds lists the bounds of r that are not valid versions of
// format f (the package manager still compares them, by its own rules).
func (r Range) invalidBounds(f pkgversion.Format) []string {
	var bad []string
	for _, c := range r.conds {
		if _, err := pkgversion.Parse(f, c.version); err != nil {
			bad = append(bad, fmt.Sprintf("%s (%v)", c.version, err))
		}
	}
	return bad
}
