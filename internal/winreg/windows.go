package winreg

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"

	"guestkit.io/batch/internal/guest"
)

// Hive file names under <systemroot>/System32/config.
const (
	Software = "SOFTWARE"
	System   = "SYSTEM"
	SAM      = "SAM"
	Security = "SECURITY"
)

// systemRootCandidates are the directories libguestfs tries, in its order
// (daemon/inspect_fs_windows.ml, systemroot_paths).
var systemRootCandidates = []string{"windows", "winnt", "win32", "win", "reactos"}

// maxDirEntries bounds one directory listing during case-insensitive
// path resolution (System32 holds some five thousand entries).
const maxDirEntries = 1 << 16

// ResolvePath finds the file or directory whose path matches name (an
// io/fs path) component by component, ignoring case as NTFS does, and
// returns it as spelled in the guest ("windows/system32" may give
// "Windows/System32"), like libguestfs's case_sensitive_path. A missing
// path is an error matching fs.ErrNotExist.
func ResolvePath(fsys guest.FS, name string) (string, error) {
	name, ok := guest.Clean(name)
	if !ok {
		return "", &fs.PathError{Op: "resolve", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return name, nil
	}
	cur := "."
	for _, part := range strings.Split(name, "/") {
		next := path.Join(cur, part)
		if _, err := fs.Lstat(fsys, next); err == nil {
			cur = next
			continue
		}
		ents, err := fsys.ReadDir(cur)
		if err != nil {
			return "", err
		}
		if len(ents) > maxDirEntries {
			return "", fmt.Errorf("resolve /%s: /%s has %d entries (limit %d)", name, cur, len(ents), maxDirEntries)
		}
		found := ""
		for _, e := range ents {
			if strings.EqualFold(e.Name(), part) {
				found = e.Name()
				break
			}
		}
		if found == "" {
			return "", &fs.PathError{Op: "resolve", Path: "/" + name, Err: fs.ErrNotExist}
		}
		cur = path.Join(cur, found)
	}
	return cur, nil
}

// isKind resolves name and checks that it is a directory (dir) or a
// regular file, following symlinks.
func isKind(fsys guest.FS, name string, dir bool) bool {
	p, err := ResolvePath(fsys, name)
	if err != nil {
		return false
	}
	fi, err := fs.Stat(fsys, p)
	if err != nil {
		return false
	}
	if dir {
		return fi.IsDir()
	}
	return fi.Mode().IsRegular()
}

// isSystemRoot is libguestfs's test: System32, System32/config and
// System32/cmd.exe exist (a data disk with "Program Files" is not a root).
func isSystemRoot(fsys guest.FS, root string) bool {
	return isKind(fsys, root+"/system32", true) &&
		isKind(fsys, root+"/system32/config", true) &&
		isKind(fsys, root+"/system32/cmd.exe", false)
}

// bootIniOS matches an [operating systems] entry of boot.ini.
var bootIniOS = regexp.MustCompile(`^(multi|scsi)\((\d+)\)disk\((\d+)\)rdisk\((\d+)\)partition\((\d+)\)([^=]+)=`)

// SystemRoot finds the Windows system root of a mounted guest the way
// libguestfs does: the first of /windows, /winnt, /win32, /win, /reactos
// (any case) holding System32, System32/config and System32/cmd.exe, else
// the first such path named in /boot.ini's [operating systems]. It
// returns the path as libguestfs reports it ("/Windows"), or an error
// matching ErrNotFound.
func SystemRoot(fsys guest.FS) (string, error) {
	for _, c := range systemRootCandidates {
		p, err := ResolvePath(fsys, c)
		if err != nil {
			continue
		}
		if isSystemRoot(fsys, p) {
			return "/" + p, nil
		}
	}
	if ini, err := ResolvePath(fsys, "boot.ini"); err == nil {
		data, err := guest.ReadFile(fsys, ini, guest.DefaultMaxFile)
		if err == nil {
			for _, p := range bootIniRoots(data) {
				if rp, err := ResolvePath(fsys, p); err == nil && isSystemRoot(fsys, rp) {
					return "/" + rp, nil
				}
			}
		}
	}
	return "", fmt.Errorf("windows system root: %w", ErrNotFound)
}

// bootIniRoots lists the system root paths of boot.ini's entries, in
// order, with forward slashes.
func bootIniRoots(data []byte) []string {
	var out []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if !in {
			in = strings.HasPrefix(line, "[operating systems]")
			continue
		}
		if !strings.HasPrefix(line, "multi(") && !strings.HasPrefix(line, "scsi(") {
			break
		}
		if m := bootIniOS.FindStringSubmatch(line); m != nil {
			out = append(out, strings.ReplaceAll(m[6], `\`, "/"))
		}
	}
	return out
}

// HivePath returns the io/fs path of a hive (Software, System, SAM,
// Security) under systemroot ("/Windows"), resolved ignoring case; a
// missing hive is an error matching fs.ErrNotExist.
func HivePath(fsys guest.FS, systemroot, hive string) (string, error) {
	return ResolvePath(fsys, path.Join(systemroot, "System32", "config", hive))
}

// OpenHive opens a hive (Software, System, SAM, Security) of the Windows
// installation at systemroot.
func OpenHive(fsys guest.FS, systemroot, hive string) (*Hive, error) {
	p, err := HivePath(fsys, systemroot, hive)
	if err != nil {
		return nil, fmt.Errorf("registry hive %s: %w", hive, err)
	}
	return Open(fsys, p)
}

// CurrentControlSet returns the name of the control set SYSTEM\Select\
// Current points at ("ControlSet001"), as libguestfs computes
// windows_current_control_set.
func CurrentControlSet(system *Hive) (string, error) {
	sel, err := system.Key("Select")
	if err != nil {
		return "", err
	}
	n, err := sel.Uint("Current")
	if err != nil {
		return "", err
	}
	if n > 999 {
		return "", fmt.Errorf("registry hive %s: Select\\Current is %d: %w", system.Name, n, ErrCorrupt)
	}
	return fmt.Sprintf("ControlSet%03d", n), nil
}

// ControlSet opens the current control set's key of a SYSTEM hive.
func ControlSet(system *Hive) (*Key, error) {
	name, err := CurrentControlSet(system)
	if err != nil {
		return nil, err
	}
	return system.Key(name)
}

// IsMissing reports whether err only says that something is absent (a
// hive file, key or value), as opposed to unreadable or corrupt.
func IsMissing(err error) bool {
	return err != nil && (errors.Is(err, ErrNotFound) || errors.Is(err, fs.ErrNotExist))
}
