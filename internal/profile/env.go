package profile

import (
	"context"
	"errors"
	"io/fs"
	"strings"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/guestconf"
	"guestkit.io/batch/internal/winreg"
)

// Env is what a rule sees of the target during one evaluation. It parses
// shared inputs (sshd_config, sysctl, systemd units, the filesystem walk)
// once and keeps them for the other rules. One Env serves one Evaluate.
type Env struct {
	fsys      guest.FS
	os        OSInfo
	pkgs      map[string]Package
	pkgsKnown bool
	pkgsWhy   string
	opts      Options

	sshd    memo[*guestconf.SSHDConfig]
	sysctl  memo[*guestconf.Sysctl]
	fstab   memo[[]guestconf.FstabEntry]
	passwd  memo[[]passwdEntry]
	walk    *WalkResult
	systemd *guestconf.Systemd
	winreg  memo[*winRegistry]
}

type memo[T any] struct {
	done bool
	v    T
	err  error
}

func (m *memo[T]) get(f func() (T, error)) (T, error) {
	if !m.done {
		m.v, m.err = f()
		m.done = true
	}
	return m.v, m.err
}

func newEnv(t Target, opts Options) *Env {
	e := &Env{fsys: t.FS, os: normalizeOS(t.FS, t.OS), opts: opts}
	e.systemd = guestconf.NewSystemd(t.FS)
	pkgs := t.Packages
	known := pkgs != nil
	if !known {
		var err error
		if pkgs, err = guestconf.ReadDpkgStatus(t.FS); err == nil {
			known = true
		} else if pkgs, err = guestconf.ReadApkInstalled(t.FS); err == nil {
			known = true
		} else {
			e.pkgsWhy = "package list not given and no dpkg or apk database readable (rpm databases are not read by rules)"
		}
	}
	e.pkgsKnown = known
	e.pkgs = make(map[string]Package, len(pkgs))
	for _, p := range pkgs {
		e.pkgs[p.Name] = p
	}
	return e
}

// FS is the guest filesystem.
func (e *Env) FS() guest.FS { return e.fsys }

// OS is the guest OS, with Family filled in when it could be derived.
func (e *Env) OS() OSInfo { return e.os }

// PackagesKnown reports whether the package list is available.
func (e *Env) PackagesKnown() bool { return e.pkgsKnown }

// Installed returns the first of names that is installed.
func (e *Env) Installed(names ...string) (Package, bool) {
	for _, n := range names {
		if p, ok := e.pkgs[n]; ok {
			return p, true
		}
	}
	return Package{}, false
}

// SSHD is the parsed sshd_config.
func (e *Env) SSHD() (*guestconf.SSHDConfig, error) {
	return e.sshd.get(func() (*guestconf.SSHDConfig, error) { return guestconf.ParseSSHD(e.fsys) })
}

// Sysctl is the merged sysctl configuration.
func (e *Env) Sysctl() (*guestconf.Sysctl, error) {
	return e.sysctl.get(func() (*guestconf.Sysctl, error) { return guestconf.ParseSysctl(e.fsys) })
}

// Fstab is /etc/fstab.
func (e *Env) Fstab() ([]guestconf.FstabEntry, error) {
	return e.fstab.get(func() ([]guestconf.FstabEntry, error) { return guestconf.ParseFstab(e.fsys) })
}

// Systemd answers unit questions.
func (e *Env) Systemd() *guestconf.Systemd { return e.systemd }

// Walk walks the whole filesystem once per evaluation (see walk.go).
func (e *Env) Walk(ctx context.Context) *WalkResult {
	if e.walk == nil {
		e.walk = walkGuest(ctx, e.fsys, e.opts.walkMax(), e.opts.walkTimeout())
	}
	return e.walk
}

// normalizeOS fills Family (and Distro when empty) from /etc/os-release,
// or marks a Windows guest: inspection gives Type and Distro "windows",
// and a tree given without OS is Windows when it has a system hive.
func normalizeOS(fsys guest.FS, o OSInfo) OSInfo {
	if strings.EqualFold(o.Type, FamilyWindows) || strings.EqualFold(o.Distro, FamilyWindows) || strings.EqualFold(o.Family, FamilyWindows) ||
		(o.Type == "" && o.Distro == "" && o.Family == "" && !guestconf.Exists(fsys, "etc/os-release") && windowsHive(fsys, winreg.System) != "") {
		o.Type, o.Family = FamilyWindows, FamilyWindows
		if o.Distro == "" {
			o.Distro = FamilyWindows
		}
		return o
	}
	if o.Distro == "" || o.Family == "" {
		if rel, err := guestconf.ParseOSRelease(fsys); err == nil {
			if o.Distro == "" {
				o.Distro = rel["ID"]
			}
			if o.Version == "" {
				o.Version = rel["VERSION_ID"]
			}
			if o.Family == "" {
				o.Family = familyOf(rel["ID"], rel["ID_LIKE"])
			}
		}
	}
	if o.Family == "" {
		o.Family = familyOf(o.Distro, "")
	}
	o.Family = strings.ToLower(o.Family)
	if o.Type == "" && o.Family != "" {
		o.Type = "linux"
	}
	if o.PackageFormat == "" {
		o.PackageFormat = map[string]string{"debian": "deb", "rhel": "rpm", "suse": "rpm", "alpine": "apk", "arch": "pacman"}[o.Family]
	}
	return o
}

// familyOf maps an os-release ID (and ID_LIKE) to a family.
func familyOf(id, like string) string {
	fam := map[string]string{
		"debian": "debian", "ubuntu": "debian", "linuxmint": "debian", "kali": "debian", "raspbian": "debian",
		"rhel": "rhel", "redhat": "rhel", "centos": "rhel", "fedora": "rhel", "rocky": "rhel", "almalinux": "rhel",
		"ol": "rhel", "oracle": "rhel", "amzn": "rhel", "scientific": "rhel", "eurolinux": "rhel",
		"sles": "suse", "sled": "suse", "opensuse": "suse", "opensuse-leap": "suse", "opensuse-tumbleweed": "suse", "suse": "suse",
		"alpine": "alpine", "arch": "arch", "archlinux": "arch", "manjaro": "arch",
	}
	for _, id := range append([]string{strings.ToLower(id)}, strings.Fields(strings.ToLower(like))...) {
		if f, ok := fam[id]; ok {
			return f
		}
	}
	return ""
}

// isNotExist reports a missing file.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
