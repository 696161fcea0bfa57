package winreg

import (
	"errors"
	"io/fs"
	"testing"
	"testing/fstest"

	"guestkit.io/batch/internal/winreg/winregtest"
)

func dir() *fstest.MapFile          { return &fstest.MapFile{Mode: fs.ModeDir | 0o755} }
func data(b []byte) *fstest.MapFile { return &fstest.MapFile{Data: b, Mode: 0o644} }

func TestSystemRoot(t *testing.T) {
	cases := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"Windows", fstest.MapFS{
			"Windows/System32/config":  dir(),
			"Windows/System32/cmd.exe": data([]byte("MZ")),
		}, "/Windows"},
		{"upper case WINNT", fstest.MapFS{
			"WINNT/SYSTEM32/CONFIG":  dir(),
			"WINNT/SYSTEM32/CMD.EXE": data([]byte("MZ")),
		}, "/WINNT"},
		// libguestfs's order: /windows before /winnt.
		{"both", fstest.MapFS{
			"winnt/system32/config":    dir(),
			"winnt/system32/cmd.exe":   data(nil),
			"Windows/System32/config":  dir(),
			"Windows/System32/cmd.exe": data(nil),
		}, "/Windows"},
		{"boot.ini", fstest.MapFS{
			"boot.ini": data([]byte("[boot loader]\r\ntimeout=30\r\n[operating systems]\r\n" +
				"multi(0)disk(0)rdisk(0)partition(1)\\NOPE=\"Gone\"\r\n" +
				"multi(0)disk(0)rdisk(0)partition(1)\\OS\\XP=\"Windows XP\" /fastdetect\r\n")),
			"os/xp/system32/config":  dir(),
			"os/xp/system32/cmd.exe": data(nil),
		}, "/os/xp"},
	}
	for _, c := range cases {
		got, err := SystemRoot(c.fsys)
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	// A data disk with Program Files, or a Windows directory without
	// cmd.exe, is not a system root.
	for _, fsys := range []fstest.MapFS{
		{"Program Files/App/app.exe": data(nil)},
		{"Windows/System32/config": dir()},
	} {
		if got, err := SystemRoot(fsys); !errors.Is(err, ErrNotFound) {
			t.Errorf("no root: %q, %v", got, err)
		}
	}
}

func TestOpenHiveAndControlSet(t *testing.T) {
	system := winregtest.Hive(t, `HKEY_LOCAL_MACHINE\SYSTEM`, `
[HKEY_LOCAL_MACHINE\SYSTEM\Select]
"Current"=dword:00000002
"Default"=dword:00000002
"LastKnownGood"=dword:00000001

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\Tcpip\Parameters]
"Hostname"="OLD"

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet002\Services\Tcpip\Parameters]
"Hostname"="WIN-SRV22"
`)
	fsys := fstest.MapFS{
		"WINDOWS/system32/CONFIG/system": data(system),
		"WINDOWS/system32/cmd.exe":       data(nil),
	}
	root, err := SystemRoot(fsys)
	if err != nil {
		t.Fatal(err)
	}
	p, err := HivePath(fsys, root, System)
	if err != nil || p != "WINDOWS/system32/CONFIG/system" {
		t.Fatalf("HivePath %q %v", p, err)
	}
	h, err := OpenHive(fsys, root, System)
	if err != nil {
		t.Fatal(err)
	}
	ccs, err := CurrentControlSet(h)
	if err != nil || ccs != "ControlSet002" {
		t.Fatalf("CurrentControlSet %q %v", ccs, err)
	}
	k, err := ControlSet(h)
	if err != nil {
		t.Fatal(err)
	}
	params, err := k.Key(`Services\Tcpip\Parameters`)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := params.String("Hostname"); s != "WIN-SRV22" {
		t.Errorf("hostname %q", s)
	}
	if _, err := OpenHive(fsys, root, SAM); !IsMissing(err) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing SAM: %v", err)
	}
	empty, _ := Parse("SYSTEM", winregtest.Empty())
	if _, err := CurrentControlSet(empty); !IsMissing(err) {
		t.Errorf("no Select: %v", err)
	}
}

func TestResolvePath(t *testing.T) {
	fsys := fstest.MapFS{"A/b/C": data(nil)}
	if p, err := ResolvePath(fsys, "a/B/c"); err != nil || p != "A/b/C" {
		t.Errorf("%q %v", p, err)
	}
	if _, err := ResolvePath(fsys, "a/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	if _, err := ResolvePath(fsys, "../../etc"); err == nil {
		t.Errorf("escape resolved")
	}
}
