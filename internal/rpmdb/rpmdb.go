// Package rpmdb lists the packages of a guest's rpm database from the
// guest's files, without librpm: the sqlite (rpmdb.sqlite), ndb
// (Packages.db) and BerkeleyDB hash (Packages) backends, each read by this
// package, and rpm's header format.
//
// The answer is the one the libguestfs appliance gives through
// inspect_list_applications2, which runs librpm 4.18 inside the guest:
// the same records in the same order, the same header checks (a header
// rpm would skip is skipped), the same text for every field, "(none)"
// where the appliance's headerFormat prints it. Every structure read from
// the guest is bounded and checked; a database rpm cannot iterate is an
// error here, where librpm would end its iteration early and the appliance
// would return the packages found so far.
//
// github.com/knqyf263/go-rpmdb is not used: the version available here
// (a 2021 pseudo-version) reads BerkeleyDB only, and it answers as a
// scanner, not as librpm: it does not check headers as header.c does,
// nor skip what rpm skips, nor print missing tags as "(none)", nor pick
// I18N strings as the appliance's C locale does.
package rpmdb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
)

// Package is an installed rpm package, with the fields libguestfs fills
// for rpm guests (display name, install path, publisher and source
// package stay empty there). A string tag the header lacks reads
// "(none)", as headerFormat prints it; a missing epoch is 0.
type Package struct {
	Name        string
	Epoch       int
	Version     string
	Release     string
	Arch        string
	URL         string
	Summary     string
	Description string
}

// Skipped is a database record that rpm itself skips while iterating
// (rpmdbNextIterator: a damaged header, a failed header digest, no NAME).
type Skipped struct {
	Key uint32 // the header number
	Err error
}

// Database is what ReadDatabase found.
type Database struct {
	Location
	Packages []Package
	Skipped  []Skipped
}

// ErrNoDatabase is returned (wrapped, with fs.ErrNotExist) when the guest
// has no rpm database in any place rpm would look.
var ErrNoDatabase = errors.New("no rpm database")

// ErrCorrupt is wrapped by errors about a database file that breaks its
// format's rules (a bad page, a loop, a record past the end).
var ErrCorrupt = errors.New("corrupt rpm database")

// ErrUnsupported is wrapped when the database is valid but of a kind this
// package does not read (a BerkeleyDB btree, a UTF-16 sqlite database).
var ErrUnsupported = errors.New("unsupported rpm database")

// MaxRecord bounds one header blob (rpm allows 256 MiB; the largest real
// headers are a few MiB).
const MaxRecord = 64 << 20

// maxPackages bounds the records of one database.
const maxPackages = 1 << 20

// Read lists the packages of the rpm database of the guest root fsys
// (see ReadDatabase), sorted as the appliance sorts them.
func Read(ctx context.Context, fsys fs.FS) ([]Package, error) {
	db, err := ReadDatabase(ctx, fsys)
	if err != nil {
		return nil, err
	}
	return db.Packages, nil
}

// ReadDatabase finds the database as rpm does (Locate) and reads every
// package of it. Packages are sorted by name, byte-wise; packages of the
// same name are in the reverse of the database's order (libguestfs
// prepends each record, then sorts stably).
func ReadDatabase(ctx context.Context, fsys fs.FS) (*Database, error) {
	loc, err := Locate(fsys)
	if err != nil {
		return nil, err
	}
	db := &Database{Location: loc}
	f, err := openFile(fsys, loc.File())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	it := &iterator{}
	visit := func(key uint32, blob []byte) (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		more := it.record(key, blob)
		if len(it.pkgs)+len(it.skipped) > maxPackages {
			return false, fmt.Errorf("%s: more than %d records: %w", loc.File(), maxPackages, ErrCorrupt)
		}
		return more, nil
	}
	switch loc.Backend {
	case BackendSQLite:
		// The write-ahead log holds the newest committed pages.
		wal, werr := openFile(fsys, loc.File()+"-wal")
		if werr == nil {
			defer wal.Close()
		} else if !errors.Is(werr, fs.ErrNotExist) {
			return nil, werr
		}
		err = readSQLite(f, wal, visit)
	case BackendNDB:
		err = readNDB(f, visit)
	case BackendBDB:
		err = readBDB(f, visit)
	}
	if err != nil {
		return nil, fmt.Errorf("/%s: %w", loc.File(), err)
	}
	for i, j := 0, len(it.pkgs)-1; i < j; i, j = i+1, j-1 {
		it.pkgs[i], it.pkgs[j] = it.pkgs[j], it.pkgs[i]
	}
	sort.SliceStable(it.pkgs, func(i, j int) bool { return it.pkgs[i].Name < it.pkgs[j].Name })
	db.Packages, db.Skipped = it.pkgs, it.skipped
	return db, nil
}

