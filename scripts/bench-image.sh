#!/usr/bin/env bash
# Builds the real-OS disk images of the streaming benchmark (make
# bench-stream, issue 13 point 7): a real Debian 12 root from debootstrap
# with incompressible filler data, in the sizes the issue's targets name.
#
#   bash scripts/bench-image.sh [--force] [OUTDIR]
#   bash scripts/bench-image.sh --list
#
# OUTDIR defaults to ${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}/bench-images.
#
#   debian12-700m.qcow2  1 GiB virtual, MBR, one ext4 root (hostname deb12-bench-700m),
#                        ~470 MiB of /dev/urandom files under /srv/data: a ~700 MiB qcow2
#   debian12-700m.raw    the same disk as sparse raw (the raw path; the object is 1 GiB)
#   debian12-20g.qcow2   20 GiB virtual, GPT: /boot ext4 + LVM vg debvg (root ext4 6 GiB
#                        at the start, var xfs 8 GiB after a 3.5 GiB gap; hostname
#                        deb12-bench-20g), 4 GiB of filler (1.5 GiB /srv/data on root,
#                        2.5 GiB /var/backups/bench-data on var): a ~4.3 GiB qcow2
#   MANIFEST             name, file, format, virtual size, file size, hostname, OS
#
# No libguestfs appliance (slow under TCG): partition tables with sfdisk on a
# sparse raw file, each filesystem on a loop device at its offset
# (losetup -o/--sizelimit: no partition scan needed), mounted and filled on
# the host, then qemu-img convert (which keeps holes). The kernel here has no
# device-mapper, so LVM runs with activation off and the LVs are reached the
# same way, at pe_start + first extent * extent size inside the PV.
# Needs root, debootstrap, lvm2, xfsprogs, e2fsprogs, fdisk, qemu-utils and
# the network (the Debian mirror in /etc/apt/sources.list*, or $DEBIAN_MIRROR).
#
# Cache: the images are keyed by a hash of this script (a second run takes
# ~0 s; a changed script rebuilds them); the debootstrap root is a tarball
# keyed by its suite, variant and package list, kept across script changes.
# Each file is built under a temporary name and renamed into place. The last
# line printed is OUTDIR.
#
# Cold build, measured 2026-12-05 on the 2-core dev VM (no KVM needed):
# 2m06s (debootstrap 45 s, the 700m images 16 s, the 20g image 66 s); with
# the root tarball cached (a changed script) 2m05s. Disk: 5.7 GiB in OUTDIR
# (700m.qcow2 0.67 GiB, 700m.raw 0.67 GiB allocated of 1 GiB, 20g.qcow2
# 4.18 GiB, root tarball 0.16 GiB); ~10 GiB at the peak (the 20 GiB raw,
# 4.2 GiB allocated, beside its qcow2 during the conversion).
set -euo pipefail

SUITE=bookworm
VARIANT=minbase
PACKAGES=(openssh-server systemd-sysv)

# name|file|format|virtual size (bytes)|hostname|description
IMAGES=(
	"debian12-700m|debian12-700m.qcow2|qcow2|1073741824|deb12-bench-700m|Debian 12 (debootstrap minbase + openssh-server, systemd-sysv), MBR, ext4 root, ~470 MiB random filler in /srv/data"
	"debian12-700m-raw|debian12-700m.raw|raw|1073741824|deb12-bench-700m|debian12-700m.qcow2 as sparse raw"
	"debian12-20g|debian12-20g.qcow2|qcow2|21474836480|deb12-bench-20g|Debian 12, GPT, /boot ext4 + LVM debvg (root ext4, var xfs), 4 GiB random filler spread over both LVs"
)

log() { printf '[bench-image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
	cat <<-EOF
		usage: $0 [--force] [OUTDIR]
		       $0 --list
		  OUTDIR   default \${GUESTKIT_CACHE:-\$HOME/.cache/guestkit-batch}/bench-images
		  --force  rebuild the images even if the cache key matches (the debootstrap root is kept)
	EOF
}

