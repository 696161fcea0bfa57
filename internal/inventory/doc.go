// Package inventory answers questions about the fleet from the latest
// sweep (guestkit-dispatcher inventory): which images have a package,
// optionally in a version range; the OS distribution; which images failed a
// rule. It is pure logic over a sweep report and its results: the caller
// reads them (Plan says which results to read; Read turns each into an
// Image) and Ask builds the Answer, which WriteTable, WriteCSV and
// WriteJSON print.
//
// # Where answers come from
//
// The sweep report lists every image with its status and ResultKey, the
// result that holds its data (for an image carried forward by an
// incremental sweep, an earlier night's result). Only completed and
// noncompliant images have data: the OS roots of the inspection
// (operating_systems, with their packages) and the rules evaluated
// (profile_reports). Every other image, and every image whose result
// cannot be read now, is listed as missing with the reason, never dropped.
//
// # Versions
//
// libguestfs splits a package version at the first hyphen;
// inspect.Application.PackageVersion rebuilds the package manager's own
// string ([epoch:]version[-release], version-rN for apk), and a range is
// compared with pkgversion by the root's package format: dpkg's rules for
// deb (epochs, ~ sorting before everything), rpm's for rpm, apk's for apk.
// A root of another format (pacman, ...) cannot be compared: its packages
// of that name are listed in the warnings, not as matches.
//
// # JSON (api_version guestkit.io/inventory/v1)
//
//	{
//	  "api_version": "guestkit.io/inventory/v1",
//	  "query": {"kind": "package", "package": "openssl", "version": ">=3.0.0,<3.0.15", "prefix": "images/"},
//	  "sweep": {"date": "2026-12-04", "report": "sweeps/2026-12-04/report.json"},
//	  "images": 3,    // images of the sweep under the prefix
//	  "matched": 1,   // images with at least one row
//	  "packages": [{"image_key", "root", "distro", "os_version", "package_format",
//	                "name", "version", "arch", "result_key", "carried_from"?}],
//	  "distributions": [{"distro", "os_version", "product_names": [...], "images", "image_keys": [...]}],
//	  "failed_rules": [{"image_key", "root", "distro", "os_version", "id", "severity", "title",
//	                    "result_key", "carried_from"?}],
//	  "missing": [{"image_key", "result_key", "status", "reason"}],
//	  "warnings": ["..."]
//	}
//
// Query kinds are package, os and failed-rule; exactly one of packages,
// distributions and failed_rules is present, the one of the kind (an empty
// list when nothing matched). missing and warnings are always present.
// Rows are sorted by image key then root (distributions by image count,
// descending, then distro and version). os_version is libguestfs's
// major.minor ("" when it does not know). Fields are only added, never
// renamed, within v1.
package inventory
