package inspect

import "guestkit.io/batch/internal/pkgversion"

// PackageVersion is a's version as its package manager writes it
// (packageFormat is the OS's package_format: deb, rpm, apk, ...):
// [epoch:]version[-release], and version-rN for apk. libguestfs splits the
// database's string into three fields (deb at the first hyphen, apk without
// the r); this puts it back together, so that every consumer (profile
// rules, SBOMs, package diffs) sees the string dpkg, rpm or apk prints.
func (a Application) PackageVersion(packageFormat string) string {
	return pkgversion.Version{Epoch: a.Epoch, Version: a.Version, Release: a.Release}.String(pkgversion.Format(packageFormat))
}
