#!/usr/bin/env bash
# Builds a real Debian root filesystem with debootstrap, once, as a tarball
# cached by what went into it. Shared by bench-image.sh (the streaming
# benchmark's images) and install-openscap.sh (the root that
# internal/profile's OpenSCAP comparison profiles).
#
#   bash scripts/debootstrap-root.sh [--path] [--dir DIR] NAME SUITE VARIANT PKG...
#
# The tarball is DIR/NAME-KEY.tar, KEY a hash of SUITE, VARIANT and the
# package list (one per line, as given), so a changed list builds a new root
# and never reuses an old one; older NAME-*.tar are removed. DIR defaults to
# ${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}/debian-roots. --path prints
# the tarball's path and builds nothing. The last line printed is the path.
# The tar keeps numeric owners, modes and xattrs; apt's package cache and
# lists are left out. Needs root, debootstrap and the Debian mirror
# (scripts/debian-mirror.sh). A minbase bookworm with a dozen packages takes
# about 45-90 s on the 2-core dev VM; a cached run ~0 s.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '[debootstrap-root %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

PATHONLY=0 DIR=""
while (($#)); do
	case $1 in
	--path) PATHONLY=1 ;;
	--dir) DIR=$2; shift ;;
	-*) die "unknown option $1" ;;
	*) break ;;
	esac
	shift
done
(($# >= 3)) || die "usage: $0 [--path] [--dir DIR] NAME SUITE VARIANT PKG..."
NAME=$1 SUITE=$2 VARIANT=$3
shift 3
PACKAGES=("$@")

DIR=${DIR:-${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}/debian-roots}
KEY=$(printf '%s\n' "$SUITE" "$VARIANT" "${PACKAGES[@]}" | sha256sum | cut -c1-16)
TAR=$DIR/$NAME-$KEY.tar
if ((PATHONLY)); then
	echo "$TAR"
	exit 0
fi

mkdir -p "$DIR"
exec 8>"$DIR/.$NAME.lock"
flock 8
if [[ ! -e $TAR ]]; then
	command -v debootstrap >/dev/null || die "debootstrap missing (apt-get install debootstrap)"
	mirror=$(bash "$HERE/debian-mirror.sh")
	work=$(mktemp -d "$DIR/.work-XXXXXX")
	trap 'rm -rf "$work"' EXIT
	log "debootstrap $SUITE ($VARIANT${PACKAGES[*]:+ + ${PACKAGES[*]}}) from $mirror"
	t=$SECONDS
	inc=()
	((${#PACKAGES[@]})) && inc=(--include="$(
		IFS=,
		echo "${PACKAGES[*]}"
	)")
	debootstrap --variant="$VARIANT" "${inc[@]}" "$SUITE" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
	rm -rf "$work/root"/var/cache/apt/archives/*.deb "$work/root"/var/lib/apt/lists/*_Packages "$work/root/debootstrap"
	tar --numeric-owner --xattrs -C "$work/root" -cf "$work/root.tar" .
	mv "$work/root.tar" "$TAR" # same filesystem: the tarball appears whole
	log "$NAME: $(du -h "$TAR" | cut -f1) root tarball in $((SECONDS - t)) s"
fi
for f in "$DIR/$NAME"-*.tar; do [[ $f == "$TAR" ]] || rm -f "$f"; done
echo "$TAR"
