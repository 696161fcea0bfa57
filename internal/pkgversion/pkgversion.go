// Package pkgversion parses and compares package versions the way each
// package manager does: dpkg ([epoch:]upstream[-revision], split at the
// first colon and the LAST hyphen, compared with verrevcmp), rpm
// ([epoch:]version[-release], rpmvercmp with ~ and ^) and apk
// (version[-rN], with _alpha/_beta/_pre/_rc and _cvs/_svn/_git/_hg/_p
// suffixes).
//
// The inspect report does not use Parse for its application fields: it
// copies libguestfs 1.48, which splits deb and apk versions at the first
// hyphen (lib/inspect-apps.c, strchr), so that both backends agree.
package pkgversion

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Format names a package manager's version syntax, as inspect's
// package_format does.
type Format string

const (
	Deb Format = "deb"
	RPM Format = "rpm"
	APK Format = "apk"
)

// Version is a parsed version. Release is dpkg's debian_revision, rpm's
// release, or the N of apk's -rN.
type Version struct {
	Epoch   int
	Version string
	Release string
}

// ErrFormat is returned for a format other than deb, rpm and apk.
var ErrFormat = errors.New("pkgversion: unknown package format")

// Parse splits s by the rules of format f. On a syntax error it still
// returns the split the package manager would compare (dpkg and apk compare
// invalid versions too), with the error.
func Parse(f Format, s string) (Version, error) {
	switch f {
	case Deb:
		return parseDeb(s)
	case RPM:
		return parseRPM(s)
	case APK:
		return parseAPK(s)
	}
	return Version{}, fmt.Errorf("%w %q", ErrFormat, f)
}

// String writes v back in format f: [epoch:]version[-release] (epoch only
// when not 0), and version-rN for apk.
func (v Version) String(f Format) string {
	out := v.Version
	if v.Release != "" {
		if f == APK {
			out += "-r" + v.Release
		} else {
			out += "-" + v.Release
		}
	}
	if v.Epoch != 0 && f != APK {
		out = strconv.Itoa(v.Epoch) + ":" + out
	}
	return out
}

// Compare orders a and b by format f's own algorithm: negative when a is
// older, 0 when equal, positive when newer.
func Compare(f Format, a, b string) (int, error) {
	switch f {
	case Deb:
		va, _ := parseDeb(a)
		vb, _ := parseDeb(b)
		return compareDeb(va, vb), nil
	case RPM:
		va, _ := parseRPM(a)
		vb, _ := parseRPM(b)
		return compareRPM(va, vb), nil
	case APK:
		return compareAPK(a, b), nil
	}
	return 0, fmt.Errorf("%w %q", ErrFormat, f)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// --- dpkg (lib/dpkg/parsehelp.c parseversion, version.c verrevcmp) ---

func parseDeb(s string) (Version, error) {
	s = strings.Trim(s, " \t")
	var v Version
	if s == "" {
		return v, errors.New("version string is empty")
	}
	if strings.ContainsAny(s, " \t") {
		return v, errors.New("version string has embedded spaces")
	}
	rest := s
	var err error
	if e, r, ok := strings.Cut(s, ":"); ok {
		rest = r
		n, perr := strconv.ParseInt(e, 10, 32)
		switch {
		case e == "" || !allDigits(e):
			err = errors.New("epoch in version is not a number")
		case perr != nil:
			err = errors.New("epoch in version is too big")
		default:
			v.Epoch = int(n)
		}
		if rest == "" && err == nil {
			err = errors.New("nothing after colon in version number")
		}
	}
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		v.Version, v.Release = rest[:i], rest[i+1:]
	} else {
		v.Version = rest
	}
	if err != nil {
		return v, err
	}
	switch {
	case v.Version == "":
		return v, errors.New("empty upstream version")
	case !isDigit(v.Version[0]):
		return v, errors.New("version number does not start with digit")
	}
	for i := 0; i < len(v.Version); i++ {
		if c := v.Version[i]; !isDigit(c) && !isAlpha(c) && !strings.ContainsRune(".-+~:", rune(c)) {
			return v, fmt.Errorf("invalid character %q in version number", c)
		}
	}
	for i := 0; i < len(v.Release); i++ {
		if c := v.Release[i]; !isDigit(c) && !isAlpha(c) && !strings.ContainsRune(".+~", rune(c)) {
			return v, fmt.Errorf("invalid character %q in revision number", c)
		}
	}
	return v, nil
}

func compareDeb(a, b Version) int {
	if a.Epoch != b.Epoch {
		return sign(a.Epoch - b.Epoch)
	}
	if r := verrevcmp(a.Version, b.Version); r != 0 {
		return r
	}
	return verrevcmp(a.Release, b.Release)
}

