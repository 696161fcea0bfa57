package rpmdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"guestkit.io/batch/internal/prereq"
)

// The fixtures are real rpm databases: tiny packages built with rpmbuild
// and installed (headers only) with Debian's rpm into a sqlite database;
// the same header blobs loaded into BerkeleyDB hash files with db_load
// (both byte orders), which Debian's rpm reads back through its bdb_ro
// backend; and an ndb file this test writes as rpm's rpmpkg.c does
// (Debian's rpm has no ndb backend). Ground truth is `rpm -qa --qf` on
// each database, run as the appliance runs librpm (LC_ALL=C).

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds rpm databases with host tools")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			prereq.Missing(t, "%s not installed (scripts/packages-test.txt)", tool)
		}
	}
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

type specPkg struct {
	name, epoch, version, release, arch, url string
	desc                                     string
}

// buildRPMs builds the fixture packages into dir/RPMS and returns their
// paths.
func buildRPMs(t *testing.T, dir string) []string {
	long := strings.Repeat("A long description line that makes the header spill into overflow pages.\n", 600)
	pkgs := []specPkg{
		{"alpha", "", "1.0", "1", "noarch", "https://alpha.example/", "Alpha.\nSecond line."},
		{"beta", "3", "2.0", "5.el9", "noarch", "", "Beta has an epoch and no URL."},
		{"gamma", "", "1.0", "1", "noarch", "https://gamma.example/", "Gamma one."},
		{"gamma", "", "2.0", "1", "noarch", "https://gamma.example/", "Gamma two."},
		{"Zeta", "0", "0.1", "1.el9_4", "x86_64", "https://zeta.example/", "Zeta sorts before the lower-case names."},
		{"big", "", "9.9", "99", "noarch", "https://big.example/", long},
	}
	var out []string
	for _, p := range pkgs {
		var s strings.Builder
		s.WriteString("%global debug_package %{nil}\n%global __os_install_post %{nil}\n")
		fmt.Fprintf(&s, "Name: %s\n", p.name)
		if p.epoch != "" {
			fmt.Fprintf(&s, "Epoch: %s\n", p.epoch)
		}
		fmt.Fprintf(&s, "Version: %s\nRelease: %s\nLicense: MIT\nBuildArch: %s\n", p.version, p.release, p.arch)
		if p.url != "" {
			fmt.Fprintf(&s, "URL: %s\n", p.url)
		}
		fmt.Fprintf(&s, "Summary: Summary of %s\nSummary(de): Zusammenfassung von %s\nSummary(fr): Résumé de %s\n", p.name, p.name, p.name)
		fmt.Fprintf(&s, "\n%%description\n%s\n\n%%description -l de\nBeschreibung von %s.\n\n%%files\n", p.desc, p.name)
		spec := filepath.Join(dir, p.name+"-"+p.version+".spec")
		if err := os.WriteFile(spec, []byte(s.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, dir, []string{"SOURCE_DATE_EPOCH=1700000000"}, "rpmbuild", "--quiet", "-bb", spec,
			"--define", "_topdir "+dir, "--define", "_binary_payload w9.gzdio",
			"--define", "use_source_date_epoch_as_buildtime 1")
		out = append(out, filepath.Join(dir, "RPMS", p.arch, fmt.Sprintf("%s-%s-%s.%s.rpm", p.name, p.version, p.release, p.arch)))
	}
	return out
}

// makeKey makes an OpenPGP public key for a gpg-pubkey pseudo-package.
func makeKey(t *testing.T, dir string) string {
	home := filepath.Join(dir, "gnupg")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{"GNUPGHOME=" + home}
	run(t, dir, env, "gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key", "Fixture Signer <fixture@example.invalid>", "rsa2048", "sign", "never")
	key := filepath.Join(dir, "key.asc")
	if err := os.WriteFile(key, []byte(run(t, dir, env, "gpg", "--batch", "--armor", "--export")), 0o644); err != nil {
		t.Fatal(err)
	}
	return key
}

// sqliteFixture is a sqlite rpmdb in root/var/lib/rpm holding the
// fixture packages and a gpg-pubkey.
func sqliteFixture(t *testing.T, root string) {
	needTools(t, "rpm", "rpmbuild", "gpg")
	work := t.TempDir()
	rpms := buildRPMs(t, work)
	key := makeKey(t, work)
	db := filepath.Join(root, "var/lib/rpm")
	if err := os.MkdirAll(db, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--dbpath", db, "--define", "_db_backend sqlite"}
	run(t, work, nil, "rpm", append(args, "--initdb")...)
	run(t, work, nil, "rpm", append(args, append([]string{"-i", "--justdb", "--nodeps", "--noscripts", "--notriggers", "--ignorearch", "--ignoreos"}, rpms...)...)...)
	run(t, work, nil, "rpm", append(args, "--import", key)...)
	os.Remove(filepath.Join(db, ".rpm.lock"))
}

const (
	fieldSep  = "\x1f<F>\x1f"
	recordSep = "\x1f<R>\x1f\n"
)

// rpmQuery is `rpm -qa` on the database in dir, in the database's order:
// each package as headerFormat prints its fields, and its header number.
func rpmQuery(t *testing.T, dir, backend string) ([]Package, []uint32) {
	t.Helper()
	qf := strings.Join([]string{"%{DBINSTANCE}", "%{NAME}", "%{EPOCH}", "%{VERSION}", "%{RELEASE}", "%{ARCH}", "%{URL}", "%{SUMMARY}", "%{DESCRIPTION}"}, fieldSep) + recordSep
	out := run(t, dir, []string{"LC_ALL=C", "LANGUAGE=", "LANG="}, "rpm", "--dbpath", dir, "--define", "_db_backend "+backend, "-qa", "--qf", qf)
	var pkgs []Package
	var keys []uint32
	for _, rec := range strings.Split(out, recordSep) {
		if rec == "" {
			continue
		}
		f := strings.Split(rec, fieldSep)
		if len(f) != 9 {
			t.Fatalf("rpm -qa record %q", rec)
		}
		key, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		epoch := 0
		if f[2] != "(none)" {
			e, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			epoch = int(int32(e))
		}
		keys = append(keys, uint32(key))
		pkgs = append(pkgs, Package{Name: f[1], Epoch: epoch, Version: f[3], Release: f[4], Arch: f[5], URL: f[6], Summary: f[7], Description: f[8]})
	}
	return pkgs, keys
}

// applianceOrder is what libguestfs does with librpm's records: prepend
// each, then sort stably by name.
func applianceOrder(pkgs []Package) []Package {
	out := make([]Package, len(pkgs))
	for i, p := range pkgs {
		out[len(pkgs)-1-i] = p
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// rawRecords iterates the backend directly: the header numbers in the
// backend's order, and the packages of the records rpm would not skip.
func rawRecords(t *testing.T, root string) ([]uint32, []Package) {
	t.Helper()
	loc, err := Locate(os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	f, err := openFile(os.DirFS(root), loc.File())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	it := &iterator{}
	var keys []uint32
	visit := func(key uint32, blob []byte) (bool, error) {
		n := len(it.pkgs)
		more := it.record(key, blob)
		if len(it.pkgs) > n {
			keys = append(keys, key)
		}
		return more, nil
	}
	switch loc.Backend {
	case BackendSQLite:
		wal, _ := openFile(os.DirFS(root), loc.File()+"-wal")
		err = readSQLite(f, wal, visit)
	case BackendNDB:
		err = readNDB(f, visit)
	case BackendBDB:
		err = readBDB(f, visit)
	}
	if err != nil {
		t.Fatal(err)
	}
	return keys, it.pkgs
}

// checkAgainstRPM compares Read, field by field, with rpm -qa on the same
// database, and the backend's record order with rpm's.
func checkAgainstRPM(t *testing.T, root, backend string, want []Package, wantKeys []uint32) {
	t.Helper()
	keys, raw := rawRecords(t, root)
	if fmt.Sprint(keys) != fmt.Sprint(wantKeys) {
		t.Errorf("record order %v, rpm's %v", keys, wantKeys)
	}
	comparePackages(t, "database order", raw, want)
	got, err := Read(context.Background(), os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	comparePackages(t, "sorted", got, applianceOrder(want))
}

func comparePackages(t *testing.T, what string, got, want []Package) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d packages, want %d:\n got %v\nwant %v", what, len(got), len(want), names(got), names(want))
		return
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s: package %d:\n got %#v\nwant %#v", what, i, got[i], want[i])
		}
	}
}

func names(pkgs []Package) []string {
	var out []string
	for _, p := range pkgs {
		out = append(out, p.Name+"-"+p.Version)
	}
	return out
}

func TestSQLiteFixture(t *testing.T) {
	root := t.TempDir()
	sqliteFixture(t, root)
	dir := filepath.Join(root, "var/lib/rpm")
	want, keys := rpmQuery(t, dir, "sqlite")
	if len(want) != 7 {
		t.Fatalf("rpm lists %d packages, want 7", len(want))
	}
	// What the fixture is meant to exercise, as rpm itself prints it.
	byName := map[string]Package{}
	for _, p := range want {
		byName[p.Name] = p
	}
	if p := byName["beta"]; p.Epoch != 3 || p.URL != "(none)" {
		t.Errorf("beta: %#v", p)
	}
	if p := byName["alpha"]; p.Summary != "Summary of alpha" || p.Description != "Alpha.\nSecond line." {
		t.Errorf("alpha (the C locale's text): %#v", p)
	}
	if p := byName["gpg-pubkey"]; p.Arch != "(none)" || p.URL != "(none)" || !strings.HasPrefix(p.Summary, "Fixture Signer") {
		t.Errorf("gpg-pubkey: %#v", p)
	}
	if p := byName["big"]; len(p.Description) < 40000 {
		t.Errorf("big: description of %d bytes", len(p.Description))
	}
	checkAgainstRPM(t, root, "sqlite", want, keys)
	loc, err := Locate(os.DirFS(root))
	if err != nil || loc != (Location{Dir: "var/lib/rpm", Backend: BackendSQLite}) {
		t.Errorf("Locate: %+v, %v", loc, err)
	}
}

// sqliteBlobs exports the header blobs of a sqlite rpmdb, by header
// number.
func sqliteBlobs(t *testing.T, dbfile string) (keys []uint32, blobs [][]byte) {
	needTools(t, "sqlite3")
	out := run(t, "", nil, "sqlite3", dbfile, "SELECT hnum, hex(blob) FROM Packages ORDER BY hnum")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		n, hx, _ := strings.Cut(l, "|")
		k, err := strconv.ParseUint(n, 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		b, err := hex.DecodeString(hx)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, uint32(k))
		blobs = append(blobs, b)
	}
	return keys, blobs
}

// bdbFixture loads blobs into a BerkeleyDB hash Packages file with
// db_load, keyed as rpm's BerkeleyDB backend keys them (the header
// number in the database's byte order, and record 0 holding the next
// header number).
func bdbFixture(t *testing.T, root string, keys []uint32, blobs [][]byte, bigEndian bool, pagesize int) {
	needTools(t, "db_load")
	var bo binary.AppendByteOrder = binary.LittleEndian
	lorder := "1234"
	if bigEndian {
		bo, lorder = binary.BigEndian, "4321"
	}
	var dump strings.Builder
	dump.WriteString("VERSION=3\nformat=bytevalue\ntype=hash\nHEADER=END\n")
	rec := func(k uint32, v []byte) {
		fmt.Fprintf(&dump, " %s\n %s\n", hex.EncodeToString(bo.AppendUint32(nil, k)), hex.EncodeToString(v))
	}
	rec(0, bo.AppendUint32(nil, keys[len(keys)-1]+1))
	for i, k := range keys {
		rec(k, blobs[i])
	}
	dump.WriteString("DATA=END\n")
	dir := filepath.Join(root, "var/lib/rpm")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("db_load", "-c", "db_lorder="+lorder, "-c", "db_pagesize="+strconv.Itoa(pagesize), filepath.Join(dir, "Packages"))
	cmd.Stdin = strings.NewReader(dump.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("db_load: %v\n%s", err, out)
	}
}

func TestBerkeleyDBFixture(t *testing.T) {
	src := t.TempDir()
	sqliteFixture(t, src)
	keys, blobs := sqliteBlobs(t, filepath.Join(src, "var/lib/rpm/rpmdb.sqlite"))
	for _, c := range []struct {
		name      string
		bigEndian bool
		pagesize  int
	}{
		{"little-endian 4096", false, 4096},
		{"big-endian 512", true, 512},
		{"little-endian 512", false, 512},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			bdbFixture(t, root, keys, blobs, c.bigEndian, c.pagesize)
			// Debian's rpm reads BerkeleyDB through bdb_ro, as the
			// appliance does.
			want, wantKeys := rpmQuery(t, filepath.Join(root, "var/lib/rpm"), "bdb_ro")
			if len(want) != len(keys) {
				t.Fatalf("rpm lists %d packages, want %d", len(want), len(keys))
			}
			checkAgainstRPM(t, root, "bdb_ro", want, wantKeys)
		})
	}
}

