package pkgversion

import (
	"errors"
	"strings"
	"testing"
)

// check runs "a op b" lines (op one of < = >) through Compare, both ways.
func check(t *testing.T, f Format, lines string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
		w := strings.Fields(l)
		if len(w) != 3 {
			t.Fatalf("bad case %q", l)
		}
		want := map[string]int{"<": -1, "=": 0, ">": 1}[w[1]]
		got, err := Compare(f, w[0], w[2])
		if err != nil {
			t.Fatal(err)
		}
		back, _ := Compare(f, w[2], w[0])
		if got != want || back != -want {
			t.Errorf("%s: %s %s %s: got %d (reverse %d)", f, w[0], w[1], w[2], got, back)
		}
	}
}

// From dpkg's scripts/t/Dpkg_Version.t data (dpkg --compare-versions).
func TestCompareDeb(t *testing.T) {
	check(t, Deb, `
1.0-1 < 2.0-2
2.2~rc-4 < 2.2-1
2.2-1 > 2.2~rc-4
1.0000-1 = 1.0-1
1 = 0:1
0 = 0:0-0
2:2.5 > 1:7.5
1:foo > foo
0:foo = foo
foo = foo
foo- = foo
foo- = foo-0
foo > fo
foo- < foo+
foo~1 < foo
foo~foo+Bar < foo~foo+bar
foo~~ < foo~
1~ < 1
12345+that-really-is-some-ver-0 < 12345+that-really-is-some-ver-10
foo-0 < foo-01
foo.bar > foobar
foo.bar > foo1bar
foo.bar > foo0bar
1foo-1 < foo-1
foo2.0 > foo2
foo2.0.0 < foo2.10.0
foo2.0 < foo2.0.0
foo2.0 < foo2.10
foo2.1 < foo2.10
1.09 = 1.9
1.0.8+nmu1 > 1.0.8
3.11 > 3.10+nmu1
0.9j-20080306-4 > 0.9i-20070324-2
1.2.0~b7-1 > 1.2.0~b6-1
1.011-1 > 1.06-2
0.0.9+dfsg1-1 > 0.0.8+dfsg1-3
4.6.99+svn6582-1 > 4.6.99+svn6496-1
53 > 52
0.9.9~pre122-1 > 0.9.9~pre111-1
2:2.3.2-2+lenny2 > 2:2.3.2-2
1:3.8.1-1 > 3.8.GA-1
1.0.1+gpl-1 > 1.0.1-2
1a < 1000a
`)
	// The revision is what follows the last hyphen: 1.2-3-4 is upstream
	// 1.2-3, revision 4, newer than upstream 1.2-3, revision 3.
	check(t, Deb, `
1.2-3-4 > 1.2-3-3
1.2-3-4 < 1.2-4-1
2.36-9+deb12u4 > 2.36-9+deb12u3
`)
}