FORCE=0 OUTDIR=""
while (($#)); do
	case $1 in
	--list)
		printf '%-20s %-22s %-6s %12s %-18s %s\n' NAME FILE FORMAT VSIZE HOSTNAME DESCRIPTION
		for i in "${IMAGES[@]}"; do
			IFS='|' read -r n f fmt vs h desc <<<"$i"
			printf '%-20s %-22s %-6s %12s %-18s %s\n' "$n" "$f" "$fmt" "$vs" "$h" "$desc"
		done
		exit 0
		;;
	--force) FORCE=1 ;;
	-h | --help) usage; exit 0 ;;
	-*) usage >&2; exit 64 ;;
	*) [[ -z $OUTDIR ]] || { usage >&2; exit 64; }; OUTDIR=$1 ;;
	esac
	shift
done

OUTDIR=${OUTDIR:-${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}/bench-images}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
KEY=$(sha256sum <"${BASH_SOURCE[0]}" | cut -c1-16)
ROOTKEY=$(printf '%s\n' "$SUITE" "$VARIANT" "${PACKAGES[@]}" | sha256sum | cut -c1-16)

exec 9>"$OUTDIR/.lock"
flock 9
WORK=$OUTDIR/.work.$$
LOOPS=() MOUNTS=()
cleanup() {
	local i
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}" 2>/dev/null || true; done
	for i in "${LOOPS[@]}"; do losetup -d "$i" 2>/dev/null || true; done
	rm -rf "$WORK" "$OUTDIR"/.tmp.*
}
trap cleanup EXIT
rm -rf "$OUTDIR"/.work.* "$OUTDIR"/.tmp.*
mkdir -p "$WORK"

old_key=$(cat "$OUTDIR/.key" 2>/dev/null || true)
if [[ $old_key != "$KEY" ]] || ((FORCE)); then
	[[ -n $old_key ]] && log "cache key changed ($old_key -> $KEY): rebuilding the images"
	for i in "${IMAGES[@]}"; do
		IFS='|' read -r n f _ <<<"$i"
		rm -f "${OUTDIR:?}/$f"
	done
	rm -f "$OUTDIR/MANIFEST"
	echo "$KEY" >"$OUTDIR/.tmp.key" && mv "$OUTDIR/.tmp.key" "$OUTDIR/.key"
fi
have() { [[ -e $OUTDIR/$1 ]]; }
T0=$SECONDS

# deterministic UUIDs, so that a rebuild gives the same identifiers
uuid_of() {
	local h
	h=$(printf 'guestkit-bench:%s' "$1" | sha256sum)
	printf '%s-%s-4%s-a%s-%s\n' "${h:0:8}" "${h:8:4}" "${h:13:3}" "${h:17:3}" "${h:20:12}"
}

# ------------------------------------------------------------------ debootstrap root
# scripts/debootstrap-root.sh, keeping its tarball beside the images
# (debootstrap-SUITE-ROOTKEY.tar, the name this script has always used).
ROOTTAR=$(bash "$(dirname "${BASH_SOURCE[0]}")/debootstrap-root.sh" --dir "$OUTDIR" \
	"debootstrap-$SUITE" "$SUITE" "$VARIANT" "${PACKAGES[@]}" | tail -1)

