package direct

import (
	"errors"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"

	"guestkit.io/batch/internal/guest"
)

// role is what a filesystem is to an OS, as libguestfs's inspection
// decides it from the files at its top.
type role int

const (
	roleOther role = iota
	roleRoot
	roleUsr
	roleSwap
)

// osData is what inspection learns about an OS from one filesystem; the
// fields follow libguestfs's inspection data, empty meaning "unknown".
type osData struct {
	osType, distro              string
	productName, productVariant string
	major, minor                int
	hasVersion                  bool
	arch, hostname              string
	pkgFormat, pkgManagement    string
	fstab                       []fstabEntry
}

func (d *osData) setVersion(major, minor int) {
	d.major, d.minor, d.hasVersion = major, minor, true
}

// maxSmallFile is libguestfs's bound on release and hostname files
// (is_small_file: "2 * 1048 * 1024", sic).
const maxSmallFile = 2 * 1048 * 1024

// files reads one filesystem the way libguestfs's inspection does: every
// path is absolute inside the filesystem, symlinks resolve inside it.
type files struct{ fsys guest.FS }

func rel(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

// isFile is libguestfs's Is.is_file: a regular file, the final symlink
// followed only when follow is set.
func (f files) isFile(p string, follow bool) bool {
	fi, err := f.stat(p, follow)
	return err == nil && fi.Mode().IsRegular()
}

func (f files) isDir(p string) bool {
	fi, err := f.fsys.Lstat(rel(p))
	return err == nil && fi.IsDir()
}

func (f files) isSymlink(p string) bool {
	fi, err := f.fsys.Lstat(rel(p))
	return err == nil && fi.Mode()&fs.ModeSymlink != 0
}

func (f files) stat(p string, follow bool) (fs.FileInfo, error) {
	if follow {
		return f.fsys.Stat(rel(p))
	}
	return f.fsys.Lstat(rel(p))
}

func (f files) readlink(p string) string {
	s, err := f.fsys.ReadLink(rel(p))
	if err != nil {
		return ""
	}
	return s
}

// smallLines is read_small_file: the lines of a regular file of at most
// maxSmallFile bytes, split on "\n" (a trailing newline gives a last empty
// line, as String.nsplit does).
func (f files) smallLines(p string) ([]string, bool) {
	data, ok := f.small(p)
	if !ok {
		return nil, false
	}
	return strings.Split(string(data), "\n"), true
}

func (f files) small(p string) ([]byte, bool) {
	fi, err := f.fsys.Stat(rel(p))
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxSmallFile {
		return nil, false
	}
	data, err := guest.ReadFile(f.fsys, rel(p), maxSmallFile)
	if err != nil {
		return nil, false
	}
	return data, true
}

// checkFilesystem decides a filesystem's role from its files, in
// libguestfs's order, and gathers the OS facts of a root or /usr.
func checkFilesystem(f files, mountable string, disk diskIndex) (role, *osData) {
	d := &osData{}
	r := roleOther
	switch {
	case f.isFile("/grub/menu.lst", false) || f.isFile("/grub/grub.conf", false) || f.isFile("/grub2/grub.cfg", false):
		// a /boot
	case f.isDir("/etc") && f.isDir("/bin") && f.isFile("/etc/freebsd-update.conf", false) && f.isFile("/etc/fstab", false):
		r = roleRoot
		checkBSDRoot(f, d, "freebsd", "freebsd", "/etc/motd", nil, mountable, disk)
	case f.isDir("/etc") && f.isDir("/bin") && f.isFile("/netbsd", false) && f.isFile("/etc/fstab", false) && f.isFile("/etc/release", false):
		r = roleRoot
		checkBSDRoot(f, d, "netbsd", "netbsd", "/etc/release", reNetBSD, mountable, disk)
	case f.isDir("/etc") && f.isDir("/bin") && f.isFile("/bsd", false) && f.isFile("/etc/fstab", false) && f.isFile("/etc/motd", false):
		r = roleRoot
		// libguestfs reports OpenBSD as freebsd (its check_openbsd_root).
		checkBSDRoot(f, d, "freebsd", "freebsd", "/etc/motd", nil, mountable, disk)
	case f.isFile("/hurd/console", false) && f.isFile("/hurd/hello", false) && f.isFile("/hurd/null", false):
		r = roleRoot
		d.osType = "hurd"
		runTests(f, d, hurdTests)
		d.arch = checkArchitecture(f)
		d.fstab = checkFstab(f, mountable, d.osType, disk)
		d.hostname = checkHostnameLinux(f)
	case f.isDir("/etc") && f.isDir("/bin") && f.isFile("/service/vm", false) && f.isFile("/etc/fstab", false) && f.isFile("/etc/version", false):
		r = roleRoot
		d.osType = "minix"
		if f.isFile("/etc/version", true) {
			parseGeneric(f, d, "", "/etc/version", reMinix)
			d.distro = ""
		}
		d.arch = checkArchitecture(f)
		d.hostname = hostnameFromFile(f, "/etc/hostname.file")
	case f.isDir("/etc") && (f.isDir("/bin") || f.isSymlink("/bin") && f.readlink("/bin") == "usr/bin") &&
		(f.isFile("/etc/fstab", false) || f.isFile("/etc/hosts", false)):
		r = roleRoot
		d.osType = "linux"
		runTests(f, d, linuxTests)
		d.arch = checkArchitecture(f)
		d.fstab = checkFstab(f, mountable, d.osType, disk)
		d.hostname = checkHostnameLinux(f)
	case f.isDir("/etc") && f.isDir("/root") && f.isDir("/home") && f.isDir("/usr") && f.isFile("/etc/coreos/update.conf", false):
		r = roleRoot
		d.osType, d.distro = "linux", "coreos"
		d.hostname = checkHostnameLinux(f)
		d.fstab = []fstabEntry{{mountable: mountable, path: "/"}}
	case f.isDir("/etc") && f.isDir("/bin") && f.isDir("/share") && !f.isDir("/local") && !f.isFile("/etc/fstab", false):
		// a /usr/local
	case f.isDir("/bin") && f.isDir("/local") && f.isDir("/share") && f.isDir("/src") && !f.isFile("/etc/fstab", false):
		r = roleUsr
		d.osType = "linux"
		if f.isFile("/lib/os-release", true) {
			parseOSRelease(f, d, "/lib/os-release")
		}
		if a := checkArchitecture(f); a != "" {
			d.arch = a
		}
	case f.isDir("/bin") && f.isDir("/share") && f.isDir("/local") && f.isDir("/share/coreos"):
		r = roleUsr
		d.osType, d.distro = "linux", "coreos"
		if f.isFile("/lib/os-release", true) {
			parseOSRelease(f, d, "/lib/os-release")
		} else if f.isFile("/share/coreos/lsb-release", true) {
			parseLSBRelease(f, d, "/share/coreos/lsb-release")
		}
		if a := checkArchitecture(f); a != "" {
			d.arch = a
		}
		d.fstab = []fstabEntry{{mountable: mountable, path: "/usr"}}
	}
	// Windows, DOS: not read by the direct backend yet; the caller falls
	// back to the appliance for NTFS and FAT volumes that look like them.
	d.pkgFormat = packageFormat(d.distro)
	d.pkgManagement = packageManagement(f, d)
	return r, d
}

func checkBSDRoot(f files, d *osData, osType, distro, release string, rex *regexp.Regexp, mountable string, disk diskIndex) {
	d.osType, d.distro = osType, distro
	if f.isFile(release, true) {
		parseGeneric(f, d, distro, release, rex)
	}
	d.arch = checkArchitecture(f)
	d.fstab = checkFstab(f, mountable, osType, disk)
	d.hostname = hostnameFreeBSD(f)
}

// checkHostnameLinux: /etc/HOSTNAME, /etc/hostname, then the HOSTNAME of
// /etc/sysconfig/network.
func checkHostnameLinux(f files) string {
	for _, p := range []string{"/etc/HOSTNAME", "/etc/hostname"} {
		if h := hostnameFromFile(f, p); h != "" {
			return h
		}
	}
	if f.isFile("/etc/sysconfig/network", false) {
		if data, ok := f.augeasFile("/etc/sysconfig/network"); ok {
			v := ""
			for _, l := range strings.Split(string(data), "\n") {
				k, val, ok := strings.Cut(strings.TrimSpace(l), "=")
				if ok && strings.TrimSpace(k) == "HOSTNAME" {
					v = shellUnquote(strings.TrimSpace(val))
				}
			}
			return v
		}
	}
	return ""
}

// hostnameFromFile is the first line that is neither empty nor a comment.
func hostnameFromFile(f files, p string) string {
	lines, ok := f.smallLines(p)
	if !ok {
		return ""
	}
	for _, l := range lines {
		if l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return ""
}

func hostnameFreeBSD(f files) string {
	lines, ok := f.smallLines("/etc/rc.conf")
	if !ok {
		return ""
	}
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, `hostname="`) || strings.HasPrefix(l, `hostname='`):
			if len(l) >= 11 {
				return l[10 : len(l)-1]
			}
			return ""
		case strings.HasPrefix(l, "hostname="):
			return l[9:]
		}
	}
	return ""
}