// From dpkg's lib/dpkg/t/t-version.c (parseversion).
func TestParseDeb(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Version
	}{
		{"0", Version{0, "0", ""}},
		{"0:0", Version{0, "0", ""}},
		{"0:0-", Version{0, "0", ""}},
		{"0:0-0", Version{0, "0", "0"}},
		{"0:0.0-0.0", Version{0, "0.0", "0.0"}},
		{"1:0", Version{1, "0", ""}},
		{"5:1", Version{5, "1", ""}},
		{"0:0-0-0", Version{0, "0-0", "0"}},
		{"0:0-0-0-0", Version{0, "0-0-0", "0"}},
		{"0:0:0-0", Version{0, "0:0", "0"}},
		{"0:0:0:0-0", Version{0, "0:0:0", "0"}},
		{"0:0:0-0-0", Version{0, "0:0-0", "0"}},
		{"0:0-0:0-0", Version{0, "0-0:0", "0"}},
		{"0:09azAZ.-+~:-0", Version{0, "09azAZ.-+~:", "0"}},
		{"0:0-azAZ09.+~", Version{0, "0", "azAZ09.+~"}},
		{"  \t0:0-1", Version{0, "0", "1"}},
		{"0:0-1\t  ", Version{0, "0", "1"}},
		{"2:2.36-9+deb12u4", Version{2, "2.36", "9+deb12u4"}},
		{"1.2-3-4", Version{0, "1.2-3", "4"}},
	} {
		got, err := Parse(Deb, c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(deb, %q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "  ", "0:", "0:0 0-1", "-1:0-1", "999999999999999999999999:0-1",
		"a:0-0", "A:0-0", "-0", "0:-0", "0:abc3-0", "0:0!-0", "0:0_-0", "0:0-0:0", "0:0-0_", "10a:5.2", "5.2@3-2"} {
		if _, err := Parse(Deb, bad); err == nil {
			t.Errorf("Parse(deb, %q) accepted", bad)
		}
	}
}

// From rpm's tests/rpmvercmp.at (rpm.vercmp), with the caret cases.
func TestCompareRPM(t *testing.T) {
	check(t, RPM, `
1.0 = 1.0
1.0 < 2.0
2.0.1 = 2.0.1
2.0 < 2.0.1
2.0.1a = 2.0.1a
2.0.1a > 2.0.1
5.5p1 < 5.5p2
5.5p10 = 5.5p10
5.5p1 < 5.5p10
10xyz < 10.1xyz
xyz10 = xyz10
xyz10 < xyz10.1
xyz.4 = xyz.4
xyz.4 < 8
xyz.4 < 2
5.5p2 < 5.6p1
5.6p1 < 6.5p1
6.0.rc1 > 6.0
10b2 > 10a1
10a2 < 10b2
1.0aa = 1.0aa
1.0a < 1.0aa
10.0001 = 10.0001
10.0001 = 10.1
10.0001 < 10.0039
4.999.9 < 5.0
20101121 = 20101121
20101121 < 20101122
2_0 = 2_0
2.0 = 2_0
a = a
a+ = a+
a+ = a_
+a = +a
+a = _a
+_ = +_
_+ = +_
+ = _
1.0~rc1 = 1.0~rc1
1.0~rc1 < 1.0
1.0~rc1 < 1.0~rc2
1.0~rc1~git123 = 1.0~rc1~git123
1.0~rc1~git123 < 1.0~rc1
1.0^ = 1.0^
1.0^ > 1.0
1.0^git1 = 1.0^git1
1.0^git1 > 1.0
1.0^git1 < 1.0^git2
1.0^git1 < 1.01
1.0^20160101 = 1.0^20160101
1.0^20160101 < 1.0.1
1.0^20160101^git1 = 1.0^20160101^git1
1.0^20160102 > 1.0^20160101^git1
1.0~rc1^git1 = 1.0~rc1^git1
1.0~rc1^git1 > 1.0~rc1
1.0^git1~pre = 1.0^git1~pre
1.0^git1 > 1.0^git1~pre
`)
	// EVR: epoch first, then version, then release (split at the last hyphen).
	check(t, RPM, `
1:1.0-1 > 2.0-1
0:1.0-1 = 1.0-1
1.0-1.el9 < 1.0-2.el9
1.0-1.el9_3 > 1.0-1.el9
`)
}

func TestParseRPM(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Version
	}{
		{"1.0", Version{0, "1.0", ""}},
		{"2:8.2.2637-20.el9_1", Version{2, "8.2.2637", "20.el9_1"}},
		{"1.0-rc1-3", Version{0, "1.0-rc1", "3"}},
		{"4.16.1.3-29.el9", Version{0, "4.16.1.3", "29.el9"}},
	} {
		got, err := Parse(RPM, c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(rpm, %q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if s := got.String(RPM); s != c.in {
			t.Errorf("String(rpm) = %q, want %q", s, c.in)
		}
	}
}

// From apk-tools' test/version.data (apk version -t).
func TestCompareAPK(t *testing.T) {
	check(t, APK, `
2.34 > 0.1.0_alpha
23_foo > 4_beta
1.0 < 1.0bc
0.1.0_alpha = 0.1.0_alpha
0.1.0_alpha < 0.1.3_alpha
0.1.0_alpha2 > 0.1.0_alpha
0.1.0_alpha < 2.2.39-r1
2.2.39-r1 > 1.0.4-r3
1.0.4-r3 < 1.0.4-r4
1.0.4-r4 < 1.6
1.1 > 1.1_alpha1
1.2.1 > 1.2
1.2 < 1.3_alpha
1.3_alpha < 1.3_alpha2
0.7.0 < 0.8_beta1
0.8_beta4 < 4.8-r1
3.10.18-r1 > 2.3.0b-r1
2.3.0b-r1 < 2.3.0b-r2
0.12.3 > 0.12
0.12 < 0.13_beta1
1.06-r6 < 006
006 > 1.0.0
1.2.2-r1 > 1.2.2
3.1_p16 < 3.1_p17
20050718-r1 < 20050718-r2
20060720 > 3.0.20060720
2.5.1-r8 < 2.5.1a-r1
20040401 > 2.0.0_rc3-r1
3.0.0-r2 < 021109-r3
021109-r3 < 20060512
0.9.16-r1 < 3.9_pre20060124
1.1.7 < 6b-r7
0.10.0-r1 > 0.10.0
0.10.0 < 0.10.1_rc1
1.07-r1 < 1.07.5
1.07.5 > 1.07
0.20070118 < 0.20070207_rc1
1.3.5-r10 > 1.3.5-r8
4.5_p1-r1 > 4.5_p1
1.7 < 1.7b
1.8.5 < 1.8.5_p2
2.9.11_pre20051101-r3 > 2.9.11_pre20051101
2.12r-r4 < 2.12r-r5
0.59s-r11 < 0.65
1.3-r0 < 1.3.1-r0
1.3_pre1-r1 < 1.3.2
1.0_p10-r0 > 1.0_p9-r0
0.1.0_alpha_pre2 < 0.1.0_alpha
1.0.0_pre20191002222144-r0 < 1.0.0_pre20210530193627-r0
`)
	// Past 18 digits, compared by the digits (fuzzing found 0 and a
	// 63-digit number each "older" than the other).
	check(t, APK, `
0 < 200000000000000000000000000000000000000000000000000000000000000
1.99999999999999999999 < 1.100000000000000000000
1.0200000000000000000000 < 1.1
5_p123456789012345678901 > 5_p123456789012345678900
5_p000123456789012345678901 = 5_p123456789012345678901
`)
}

func TestParseAPK(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Version
	}{
		{"1.36.1-r15", Version{0, "1.36.1", "15"}},
		{"2.12r-r4", Version{0, "2.12r", "4"}},
		{"3.1_p16", Version{0, "3.1_p16", ""}},
		{"6.6.31-r0", Version{0, "6.6.31", "0"}},
	} {
		got, err := Parse(APK, c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(apk, %q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if s := got.String(APK); s != c.in {
			t.Errorf("String(apk) = %q, want %q", s, c.in)
		}
	}
	for _, bad := range []string{"", "1.0-", "1.0-x1", "1.0_foo", "1.0-r1a"} {
		if _, err := Parse(APK, bad); err == nil {
			t.Errorf("Parse(apk, %q) accepted", bad)
		}
	}
}

func TestUnknownFormat(t *testing.T) {
	if _, err := Compare("pacman", "1", "2"); !errors.Is(err, ErrFormat) {
		t.Errorf("Compare(pacman): %v", err)
	}
	if _, err := Parse("", "1"); !errors.Is(err, ErrFormat) {
		t.Errorf("Parse(\"\"): %v", err)
	}
}

func FuzzCompare(f *testing.F) {
	for _, s := range [][2]string{{"1.0-1", "1.0~rc1-1"}, {"1:2.3-4-5", "2.3-4"}, {"1.0^git1~pre", "1.0~rc1^"},
		{"0.1.0_alpha_pre2-r1", "0.1.0_alpha"}, {"1.0bc", "1.0b"}, {"", "-"}, {"00.01", "0.1"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, fm := range []Format{Deb, RPM, APK} {
			Parse(fm, a)
			ab, _ := Compare(fm, a, b)
			ba, _ := Compare(fm, b, a)
			if ab != -ba || ab < -1 || ab > 1 {
				t.Fatalf("%s: Compare(%q, %q) = %d, reverse %d", fm, a, b, ab, ba)
			}
			if aa, _ := Compare(fm, a, a); aa != 0 {
				t.Fatalf("%s: Compare(%q, itself) = %d", fm, a, aa)
			}
		}
	})
}