# ------------------------------------------------------------------ helpers
loop() { # FILE OFFSET SIZE -> sets LOOPDEV (not in a subshell: LOOPS must see it)
	LOOPDEV=$(losetup -f --show -o "$2" --sizelimit "$3" "$1") || die "losetup $1 at $2"
	LOOPS+=("$LOOPDEV")
}
# lvmq ARGS: lvm without its warnings about disabled activation
lvmq() {
	lvm "$@" 2> >(grep -vE 'Activation disabled|not zeroed|leaked on' >&2)
}
mnt() { # DEV DIR
	mkdir -p "$2"
	mount "$1" "$2" || die "mount $1 $2"
	MOUNTS+=("$2")
}
unmount_all() {
	local i
	sync
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}"; done
	MOUNTS=()
	for i in "${LOOPS[@]}"; do losetup -d "$i"; done
	LOOPS=()
}
# part_range RAW N -> "OFFSET SIZE" in bytes of partition N
part_range() {
	sfdisk -J "$1" | jq -r --argjson n "$2" '.partitiontable.partitions[$n-1] | "\(.start*512) \(.size*512)"'
}
# fill DIR BYTES SEED: files of /dev/urandom bytes of varying sizes (4 KiB
# to MAX), several hundred of them, in a few subfolders, until BYTES.
fill() {
	local dir=$1 left=$2 max=$3 i=0 n bits=1
	RANDOM=$4
	while ((4096 << bits < max)); do bits=$((bits + 1)); done
	while ((left > 0)); do
		# log-uniform sizes: many small files, some big ones
		n=$((4096 << (RANDOM % bits)))
		n=$((n + (RANDOM * 4096) % n))
		((n > max)) && n=$max
		((n > left)) && n=$left
		mkdir -p "$dir/set-$((i % 16))"
		head -c "$n" /dev/urandom >"$dir/set-$((i % 16))/blob-$(printf %04d $i).bin"
		left=$((left - n)) i=$((i + 1))
	done
	log "filler: $i files, $(du -sh "$dir" | cut -f1) in $dir"
}
# customise ROOT HOSTNAME FSTAB: what makes the tree this image's OS
customise() {
	local r=$1
	echo "$2" >"$r/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$2" >"$r/etc/hosts"
	printf '%s\n' "$3" >"$r/etc/fstab"
	printf '%s\n' "$(uuid_of "machine-id:$2" | tr -d -)" >"$r/etc/machine-id"
}
to_qcow2() { # RAW FILE
	log "qemu-img convert -> $2"
	qemu-img convert -q -f raw -O qcow2 -o compat=1.1 "$1" "$OUTDIR/.tmp.$2"
	mv "$OUTDIR/.tmp.$2" "$OUTDIR/$2"
}

# ------------------------------------------------------------------ debian12-700m
build_700m() {
	local raw=$OUTDIR/.tmp.700m.raw uuid off size dev m=$WORK/m700 rootsz
	uuid=$(uuid_of 700m:root)
	log "debian12-700m: 1 GiB MBR disk, ext4 root"
	truncate -s 1G "$raw"
	sfdisk --quiet "$raw" <<-EOF >/dev/null
		label: dos
		label-id: 0x$(uuid_of 700m:mbr | cut -c1-8)
		start=2048, type=83, bootable
	EOF
	read -r off size < <(part_range "$raw" 1)
	loop "$raw" "$off" "$size"
	dev=$LOOPDEV
	mkfs.ext4 -q -F -L debian-root -U "$uuid" -b 4096 "$dev"
	mnt "$dev" "$m"
	tar --numeric-owner --xattrs -C "$m" -xpf "$ROOTTAR"
	customise "$m" deb12-bench-700m "UUID=$uuid / ext4 errors=remount-ro 0 1"
	# a ~700 MB qcow2: what the filesystem uses so far (root, journal,
	# metadata) plus random bytes up to 700 MB
	rootsz=$(df -B1 --output=used "$m" | tail -1 | tr -d ' ')
	fill "$m/srv/data" $((700 * 1000 * 1000 - rootsz)) $((16 << 20)) 700
	unmount_all
	to_qcow2 "$raw" debian12-700m.qcow2
	mv "$raw" "$OUTDIR/debian12-700m.raw"
}