// writeNDB writes a Packages.db as rpm's rpmpkg.c lays it out: header,
// slot pages, then each blob (head, data, padding, tail with adler32) in
// 16-byte blocks. The slots are filled in the order given; the blobs are
// laid out in order of blkOrder.
func writeNDB(keys []uint32, blobs [][]byte, blkOrder []int) []byte {
	le := binary.LittleEndian
	const npages = 1
	out := make([]byte, npages*ndbPage)
	le.PutUint32(out, ndbMagic)
	le.PutUint32(out[12:], npages)
	le.PutUint32(out[16:], keys[len(keys)-1]+1)
	for o := ndbHeader; o < ndbPage; o += ndbSlot {
		le.PutUint32(out[o:], ndbSlotMagic)
	}
	blk := uint32(len(out) / ndbBlock)
	for _, i := range blkOrder {
		n := len(blobs[i])
		cnt := uint32((ndbHead + n + ndbTail + ndbBlock - 1) / ndbBlock)
		slot := ndbHeader + i*ndbSlot
		le.PutUint32(out[slot+4:], keys[i])
		le.PutUint32(out[slot+8:], blk)
		le.PutUint32(out[slot+12:], cnt)
		b := make([]byte, cnt*ndbBlock)
		le.PutUint32(b, ndbHeadMagic)
		le.PutUint32(b[4:], keys[i])
		le.PutUint32(b[8:], 1)
		le.PutUint32(b[12:], uint32(n))
		copy(b[ndbHead:], blobs[i])
		tail := b[len(b)-ndbTail:]
		le.PutUint32(tail, adler32(b[:len(b)-ndbTail]))
		le.PutUint32(tail[4:], uint32(n))
		le.PutUint32(tail[8:], ndbTailMagic)
		out = append(out, b...)
		blk += cnt
	}
	return out
}

