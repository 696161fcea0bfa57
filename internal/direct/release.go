package direct

import (
	"regexp"
	"strconv"
	"strings"
)

// releaseTest is one entry of libguestfs's release file tests: when the
// file exists (links followed), parse runs; true ends the tests.
type releaseTest struct {
	file  string
	parse func(f files, d *osData, file string) bool
}

func generic(distro string, rex *regexp.Regexp) func(files, *osData, string) bool {
	return func(f files, d *osData, file string) bool { return parseGeneric(f, d, distro, file, rex) }
}

func setDistro(distro string) func(files, *osData, string) bool {
	return func(_ files, d *osData, _ string) bool { d.distro = distro; return true }
}

var (
	reFedora          = regexp.MustCompile(`Fedora release (\d+)`)
	reRHELOld         = regexp.MustCompile(`Red Hat.*release (\d+).*Update (\d+)`)
	reRHEL            = regexp.MustCompile(`Red Hat.*release (\d+)\.(\d+)`)
	reRHELNoMinor     = regexp.MustCompile(`Red Hat.*release (\d+)`)
	reCentOSOld       = regexp.MustCompile(`CentOS.*release (\d+).*Update (\d+)`)
	reCentOS          = regexp.MustCompile(`CentOS.*release (\d+)\.(\d+)`)
	reCentOSNoMinor   = regexp.MustCompile(`CentOS.*release (\d+)`)
	reRocky           = regexp.MustCompile(`Rocky Linux.*release (\d+)\.(\d+)`)
	reRockyNoMinor    = regexp.MustCompile(`Rocky Linux.*release (\d+)`)
	reSLOld           = regexp.MustCompile(`Scientific Linux.*release (\d+).*Update (\d+)`)
	reSL              = regexp.MustCompile(`Scientific Linux.*release (\d+)\.(\d+)`)
	reSLNoMinor       = regexp.MustCompile(`Scientific Linux.*release (\d+)`)
	reOracleOld       = regexp.MustCompile(`Oracle Linux.*release (\d+).*Update (\d+)`)
	reOracle          = regexp.MustCompile(`Oracle Linux.*release (\d+)\.(\d+)`)
	reOracleNoMinor   = regexp.MustCompile(`Oracle Linux.*release (\d+)`)
	reNetBSD          = regexp.MustCompile(`^NetBSD (\d+)\.(\d+)`)
	reOpenSUSE        = regexp.MustCompile(`^(openSUSE|SuSE Linux|SUSE LINUX) `)
	reSLES            = regexp.MustCompile(`^SUSE (Linux|LINUX) Enterprise `)
	reNLD             = regexp.MustCompile(`^Novell Linux Desktop `)
	reSLESVersion     = regexp.MustCompile(`^VERSION = (\d+)`)
	reSLESPatchlevel  = regexp.MustCompile(`^PATCHLEVEL = (\d+)`)
	reMinix           = regexp.MustCompile(`^(\d+)\.(\d+)(\.(\d+))?`)
	reFrugalware      = regexp.MustCompile(`Frugalware (\d+)\.(\d+)`)
	rePLD             = regexp.MustCompile(`(\d+)\.(\d+) PLD Linux`)
	reNeoKylinVersion = regexp.MustCompile(`^V(\d+)Update(\d+)$`)
	reOpenMandriva    = regexp.MustCompile(`OpenMandriva.*release (\d+)\.(\d+)\.?(\d+)? .*`)
)