// iterator applies rpmdbNextIterator's rules to the records of a
// backend, in the backend's order.
type iterator struct {
	n       int // records seen (mi_setx)
	pkgs    []Package
	skipped []Skipped
}

// record takes one record; false ends the iteration. Header number 0 is
// the BerkeleyDB backend's counter record: skipped when it comes first,
// and the end of the iteration anywhere else, as in rpm.
func (it *iterator) record(key uint32, blob []byte) bool {
	first := it.n == 0
	it.n++
	if key == 0 {
		return first
	}
	h, err := parseHeader(blob)
	if err != nil {
		it.skipped = append(it.skipped, Skipped{Key: key, Err: err})
		return true
	}
	it.pkgs = append(it.pkgs, Package{
		Name:        h.format(tagName),
		Epoch:       h.epoch(),
		Version:     h.format(tagVersion),
		Release:     h.format(tagRelease),
		Arch:        h.format(tagArch),
		URL:         h.format(tagURL),
		Summary:     h.format(tagSummary),
		Description: h.format(tagDescription),
	})
	return true
}

// Backend names, as rpm's %_db_backend spells them.
const (
	BackendSQLite = "sqlite"
	BackendNDB    = "ndb"
	BackendBDB    = "bdb"
)

// backendFiles are rpm's backends in its autodetection order.
var backendFiles = []struct{ name, file string }{
	{BackendSQLite, "rpmdb.sqlite"},
	{BackendNDB, "Packages.db"},
	{BackendBDB, "Packages"},
}

// Location is where a guest's rpm database is: Dir is an io/fs path in
// the guest ("var/lib/rpm"), as configured (symlinks are followed when
// the file is read, inside the guest).
type Location struct {
	Dir     string
	Backend string
}

// File is the database's package file.
func (l Location) File() string {
	for _, b := range backendFiles {
		if b.name == l.Backend {
			return path.Join(l.Dir, b.file)
		}
	}
	return l.Dir
}

// Locate finds the database as rpm's dbDetectBackend does: in %_dbpath as
// the guest's macro files define it (falling back to /var/lib/rpm, then
// /usr/lib/sysimage/rpm, when the macros do not resolve to a database),
// the configured %_db_backend when its file is there, else the first of
// rpmdb.sqlite, Packages.db and Packages.
func Locate(fsys fs.FS) (Location, error) {
	m := loadMacros(fsys)
	dirs := []string{}
	if p, ok := m.dbpath(); ok {
		dirs = append(dirs, p)
	}
	dirs = append(dirs, "var/lib/rpm", "usr/lib/sysimage/rpm")
	want := m.backend()
	if want == "bdb_ro" {
		want = BackendBDB
	}
	seen := map[string]bool{}
	for _, d := range dirs {
		if seen[d] {
			continue
		}
		seen[d] = true
		found := ""
		for _, b := range backendFiles {
			if !isFile(fsys, path.Join(d, b.file)) {
				continue
			}
			if b.name == want {
				found = b.name
				break
			}
			if found == "" {
				found = b.name
			}
		}
		if found != "" {
			return Location{Dir: d, Backend: found}, nil
		}
	}
	return Location{}, fmt.Errorf("%w in %v: %w", ErrNoDatabase, dirs, fs.ErrNotExist)
}

func isFile(fsys fs.FS, name string) bool {
	fi, err := fs.Stat(fsys, name)
	return err == nil && fi.Mode().IsRegular()
}
