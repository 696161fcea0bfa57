package guestconf

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseAccounts(t *testing.T) {
	data := "root:x:0:0:root:/root:/bin/bash\r\n" +
		"# comment\n" +
		"\n" +
		"   \n" +
		"+nis::::::\n" +
		"-blocked::::::\n" +
		"  indented:x:1000:1000::/home/i:/bin/sh\n" +
		"  # indented comment\n" +
		"short:x\n" +
		"gecos:x:1001:1001:A B , C:/home/g:/bin/sh  \n"
	got := ParseAccounts([]byte(data), "/etc/passwd")
	want := []struct {
		fields string
		line   int
	}{
		{"root|x|0|0|root|/root|/bin/bash", 1},
		{"indented|x|1000|1000||/home/i|/bin/sh", 7},
		{"short|x", 9},
		{"gecos|x|1001|1001|A B , C|/home/g|/bin/sh  ", 10}, // fields are not trimmed
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if f := strings.Join(got[i].Fields, "|"); f != w.fields || got[i].Line != w.line || got[i].File != "/etc/passwd" {
			t.Errorf("entry %d = %q at %s, want %q at line %d", i, f, got[i].Source, w.fields, w.line)
		}
	}
	if ParseAccounts(nil, "/etc/group") != nil {
		t.Error("empty file gave entries")
	}
}

func TestReadAccounts(t *testing.T) {
	fsys := fstest.MapFS{
		"etc/group":       file("root:x:0:\nsudo:x:27:alice,bob\n"),
		"etc/shadow":      link("/etc/shadow.real"),
		"etc/shadow.real": file("alice:$6$h:19000:0:99999:7:::\n"),
	}
	g, err := ReadAccounts(fsys, "etc/group")
	if err != nil || len(g) != 2 || !slices.Equal(g[1].Fields, []string{"sudo", "x", "27", "alice,bob"}) || g[1].Source.String() != "/etc/group:2" {
		t.Errorf("group = %+v, %v", g, err)
	}
	s, err := ReadAccounts(fsys, "etc/shadow")
	if err != nil || len(s) != 1 || s[0].Fields[0] != "alice" || s[0].File != "/etc/shadow" {
		t.Errorf("shadow through a symlink = %+v, %v", s, err)
	}
	if _, err := ReadAccounts(fsys, "etc/passwd"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing passwd: %v", err)
	}
}
