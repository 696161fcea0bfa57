package guestconf

import (
	"errors"
	"io/fs"
	"slices"
	"testing"
	"testing/fstest"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s), Mode: 0o644} }
func link(t string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(t), Mode: fs.ModeSymlink | 0o777}
}

func TestResolveAbsoluteAndRelativeLinks(t *testing.T) {
	fsys := fstest.MapFS{
		"lib":                         link("usr/lib"),
		"usr/lib/x/real.conf":         file("a"),
		"etc/abs.conf":                link("/lib/x/real.conf"),
		"etc/dotdot.conf":             link("../../../../usr/lib/x/real.conf"),
		"etc/loop1":                   link("/etc/loop2"),
		"etc/loop2":                   link("/etc/loop1"),
		"etc/dangling":                link("/nowhere"),
		"etc/sysctl.d/99-sysctl.conf": link("../sysctl.conf"),
		"etc/sysctl.conf":             file("x=1"),
	}
	for in, want := range map[string]string{
		"etc/abs.conf":                 "usr/lib/x/real.conf",
		"etc/dotdot.conf":              "usr/lib/x/real.conf",
		"lib/x/real.conf":              "usr/lib/x/real.conf",
		"/etc/sysctl.d/99-sysctl.conf": "etc/sysctl.conf",
	} {
		got, err := Resolve(fsys, in)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Resolve(fsys, "etc/loop1"); !errors.Is(err, ErrSymlinkLoop) {
		t.Errorf("loop: err = %v", err)
	}
	if _, err := Resolve(fsys, "etc/dangling"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dangling: err = %v", err)
	}
	if b, err := ReadFile(fsys, "/etc/abs.conf"); err != nil || string(b) != "a" {
		t.Errorf("ReadFile through abs link = %q, %v", b, err)
	}
}

func TestReadFileBounded(t *testing.T) {
	fsys := fstest.MapFS{"big": file("0123456789")}
	if _, err := ReadFileMax(fsys, "big", 5); err == nil {
		t.Fatal("no error for oversized file")
	}
}

func TestGlob(t *testing.T) {
	fsys := fstest.MapFS{
		"etc/ssh/sshd_config.d/b.conf":  file(""),
		"etc/ssh/sshd_config.d/a.conf":  file(""),
		"etc/ssh/sshd_config.d/.h.conf": file(""),
		"etc/ssh/sshd_config.d/c.conf~": file(""),
		"etc/ssh/other/x.conf":          file(""),
	}
	got, err := Glob(fsys, "/etc/ssh/sshd_config.d/*.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"etc/ssh/sshd_config.d/a.conf", "etc/ssh/sshd_config.d/b.conf"}
	if !slices.Equal(got, want) {
		t.Errorf("Glob = %v, want %v", got, want)
	}
	got, _ = Glob(fsys, "/etc/ssh/*/x.conf")
	if !slices.Equal(got, []string{"etc/ssh/other/x.conf"}) {
		t.Errorf("Glob dir meta = %v", got)
	}
	got, err = Glob(fsys, "/etc/none/*.conf")
	if err != nil || len(got) != 0 {
		t.Errorf("Glob no match = %v, %v", got, err)
	}
}

func TestFragmentsPrecedence(t *testing.T) {
	fsys := fstest.MapFS{
		"usr/lib/sysctl.d/10-a.conf": file(""),
		"usr/lib/sysctl.d/20-b.conf": file(""),
		"etc/sysctl.d/20-b.conf":     file(""),
		"run/sysctl.d/05-c.conf":     file(""),
		"etc/sysctl.d/10-a.conf":     link("/dev/null"),
		"etc/sysctl.d/README":        file(""),
	}
	got, err := Fragments(fsys, configDirs("sysctl.d"), ".conf")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"run/sysctl.d/05-c.conf", "etc/sysctl.d/20-b.conf"}
	if !slices.Equal(got, want) {
		t.Errorf("Fragments = %v, want %v", got, want)
	}
}

func TestFstab(t *testing.T) {
	fsys := fstest.MapFS{"etc/fstab": file(`# comment
UUID=1 / ext4 defaults 0 1
tmpfs /tmp tmpfs rw,nosuid,nodev 0 0
/dev/sdb1 /mnt/with\040space ext4 ro
/dev/sdc1 /tmp xfs nodev,nosuid,noexec 0 0
/swap none swap sw 0 0
`)}
	es, err := ParseFstab(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 5 {
		t.Fatalf("entries = %d", len(es))
	}
	if es[2].MountPoint != "/mnt/with space" || es[2].Dump != 0 {
		t.Errorf("octal: %+v", es[2])
	}
	m, ok := FindMount(es, "/tmp")
	if !ok || m.Line != 5 || !m.HasOption("noexec") || m.File != "/etc/fstab" {
		t.Errorf("FindMount /tmp = %+v", m)
	}
}

func TestParseINIAndKV(t *testing.T) {
	ini := ParseINI([]byte("[main]\ngpgcheck=1\n# c\n[repo]\nname = x \\\n  y\ngpgcheck = 0\n"), "/etc/dnf/dnf.conf")
	if len(ini) != 3 || ini[1].Value != "x y" || ini[2].Section != "repo" || ini[2].Line != 7 {
		t.Errorf("INI = %+v", ini)
	}
	kv := ParseEqualKV([]byte("SELINUX=enforcing\n; c\nminlen = 14\nsilent\nX=\"q\"\n"), "/f")
	if len(kv) != 4 || kv[1].Value != "14" || kv[2].Key != "silent" || kv[3].Value != "q" {
		t.Errorf("KV = %+v", kv)
	}
	fsys := fstest.MapFS{"etc/login.defs": file("PASS_MAX_DAYS 99999\n#PASS_MAX_DAYS 1\nUMASK\t\t022\nPASS_MAX_DAYS   60\n")}
	d, err := ParseLoginDefs(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := d.Get("PASS_MAX_DAYS"); v.Value != "60" || v.Line != 4 {
		t.Errorf("last definition wins: %+v", v)
	}
	if v, _ := d.Get("UMASK"); v.Value != "022" {
		t.Errorf("UMASK = %+v", v)
	}
}

func TestPAM(t *testing.T) {
	fsys := fstest.MapFS{
		"etc/pam.d/common-auth": file(`# comment
auth	[success=1 default=ignore]	pam_unix.so nullok # trailing
auth	requisite			pam_deny.so
-auth optional pam_systemd_home.so
auth required pam_faillock.so \
   preauth deny=4
auth required pam_x.so [arg with spaces\]x] other
`),
		"etc/pam.d/login":          file("@include common-auth\naccount include system-account\n"),
		"etc/pam.d/system-account": file("auth required pam_never.so\naccount required pam_unix.so\n"),
	}
	ls, err := ReadPAMStack(fsys, "login")
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 6 {
		t.Fatalf("lines = %d: %+v", len(ls), ls)
	}
	if ls[0].Control != "[success=1 default=ignore]" || ls[0].ModuleName() != "pam_unix" {
		t.Errorf("line0 = %+v", ls[0])
	}
	if _, ok := ls[0].Arg("nullok"); !ok || ls[0].Line != 2 || ls[0].File != "/etc/pam.d/common-auth" {
		t.Errorf("nullok arg: %+v", ls[0])
	}
	if !ls[2].Quiet || ls[2].Type != "auth" {
		t.Errorf("quiet: %+v", ls[2])
	}
	if v, ok := ls[3].Arg("deny"); !ok || v != "4" || ls[3].Line != 5 {
		t.Errorf("continuation: %+v", ls[3])
	}
	if ls[4].Args[0] != "[arg with spaces]x]" {
		t.Errorf("bracket arg: %q", ls[4].Args)
	}
	if ls[5].Type != "account" || ls[5].File != "/etc/pam.d/system-account" {
		t.Errorf("include of one type only: %+v", ls[5])
	}
}

func TestPackages(t *testing.T) {
	fsys := fstest.MapFS{
		"var/lib/dpkg/status": file(`Package: openssh-server
Status: install ok installed
Architecture: amd64
Version: 1:9.2p1-2
Description: x
 continued: not a field

Package: telnetd
Status: deinstall ok config-files
Version: 0.17

Package: login
Status: install ok installed
Version: 1:4.13
`),
		"var/lib/dpkg/info/login.list":       file("/.\n/usr\n/usr/bin/su\n/usr/bin/login\n"),
		"var/lib/dpkg/info/libc6:amd64.list": file("/usr/lib/x86_64-linux-gnu/libc.so.6\n"),
		"lib/apk/db/installed":               file("C:x\nP:busybox\nV:1.36\nA:x86_64\nF:bin\nR:busybox\nF:usr/bin\nR:su\n\nP:musl\nV:1\n"),
	}
	p, err := ReadDpkgStatus(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 2 || p[0].Name != "openssh-server" || p[0].Version != "1:9.2p1-2" || p[1].Name != "login" {
		t.Errorf("dpkg = %+v", p)
	}
	own, err := DpkgOwners(fsys, map[string]bool{"/usr/bin/su": true, "/usr/bin/x": true})
	if err != nil || !slices.Equal(own["/usr/bin/su"], []string{"login"}) || len(own) != 1 {
		t.Errorf("owners = %v, %v", own, err)
	}
	a, err := ReadApkInstalled(fsys)
	if err != nil || len(a) != 2 || a[0].Name != "busybox" || a[1].Name != "musl" {
		t.Errorf("apk = %+v, %v", a, err)
	}
	ao, err := ApkOwners(fsys, map[string]bool{"/usr/bin/su": true, "/bin/busybox": true})
	if err != nil || ao["/usr/bin/su"][0] != "busybox" || ao["/bin/busybox"][0] != "busybox" {
		t.Errorf("apk owners = %v, %v", ao, err)
	}
	if _, err := ReadDpkgStatus(fstest.MapFS{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing dpkg: %v", err)
	}
}
