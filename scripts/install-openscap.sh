#!/usr/bin/env bash
# Installs the peer that internal/profile/oscaptest compares our rule
# verdicts with (issue 14 point 3): OpenSCAP, the SCAP Security Guide's
# Debian 12 content, and a real Debian 12 root to evaluate both on.
#
#   bash scripts/install-openscap.sh          # install what is missing; last line: PEERDIR
#   bash scripts/install-openscap.sh --path   # print PEERDIR, install nothing
#
# PEERDIR (${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}/openscap/ssg-SSG_VERSION-ROOTKEY)
# holds ssg-debian12-ds.xml (the datastream) and debian12-root.tar (a
# symlink to the root tarball). It is keyed by the SSG version and the
# root's package list, so a new pin never reuses an old tree.
#
# - oscap: bookworm's openscap-scanner 1.3.7, installed into the root
#   (ROOT_PACKAGES), where the test runs it with chroot: the host's oscap
#   (oscap-chroot) cannot read a Debian root's packages (its dpkginfo probe
#   fails on the host's libapt state), so every rule of a package platform
#   would be notapplicable.
# - content: bookworm's ssg-debian (0.1.65) has Debian 10/11 content only, so
#   trixie's ssg-debian (SSG_VERSION) is fetched with `apt-get download`
#   through a private sources list and apt state under the cache (the same
#   mirror, checked with the trixie key of debian-archive-keyring) and
#   unpacked with dpkg-deb -x. It is never installed: the host's apt never
#   sees trixie.
# - root: debootstrap bookworm minbase with ROOT_PACKAGES
#   (scripts/debootstrap-root.sh): 190 packages, the services and files
#   the SSG standard profile and our rules look at, and oscap.
#
# Cold, measured 2026-12-05 on the 2-core dev VM: see the numbers in
# internal/profile/oscaptest/doc.go. Needs root (apt, debootstrap) and the
# Debian mirror (scripts/debian-mirror.sh).
set -euo pipefail

# The pins: the SSG package and the root's packages.
SSG_SUITE=trixie
SSG_VERSION=0.1.76-1
ROOT_PACKAGES=(openssh-server systemd-sysv rsyslog cron logrotate sudo ufw apparmor libpam-pwquality chrony procps kmod iproute2 linux-base openscap-scanner)

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}
base=$CACHE/openscap
ROOTKEY=$(printf '%s\n' "${ROOT_PACKAGES[@]}" | sha256sum | cut -c1-8)
peer=$base/ssg-$SSG_VERSION-$ROOTKEY
ds=$peer/ssg-debian12-ds.xml
log() { printf '[install-openscap %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ "${1:-}" == "--path" ]]; then
	echo "$peer"
	exit 0
fi

mkdir -p "$base"
exec 9>"$base/.lock"
flock 9

# the SSG content, unpacked, never installed
if [[ ! -s $ds ]]; then
	mirror=$(bash "$HERE/debian-mirror.sh")
	apt=$base/apt-$SSG_SUITE
	mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/preferences.d"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $SSG_SUITE main" >"$apt/sources.list"
	opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o Dir::Etc::Preferences=/dev/null -o "Dir::Etc::PreferencesParts=$apt/preferences.d"
		-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt" -o Dir::State::Status=/dev/null
		-o Acquire::Languages=none -o APT::Sandbox::User=root)
	log "fetching ssg-debian=$SSG_VERSION from $mirror $SSG_SUITE"
	apt-get "${opts[@]}" -qq update >&2
	tmp=$(mktemp -d "$base/.ssg-XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get "${opts[@]}" -qq download "ssg-debian=$SSG_VERSION") >&2 ||
		die "apt-get download ssg-debian=$SSG_VERSION failed (gone from $SSG_SUITE? bump SSG_VERSION)"
	dpkg-deb -x "$tmp"/ssg-debian_*.deb "$tmp/x"
	mkdir -p "$peer"
	mv "$tmp/x/usr/share/xml/scap/ssg/content/ssg-debian12-ds.xml" "$ds.tmp"
	mv "$ds.tmp" "$ds"
	rm -rf "$apt/lists" "$apt"/*.bin
fi

# the Debian 12 root
tar=$(bash "$HERE/debootstrap-root.sh" debian12-oscap bookworm minbase "${ROOT_PACKAGES[@]}" | tail -1)
mkdir -p "$peer"
ln -sfn "$tar" "$peer/debian12-root.tar"

for d in "$base"/ssg-*; do [[ $d == "$peer" ]] || rm -rf "$d"; done
grep -q 'xccdf_org.ssgproject.content_benchmark_DEBIAN-12' "$ds" || die "$ds: no Debian 12 benchmark"
echo "$peer"
