// Package guestconf parses guest configuration the way the guest's own
// daemons do: sshd_config with Include and Match, sysctl.d precedence,
// systemd unit enablement and drop-ins, fstab, login.defs, PAM stacks,
// grub.cfg, grubenv and Boot Loader Specification entries, the account
// files (passwd, shadow, group), key=value and INI files, and package
// databases (dpkg, apk).
//
// Every parser reads through a guest filesystem (io/fs, paths unrooted,
// symlinks resolved inside the guest by Resolve) and reports where each
// value came from as a Source (absolute guest path and 1-based line), so
// that callers can show evidence. Parsers never log and hold no global
// state; they are shared by the profile rules and the inspection report.
//
// Missing files are reported as errors wrapping fs.ErrNotExist, so that
// callers can tell "absent, the daemon uses its default" from "unreadable".
//
// The package sits below internal/profile (rules) and the inspection
// report: both import it, it imports neither, so a parser fix reaches
// every consumer and both see a guest the same way.
package guestconf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"guestkit.io/batch/internal/guest"
)

// Source locates a value in a guest file.
type Source struct {
	File string `json:"file"`           // absolute guest path, "/etc/ssh/sshd_config"
	Line int    `json:"line,omitempty"` // 1-based; 0 when the whole file is meant
}

func (s Source) String() string {
	if s.Line > 0 {
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	}
	return s.File
}

// MaxSymlinkHops bounds symlink resolution, as the kernel's 40.
const MaxSymlinkHops = 40

// ErrSymlinkLoop is returned by Resolve for too many symlinks.
var ErrSymlinkLoop = errors.New("too many levels of symbolic links")

// Abs turns an io/fs path into the absolute guest path used in evidence.
func Abs(name string) string {
	if name == "." || name == "" {
		return "/"
	}
	return "/" + strings.TrimPrefix(name, "/")
}

// Resolve follows symlinks in every component of name inside the guest:
// absolute targets are relative to the guest root and ".." never leaves it.
// It returns the io/fs path of the final file. A missing component is an
// error wrapping fs.ErrNotExist. It resolves only with Lstat and ReadLink,
// so it does not depend on the FS following absolute links itself.
func Resolve(fsys fs.FS, name string) (string, error) {
	clean, ok := guest.Clean(name)
	if !ok {
		return "", &fs.PathError{Op: "resolve", Path: name, Err: fs.ErrInvalid}
	}
	if clean == "." {
		return ".", nil
	}
	todo := strings.Split(clean, "/")
	done := ""
	hops := 0
	for len(todo) > 0 {
		elem := todo[0]
		todo = todo[1:]
		cur := elem
		if done != "" {
			cur = done + "/" + elem
		}
		fi, err := fs.Lstat(fsys, cur)
		if err != nil {
			return "", err
		}
		if fi.Mode().Type() != fs.ModeSymlink {
			done = cur
			continue
		}
		hops++
		if hops > MaxSymlinkHops {
			return "", &fs.PathError{Op: "resolve", Path: Abs(clean), Err: ErrSymlinkLoop}
		}
		target, err := fs.ReadLink(fsys, cur)
		if err != nil {
			return "", err
		}
		var base string
		if strings.HasPrefix(target, "/") {
			base = target
		} else {
			base = path.Join("/"+done, target)
		}
		next, _ := guest.Clean(base) // Clean never escapes the root
		rest := strings.Join(todo, "/")
		if rest != "" {
			next = path.Join(next, rest)
		}
		if next == "." {
			return ".", nil
		}
		todo = strings.Split(next, "/")
		done = ""
	}
	return done, nil
}

// ReadFile reads a guest file through symlinks with the project's bound
// (guest.DefaultMaxFile).
func ReadFile(fsys fs.FS, name string) ([]byte, error) {
	return ReadFileMax(fsys, name, guest.DefaultMaxFile)
}

// ReadFileMax is ReadFile with an explicit bound.
func ReadFileMax(fsys fs.FS, name string, max int64) ([]byte, error) {
	real, err := Resolve(fsys, name)
	if err != nil {
		return nil, err
	}
	return guest.ReadFile(fsys, real, max)
}