// linuxTests are libguestfs's release file tests for a Linux root, in
// its order.
var linuxTests = []releaseTest{
	{"/etc/os-release", parseOSRelease},
	{"/etc/lsb-release", parseLSBRelease},
	{"/etc/openmandriva-release", generic("openmandriva", reOpenMandriva)},
	{"/etc/oracle-release", generic("oraclelinux", reOracleOld)},
	{"/etc/oracle-release", generic("oraclelinux", reOracle)},
	{"/etc/oracle-release", generic("oraclelinux", reOracleNoMinor)},
	{"/etc/centos-release", generic("centos", reCentOSOld)},
	{"/etc/centos-release", generic("centos", reCentOS)},
	{"/etc/centos-release", generic("centos", reCentOSNoMinor)},
	{"/etc/rocky-release", generic("rocky", reRocky)},
	{"/etc/rocky-release", generic("rocky", reRockyNoMinor)},
	{"/etc/altlinux-release", generic("altlinux", nil)},
	{"/etc/redhat-release", generic("fedora", reFedora)},
	{"/etc/redhat-release", generic("rhel", reRHELOld)},
	{"/etc/redhat-release", generic("rhel", reRHEL)},
	{"/etc/redhat-release", generic("rhel", reRHELNoMinor)},
	{"/etc/redhat-release", generic("centos", reCentOSOld)},
	{"/etc/redhat-release", generic("centos", reCentOS)},
	{"/etc/redhat-release", generic("centos", reCentOSNoMinor)},
	{"/etc/redhat-release", generic("rocky", reRocky)},
	{"/etc/redhat-release", generic("rocky", reRockyNoMinor)},
	{"/etc/redhat-release", generic("scientificlinux", reSLOld)},
	{"/etc/redhat-release", generic("scientificlinux", reSL)},
	{"/etc/redhat-release", generic("scientificlinux", reSLNoMinor)},
	{"/etc/redhat-release", generic("redhat-based", nil)},
	{"/etc/redhat-release", setDistro("redhat-based")},
	{"/etc/debian_version", generic("debian", nil)},
	{"/etc/pardus-release", generic("pardus", nil)},
	{"/etc/arch-release", setDistro("archlinux")},
	{"/etc/gentoo-release", generic("gentoo", nil)},
	{"/etc/meego-release", generic("meego", nil)},
	{"/etc/slackware-version", generic("slackware", nil)},
	{"/etc/ttylinux-target", generic("ttylinux", nil)},
	{"/etc/SuSE-release", parseSUSERelease},
	{"/etc/SuSE-release", setDistro("suse-based")},
	{"/etc/cirros/version", generic("cirros", nil)},
	{"/etc/br-version", func(f files, d *osData, file string) bool {
		distro := "buildroot"
		if f.isFile("/usr/share/cirros/logo", true) {
			distro = "cirros"
		}
		return parseGeneric(f, d, distro, file, nil)
	}},
	{"/etc/alpine-release", generic("alpinelinux", nil)},
	{"/etc/frugalware-release", generic("frugalware", reFrugalware)},
	{"/etc/pld-release", generic("pldlinux", rePLD)},
}

var hurdTests = []releaseTest{
	{"/etc/os-release", parseOSRelease},
	{"/etc/debian_version", generic("debian", nil)},
}

func runTests(f files, d *osData, tests []releaseTest) {
	for _, t := range tests {
		if f.isFile(t.file, true) && t.parse(f, d, t.file) {
			return
		}
	}
}

// osReleaseIDs maps os-release ID to libguestfs's distro names.
var osReleaseIDs = map[string]string{
	"alpine": "alpinelinux", "altlinux": "altlinux", "arch": "archlinux", "centos": "centos",
	"coreos": "coreos", "debian": "debian", "fedora": "fedora", "frugalware": "frugalware",
	"gentoo": "gentoo", "kali": "kalilinux", "kylin": "kylin", "mageia": "mageia",
	"neokylin": "neokylin", "openmandriva": "openmandriva", "opensuse": "opensuse",
	"pardus": "pardus", "pld": "pldlinux", "rhel": "rhel", "rocky": "rocky",
	"sles": "sles", "sled": "sles", "ubuntu": "ubuntu", "void": "voidlinux",
}

var rollingDistros = map[string]bool{"archlinux": true, "gentoo": true, "voidlinux": true}

