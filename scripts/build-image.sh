#!/usr/bin/env bash
# Builds the guestkit-runner and guestkit-dispatcher images without a Docker
# engine, as docker-format image archives (what `docker save` writes), which
# load with `ctr -n k8s.io images import ARCHIVE` and with
# `kind load image-archive ARCHIVE`. Needs root (debootstrap, chroot, mounts).
#
#   bash scripts/build-image.sh [runner|dispatcher|all]          # build; last lines: archive paths
#   bash scripts/build-image.sh --path [runner|dispatcher|all]   # print the paths, build nothing
#
# The same images as the Dockerfile's targets runner and dispatcher:
#  - runner: `debootstrap --variant=minbase bookworm` from the Debian mirror
#    the host's apt uses, slimmed like debian:12-slim, then the packages of
#    scripts/packages-runner.txt, the user 65532 and the fixed appliance of
#    scripts/make-appliance.sh: the same list and recipe the Dockerfile runs.
#    This root filesystem and its layer are cached, keyed by a hash of the
#    package list, the appliance recipe, the suite and the recipe below: a
#    cold build takes many minutes, a rerun only adds the binary layer.
#  - dispatcher: a few files (passwd, CA certificates and zoneinfo of the
#    host) and the static binary, like distroless/static.
# The image configuration (entrypoint, user, env, workdir, labels, ports) is
# read from the Dockerfile's stage by scripts/build-image, so the two builds
# cannot drift apart there. The binaries are bin/guestkit-runner and
# bin/guestkit-dispatcher (`make build`; GUESTKIT_BIN overrides bin/).
#
# Everything lands in ${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}/image/:
# runner-KEY/{rootfs,base.tar.gz} and the archives guestkit-runner.tar and
# guestkit-dispatcher.tar, each written under a temporary name and renamed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SUITE=bookworm
APPLIANCE=/opt/guestkit/appliance
CACHE=${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}
DIR=$CACHE/image
BIN=${GUESTKIT_BIN:-$REPO/bin}
PATH_ONLY=0

log() { printf 'build-image: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}
usage() { echo "usage: $0 [--path] [runner|dispatcher|all]" >&2; }

archive_of() { echo "$DIR/guestkit-$1.tar"; }

# ------------------------------------------------------------------ the runner's root filesystem
# These functions are the recipe: their text is part of the cache key.

# debian_mirror SUITE: the first URI the host's apt fetches SUITE from,
# from deb822 .sources files or one-line .list files.
debian_mirror() {
	local suite=$1 f
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		awk -v suite="$suite" 'BEGIN { RS = "" } {
			types = ""; uris = ""; suites = ""
			n = split($0, lines, "\n")
			for (i = 1; i <= n; i++) {
				if (lines[i] ~ /^Types:/) types = substr(lines[i], 7)
				if (lines[i] ~ /^URIs:/) uris = substr(lines[i], 6)
				if (lines[i] ~ /^Suites:/) suites = substr(lines[i], 8)
			}
			if ((" " types " ") !~ / deb / || (" " suites " ") !~ (" " suite " ")) next
			split(uris, u, " "); for (j in u) if (u[j] != "") { print u[j]; exit }
		}' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		awk -v suite="$suite" '$1 == "deb" {
			i = 2
			if ($2 ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ } # [options]
			if ($(i + 1) == suite) print $i
		}' "$f"
	done
}

# slim_rootfs ROOTFS: what debian:12-slim leaves out (debuerreotype's
# --slimify): documentation but the copyright files, manuals, locales. The
# dpkg configuration keeps them out of the packages installed later too.
slim_rootfs() {
	local r=$1
	cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<-'EOF'
		# like debian:12-slim: no documentation, manuals or locales
		path-exclude /usr/share/doc/*
		path-exclude /usr/share/groff/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/linda/*
		path-exclude /usr/share/lintian/overrides/*
		path-exclude /usr/share/locale/*
		path-exclude /usr/share/man/*
		path-include /usr/share/doc/*/copyright
		path-include /usr/share/locale/locale.alias
	EOF
	find "$r/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
	find "$r/usr/share/doc" -mindepth 1 -depth -type d -empty -delete
	find "$r"/usr/share/{groff,info,linda,lintian/overrides,man} -mindepth 1 -delete 2>/dev/null || true
	find "$r/usr/share/locale" -mindepth 1 -not -name locale.alias -delete 2>/dev/null || true
	# services must not start in a chroot (debian:12-slim ships the same file)
	printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
	chmod 0755 "$r/usr/sbin/policy-rc.d"
	echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
}

