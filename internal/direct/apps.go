package direct

import (
	"bufio"
	"bytes"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/inspect"
)

// maxPackageDB is libguestfs's bound on the dpkg status and apk installed
// files (MAX_DPKG_STATUS_SIZE, MAX_APK_INSTALLED_SIZE).
const maxPackageDB = 50 * 1000 * 1000

// The package lists follow libguestfs's inspect_list_applications2 field
// by field, quirks included (a dpkg entry counts when its Status contains
// "installed"; an apk entry needs the blank line after it), because the
// two backends must give the same answer. The profiles read packages
// with their own, stricter, semantics (guestconf).

// debApplications reads /var/lib/dpkg/status.
func debApplications(fsys guest.FS) ([]inspect.Application, error) {
	data, err := guest.ReadFile(fsys, "var/lib/dpkg/status", maxPackageDB)
	if err != nil {
		return nil, err
	}
	var apps []inspect.Application
	var cur inspect.Application
	epochOK, installed := true, false
	var cont *string // the field continuation lines extend
	contStarted := false
	for _, line := range splitLines(data) {
		if strings.HasPrefix(line, " ") && cont != nil {
			if !contStarted {
				*cont, contStarted = line[1:], true
			} else {
				*cont += "\n" + line[1:]
			}
		} else {
			cont = nil
		}
		switch {
		case strings.HasPrefix(line, "Package: "):
			cur.Name = line[9:]
		case strings.HasPrefix(line, "Status: "):
			installed = strings.Contains(line[8:], "installed")
		case strings.HasPrefix(line, "Version: "):
			v := line[9:]
			cur.Epoch, epochOK = 0, true
			if e, rest, ok := strings.Cut(v, ":"); ok {
				cur.Epoch, epochOK = parseEpoch(e)
				v = rest
			}
			// libguestfs 1.48 (lib/inspect-apps.c) splits at the FIRST
			// hyphen, where dpkg splits at the last (1.2-3-4 is upstream
			// 1.2-3, revision 4): kept, since both backends must agree;
			// pkgversion.Parse has dpkg's split.
			cur.Version, cur.Release, _ = strings.Cut(v, "-")
		case strings.HasPrefix(line, "Architecture: "):
			cur.Arch = line[14:]
		case strings.HasPrefix(line, "Homepage: "):
			cur.URL = line[10:]
		case strings.HasPrefix(line, "Source: "):
			cur.SourcePackage, _, _ = strings.Cut(line[8:], " ")
		case strings.HasPrefix(line, "Description: "):
			cur.Summary = line[13:]
			cont, contStarted = &cur.Description, cur.Description != ""
		case line == "":
			if installed && cur.Name != "" && cur.Version != "" && epochOK {
				apps = append(apps, cur)
			}
			cur, installed, epochOK, cont = inspect.Application{}, false, true, nil
		}
	}
	return sortApps(apps), nil
}

// parseEpoch is guestfs_int_parse_unsigned_int: a non-negative int32.
func parseEpoch(s string) (int, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	if err != nil || n < 0 {
		return 0, false
	}
	return int(n), true
}

// splitLines splits like fgets/getline: the last line counts only when
// it is not empty.
func splitLines(data []byte) []string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), maxPackageDB)
	var out []string
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// apkApplications reads /lib/apk/db/installed.
func apkApplications(fsys guest.FS) ([]inspect.Application, error) {
	data, err := guest.ReadFile(fsys, "lib/apk/db/installed", maxPackageDB)
	if err != nil {
		return nil, err
	}
	var apps []inspect.Application
	var cur inspect.Application
	epochOK := true
	for _, line := range splitLines(data) {
		if len(line) > 1 && line[1] != ':' {
			continue
		}
		if line == "" {
			if cur.Name != "" && cur.Version != "" && epochOK {
				apps = append(apps, inspect.Application{Name: cur.Name, Epoch: cur.Epoch, Version: cur.Version,
					Release: cur.Release, Arch: cur.Arch, URL: cur.URL, Description: cur.Description})
			}
			epoch := cur.Epoch // libguestfs keeps the epoch across entries
			cur = inspect.Application{Epoch: epoch}
			continue
		}
		v := ""
		if len(line) > 2 {
			v = line[2:]
		}
		switch line[0] {
		case 'A':
			cur.Arch = v
		case 'P':
			cur.Name = v
		case 'T':
			cur.Description = v
		case 'U':
			cur.URL = v
		case 'V':
			if e, rest, ok := strings.Cut(v, ":"); ok {
				cur.Epoch, epochOK = parseEpoch(e)
				v = rest
			} else {
				cur.Epoch, epochOK = 0, true
			}
			cur.Release = ""
			if i := strings.IndexByte(v, '-'); i >= 0 {
				cur.Release = strings.TrimPrefix(v[i+1:], "r")
				v = v[:i]
			}
			cur.Version = v
		}
	}
	return sortApps(apps), nil
}

// pacmanApplications reads /var/lib/pacman/local/*/desc.
func pacmanApplications(fsys guest.FS) ([]inspect.Application, error) {
	ents, err := fs.ReadDir(fsys, "var/lib/pacman/local")
	if err != nil {
		return nil, err
	}
	var apps []inspect.Application
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		data, err := guest.ReadFile(fsys, "var/lib/pacman/local/"+e.Name()+"/desc", 8192)
		if err != nil {
			continue
		}
		fields := map[string]string{}
		var key string
		for _, line := range splitLines(data) {
			switch {
			case line == "":
				key = ""
			case key != "":
				fields[key] = line
				key = ""
			case line == "%NAME%" || line == "%VERSION%" || line == "%DESC%" || line == "%URL%" || line == "%ARCH%":
				key = line
			}
		}
		name, version, arch := fields["%NAME%"], fields["%VERSION%"], fields["%ARCH%"]
		if name == "" || version == "" || arch == "" {
			continue
		}
		epoch, ok := 0, true
		if e, rest, found := strings.Cut(version, ":"); found {
			epoch, ok = parseEpoch(e)
			version = rest
		}
		ver, rel, found := strings.Cut(version, "-")
		if !found || !ok || ver == "" || rel == "" {
			continue
		}
		apps = append(apps, inspect.Application{Name: name, Epoch: epoch, Version: ver, Release: rel, Arch: arch,
			URL: fields["%URL%"], Description: fields["%DESC%"]})
	}
	return sortApps(apps), nil
}

// sortApps sorts by name, as libguestfs's qsort with strcmp; equal names
// (several kernels) keep a stable order here.
func sortApps(apps []inspect.Application) []inspect.Application {
	sort.SliceStable(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })
	if apps == nil {
		apps = []inspect.Application{}
	}
	return apps
}