# ------------------------------------------------------------------ debian12-20g
build_20g() {
	local raw=$OUTDIR/.tmp.20g.raw off size pv boot root var m=$WORK/m20g
	local u_boot u_root u_var lvm_conf pe_start ext r
	u_boot=$(uuid_of 20g:boot) u_root=$(uuid_of 20g:root) u_var=$(uuid_of 20g:var)
	log "debian12-20g: 20 GiB GPT disk, /boot + LVM debvg (root ext4, var xfs)"
	truncate -s 20G "$raw"
	sfdisk --quiet "$raw" <<-EOF >/dev/null
		label: gpt
		label-id: $(uuid_of 20g:gpt)
		start=2048, size=1048576, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$(uuid_of 20g:gpt:1), name=boot
		start=1050624, type=E6D6D379-F507-44C2-A23C-238F2A3DF928, uuid=$(uuid_of 20g:gpt:2), name=lvm
	EOF
	read -r off size < <(part_range "$raw" 2)
	loop "$raw" "$off" "$size"
	pv=$LOOPDEV
	# No device-mapper here: LVM writes metadata only, looks at this PV
	# only, and leaves no backup in /etc/lvm.
	lvm_conf="global{activation=0} devices{use_devicesfile=0 filter=[\"a|^$pv\$|\",\"r|.*|\"]} backup{backup=0 archive=0}"
	export LVM_SUPPRESS_FD_WARNINGS=1
	lvmq pvcreate -q --config "$lvm_conf" -y "$pv"
	lvmq vgcreate -q --config "$lvm_conf" -s 4m debvg "$pv"
	# root at the start of the PV, var after a 3.5 GiB gap (extents 2432..4479)
	lvmq lvcreate -q --config "$lvm_conf" -an -Zn -y -l 1536 -n root debvg "$pv:0-1535"
	lvmq lvcreate -q --config "$lvm_conf" -an -Zn -y -l 2048 -n var debvg "$pv:2432-4479"
	pe_start=$(lvmq pvs --config "$lvm_conf" --noheadings --units b --nosuffix -o pe_start "$pv" | tr -d ' ')
	ext=$(lvmq vgs --config "$lvm_conf" --noheadings --units b --nosuffix -o vg_extent_size debvg | tr -d ' ')
	lv_dev() { # LV -> LOOPDEV over the LV's one linear segment
		local range first count
		range=$(lvmq lvs --config "$lvm_conf" --noheadings -o seg_pe_ranges "debvg/$1" | tr -d ' ')
		[[ $range =~ ^$pv:([0-9]+)-([0-9]+)$ ]] || die "LV $1: unexpected segments '$range'"
		first=${BASH_REMATCH[1]} count=$((BASH_REMATCH[2] - BASH_REMATCH[1] + 1))
		loop "$raw" $((off + pe_start + first * ext)) $((count * ext))
	}
	lv_dev root
	root=$LOOPDEV
	lv_dev var
	var=$LOOPDEV
	read -r off size < <(part_range "$raw" 1)
	loop "$raw" "$off" "$size"
	boot=$LOOPDEV
	mkfs.ext4 -q -F -L boot -U "$u_boot" -b 4096 "$boot"
	mkfs.ext4 -q -F -L root -U "$u_root" -b 4096 "$root"
	mkfs.xfs -q -f -L var -m uuid="$u_var" "$var"
	mnt "$root" "$m"
	mnt "$boot" "$m/boot"
	mnt "$var" "$m/var"
	tar --numeric-owner --xattrs -C "$m" -xpf "$ROOTTAR"
	customise "$m" deb12-bench-20g "$(printf '%s\n' \
		"UUID=$u_root / ext4 errors=remount-ro 0 1" \
		"UUID=$u_boot /boot ext4 defaults 0 2" \
		"/dev/mapper/debvg-var /var xfs defaults 0 2")"
	printf 'no kernel: a benchmark image, never booted\n' >"$m/boot/README"
	fill "$m/srv/data" $((1536 << 20)) $((64 << 20)) 2000
	fill "$m/var/backups/bench-data" $((2560 << 20)) $((64 << 20)) 2001
	unmount_all
	to_qcow2 "$raw" debian12-20g.qcow2
	rm -f "$raw"
}

if ! have debian12-700m.qcow2 || ! have debian12-700m.raw; then build_700m; fi
have debian12-20g.qcow2 || build_20g

# ------------------------------------------------------------------ MANIFEST
{
	printf '# guestkit-batch streaming benchmark images (scripts/bench-image.sh); cache key %s, root %s\n' "$KEY" "$ROOTKEY"
	printf '# columns (tab-separated): name file format virtual_size file_size hostname os\n'
	for i in "${IMAGES[@]}"; do
		IFS='|' read -r n f fmt vs h desc <<<"$i"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$f" "$fmt" "$vs" "$(stat -c %s "$OUTDIR/$f")" "$h" "debian 12"
	done
} >"$OUTDIR/.tmp.MANIFEST"
mv "$OUTDIR/.tmp.MANIFEST" "$OUTDIR/MANIFEST"
log "images ready in $((SECONDS - T0)) s ($(du -sh "$OUTDIR" | cut -f1) in $OUTDIR)"
echo "$OUTDIR"