// debOrder ranks a non-digit character: ~ before the end of the string,
// the end before letters, letters before everything else.
func debOrder(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	c := s[i]
	switch {
	case isDigit(c):
		return 0
	case isAlpha(c):
		return int(c)
	case c == '~':
		return -1
	}
	return int(c) + 256
}

// verrevcmp compares alternating non-digit and digit runs.
func verrevcmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := debOrder(a, i), debOrder(b, j)
			if ac != bc {
				return sign(ac - bc)
			}
			i++
			j++
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		firstDiff := 0
		for i < len(a) && isDigit(a[i]) && j < len(b) && isDigit(b[j]) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if firstDiff != 0 {
			return sign(firstDiff)
		}
	}
	return 0
}

// --- rpm (rpmds.c parseEVR, rpmvercmp.c) ---

// parseRPM splits an EVR: the epoch is the leading digits before a colon,
// the release follows the last hyphen.
func parseRPM(s string) (Version, error) {
	var v Version
	if s == "" {
		return v, errors.New("version string is empty")
	}
	d := 0
	for d < len(s) && isDigit(s[d]) {
		d++
	}
	rest := s
	var err error
	if d < len(s) && s[d] == ':' {
		rest = s[d+1:]
		if d > 0 {
			n, perr := strconv.ParseInt(s[:d], 10, 32)
			if perr != nil {
				err = errors.New("epoch in version is too big")
			}
			v.Epoch = int(n)
		}
	}
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		v.Version, v.Release = rest[:i], rest[i+1:]
	} else {
		v.Version = rest
	}
	if err == nil && v.Version == "" {
		err = errors.New("empty version")
	}
	return v, err
}

func compareRPM(a, b Version) int {
	if a.Epoch != b.Epoch {
		return sign(a.Epoch - b.Epoch)
	}
	if r := rpmvercmp(a.Version, b.Version); r != 0 {
		return r
	}
	return rpmvercmp(a.Release, b.Release)
}

// rpmvercmp compares alphanumeric segments: numbers numerically and newer
// than letters, ~ older than anything (even the end), ^ newer than the end
// but older than any other segment.
func rpmvercmp(a, b string) int {
	if a == b {
		return 0
	}
	sep := func(c byte) bool { return !isDigit(c) && !isAlpha(c) && c != '~' && c != '^' }
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && sep(a[i]) {
			i++
		}
		for j < len(b) && sep(b[j]) {
			j++
		}
		ca, cb := byte(0), byte(0)
		if i < len(a) {
			ca = a[i]
		}
		if j < len(b) {
			cb = b[j]
		}
		if ca == '~' || cb == '~' {
			if ca != '~' {
				return 1
			}
			if cb != '~' {
				return -1
			}
			i, j = i+1, j+1
			continue
		}
		if ca == '^' || cb == '^' {
			switch {
			case i >= len(a):
				return -1
			case j >= len(b):
				return 1
			case ca != '^':
				return 1
			case cb != '^':
				return -1
			}
			i, j = i+1, j+1
			continue
		}
		if i >= len(a) || j >= len(b) {
			break
		}
		class := isAlpha
		num := isDigit(ca)
		if num {
			class = isDigit
		}
		ei, ej := i, j
		for ei < len(a) && class(a[ei]) {
			ei++
		}
		for ej < len(b) && class(b[ej]) {
			ej++
		}
		if ej == j { // b's segment is of the other kind: numbers are newer
			if num {
				return 1
			}
			return -1
		}
		sa, sb := a[i:ei], b[j:ej]
		if num {
			sa, sb = strings.TrimLeft(sa, "0"), strings.TrimLeft(sb, "0")
			if len(sa) != len(sb) {
				return sign(len(sa) - len(sb))
			}
		}
		if r := strings.Compare(sa, sb); r != 0 {
			return r
		}
		i, j = ei, ej
	}
	switch {
	case i >= len(a) && j >= len(b):
		return 0
	case i >= len(a):
		return -1
	}
	return 1
}

// --- apk (apk-tools src/version.c) ---

func parseAPK(s string) (Version, error) {
	var v Version
	v.Version = s
	if i := strings.LastIndex(s, "-r"); i >= 0 && allDigits(s[i+2:]) {
		v.Version, v.Release = s[:i], s[i+2:]
	}
	if s == "" {
		return v, errors.New("version string is empty")
	}
	if !apkValid(s) {
		return v, fmt.Errorf("invalid apk version %q", s)
	}
	return v, nil
}

// apk token kinds, in the order a version may contain them:
// {digit}{.digit}...{letter}{_suffix{#}}...{-r#}.
const (
	tokInvalid = iota - 1
	tokDigitOrZero
	tokDigit
	tokLetter
	tokSuffix
	tokSuffixNo
	tokRevisionNo
	tokEnd
)

