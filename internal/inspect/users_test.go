package inspect

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"guestkit.io/batch/internal/guest"
)

const (
	testPasswd = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
postgres:x:105:110:PostgreSQL:/var/lib/postgresql:/bin/bash
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
bob:x:1001:1001::/home/bob:/bin/zsh
carol:x:1002:1002::/home/carol:/bin/bash
dave:x:1003:100::/home/dave:/bin/bash
eve:x:1004:1004::/home/eve:
ghost:x:1005:1005::/home/ghost:/bin/bash
legacy::1006:1006::/home/legacy:/bin/sh
svc:x:1007:1007::/srv:/usr/local/sbin/nologin
`
	testShadow = `root:$6$salt$hash:19000:0:99999:7:::
daemon:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
postgres:!:19000::::::
alice:$y$j9T$abc$def:19000:0:99999:7:::
bob:!$6$salt$hash:19000:0:99999:7:::
carol::19000:0:99999:7:::
dave:!!:19000::::::
eve:$6$x$y:19000::::::
legacy:$6$never$used:19000::::::
alice:!:19000::::::
`
	testGroup = `root:x:0:
daemon:x:1:
users:x:100:dave
sudo:x:27:alice,bob
docker:x:999:bob, alice,,alice
alice:x:1000:
bob:x:1001:
carol:x:1002:
eve:x:1004:
nogroup:x:65534:
`
)

func usersTree() fstest.MapFS {
	return fstest.MapFS{
		"etc/passwd": file(testPasswd),
		"etc/shadow": file(testShadow),
		"etc/group":  file(testGroup),
		// dave has a key: his password is locked, he still logs in.
		"home/dave/.ssh/authorized_keys":      file("ssh-ed25519 AAAA dave\n"),
		"home/ghost/.ssh/authorized_keys":     file(""), // empty: no key
		"var/lib/postgresql/.ssh/known_hosts": file("x"),
		"etc/ssh/sshd_config":                 file("UsePAM yes\n"),
	}
}

func TestReadUsers(t *testing.T) {
	r := newReader(usersTree())
	users, groups := readUsers(r)
	noProblems(t, r)
	type want struct {
		uid, gid int64
		home     string
		shell    string
		system   bool
		login    bool
		password string
		groups   []string
	}
	wants := map[string]want{
		"root":     {0, 0, "/root", "/bin/bash", false, true, "set", []string{"root"}},
		"daemon":   {1, 1, "/usr/sbin", "/usr/sbin/nologin", true, false, "locked", []string{"daemon"}},
		"nobody":   {65534, 65534, "/nonexistent", "/usr/sbin/nologin", true, false, "locked", []string{"nogroup"}},
		"postgres": {105, 110, "/var/lib/postgresql", "/bin/bash", true, false, "locked", nil}, // gid 110 has no group entry
		"alice":    {1000, 1000, "/home/alice", "/bin/bash", false, true, "set", []string{"alice", "docker", "sudo"}},
		"bob":      {1001, 1001, "/home/bob", "/bin/zsh", false, false, "locked", []string{"bob", "docker", "sudo"}},
		"carol":    {1002, 1002, "/home/carol", "/bin/bash", false, true, "empty", []string{"carol"}},
		"dave":     {1003, 100, "/home/dave", "/bin/bash", false, true, "locked", []string{"users"}},
		"eve":      {1004, 1004, "/home/eve", "", false, true, "set", []string{"eve"}}, // empty shell is /bin/sh
		"ghost":    {1005, 1005, "/home/ghost", "/bin/bash", false, false, "none", nil},
		"legacy":   {1006, 1006, "/home/legacy", "/bin/sh", false, true, "empty", nil},
		"svc":      {1007, 1007, "/srv", "/usr/local/sbin/nologin", false, false, "none", nil},
	}
	if len(users) != len(wants) {
		t.Fatalf("%d users, want %d: %s", len(users), len(wants), asJSON(users))
	}
	for _, u := range users {
		w, ok := wants[u.Name]
		if !ok {
			t.Errorf("unexpected user %q", u.Name)
			continue
		}
		got := want{u.UID, u.GID, u.Home, u.Shell, u.System, u.CanLogin, u.Password, u.Groups}
		if got.uid != w.uid || got.gid != w.gid || got.home != w.home || got.shell != w.shell ||
			got.system != w.system || got.login != w.login || got.password != w.password || !slices.Equal(got.groups, w.groups) {
			t.Errorf("%s = %+v\nwant %+v", u.Name, got, w)
		}
	}
	out := asJSON(users)
	for _, secret := range []string{"$6$", "$y$", "hash"} {
		if strings.Contains(out, secret) {
			t.Errorf("report leaks %q: %s", secret, out)
		}
	}
	g := map[string][]string{}
	for _, gr := range groups {
		g[gr.Name] = gr.Members
	}
	if len(groups) != 10 || !slices.Equal(g["docker"], []string{"bob", "alice"}) || !slices.Equal(g["sudo"], []string{"alice", "bob"}) {
		t.Errorf("groups = %s", asJSON(groups))
	}
}

func TestReadUsersLoginDefsAndSSH(t *testing.T) {
	base := fstest.MapFS{
		"etc/passwd":                   file("root:x:0:0::/root:/bin/bash\nsvc:x:600:600::/srv/svc:/bin/sh\nop:x:800:800::/home/op:/bin/bash\nbig:x:70000:70000::/home/big:/bin/bash\n"),
		"etc/shadow":                   file("root:!:1::::::\nsvc:!:1::::::\nop:!:1::::::\nbig:!:1::::::\n"),
		"root/.ssh/authorized_keys":    file("ssh-rsa AAAA root\n"),
		"home/op/.ssh/authorized_keys": file("ssh-rsa AAAA op\n"),
		"etc/ssh/keys/svc":             file("ssh-rsa AAAA svc\n"),
	}
	cases := []struct {
		name   string
		files  fstest.MapFS
		system map[string]bool
		login  map[string]bool
	}{
		{
			name:   "defaults; root key usable (prohibit-password)",
			files:  fstest.MapFS{"etc/ssh/sshd_config": file("")},
			system: map[string]bool{"root": false, "svc": true, "op": true, "big": true},
			login:  map[string]bool{"root": true, "svc": false, "op": true, "big": false},
		},
		{
			name: "login.defs last value wins; UID_MAX",
			files: fstest.MapFS{
				"etc/login.defs":      file("UID_MIN 1000\nUID_MIN  500\nUID_MAX\t80000\n"),
				"etc/ssh/sshd_config": file(""),
			},
			system: map[string]bool{"root": false, "svc": false, "op": false, "big": false},
			login:  map[string]bool{"root": true, "svc": false, "op": true, "big": false},
		},
		{
			name:   "SUSE vendor login.defs",
			files:  fstest.MapFS{"usr/etc/login.defs": file("UID_MIN 700\n")},
			system: map[string]bool{"svc": true, "op": false},
			login:  map[string]bool{"root": false, "op": false}, // no sshd: keys do not count
		},
		{
			name: "PermitRootLogin no and AuthorizedKeysFile with tokens; drop-in wins",
			files: fstest.MapFS{
				"etc/ssh/sshd_config":          file("Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\n"),
				"etc/ssh/sshd_config.d/a.conf": file("PermitRootLogin no\nAuthorizedKeysFile /etc/ssh/keys/%u %h/.ssh/authorized_keys\n"),
			},
			login: map[string]bool{"root": false, "svc": true, "op": true},
		},
		{
			name:  "PubkeyAuthentication no",
			files: fstest.MapFS{"etc/ssh/sshd_config": file("PubkeyAuthentication no\n")},
			login: map[string]bool{"root": false, "op": false},
		},
		{
			name:  "AuthorizedKeysFile none",
			files: fstest.MapFS{"etc/ssh/sshd_config": file("AuthorizedKeysFile none\n")},
			login: map[string]bool{"root": false, "op": false},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newReader(merge(base, c.files))
			users, _ := readUsers(r)
			noProblems(t, r)
			for _, u := range users {
				if w, ok := c.system[u.Name]; ok && u.System != w {
					t.Errorf("%s: system = %v, want %v", u.Name, u.System, w)
				}
				if w, ok := c.login[u.Name]; ok && u.CanLogin != w {
					t.Errorf("%s: can_login = %v, want %v", u.Name, u.CanLogin, w)
				}
			}
		})
	}
}

func TestReadUsersMalformed(t *testing.T) {
	fsys := fstest.MapFS{
		"etc/passwd": file("root:x:0:0:root:/root:/bin/bash\r\n" +
			"broken:secret$hash:1\n" +
			"neg:x:-1:0::/:/bin/sh\n" +
			"huge:x:99999999999:0::/:/bin/sh\n" +
			":x:5:5::/:/bin/sh\n" +
			"+::::::\n" +
			"   \n" +
			"# comment\n" +
			"ok:x:1000:1000::/home/ok:/bin/sh"),
		"etc/group":  file("root:x:0:\nbad\nbadgid:x:abc:\nok:x:1000:\n"),
		"etc/shadow": file("root:$6$a$b:1::::::\nnocolon\n"),
	}
	r := newReader(fsys)
	users, groups := readUsers(r)
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
	}
	if !slices.Equal(names, []string{"root", "ok"}) {
		t.Errorf("users = %v, want [root ok]", names)
	}
	if users[0].Shell != "/bin/bash" || users[0].Password != "set" {
		t.Errorf("root with CRLF = %+v", users[0])
	}
	if len(groups) != 2 {
		t.Errorf("groups = %s", asJSON(groups))
	}
	for _, p := range []struct{ path, msg string }{
		{"/etc/passwd", "line 2:"}, {"/etc/passwd", "line 3: bad uid"}, {"/etc/passwd", "line 4: bad uid"},
		{"/etc/passwd", "line 5:"}, {"/etc/group", "line 2:"}, {"/etc/group", "line 3: bad gid"}, {"/etc/shadow", "line 2:"},
	} {
		if !hasProblem(r, p.path, p.msg) {
			t.Errorf("no problem %s %q in %s", p.path, p.msg, asJSON(r.problems))
		}
	}
	if len(r.problems) != 7 {
		t.Errorf("%d problems, want 7: %s", len(r.problems), asJSON(r.problems))
	}
	if strings.Contains(asJSON(r.problems), "secret") {
		t.Errorf("problem quotes a password field: %s", asJSON(r.problems))
	}
}

func TestReadUsersHugePasswd(t *testing.T) {
	fsys := hugeFS{MapFS: fstest.MapFS{"etc/passwd": file("x"), "etc/group": file("root:x:0:\n")}, name: "etc/passwd", t: t}
	r := newReader(fsys)
	users, groups := readUsers(r)
	if users != nil || groups != nil {
		t.Errorf("users = %v, groups = %v; want none", users, groups)
	}
	if len(r.problems) != 1 || r.problems[0].Section != "users" || r.problems[0].Path != "/etc/passwd" || r.problems[0].Root != "/dev/sda1" {
		t.Fatalf("problems = %s", asJSON(r.problems))
	}
	if !strings.Contains(r.problems[0].Message, guest.ErrTooLarge.Error()) {
		t.Errorf("message %q does not say %q", r.problems[0].Message, guest.ErrTooLarge)
	}
	// The reader keeps the error chain for callers that test it.
	if _, err := guest.ReadFile(fsys, "etc/passwd", guest.DefaultMaxFile); !errors.Is(err, guest.ErrTooLarge) {
		t.Errorf("err = %v", err)
	}
}

func TestReadUsersAbsent(t *testing.T) {
	r := newReader(fstest.MapFS{"etc/group": file("root:x:0:\n")})
	if u, g := readUsers(r); u != nil || g != nil {
		t.Errorf("users = %v, groups = %v", u, g)
	}
	noProblems(t, r)
	// A directory where passwd should be is a problem, not a crash.
	r = newReader(fstest.MapFS{"etc/passwd/x": file("")})
	if u, _ := readUsers(r); u != nil {
		t.Errorf("users = %v", u)
	}
	if !hasProblem(r, "/etc/passwd", "not a regular file") {
		t.Errorf("problems = %s", asJSON(r.problems))
	}
}
