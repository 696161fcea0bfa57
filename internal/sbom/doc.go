// Package sbom writes a disk image's installed packages as software bills of
// materials: CycloneDX 1.6 JSON (github.com/CycloneDX/cyclonedx-go) and SPDX
// 2.3 JSON (github.com/spdx/tools-golang), with package URLs from
// github.com/package-url/packageurl-go — the libraries Trivy and Syft use,
// so that their readers see what their writers would have written.
//
// # What a document holds
//
// The image is the document's subject: CycloneDX metadata.component (type
// container, as Trivy writes a VM image), SPDX's described package (purpose
// CONTAINER), with its sha256 when the runner verified one. The operating
// system is a component of its own (CycloneDX operating-system; SPDX
// purpose OPERATING_SYSTEM, SPDXRef-OperatingSystem-*, the prefix Trivy's
// reader keys on), named by its family as Trivy names it (debian, ubuntu,
// alpine, redhat, rocky, ...). Every package is a component (library) with
// its purl, linked to the OS (CycloneDX dependencies; SPDX CONTAINS), and
// the image contains the OS.
//
// # Package URLs
//
// As the purl type definitions say, and as Trivy's pkg/purl builds them for
// OS packages:
//
//	pkg:deb/debian/openssh-server@1:9.2p1-2%2Bdeb12u3?arch=amd64&distro=debian-12
//	pkg:rpm/rocky/NetworkManager@1.46.0-8.el9_4?arch=x86_64&distro=rocky-9.4&epoch=1
//	pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=3.19
//
// deb: the full dpkg version, epoch included (the purl spec's own example,
// pkg:deb/debian/attr@1:2.4.47-2%2Bb1; Trivy moves the epoch to a
// qualifier, and its reader takes the version as given either way). rpm:
// version-release, the epoch as a qualifier. apk: version-rN. The
// namespace is the distribution (Trivy's family: debian, ubuntu, redhat,
// rocky, centos, fedora, oracle, suse, alpine); the distro qualifier is
// <family>-<version> for deb and rpm and the bare version for apk, as Trivy
// writes them, except Debian's, which is os-release's VERSION_ID
// (debian-12, as Syft and Grype write it, where Trivy writes
// /etc/debian_version's debian-12.5; each reads the other's). The version
// is what the inspection knows, major.minor (libguestfs's: the release
// file's 9.4, Ubuntu's 22.04); Alpine's patch level (3.19.1) is not in the
// report, so Alpine is 3.19. A root whose version is unknown (0.0: Debian
// testing, rolling releases) gets no distro qualifier. pacman packages are
// pkg:alpm/<distro>/...; packages of other formats (Windows) have no purl.
//
// # Licences
//
// The inspection does not read package licences (dpkg keeps them in
// /usr/share/doc/*/copyright, rpm in a header tag libguestfs does not
// return), so no licence is stated: CycloneDX components have none and
// SPDX says NOASSERTION. Nothing is guessed.
//
// # Several OS roots: one document per root
//
// A disk with two systems gives two documents, in root order, each with the
// image as subject and one OS with its packages (file names as for SARIF:
// base.cdx.json, base.2.cdx.json). One document with the roots apart would
// be valid CycloneDX, but the scanners read one OS per SBOM: Trivy takes the
// first operating-system component, ignores the rest, and refuses a document
// whose orphan OS packages are of two types (deb and apk); Grype keeps one
// distro. One document per root is what they can scan.
//
// # Deterministic output
//
// Components are sorted (name, version, arch, purl); identical packages are
// listed once. The CycloneDX serial number and the SPDX namespace are
// derived from the subject and the root's content (a name-based UUID), and
// the creation time is the caller's (the runner passes the result's
// finished_at), so that the same result always gives the same bytes.
package sbom