func adler32(b []byte) uint32 {
	s1, s2 := uint32(1), uint32(0)
	for _, c := range b {
		s1 = (s1 + uint32(c)) % 65521
		s2 = (s2 + s1) % 65521
	}
	return s2<<16 | s1
}

func TestNDBFixture(t *testing.T) {
	src := t.TempDir()
	sqliteFixture(t, src)
	dir := filepath.Join(src, "var/lib/rpm")
	truth, truthKeys := rpmQuery(t, dir, "sqlite")
	keys, blobs := sqliteBlobs(t, filepath.Join(dir, "rpmdb.sqlite"))
	byKey := map[uint32]Package{}
	for i, k := range truthKeys {
		byKey[k] = truth[i]
	}
	// Blobs laid out in reverse: rpm lists ndb packages in the order of
	// their blobs in the file, not of their slots or numbers.
	var order []int
	for i := len(keys) - 1; i >= 0; i-- {
		order = append(order, i)
	}
	root := t.TempDir()
	db := filepath.Join(root, "usr/lib/sysimage/rpm")
	if err := os.MkdirAll(db, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(db, "Packages.db"), writeNDB(keys, blobs, order), 0o644); err != nil {
		t.Fatal(err)
	}
	var want []Package
	var wantKeys []uint32
	for _, i := range order {
		want = append(want, byKey[keys[i]])
		wantKeys = append(wantKeys, keys[i])
	}
	gotKeys, raw := rawRecords(t, root)
	if fmt.Sprint(gotKeys) != fmt.Sprint(wantKeys) {
		t.Errorf("record order %v, want %v", gotKeys, wantKeys)
	}
	comparePackages(t, "database order", raw, want)
	got, err := Read(context.Background(), os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	comparePackages(t, "sorted", got, applianceOrder(want))
}

// TestSQLiteWALAndDamage leaves committed changes in the write-ahead log
// (sqlite3 with checkpoint-on-close off), damages one header so that its
// SHA256 digest fails, and checks both against rpm: the log's rows are
// read, the damaged header is skipped.
func TestSQLiteWALAndDamage(t *testing.T) {
	root := t.TempDir()
	sqliteFixture(t, root)
	needTools(t, "sqlite3")
	dir := filepath.Join(root, "var/lib/rpm")
	db := filepath.Join(dir, "rpmdb.sqlite")
	// Byte 200 of a header blob lies in its immutable region's data.
	script := `.dbconfig no_ckpt_on_close on
PRAGMA journal_mode=WAL;
INSERT INTO Packages(hnum, blob) SELECT 100, blob FROM Packages WHERE hnum = 1;
DELETE FROM Packages WHERE hnum = 2;
UPDATE Packages SET blob = substr(blob, 1, 199) || x'58' || substr(blob, 201) WHERE hnum = 3;
`
	cmd := exec.Command("sqlite3", db)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	if fi, err := os.Stat(db + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("no write-ahead log left: %v", err)
	}
	os.Remove(db + "-shm") // a guest's disk need not have a valid one
	// rpm reads a copy: the reader sees the files as sqlite3 left them.
	copyRoot := t.TempDir()
	run(t, "", nil, "cp", "-a", dir, copyRoot)
	want, keys := rpmQuery(t, filepath.Join(copyRoot, "rpm"), "sqlite")
	checkAgainstRPM(t, root, "sqlite", want, keys)
	if keys[len(keys)-1] != 100 {
		t.Errorf("rpm's last record is %d, want the WAL's 100", keys[len(keys)-1])
	}
	res, err := ReadDatabase(context.Background(), os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Key != 3 {
		t.Errorf("skipped %v, want header 3", res.Skipped)
	}
	// The rows came from the log: the main file alone lacks them.
	if err := os.Rename(db+"-wal", db+"-wal.moved"); err != nil {
		t.Fatal(err)
	}
	if keys, _ := rawRecords(t, root); len(keys) == 0 || keys[len(keys)-1] == 100 {
		t.Errorf("without the log the records are %v", keys)
	}
}
