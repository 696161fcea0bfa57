package guestconf

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestGrubWords(t *testing.T) {
	vars := map[string]string{"a": "A", "kernelopts": "root=/dev/sda1 ro"}
	for _, c := range []struct {
		in   string
		vars map[string]string
		want string
	}{
		{`menuentry 'It'\''s "x"' --id 'i d' {`, nil, `menuentry|It's "x"|--id|i d|{`},
		{`linux /vmlinuz $a ${a}b "$a c" '$a' $unknown # comment`, vars, `linux|/vmlinuz|A|Ab|A c|$a`},
		{`set default="${saved_entry}"`, vars, `set|default=`},
		{`options $kernelopts`, vars, `options|root=/dev/sda1 ro`},
		{`  # only a comment`, vars, ``},
		{`echo "unterminated`, vars, `echo|unterminated`},
		{`x $`, vars, `x|$`},
		{`x ${unterminated`, vars, `x|${unterminated`},
	} {
		if got := strings.Join(GrubWords(c.in, c.vars), "|"); got != c.want {
			t.Errorf("GrubWords(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

const testGrubCfg = `# generated
set superusers="root"
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
else
   set default="${saved_entry}"
fi
menuentry 'Debian' --class debian $menuentry_id_option 'simple' {
	linux	/boot/vmlinuz-6.1 root=UUID=abc ro $extra
	linux	/ignored second
}
submenu 'Advanced' $menuentry_id_option 'adv' {
	menuentry 'Debian, 6.1 (recovery)' --id rec {
		linux /boot/vmlinuz-6.1 ro single
	}
}
password_pbkdf2 root grub.pbkdf2.sha512.x
blscfg
`

func TestParseGrubCommands(t *testing.T) {
	cmds := ParseGrubCommands([]byte(testGrubCfg), "/boot/grub/grub.cfg")
	if len(cmds) != 17 {
		t.Fatalf("%d commands, want 17 (comment left out): %+v", len(cmds), cmds)
	}
	c := cmds[0]
	if strings.Join(c.Words, "|") != "set|superusers=root" || c.Text != `set superusers="root"` || c.Source.String() != "/boot/grub/grub.cfg:2" {
		t.Errorf("first command = %+v", c)
	}
	lx := cmds[7]
	if got := strings.Join(lx.Words, "|"); got != "linux|/boot/vmlinuz-6.1|root=UUID=abc|ro|$extra" || lx.Line != 9 {
		t.Errorf("linux command = %q line %d", got, lx.Line)
	}
	if got := strings.Join(lx.Expand(map[string]string{"extra": "quiet"}), " "); got != "linux /boot/vmlinuz-6.1 root=UUID=abc ro quiet" {
		t.Errorf("expanded = %q", got)
	}
	if _, err := ReadGrubCommands(fstest.MapFS{}, "boot/grub/grub.cfg"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing grub.cfg: %v", err)
	}
	got, err := ReadGrubCommands(fstest.MapFS{"boot/grub/grub.cfg": file(testGrubCfg)}, "boot/grub/grub.cfg")
	if err != nil || len(got) != 17 || got[16].Words[0] != "blscfg" || got[16].File != "/boot/grub/grub.cfg" {
		t.Errorf("ReadGrubCommands = %d commands, %v", len(got), err)
	}
}

func TestParseGrubMenu(t *testing.T) {
	vars := map[string]string{"saved_entry": "adv>rec", "extra": "quiet"}
	bls := &BootEntry{ID: "bls-1", Kernel: "/vmlinuz-bls"}
	calls := 0
	entries := ParseGrubMenu(ParseGrubCommands([]byte(testGrubCfg), "/boot/grub/grub.cfg"), vars, func() []*BootEntry {
		calls++
		return []*BootEntry{bls}
	})
	if calls != 1 || len(entries) != 3 || entries[2] != bls {
		t.Fatalf("entries = %+v, blscfg calls %d", entries, calls)
	}
	simple := entries[0]
	if simple.Title != "Debian" || simple.ID != "simple" || simple.Kernel != "/boot/vmlinuz-6.1" ||
		simple.Args != "root=UUID=abc ro quiet" || simple.Source.String() != "/boot/grub/grub.cfg:8" {
		t.Errorf("first entry = %+v (the first linux line wins, variables expanded)", simple)
	}
	adv := entries[1]
	if !adv.Submenu || adv.ID != "adv" || len(adv.Children) != 1 || adv.Children[0].ID != "rec" {
		t.Fatalf("submenu = %+v", adv)
	}
	// The else branch leaves default=${saved_entry}, expanded from grubenv.
	if vars["default"] != "adv>rec" {
		t.Errorf("default = %q", vars["default"])
	}
	if d := GrubDefault(entries, vars["default"]); d != adv.Children[0] {
		t.Errorf("GrubDefault(adv>rec) = %+v", d)
	}
	for spec, want := range map[string]*BootEntry{
		"":          simple,
		"0":         simple,
		"2":         bls,
		"adv":       adv.Children[0], // a submenu boots its first entry
		"Debian":    simple,
		"1>0":       adv.Children[0],
		"nonsense":  simple,
		"1>nothing": simple, // a path that does not resolve falls back
	} {
		if got := GrubDefault(entries, spec); got != want {
			t.Errorf("GrubDefault(%q) = %+v, want %+v", spec, got, want)
		}
	}
}

func TestParseGrubMenuBounds(t *testing.T) {
	var b strings.Builder
	for i := 0; i < MaxBootEntries+10; i++ {
		b.WriteString("menuentry x {\n\tlinux /k\n}\n")
	}
	b.WriteString("set default=7\n")
	vars := map[string]string{}
	entries := ParseGrubMenu(ParseGrubCommands([]byte(b.String()), "/g"), vars, nil)
	if len(entries) != MaxBootEntries || vars["default"] != "7" {
		t.Errorf("%d entries, default %q: want %d and the set after them read", len(entries), vars["default"], MaxBootEntries)
	}
	// Blocks nested deeper than tracked still close in step.
	cfg := strings.Repeat("function f {\n", MaxGrubDepth+5) + strings.Repeat("}\n", MaxGrubDepth+5) + "menuentry top {\n}\n"
	if e := ParseGrubMenu(ParseGrubCommands([]byte(cfg), "/g"), map[string]string{}, nil); len(e) != 1 || e[0].Title != "top" {
		t.Errorf("after deep nesting: %+v", e)
	}
}

func TestParseGrubEnv(t *testing.T) {
	env := ParseGrubEnv([]byte("# GRUB Environment Block\nsaved_entry=a>b\nkernelopts=root=/dev/vda1 ro\n#x=y\n####\n"))
	want := map[string]string{"saved_entry": "a>b", "kernelopts": "root=/dev/vda1 ro"}
	if len(env) != len(want) || env["saved_entry"] != want["saved_entry"] || env["kernelopts"] != want["kernelopts"] {
		t.Errorf("env = %v, want %v", env, want)
	}
	if env := ParseGrubEnv(nil); env == nil || len(env) != 0 {
		t.Errorf("empty grubenv = %#v, want an empty map", env)
	}
}

func TestParseBLS(t *testing.T) {
	data := []byte("# comment\ntitle  Red Hat Enterprise Linux 9.4\nversion 5.14.0-427.el9\r\nlinux\t/vmlinuz-5.14.0-427.el9\noptions root=/dev/vda1  ro\noptions $tuned_params\noptions\n")
	kvs := ParseBLS(data, "/boot/loader/entries/x.conf")
	var got []string
	for _, kv := range kvs {
		got = append(got, kv.Key+"="+kv.Value+"@"+kv.Source.String())
	}
	want := []string{
		"title=Red Hat Enterprise Linux 9.4@/boot/loader/entries/x.conf:2",
		"version=5.14.0-427.el9@/boot/loader/entries/x.conf:3",
		"linux=/vmlinuz-5.14.0-427.el9@/boot/loader/entries/x.conf:4",
		"options=root=/dev/vda1  ro@/boot/loader/entries/x.conf:5",
		"options=$tuned_params@/boot/loader/entries/x.conf:6",
		"options=@/boot/loader/entries/x.conf:7",
	}
	if !slices.Equal(got, want) {
		t.Errorf("ParseBLS =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	e := BLSEntry("boot/loader/entries/x.conf", kvs, map[string]string{"tuned_params": "nohz=on"})
	if e.ID != "x" || e.Title != "Red Hat Enterprise Linux 9.4" || e.Version != "5.14.0-427.el9" || e.Kernel != "/vmlinuz-5.14.0-427.el9" ||
		e.Args != "root=/dev/vda1 ro nohz=on" || e.Source.String() != "/boot/loader/entries/x.conf" {
		t.Errorf("BLSEntry with vars = %+v", e)
	}
	if e := BLSEntry("efi/loader/entries/x.conf", kvs, nil); e.Args != "root=/dev/vda1 ro $tuned_params" || e.Source.File != "/efi/loader/entries/x.conf" {
		t.Errorf("BLSEntry without vars = %+v", e)
	}
}
