package rpmdb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLocate(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("x")}
	for _, c := range []struct {
		name string
		fs   fstest.MapFS
		want Location
	}{
		{"var/lib/rpm sqlite", fstest.MapFS{"var/lib/rpm/rpmdb.sqlite": file}, Location{"var/lib/rpm", "sqlite"}},
		{"sysimage ndb without macros", fstest.MapFS{"usr/lib/sysimage/rpm/Packages.db": file}, Location{"usr/lib/sysimage/rpm", "ndb"}},
		{"autodetection order", fstest.MapFS{"var/lib/rpm/Packages": file, "var/lib/rpm/Packages.db": file, "var/lib/rpm/rpmdb.sqlite": file}, Location{"var/lib/rpm", "sqlite"}},
		{"configured backend wins", fstest.MapFS{
			"var/lib/rpm/Packages": file, "var/lib/rpm/rpmdb.sqlite": file,
			"usr/lib/rpm/macros":             {Data: []byte("%_var /var\n%_dbpath %{_var}/lib/rpm\n%_db_backend sqlite\n")},
			"usr/lib/rpm/macros.d/macros.db": {Data: []byte("# later files override\n%_db_backend\tbdb\n")},
		}, Location{"var/lib/rpm", "bdb"}},
		{"configured backend missing: autodetect", fstest.MapFS{
			"var/lib/rpm/Packages": file,
			"etc/rpm/macros":       {Data: []byte("%_db_backend sqlite\n")},
		}, Location{"var/lib/rpm", "bdb"}},
		{"dbpath from macros", fstest.MapFS{
			"var/lib/rpm/Packages":   file,
			"opt/rpmdb/rpmdb.sqlite": file,
			"usr/lib/rpm/macros":     {Data: []byte("%_prefix /usr\n%_dbpath\t\t%{?_dbroot:%{_dbroot}}%{!?_dbroot:/opt}/rpmdb\n%_multi() \\\n  body\n")},
		}, Location{"opt/rpmdb", "sqlite"}},
		{"unresolvable dbpath falls back", fstest.MapFS{
			"var/lib/rpm/Packages": file,
			"usr/lib/rpm/macros":   {Data: []byte("%_dbpath %(echo /opt/rpmdb)\n")},
		}, Location{"var/lib/rpm", "bdb"}},
		{"dbpath without a database falls back", fstest.MapFS{
			"usr/lib/sysimage/rpm/rpmdb.sqlite": file,
			"usr/lib/rpm/macros":                {Data: []byte("%_dbpath /nowhere\n")},
		}, Location{"usr/lib/sysimage/rpm", "sqlite"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Locate(c.fs)
			if err != nil || got != c.want {
				t.Errorf("Locate = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
	if _, err := Locate(fstest.MapFS{"var/lib/rpm/Packages": {Mode: fs.ModeDir}}); !errors.Is(err, ErrNoDatabase) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no database: %v", err)
	}
}

// TestLocateSymlink is the Fedora and openSUSE layout: the database in
// /usr/lib/sysimage/rpm, /var/lib/rpm a symlink to it, %_dbpath naming
// either.
func TestLocateSymlink(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(root, "usr/lib/sysimage/rpm")
	for _, d := range []string{db, filepath.Join(root, "var/lib"), filepath.Join(root, "usr/lib/rpm")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(db, "rpmdb.sqlite"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../usr/lib/sysimage/rpm", filepath.Join(root, "var/lib/rpm")); err != nil {
		t.Fatal(err)
	}
	got, err := Locate(os.DirFS(root))
	if err != nil || got != (Location{"var/lib/rpm", "sqlite"}) {
		t.Errorf("without macros: %+v, %v", got, err)
	}
	macros := "%_usr /usr\n%_dbpath %{_usr}/lib/sysimage/rpm\n"
	if err := os.WriteFile(filepath.Join(root, "usr/lib/rpm/macros"), []byte(macros), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = Locate(os.DirFS(root))
	if err != nil || got != (Location{"usr/lib/sysimage/rpm", "sqlite"}) {
		t.Errorf("with %%_dbpath in sysimage: %+v, %v", got, err)
	}
}

func TestMacroExpand(t *testing.T) {
	m := macros{}
	m.parse("%_usr\t/usr\n%_lib lib\n%_dbpath %{_usr}/%_lib/sysimage/rpm\n%loop %{loop}x\n%pct 100%%\n  %indented yes\n%cont a \\\n%notdef x\n")
	for in, want := range map[string]string{
		"%{_dbpath}":      "/usr/lib/sysimage/rpm",
		"%pct":            "100%",
		"%{?nothing}/x":   "/x",
		"%{?_usr:set}":    "set",
		"%{!?_usr:unset}": "",
		"%{indented}":     "yes",
	} {
		if got, ok := m.expandAll(in); !ok || got != want {
			t.Errorf("expand(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"%{loop}", "%(echo x)", "%{lua:print(1)}", "%{undefined}", "%{cont}", "%", "%{notdef}"} {
		if got, ok := m.expandAll(in); ok {
			t.Errorf("expand(%q) = %q, want a failure", in, got)
		}
	}
	// Each body names the next macro ten times: 10^8 references within
	// the depth bound, and no output to bound by length. Refused after
	// maxExpandSteps, at once (fuzzing found a hang here).
	wide := macros{}
	var defs strings.Builder
	for i := range 8 {
		fmt.Fprintf(&defs, "%%w%d %s\n", i, strings.Repeat(fmt.Sprintf("%%{?w%d}", i+1), 10))
	}
	wide.parse(defs.String())
	if got, ok := wide.expandAll("%{w0}"); ok {
		t.Errorf("a 10^8-reference expansion = %q, want a failure", got)
	}
}
