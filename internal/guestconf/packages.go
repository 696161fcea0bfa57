package guestconf

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"strings"
)

// Package is an installed package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Arch    string `json:"arch,omitempty"`
}

// MaxPackageDB bounds a package database read; a big desktop's dpkg status
// is a few MB.
const MaxPackageDB = 64 << 20

// ReadDpkgStatus lists installed packages from /var/lib/dpkg/status and
// /var/lib/dpkg/status.d/* (distroless images). A package counts as
// installed in every state but not-installed and config-files, since its
// files are on disk in all the others.
func ReadDpkgStatus(fsys fs.FS) ([]Package, error) {
	data, err := ReadFileMax(fsys, "var/lib/dpkg/status", MaxPackageDB)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	found := err == nil
	pkgs := parseDpkg(data)
	if ents, err2 := ReadDir(fsys, "var/lib/dpkg/status.d"); err2 == nil {
		for _, e := range ents {
			d, err := ReadFileMax(fsys, "var/lib/dpkg/status.d/"+e.Name(), MaxPackageDB)
			if err != nil {
				continue // md5sums files and the like
			}
			found = true
			pkgs = append(pkgs, parseDpkg(d)...)
		}
	}
	if !found {
		return nil, err
	}
	return pkgs, nil
}

func parseDpkg(data []byte) []Package {
	var out []Package
	var p Package
	installed := true
	flush := func() {
		if p.Name != "" && installed {
			out = append(out, p)
		}
		p, installed = Package{}, true
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.TrimSpace(l) == "" {
			flush()
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			p.Name = v
		case "Version":
			p.Version = v
		case "Architecture":
			p.Arch = v
		case "Status":
			f := strings.Fields(v)
			if len(f) == 3 && (f[2] == "not-installed" || f[2] == "config-files") {
				installed = false
			}
		}
	}
	flush()
	return out
}

// ReadApkInstalled lists packages from /lib/apk/db/installed (Alpine).
func ReadApkInstalled(fsys fs.FS) ([]Package, error) {
	data, err := ReadFileMax(fsys, "lib/apk/db/installed", MaxPackageDB)
	if err != nil {
		return nil, err
	}
	var out []Package
	var p Package
	for _, l := range lines(data) {
		if l == "" {
			if p.Name != "" {
				out = append(out, p)
			}
			p = Package{}
			continue
		}
		if len(l) < 2 || l[1] != ':' {
			continue
		}
		switch l[0] {
		case 'P':
			p.Name = l[2:]
		case 'V':
			p.Version = l[2:]
		case 'A':
			p.Arch = l[2:]
		}
	}
	if p.Name != "" {
		out = append(out, p)
	}
	return out, nil
}

// DpkgOwners returns, for each wanted absolute path, the dpkg packages whose
// file list (/var/lib/dpkg/info/*.list) names it. Only wanted paths are
// kept, so the lists are streamed, not stored.
func DpkgOwners(fsys fs.FS, want map[string]bool) (map[string][]string, error) {
	ents, err := ReadDir(fsys, "var/lib/dpkg/info")
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, ".list") {
			continue
		}
		data, err := ReadFileMax(fsys, "var/lib/dpkg/info/"+n, MaxPackageDB)
		if err != nil {
			return nil, err
		}
		pkg := strings.TrimSuffix(n, ".list")
		if i := strings.IndexByte(pkg, ':'); i >= 0 {
			pkg = pkg[:i] // libc6:amd64
		}
		for _, l := range lines(data) {
			if want[l] {
				out[l] = append(out[l], pkg)
			}
		}
	}
	return out, nil
}

// ApkOwners is DpkgOwners for /lib/apk/db/installed (F: directory, R: file).
func ApkOwners(fsys fs.FS, want map[string]bool) (map[string][]string, error) {
	data, err := ReadFileMax(fsys, "lib/apk/db/installed", MaxPackageDB)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	pkg, dir := "", ""
	for _, l := range lines(data) {
		if len(l) < 2 || l[1] != ':' {
			continue
		}
		switch l[0] {
		case 'P':
			pkg, dir = l[2:], ""
		case 'F':
			dir = l[2:]
		case 'R':
			p := "/" + strings.TrimPrefix(dir+"/"+l[2:], "/")
			if dir == "" {
				p = "/" + l[2:]
			}
			if want[p] {
				out[p] = append(out[p], pkg)
			}
		}
	}
	return out, nil
}