# apt_sources ROOTFS MIRROR SECURITY-MIRROR: debian:12-slim's sources, from
# the host's mirrors.
apt_sources() {
	local r=$1 mirror=$2 security=$3
	rm -f "$r/etc/apt/sources.list"
	{
		printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
			"$mirror" "$SUITE" "$SUITE"
		if [[ -n $security ]]; then
			printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
				"$security" "$SUITE"
		fi
	} >"$r/etc/apt/sources.list.d/debian.sources"
}

# in_chroot ROOTFS COMMAND...: COMMAND in ROOTFS as root, with the
# environment of a Dockerfile RUN.
in_chroot() {
	local r=$1
	shift
	chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"
}

# mount_chroot ROOTFS: /proc, /sys and a minimal /dev (no host devices: the
# build needs none, and a bind of the host's /dev is one rm -rf away from
# deleting it). Only ever called in a private mount namespace.
mount_chroot() {
	local r=$1 n name major minor
	mount -t proc proc "$r/proc"
	mount -t sysfs -o ro sysfs "$r/sys"
	mount -t tmpfs -o mode=0755,nosuid dev "$r/dev"
	for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
		IFS=: read -r name major minor <<<"$n"
		mknod -m 0666 "$r/dev/$name" c "$major" "$minor"
	done
	mkdir "$r/dev/pts" "$r/dev/shm"
	mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$r/dev/pts"
	mount -t tmpfs -o mode=1777,nosuid,nodev shm "$r/dev/shm"
	ln -s pts/ptmx "$r/dev/ptmx"
	ln -s /proc/self/fd "$r/dev/fd"
	ln -s /proc/self/fd/0 "$r/dev/stdin"
	ln -s /proc/self/fd/1 "$r/dev/stdout"
	ln -s /proc/self/fd/2 "$r/dev/stderr"
}

umount_chroot() {
	local r=$1 m
	for m in var/cache/apt/archives dev/shm dev/pts dev sys proc; do
		if mountpoint -q "$r/$m"; then umount "$r/$m" || umount -l "$r/$m"; fi
	done
}