// maxAugeasFile is libguestfs's bound on files it hands to Augeas.
const maxAugeasFile = 100 * 1000

// augeasFile reads a configuration file as with_augeas would load it:
// a regular file (links followed) of at most maxAugeasFile bytes.
func (f files) augeasFile(p string) ([]byte, bool) {
	fi, err := f.fsys.Stat(rel(p))
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxAugeasFile {
		return nil, false
	}
	data, err := guest.ReadFile(f.fsys, rel(p), maxAugeasFile)
	return data, err == nil
}

var (
	reMajorMinor = regexp.MustCompile(`(\d+)\.(\d+)`)
	reMajor      = regexp.MustCompile(`(\d+)`)
)

// parseVersion is parse_version_from_major_minor.
func parseVersion(s string, d *osData) {
	if m := reMajorMinor.FindStringSubmatch(s); m != nil {
		maj, err1 := strconv.Atoi(m[1])
		minor, err2 := strconv.Atoi(m[2])
		if err1 == nil && err2 == nil {
			d.setVersion(maj, minor)
		}
		return
	}
	if m := reMajor.FindStringSubmatch(s); m != nil {
		if maj, err := strconv.Atoi(m[1]); err == nil {
			d.setVersion(maj, 0)
		}
	}
}

// shellUnquote is libguestfs's guestfs_int_shell_unquote: "..." with
// backslash escapes of $ ` " \ and newline, '...' verbatim, anything
// else as it is.
func shellUnquote(s string) string {
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		return s[1 : len(s)-1]
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		in := s[1 : len(s)-1]
		var b strings.Builder
		for i := 0; i < len(in); i++ {
			if in[i] == '\\' && i+1 < len(in) && strings.IndexByte("$`\"\\\n", in[i+1]) >= 0 {
				i++
			}
			b.WriteByte(in[i])
		}
		return b.String()
	}
	return s
}

func simpleUnquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// keyValues is parse_key_value_strings: non-empty lines not starting
// with '#', split at the first '='.
func keyValues(lines []string, unquote func(string) string) [][2]string {
	var out [][2]string
	for _, l := range lines {
		if l == "" || l[0] == '#' {
			continue
		}
		k, v, _ := strings.Cut(l, "=")
		out = append(out, [2]string{k, unquote(v)})
	}
	return out
}

var errNotELF = errors.New("not an ELF executable")