// parseOSRelease reads ID, PRETTY_NAME and VERSION_ID; it gives up (false)
// when one is missing, or when Debian, CentOS and Rocky give only a major
// version, so that their release files are read instead.
func parseOSRelease(f files, d *osData, file string) bool {
	lines, ok := f.smallLines(file)
	if !ok {
		return false
	}
	for _, kv := range keyValues(lines, shellUnquote) {
		switch k, v := kv[0], kv[1]; k {
		case "ID":
			distro, ok := osReleaseIDs[v]
			if !ok && strings.HasPrefix(v, "opensuse-") {
				distro, ok = "opensuse", true
			}
			if ok {
				d.distro = distro
			}
		case "PRETTY_NAME":
			d.productName = v
		case "VERSION_ID":
			if m := reNeoKylinVersion.FindStringSubmatch(v); m != nil {
				maj, _ := strconv.Atoi(m[1])
				minor, _ := strconv.Atoi(m[2])
				d.setVersion(maj, minor)
			} else {
				parseVersion(v, d)
			}
		}
	}
	if d.distro == "" || d.productName == "" {
		return false
	}
	switch {
	case (d.distro == "debian" || d.distro == "centos" || d.distro == "rocky") && d.hasVersion && d.minor == 0:
		return false
	case !d.hasVersion && rollingDistros[d.distro]:
		d.setVersion(0, 0)
		return true
	case !d.hasVersion:
		return false
	}
	return true
}

var lsbDistribIDs = map[string]string{"CoreOS": "coreos", "LinuxMint": "linuxmint", "Mageia": "mageia", "Ubuntu": "ubuntu"}

func parseLSBRelease(f files, d *osData, file string) bool {
	lines, ok := f.smallLines(file)
	if !ok {
		return false
	}
	found := false
	for _, kv := range keyValues(lines, simpleUnquote) {
		switch k, v := kv[0], kv[1]; k {
		case "DISTRIB_ID":
			if distro, ok := lsbDistribIDs[v]; ok {
				found = true
				d.distro = distro
			}
		case "DISTRIB_RELEASE":
			parseVersion(v, d)
		case "DISTRIB_DESCRIPTION":
			found = true
			d.productName = v
		}
	}
	return found
}

func parseSUSERelease(f files, d *osData, file string) bool {
	lines, ok := f.smallLines(file)
	if !ok || len(lines) == 0 {
		return false
	}
	d.productName = lines[0]
	switch {
	case reSLES.MatchString(lines[0]) || reNLD.MatchString(lines[0]):
		major, minor := -1, -1
		if len(lines) >= 2 {
			if m := reSLESVersion.FindStringSubmatch(lines[1]); m != nil {
				major, _ = strconv.Atoi(m[1])
			}
		}
		if len(lines) >= 3 {
			if m := reSLESPatchlevel.FindStringSubmatch(lines[2]); m != nil {
				minor, _ = strconv.Atoi(m[1])
			}
		}
		d.distro = "sles"
		d.hasVersion = false
		if major >= 0 {
			d.setVersion(major, max(minor, 0))
		}
	case reOpenSUSE.MatchString(lines[0]):
		if len(lines) >= 2 {
			parseVersion(lines[1], d)
		}
		d.distro = "opensuse"
	}
	return true
}

// parseGeneric reads the first line of a release file as the product
// name; with rex, the file must match it, and its groups are the version.
func parseGeneric(f files, d *osData, distro, file string, rex *regexp.Regexp) bool {
	data, ok := f.small(file)
	if !ok {
		return false
	}
	first, _, _ := strings.Cut(string(data), "\n")
	if first == "" {
		return false
	}
	d.productName = first
	d.distro = distro
	if rex == nil {
		parseVersion(first, d)
		return true
	}
	m := rex.FindStringSubmatch(first)
	if m == nil {
		return false
	}
	var major, minor = -1, -1
	if len(m) > 1 {
		if v, err := strconv.Atoi(m[1]); err == nil {
			major = v
		}
	}
	if len(m) > 2 {
		if v, err := strconv.Atoi(m[2]); err == nil {
			minor = v
		}
	}
	if major >= 0 {
		d.setVersion(major, max(minor, 0))
	}
	return true
}

