package rpmdb

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The fuzz seeds are real databases in testdata, made by
// TestWriteTestdata from the fixtures: a sqlite rpmdb that Debian's rpm
// wrote (two packages), and the same two header blobs in a big-endian
// BerkeleyDB hash file of 512-byte pages (db_load) and in an ndb file.

func seed(t testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seedBlobs are the header blobs of the seed sqlite database.
func seedBlobs(t testing.TB) [][]byte {
	var blobs [][]byte
	err := readSQLite(bytesFile("seed", seed(t, "rpmdb.sqlite")), nil, func(key uint32, blob []byte) (bool, error) {
		blobs = append(blobs, blob)
		return true, nil
	})
	if err != nil || len(blobs) == 0 {
		t.Fatalf("seed blobs: %d, %v", len(blobs), err)
	}
	return blobs
}

// useHeader reads every field a header can give, as Read does.
func useHeader(blob []byte) {
	h, err := parseHeader(blob)
	if err != nil {
		return
	}
	for _, tag := range []int32{tagName, tagVersion, tagRelease, tagArch, tagURL, tagSummary, tagDescription, tagEpoch, tagI18NTable, tagBasenames, 1028, 1030} {
		_ = h.format(tag)
	}
	_ = h.epoch()
}

func FuzzHeader(f *testing.F) {
	for _, b := range seedBlobs(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		useHeader(b)
	})
}

func visitAll(key uint32, blob []byte) (bool, error) {
	useHeader(blob)
	return true, nil
}

func FuzzBDB(f *testing.F) {
	f.Add(seed(f, "Packages"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = readBDB(bytesFile("fuzz", b), visitAll)
	})
}

func FuzzNDB(f *testing.F) {
	f.Add(seed(f, "Packages.db"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = readNDB(bytesFile("fuzz", b), visitAll)
	})
}

func FuzzSQLite(f *testing.F) {
	f.Add(seed(f, "rpmdb.sqlite"), []byte{})
	f.Add(seed(f, "wal.sqlite"), seed(f, "wal.sqlite-wal"))
	f.Fuzz(func(t *testing.T, db, wal []byte) {
		_ = readSQLite(bytesFile("fuzz", db), bytesFile("fuzz-wal", wal), visitAll)
	})
}

func FuzzMacros(f *testing.F) {
	f.Add("%_var /var\n%_dbpath %{_var}/lib/rpm\n%_db_backend sqlite\n")
	f.Add("%_usr /usr\n%_dbpath %{?_dbroot:%{_dbroot}}%{!?_dbroot:%{_usr}/lib/sysimage/rpm}\n%a %{b}%{b}\n%b %{a}%{a}\n")
	f.Fuzz(func(t *testing.T, text string) {
		m := macros{}
		m.parse(text)
		_, _ = m.dbpath()
		_ = m.backend()
	})
}

// TestWriteTestdata rewrites the seed databases when
// GUESTKIT_RPMDB_WRITE_TESTDATA is set.
func TestWriteTestdata(t *testing.T) {
	if os.Getenv("GUESTKIT_RPMDB_WRITE_TESTDATA") == "" {
		t.Skip("GUESTKIT_RPMDB_WRITE_TESTDATA not set")
	}
	root := t.TempDir()
	sqliteFixture(t, root)
	db := filepath.Join(root, "var/lib/rpm/rpmdb.sqlite")
	// Two small packages, the index tables dropped, 1 KiB pages: a small
	// seed that still has interior pages and overflow chains.
	drop := ""
	for _, tbl := range strings.Fields(run(t, "", nil, "sqlite3", db, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT IN ('Packages', 'sqlite_sequence')")) {
		drop += "DROP TABLE '" + tbl + "';"
	}
	run(t, "", nil, "sqlite3", db, drop+"DELETE FROM Packages WHERE hnum NOT IN (SELECT hnum FROM Packages ORDER BY length(blob) LIMIT 2); PRAGMA journal_mode=DELETE; PRAGMA page_size=1024; VACUUM;")
	keys, blobs := sqliteBlobs(t, db)
	bdbFixture(t, root, keys, blobs, true, 512)
	sqlite, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	// The same database in WAL mode with one committed row in the log.
	cmd := exec.Command("sqlite3", db)
	cmd.Stdin = strings.NewReader(".dbconfig no_ckpt_on_close on\nPRAGMA journal_mode=WAL;\nINSERT INTO Packages(hnum, blob) SELECT 100, blob FROM Packages LIMIT 1;\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	walDB, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	wal, err := os.ReadFile(db + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	ndb := writeNDB(keys, blobs, []int{1, 0})
	bdb, err := os.ReadFile(filepath.Join(root, "var/lib/rpm/Packages"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"rpmdb.sqlite": sqlite, "Packages": bdb, "Packages.db": ndb, "wal.sqlite": walDB, "wal.sqlite-wal": wal} {
		if err := os.WriteFile(filepath.Join("testdata", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSeeds checks that the seeds hold what TestWriteTestdata put there.
func TestSeeds(t *testing.T) {
	for _, name := range []string{"rpmdb.sqlite", "Packages", "Packages.db"} {
		var n int
		visit := func(key uint32, blob []byte) (bool, error) {
			if key != 0 {
				if _, err := parseHeader(blob); err != nil {
					t.Errorf("%s: header %d: %v", name, key, err)
				}
				n++
			}
			return true, nil
		}
		f := bytesFile(name, seed(t, name))
		var err error
		switch name {
		case "rpmdb.sqlite":
			err = readSQLite(f, nil, visit)
		case "Packages":
			err = readBDB(f, visit)
		default:
			err = readNDB(f, visit)
		}
		if err != nil || n != 2 {
			t.Errorf("%s: %d headers, %v", name, n, err)
		}
	}
	var keys []uint32
	err := readSQLite(bytesFile("wal.sqlite", seed(t, "wal.sqlite")), bytesFile("wal.sqlite-wal", seed(t, "wal.sqlite-wal")), func(key uint32, blob []byte) (bool, error) {
		keys = append(keys, key)
		return true, nil
	})
	if err != nil || len(keys) != 3 || keys[2] != 100 {
		t.Errorf("wal.sqlite: records %v, %v", keys, err)
	}
}