// Stat stats a guest path through symlinks resolved inside the guest.
func Stat(fsys fs.FS, name string) (fs.FileInfo, error) {
	real, err := Resolve(fsys, name)
	if err != nil {
		return nil, err
	}
	return fs.Stat(fsys, real)
}

// Exists reports whether name exists (through symlinks). Errors other than
// not-exist count as existing, so that callers look closer and report them.
func Exists(fsys fs.FS, name string) bool {
	_, err := Stat(fsys, name)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}

// ReadDir lists a directory through symlinks, sorted by name.
func ReadDir(fsys fs.FS, dir string) ([]fs.DirEntry, error) {
	real, err := Resolve(fsys, dir)
	if err != nil {
		return nil, err
	}
	ents, err := fs.ReadDir(fsys, real)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return ents, nil
}

// IsDevNull reports whether name is a symlink to /dev/null: the systemd and
// sysctl.d way to mask a file.
func IsDevNull(fsys fs.FS, name string) bool {
	fi, err := fs.Lstat(fsys, name)
	if err != nil {
		return false
	}
	if fi.Mode().Type() == fs.ModeSymlink {
		t, err := fs.ReadLink(fsys, name)
		return err == nil && path.Clean(t) == "/dev/null"
	}
	return false
}

// Glob expands a pattern such as /etc/ssh/sshd_config.d/*.conf inside the
// guest, resolving symlinked directories, in lexical order like glob(3).
// A pattern matching nothing yields no names and no error.
func Glob(fsys fs.FS, pattern string) ([]string, error) {
	clean, ok := guest.Clean(pattern)
	if !ok || clean == "." {
		return nil, nil
	}
	parts := strings.Split(clean, "/")
	cur := []string{"."}
	for i, p := range parts {
		var next []string
		last := i == len(parts)-1
		for _, dir := range cur {
			if !hasMeta(p) {
				cand := path.Join(dir, p)
				if _, err := Stat(fsys, cand); err == nil {
					next = append(next, cand)
				} else if !errors.Is(err, fs.ErrNotExist) && last {
					return nil, err
				}
				continue
			}
			ents, err := ReadDir(fsys, dir)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
					continue
				}
				return nil, err
			}
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") && !strings.HasPrefix(p, ".") {
					continue // glob(3): a leading dot must match explicitly
				}
				if m, _ := path.Match(p, e.Name()); m {
					next = append(next, path.Join(dir, e.Name()))
				}
			}
		}
		cur = next
	}
	slices.Sort(cur)
	return cur, nil
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// lines splits data into lines without their terminators.
func lines(data []byte) []string {
	s := string(bytes.TrimSuffix(data, []byte("\n")))
	if s == "" {
		return nil
	}
	out := strings.Split(s, "\n")
	for i, l := range out {
		out[i] = strings.TrimSuffix(l, "\r")
	}
	return out
}

// configDirs is the systemd-style search path for *.d configuration
// fragments, highest priority first.
func configDirs(sub string) []string {
	return []string{
		"etc/" + sub,
		"run/" + sub,
		"usr/local/lib/" + sub,
		"usr/lib/" + sub,
		"lib/" + sub,
	}
}

// Fragments lists the files of a systemd-style drop-in directory set
// (e.g. "sysctl.d" with suffix ".conf"): files with the same basename in a
// higher-priority directory replace lower ones, a /dev/null symlink masks
// the basename, and the result is sorted by basename. dirs are io/fs paths,
// highest priority first.
func Fragments(fsys fs.FS, dirs []string, suffix string) ([]string, error) {
	chosen := map[string]string{}
	masked := map[string]bool{}
	for _, d := range dirs {
		ents, err := ReadDir(fsys, d)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
				continue
			}
			return nil, err
		}
		for _, e := range ents {
			n := e.Name()
			if !strings.HasSuffix(n, suffix) {
				continue
			}
			if _, seen := chosen[n]; seen || masked[n] {
				continue
			}
			p := path.Join(d, n)
			if IsDevNull(fsys, p) {
				masked[n] = true
				continue
			}
			chosen[n] = p
		}
	}
	names := make([]string, 0, len(chosen))
	for n := range chosen {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = chosen[n]
	}
	return out, nil
}