var (
	apkPreSuffixes  = []string{"alpha", "beta", "pre", "rc"}
	apkPostSuffixes = []string{"cvs", "svn", "git", "hg", "p"}
)

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }

// apkLexer walks one version string.
type apkLexer struct {
	s   string
	t   int    // kind of the next token
	big string // the digits of the last number, when it was apkBig
}

// A number of more than apkMaxDigits digits is returned as apkBig and
// compared by its digits: apk-tools overflows there, and an int would
// too, making the order depend on which side is compared first.
const (
	apkMaxDigits = 18
	apkBig       = 1 << 62
)

// advance reads the separator before the next token and sets its kind.
func (l *apkLexer) advance() {
	n := tokInvalid
	switch {
	case l.s == "" || l.s[0] == 0:
		n = tokEnd
	case (l.t == tokDigit || l.t == tokDigitOrZero) && isLower(l.s[0]):
		n = tokLetter
	case l.t == tokLetter && isDigit(l.s[0]):
		n = tokDigit
	case l.t == tokSuffix && isDigit(l.s[0]):
		n = tokSuffixNo
	default:
		switch l.s[0] {
		case '.':
			n = tokDigitOrZero
		case '_':
			n = tokSuffix
		case '-':
			if len(l.s) > 1 && l.s[1] == 'r' {
				n = tokRevisionNo
				l.s = l.s[1:]
			}
		}
		l.s = l.s[1:]
	}
	// Tokens only move forward, but for a new number after a letter or
	// suffix number, and a new suffix after a suffix number.
	if n < l.t && !(n == tokDigitOrZero && l.t == tokDigit) &&
		!(n == tokSuffix && l.t == tokSuffixNo) && !(n == tokDigit && l.t == tokLetter) {
		n = tokInvalid
	}
	l.t = n
}

// next returns the value of the current token and moves past it.
func (l *apkLexer) next() int {
	if l.s == "" {
		l.t = tokEnd
		return 0
	}
	v, i, nt := 0, 0, tokInvalid
	switch l.t {
	case tokDigitOrZero, tokDigit, tokSuffixNo, tokRevisionNo:
		if l.t == tokDigitOrZero && l.s[0] == '0' {
			// Leading zeros: a fraction, compared by their count first.
			for i < len(l.s) && l.s[i] == '0' {
				i++
			}
			v, nt = -i, tokDigit
			break
		}
		for i < len(l.s) && isDigit(l.s[i]) {
			i++
		}
		l.big = ""
		if d := strings.TrimLeft(l.s[:i], "0"); len(d) > apkMaxDigits {
			v, l.big = apkBig, d
			break
		}
		for _, c := range []byte(l.s[:i]) {
			v = v*10 + int(c-'0')
		}
	case tokLetter:
		v, i = int(l.s[0]), 1
	case tokSuffix:
		found := false
		for k, suf := range apkPreSuffixes {
			if strings.HasPrefix(l.s, suf) {
				v, i, found = k-len(apkPreSuffixes), len(suf), true
				break
			}
		}
		if !found {
			for k, suf := range apkPostSuffixes {
				if strings.HasPrefix(l.s, suf) {
					v, i, found = k, len(suf), true
					break
				}
			}
		}
		if !found {
			l.t = tokInvalid
			return -1
		}
	default:
		l.t = tokInvalid
		return -1
	}
	l.s = l.s[i:]
	switch {
	case l.s == "":
		l.t = tokEnd
	case nt != tokInvalid:
		l.t = nt
	default:
		l.advance()
	}
	return v
}

func apkValid(s string) bool {
	l := apkLexer{s: s, t: tokDigit}
	for l.t != tokEnd && l.t != tokInvalid {
		l.next()
	}
	return l.t == tokEnd
}

func compareAPK(a, b string) int {
	la, lb := apkLexer{s: a, t: tokDigit}, apkLexer{s: b, t: tokDigit}
	for la.t == lb.t && la.t != tokEnd && la.t != tokInvalid {
		av, bv := la.next(), lb.next()
		if av == apkBig && bv == apkBig {
			// Equal-length digit strings without leading zeros
			// compare as numbers.
			if c := cmp.Compare(len(la.big), len(lb.big)); c != 0 {
				return c
			}
			if c := strings.Compare(la.big, lb.big); c != 0 {
				return c
			}
			continue
		}
		if av != bv {
			return sign(av - bv)
		}
	}
	if la.t == lb.t {
		return 0
	}
	// Equal so far: the longer one is newer, unless what follows is a
	// pre-release suffix.
	if la.t == tokSuffix {
		if t := la; t.next() < 0 {
			return -1
		}
	}
	if lb.t == tokSuffix {
		if t := lb; t.next() < 0 {
			return 1
		}
	}
	switch {
	case la.t > lb.t:
		return -1
	case lb.t > la.t:
		return 1
	}
	return 0
}