// packageFormat is check_package_format.
func packageFormat(distro string) string {
	switch distro {
	case "altlinux", "centos", "rocky", "fedora", "mageia", "mandriva", "meego", "neokylin", "openmandriva",
		"opensuse", "oraclelinux", "redhat-based", "rhel", "scientificlinux", "sles", "suse-based":
		return "rpm"
	case "debian", "kalilinux", "kylin", "linuxmint", "ubuntu":
		return "deb"
	case "archlinux":
		return "pacman"
	case "gentoo":
		return "ebuild"
	case "pardus":
		return "pisi"
	case "alpinelinux":
		return "apk"
	case "voidlinux":
		return "xbps"
	}
	return ""
}

// packageManagement is check_package_management.
func packageManagement(f files, d *osData) string {
	major := 0
	if d.hasVersion {
		major = d.major
	}
	switch d.distro {
	case "meego":
		return "yum"
	case "fedora":
		switch {
		case major >= 22 && f.isFile("/usr/bin/dnf", true):
			return "dnf"
		case major >= 1:
			return "yum"
		}
	case "neokylin", "openmandriva":
		return "dnf"
	case "centos", "rocky", "oraclelinux", "redhat-based", "rhel", "scientificlinux":
		switch {
		case major >= 8:
			return "dnf"
		case major >= 5:
			return "yum"
		case major >= 2:
			return "up2date"
		}
	case "altlinux", "debian", "kalilinux", "kylin", "linuxmint", "ubuntu":
		return "apt"
	case "archlinux":
		return "pacman"
	case "gentoo":
		return "portage"
	case "pardus":
		return "pisi"
	case "mageia", "mandriva":
		return "urpmi"
	case "opensuse", "sles", "suse-based":
		return "zypper"
	case "alpinelinux":
		return "apk"
	case "voidlinux":
		return "xbps"
	}
	return ""
}

// osinfo is libguestfs's inspect_get_osinfo for the OS types the direct
// backend reads.
func osinfo(osType, distro string, major, minor int) string {
	if distro == "" {
		distro = "unknown"
	}
	switch osType {
	case "linux":
		switch distro {
		case "centos":
			switch {
			case major >= 8:
				return distro + strconv.Itoa(major)
			case major == 7:
				return distro + "7.0"
			case major == 6:
				return distro + "6." + strconv.Itoa(minor)
			}
		case "rocky":
			if major >= 8 {
				return distro + strconv.Itoa(major)
			}
		case "debian":
			if major >= 4 {
				return distro + strconv.Itoa(major)
			}
		case "fedora", "mageia":
			return distro + strconv.Itoa(major)
		case "sles":
			if minor == 0 {
				return distro + strconv.Itoa(major)
			}
			return distro + strconv.Itoa(major) + "sp" + strconv.Itoa(minor)
		case "ubuntu":
			return distro + strconv.Itoa(major) + "." + twoDigits(minor)
		case "archlinux", "gentoo", "voidlinux":
			return distro
		case "altlinux":
			if major >= 8 {
				return "alt" + strconv.Itoa(major) + "." + strconv.Itoa(minor)
			}
			return distro + strconv.Itoa(major) + "." + strconv.Itoa(minor)
		}
		if distro != "unknown" && (major > 0 || minor > 0) {
			return distro + strconv.Itoa(major) + "." + strconv.Itoa(minor)
		}
	case "freebsd", "netbsd", "openbsd":
		return distro + strconv.Itoa(major) + "." + strconv.Itoa(minor)
	case "dos":
		if distro == "msdos" {
			return "msdos6.22"
		}
	}
	return "unknown"
}

func twoDigits(n int) string {
	if n >= 0 && n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}