# runner_rootfs ROOTFS MIRROR SECURITY-MIRROR DEBS-CACHE APT-CACHE: the
# Dockerfile's runner stage, in a chroot. Runs in a private mount and PID
# namespace (see the __runner-rootfs mode): every mount and process of the
# chroot ends with it.
runner_rootfs() {
	local r=$1 mirror=$2 security=$3 debs=$4 archives=$5
	debootstrap --variant=minbase --cache-dir="$debs" "$SUITE" "$r" "$mirror" >&2
	slim_rootfs "$r"
	apt_sources "$r" "$mirror" "$security"
	cp /etc/resolv.conf "$r/etc/resolv.conf"

	# shellcheck disable=SC2064 # the path now: the trap may run outside this function
	trap "umount_chroot '$r'" EXIT
	mount_chroot "$r"
	# The downloaded packages are kept between builds, outside the image.
	mount --bind "$archives" "$r/var/cache/apt/archives"

	# The Dockerfile: the package list, then the user, then the appliance.
	mkdir -p "$r/usr/share/guestkit"
	install -m 0644 "$HERE/packages-runner.txt" "$r/usr/share/guestkit/packages-runner.txt"
	install -m 0644 "$HERE/make-appliance.sh" "$r/usr/share/guestkit/make-appliance.sh"
	in_chroot "$r" apt-get update >&2
	# shellcheck disable=SC2016 # expanded in the chroot
	in_chroot "$r" INITRD=No DEBIAN_FRONTEND=noninteractive sh -c \
		'apt-get install -y --no-install-recommends $(grep -v "^#" /usr/share/guestkit/packages-runner.txt)' >&2
	umount "$r/var/cache/apt/archives"
	rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r/var/log/apt" "$r/var/log/dpkg.log" "$r"/boot/initrd.img*

	in_chroot "$r" groupadd --gid 65532 nonroot
	in_chroot "$r" useradd --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin nonroot

	in_chroot "$r" bash /usr/share/guestkit/make-appliance.sh "$APPLIANCE" >&2

	umount_chroot "$r"
	trap - EXIT
	# What docker run provides at run time, and the build's logs.
	rm -f "$r/etc/resolv.conf" "$r/etc/hostname" "$r/var/log/bootstrap.log" "$r/var/log/alternatives.log" \
		"$r/var/cache/ldconfig/aux-cache" "$r"/var/cache/debconf/*-old
	rm -rf "${r:?}"/tmp/* "${r:?}"/var/tmp/* "$r"/tmp/.guestfs-* "$r"/var/tmp/.guestfs-*
}

# ------------------------------------------------------------------ internal mode
# bash build-image.sh __runner-rootfs ARGS...: runner_rootfs, run by the
# main mode under unshare.
if [[ ${1:-} == __runner-rootfs ]]; then
	shift
	runner_rootfs "$@"
	exit 0
fi

# ------------------------------------------------------------------ arguments
if [[ ${1:-} == --path ]]; then
	PATH_ONLY=1
	shift
fi
case ${1:-all} in
runner | dispatcher) WHICH=("$1") ;;
all) WHICH=(runner dispatcher) ;;
-h | --help) usage; exit 0 ;;
*) usage; exit 64 ;;
esac
(($# <= 1)) || { usage; exit 64; }

if ((PATH_ONLY)); then
	for w in "${WHICH[@]}"; do archive_of "$w"; done
	exit 0
fi

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, chroot, mounts)"
for w in "${WHICH[@]}"; do
	[[ -x $BIN/guestkit-$w ]] || die "$BIN/guestkit-$w is missing: run make build"
done

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9 # one build at a time: they share the cache
WORK=$(mktemp -d "$DIR/.work-XXXXXX")
trap 'rm -rf --one-file-system "$WORK"' EXIT
rm -rf --one-file-system "$DIR"/.tmp-* # leftovers of an interrupted run

VERSION=${VERSION:-$(git -C "$REPO" describe --tags --always --dirty 2>/dev/null || echo dev)}
REVISION=${REVISION:-$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)}

log "compiling scripts/build-image"
(cd "$REPO" && go build -o "$WORK/build-image" ./scripts/build-image)

# build_archive NAME TARGET ARCHIVE LAYER... [-- FLAGS...]: the image
# archive of the Dockerfile's stage TARGET.
build_archive() {
	local name=$1 target=$2 archive=$3
	shift 3
	# build-image writes it under a temporary name and renames it.
	"$WORK/build-image" image -o "$archive" -tag "$name:dev" \
		-dockerfile "$REPO/Dockerfile" -target "$target" \
		-build-arg "VERSION=$VERSION" -build-arg "REVISION=$REVISION" \
		"$@"
}

# ------------------------------------------------------------------ runner
build_runner() {
	local key mirror security base rootfs layer t0=$SECONDS
	key=$({
		cat "$HERE/packages-runner.txt" "$HERE/make-appliance.sh"
		echo "suite $SUITE appliance $APPLIANCE"
		declare -f debian_mirror slim_rootfs apt_sources in_chroot mount_chroot umount_chroot runner_rootfs
	} | sha256sum | cut -c1-16)
	base=$DIR/runner-$key
	rootfs=$base/rootfs
	layer=$base/base.tar.gz

	if [[ ! -f $base/.complete ]]; then
		mirror=${GUESTKIT_DEBIAN_MIRROR:-$(debian_mirror "$SUITE" | sed -n 1p)}
		security=${GUESTKIT_DEBIAN_SECURITY_MIRROR-$(debian_mirror "$SUITE-security" | sed -n 1p)}
		[[ -n $mirror ]] || die "no apt source for $SUITE in /etc/apt (set GUESTKIT_DEBIAN_MIRROR)"
		command -v debootstrap >/dev/null || die "debootstrap is missing: bash scripts/setup.sh"
		log "runner: root filesystem $key: debootstrap $SUITE from $mirror, packages, appliance (takes minutes)"
		local tmp=$DIR/.tmp-runner-$key
		mkdir -p "$tmp" "$DIR/debs" "$DIR/apt-archives"
		# A private mount namespace: no mount of the chroot outlives it or is
		# seen outside; a PID namespace: nor does any process (qemu).
		unshare --mount --propagation private --pid --fork \
			bash "${BASH_SOURCE[0]}" __runner-rootfs "$tmp/rootfs" "$mirror" "$security" "$DIR/debs" "$DIR/apt-archives"
		log "runner: root filesystem built in $((SECONDS - t0)) s; writing its layer"
		"$WORK/build-image" layer -o "$tmp/base.tar.gz" "$tmp/rootfs"
		touch "$tmp/.complete"
		# Older keys' root filesystems are outdated: only this one is kept.
		find "$DIR" -maxdepth 1 -name 'runner-*' -type d -exec rm -rf --one-file-system {} +
		mv "$tmp" "$base"
		log "runner: base layer ready in $((SECONDS - t0)) s"
	fi

	# The binary must run in this root filesystem: libraries it links to
	# and the image lacks fail the build, not the first pod.
	install -m 0755 "$BIN/guestkit-runner" "$rootfs/tmp/guestkit-runner"
	chroot --userspec=65532:65532 "$rootfs" /tmp/guestkit-runner version >&2 ||
		die "runner: $BIN/guestkit-runner does not run in the image's root filesystem"
	rm -f "$rootfs/tmp/guestkit-runner"

	local top=$WORK/runner-top
	install -D -m 0755 "$BIN/guestkit-runner" "$top/usr/local/bin/guestkit-runner"
	# The base image's configuration (debian:12-slim), under the
	# Dockerfile's; the base.name label would name an image not used here.
	build_archive guestkit-runner runner "$(archive_of runner)" \
		-base-env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		-label org.opencontainers.image.base.name= \
		"$layer" "$top"
	log "runner: $(archive_of runner) in $((SECONDS - t0)) s"
}

# ------------------------------------------------------------------ dispatcher
build_dispatcher() {
	local r=$WORK/dispatcher-rootfs t0=$SECONDS
	[[ -r /etc/ssl/certs/ca-certificates.crt ]] || die "/etc/ssl/certs/ca-certificates.crt is missing: apt-get install ca-certificates"
	# distroless/static's files: users root, nobody and nonroot (65532),
	# CA certificates, zoneinfo, /tmp and nonroot's home.
	install -d -m 0755 "$r"/{etc/ssl/certs,usr/local/bin,usr/share,home}
	install -d -m 1777 "$r/tmp"
	install -d -m 0700 -o 65532 -g 65532 "$r/home/nonroot"
	printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
		'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$r/etc/passwd"
	printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$r/etc/group"
	echo 'hosts: files dns' >"$r/etc/nsswitch.conf"
	chmod 0644 "$r"/etc/{passwd,group,nsswitch.conf}
	install -m 0644 /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
	[[ -d /usr/share/zoneinfo ]] && cp -a /usr/share/zoneinfo "$r/usr/share/zoneinfo"
	install -m 0755 "$BIN/guestkit-dispatcher" "$r/usr/local/bin/guestkit-dispatcher"
	# distroless/static-debian12:nonroot's configuration, under the Dockerfile's.
	build_archive guestkit-dispatcher dispatcher "$(archive_of dispatcher)" \
		-base-env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		-base-env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
		-base-workdir /home/nonroot -base-user 65532 \
		-label org.opencontainers.image.base.name= \
		"$r"
	log "dispatcher: $(archive_of dispatcher) in $((SECONDS - t0)) s"
}

for w in "${WHICH[@]}"; do "build_$w"; done
for w in "${WHICH[@]}"; do archive_of "$w"; done
