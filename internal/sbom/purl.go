package sbom

import (
	"strconv"
	"strings"

	"github.com/package-url/packageurl-go"

	"guestkit.io/batch/internal/inspect"
)

// PURL is a's package URL on OS o, as Trivy's pkg/purl writes OS packages
// (see the package doc), or "" when o's package format has no purl type.
func PURL(o *inspect.OS, a inspect.Application) string {
	family := Family(o)
	version := osVersion(o)
	var q packageurl.Qualifiers
	if a.Arch != "" {
		q = append(q, packageurl.Qualifier{Key: "arch", Value: a.Arch})
	}
	var typ, ns, name, ver string
	switch o.PackageFormat {
	case "deb":
		typ, ns, name, ver = packageurl.TypeDebian, family, a.Name, a.PackageVersion("deb")
		if family == "debian" && o.MajorVersion != 0 {
			// os-release's VERSION_ID, as Syft and Grype write it
			// (debian-12); Trivy writes debian_version's 12.5, and both
			// read either.
			version = strconv.Itoa(o.MajorVersion)
		}
		if version != "" {
			q = append(q, packageurl.Qualifier{Key: "distro", Value: family + "-" + version})
		}
	case "rpm":
		// The epoch is a qualifier: the version is version-release.
		typ, ns, name, ver = packageurl.TypeRPM, rpmNamespace(family), a.Name, inspect.Application{Version: a.Version, Release: a.Release}.PackageVersion("rpm")
		if a.Epoch != 0 {
			q = append(q, packageurl.Qualifier{Key: "epoch", Value: strconv.Itoa(a.Epoch)})
		}
		if version != "" {
			q = append(q, packageurl.Qualifier{Key: "distro", Value: family + "-" + version})
		}
	case "apk":
		// Trivy lowercases apk names and writes the bare Alpine version.
		typ, ns, name, ver = packageurl.TypeApk, family, strings.ToLower(a.Name), a.PackageVersion("apk")
		if version != "" {
			q = append(q, packageurl.Qualifier{Key: "distro", Value: version})
		}
	case "pacman":
		typ, ns, name, ver = packageurl.TypeAlpm, family, a.Name, a.PackageVersion("pacman")
	default:
		return ""
	}
	// ToString writes the qualifiers in canonical (key) order and
	// percent-encodes each part.
	return packageurl.NewPackageURL(typ, strings.ToLower(ns), name, ver, q, "").ToString()
}

// rpmNamespace is Trivy's OSType.PurlNamespace: SUSE's enterprise
// products are "suse", openSUSE's "opensuse".
func rpmNamespace(family string) string {
	switch family {
	case "sles", "slem":
		return "suse"
	case "opensuse-leap", "opensuse-tumbleweed":
		return "opensuse"
	}
	return family
}
