package inspect

import (
	"context"
	"errors"
	"io/fs"
	"strings"

	"guestkit.io/batch/internal/guestconf"
)

// reader reads guest files for the report sections and records every
// failure as a Problem: an unreadable section is reported, never dropped.
type reader struct {
	fsys     fs.FS
	root     string
	problems []Problem
}

func (r *reader) problem(section, path string, err error) {
	r.problems = append(r.problems, Problem{Root: r.root, Section: section, Path: path, Message: err.Error()})
}

// read returns a file's content, or nil when it does not exist. Other
// errors (too large, unreadable) are recorded as problems of section.
func (r *reader) read(section, name string) []byte {
	data, err := guestconf.ReadFile(r.fsys, name)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.problem(section, guestconf.Abs(name), err)
		}
		return nil
	}
	return data
}

// glob expands a pattern, recording errors.
func (r *reader) glob(section, pattern string) []string {
	names, err := guestconf.Glob(r.fsys, pattern)
	if err != nil {
		r.problem(section, "/"+pattern, err)
	}
	return names
}

func (r *reader) exists(name string) bool { return guestconf.Exists(r.fsys, name) }

func readSections(ctx context.Context, r *reader, os *OS, opts Options) {
	pkgs := packageIndex(os.Applications)
	units := guestconf.NewSystemd(r.fsys)
	steps := []struct {
		skip bool
		fn   func()
	}{
		{opts.SkipUsers, func() { os.Users, os.Groups = readUsers(r) }},
		{opts.SkipServices, func() { os.Services = readServices(r) }},
		{false, func() { os.Kernels = readKernels(r) }},
		{opts.SkipNetwork, func() { os.Network = readNetwork(r, units) }},
		{false, func() { os.CloudInit = readCloudInit(r, pkgs, units, os.Kernels) }},
		{false, func() { os.MachineID = readMachineID(r) }},
		{false, func() { os.GuestTools = readGuestTools(r, pkgs, units) }},
		{opts.SkipSecurity, func() { os.Security = readSecurity(r, pkgs, units, os.Kernels) }},
		{opts.SkipStorage, func() { os.Fstab = readFstab(r) }},
	}
	for _, s := range steps {
		if ctx.Err() != nil {
			return
		}
		if !s.skip {
			s.fn()
		}
	}
}

// packageIndex maps package names to versions for presence checks.
func packageIndex(apps []Application) map[string]string {
	m := make(map[string]string, len(apps))
	for _, a := range apps {
		v := a.Version
		if a.Release != "" {
			v += "-" + a.Release
		}
		m[a.Name] = v
	}
	return m
}

func fields(line string) []string { return strings.Fields(line) }

// uncomment strips a trailing # comment and surrounding space.
func uncomment(line string) string {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	return strings.TrimSpace(line)
}

// isSymlink reports whether name is a symlink.
func isSymlink(r *reader, name string) (bool, error) {
	fi, err := fs.Lstat(r.fsys, name)
	if err != nil {
		return false, err
	}
	return fi.Mode().Type() == fs.ModeSymlink, nil
}

func readlink(r *reader, name string) (string, error) { return fs.ReadLink(r.fsys, name) }
