#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds synthetic VM disk images with known ground truth for guestkit-batch
# tests, benchmarks and e2e tests. See scripts/testimages/README.md.
#
#   bash scripts/testimages.sh [--verify] [--force] [OUTDIR]
#   bash scripts/testimages.sh --list
#
# OUTDIR defaults to ${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}/images.
# The output is keyed by a hash of this script, scripts/testimages/*.sh and
# the profile trees (internal/profile/testdata/trees): a run with an
# unchanged key skips what is already built (a second run takes ~0 s); a
# changed key rebuilds everything. Each file is built under a
# temporary name and renamed into place. The last line printed is OUTDIR.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEFS=$HERE/testimages
# shellcheck source=testimages/lib.sh
source "$DEFS/lib.sh"
# shellcheck source=testimages/debian.sh
source "$DEFS/debian.sh"
# shellcheck source=testimages/rpm.sh
source "$DEFS/rpm.sh"
# shellcheck source=testimages/alpine.sh
source "$DEFS/alpine.sh"
# shellcheck source=testimages/profile.sh
source "$DEFS/profile.sh"
# the profile engine's guest trees, made into the profile-* images
PROFILE_TREES=$(cd "$HERE/../internal/profile/testdata/trees" && pwd) || die "profile trees not found"

# libguestfs: direct backend, and TCG unless the caller says otherwise
# (nested KVM is broken on the CI machines; see shared/notes/test-platform.md).
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS-force_tcg}

# name|file|format|expected outcome (result.go error code, or ok)|description
# format is what a job should declare; empty for files that have no format
# at all (qemu-img would only guess "raw"), so the runner's probe decides.
IMAGES=(
	"debian|debian.qcow2|qcow2|ok|Debian 12, MBR, ext4 root, dpkg, systemd, ufw, AppArmor"
	"debian-vmdk|debian.vmdk|vmdk|ok|debian.qcow2 converted to vmdk (monolithicSparse)"
	"debian-vdi|debian.vdi|vdi|ok|debian.qcow2 converted to vdi"
	"debian-vhdx|debian.vhdx|vhdx|ok|debian.qcow2 converted to vhdx"
	"debian-raw|debian.raw|raw|ok|debian.qcow2 converted to sparse raw"
	"rpm|rpm.qcow2|qcow2|ok|Rocky Linux 9.4, GPT, xfs root, real sqlite rpmdb, SELinux enforcing"
	"alpine|alpine.qcow2|qcow2|ok|Alpine 3.19 aarch64, no partition table (whole-disk ext4), apk, OpenRC"
	"lvm|lvm.qcow2|qcow2|ok|Debian 12, GPT, /boot partition + LVM vg0 (root, var, swap); dpkg db on the var LV"
	"multi-os|multi-os.qcow2|qcow2|ok|two roots on one MBR disk: Debian 12 (sda1) and Alpine 3.19 (sda2)"
	"bigpasswd|bigpasswd.qcow2|qcow2|ok|Debian 12 whose /etc/passwd is a 2 GiB sparse file (reader limits)"
	"noos|noos.qcow2|qcow2|image_no_os|MBR + ext4 with data files and no operating system"
	"empty|empty.img|raw|image_empty|0 bytes"
	"random|random.img||image_format_unsupported|4 MiB of random bytes: no image format, partition table or filesystem"
	"text|text.img||image_format_unsupported|a text file"
	"truncated|truncated.qcow2|qcow2|image_corrupt|debian.qcow2 cut at half its size"
	"backing|backing.qcow2|qcow2|image_backing_file|qcow2 whose backing file is /etc/shadow (raw)"
	"backing-json|backing-json.qcow2|qcow2|image_backing_file|qcow2 whose backing file is a json: pseudo-protocol naming /etc/shadow"
	"vmdk-extent|vmdk-extent.vmdk|vmdk|image_backing_file|vmdk descriptor whose FLAT extent is /etc/shadow"
	"datafile|datafile.qcow2|qcow2|image_backing_file|qcow2 v3 with an external data file /etc/shadow"
	"huge|huge.qcow2|qcow2|image_too_large|empty qcow2 with a 16 TiB virtual size"
	# profile-*: the profile engine's trees (profile.sh); names keep the prefix
	"profile-debian-hardened|profile-debian-hardened.qcow2|qcow2|ok|profile tree debian-hardened: Debian 12, every rule's settings applied (MBR, ext4)"
	"profile-debian-misconfigured|profile-debian-misconfigured.qcow2|qcow2|ok|profile tree debian-misconfigured: debian-hardened plus the planted findings"
	"profile-rhel-hardened|profile-rhel-hardened.qcow2|qcow2|ok|profile tree rhel-hardened: RHEL 9.4, real rpmdb, GPT /boot + LVM rhel/{root,tmp,swap} as its fstab says"
)

usage() {
	cat <<-EOF
		usage: $0 [--verify] [--force] [OUTDIR]
		       $0 --list
		  OUTDIR    default \${GUESTKIT_CACHE:-\$HOME/.cache/guestkit-batch}/images
		  --list    print the images (name, file, format, expected outcome, description) and exit
		  --verify  after building, run virt-inspector on every good image and compare
		            its findings with <name>.expected.json (needs jq and xmllint)
		  --force   rebuild everything even if the cache key matches
	EOF
}

LIST=0 VERIFY=0 FORCE=0 OUTDIR=""
while (($#)); do
	case $1 in
	--list) LIST=1 ;;
	--verify) VERIFY=1 ;;
	--force) FORCE=1 ;;
	-h | --help) usage; exit 0 ;;
	-*) usage >&2; exit 64 ;;
	*) [[ -z $OUTDIR ]] || { usage >&2; exit 64; }; OUTDIR=$1 ;;
	esac
	shift
done

if ((LIST)); then
	printf '%-28s %-34s %-6s %-25s %s\n' NAME FILE FORMAT EXPECTED DESCRIPTION
	for i in "${IMAGES[@]}"; do
		IFS='|' read -r n f fmt exp desc <<<"$i"
		printf '%-28s %-34s %-6s %-25s %s\n' "$n" "$f" "${fmt:--}" "$exp" "$desc"
	done
	exit 0
fi

OUTDIR=${OUTDIR:-${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}/images}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

# ------------------------------------------------------------------ cache key
# verify.sh and README.md are not inputs of the images: they are not hashed.
# The profile trees are, through their digest.
KEY=$({
	cat "${BASH_SOURCE[0]}" "$DEFS"/{lib,debian,rpm,alpine,profile}.sh
	echo "profile trees $(profile_trees_digest "$PROFILE_TREES")"
} | sha256sum | cut -c1-16)
exec 9>"$OUTDIR/.lock"
flock 9 # concurrent runs (parallel test packages) wait for each other
WORK=$OUTDIR/.work.$$
cleanup() { rm -rf "$WORK" "$OUTDIR"/.tmp.*; }
trap cleanup EXIT
rm -rf "$OUTDIR"/.work.* "$OUTDIR"/.tmp.* # leftovers of an interrupted run
mkdir -p "$WORK"

all_files() {
	local i n f fmt exp desc
	for i in "${IMAGES[@]}"; do
		IFS='|' read -r n f fmt exp desc <<<"$i"
		printf '%s\n%s.expected.json\n%s.inspector.xml\n' "$f" "$n" "$n"
	done
	echo MANIFEST
}
old_key=$(cat "$OUTDIR/.key" 2>/dev/null || true)
if [[ $old_key != "$KEY" ]] || ((FORCE)); then
	[[ -n $old_key ]] && log "cache key changed ($old_key -> $KEY): rebuilding everything"
	while IFS= read -r f; do rm -f "${OUTDIR:?}/$f"; done < <(all_files)
	echo "$KEY" >"$OUTDIR/.tmp.key" && mv "$OUTDIR/.tmp.key" "$OUTDIR/.key"
fi

have() { [[ -e $OUTDIR/$1 ]]; }
T0=$SECONDS

# ------------------------------------------------------------------ UUIDs, layouts
U_DEB_ROOT=$(uuid_of debian:root)
U_RPM_ROOT=$(uuid_of rpm:root)
U_ALP_ROOT=$(uuid_of alpine:root)
U_LVM_BOOT=$(uuid_of lvm:boot)
U_LVM_ROOT=$(uuid_of lvm:root)
U_LVM_VAR=$(uuid_of lvm:var)
U_LVM_SWAP=$(uuid_of lvm:swap)
U_MULTI_DEB=$(uuid_of multi:debian)
U_MULTI_ALP=$(uuid_of multi:alpine)
U_NOOS=$(uuid_of noos:data)
U_BIG_ROOT=$(uuid_of bigpasswd:root)
U_PROF_RHEL_ROOT=$(uuid_of profile-rhel:root)
U_PROF_RHEL_TMP=$(uuid_of profile-rhel:tmp)
U_PROF_RHEL_SWAP=$(uuid_of profile-rhel:swap)
BIGPASSWD_SIZE=2147483648

deb_fstab_single() { # UUID
	printf '# /etc/fstab: static file system information.\n#\n# <file system> <mount point>   <type>  <options>       <dump>  <pass>\n'
	printf 'UUID=%s /               ext4    errors=remount-ro 0       1\n' "$1"
}

# ------------------------------------------------------------------ guestfish session
# Every image made from a tree is built in ONE appliance launch: each missing
# image adds a drive and appends its commands. Drives are sparse raw files
# partitioned on the host with sfdisk (parted inside a TCG appliance costs
# ~2.5 s a call); they become qcow2 with qemu-img convert afterwards.
GF_ADD=() GF_CMDS=() GF_FILES=() GF_N=0
gf_drive() { # FILE SIZE [SFDISK-SCRIPT] -> sets GF_DEV, the drive's device name in the appliance
	local f=$1 size=$2 layout=${3:-} letters=abcdefghijklmnopqrstuvwxyz
	GF_DEV=/dev/sd${letters:GF_N:1}
	GF_N=$((GF_N + 1))
	rm -f "$OUTDIR/.tmp.$f.raw"
	truncate -s "$size" "$OUTDIR/.tmp.$f.raw"
	if [[ -n $layout ]]; then
		sfdisk --quiet --no-reread --no-tell-kernel "$OUTDIR/.tmp.$f.raw" <<<"$layout" >/dev/null ||
			die "sfdisk failed for $f"
	fi
	GF_ADD+=("add \"$OUTDIR/.tmp.$f.raw\" format:raw")
	GF_FILES+=("$f")
}
# disk identifiers, deterministic like the filesystem UUIDs
mbr_id() { printf '0x%s' "$(uuid_of "mbr:$1" | cut -c1-8)"; }
gf() { GF_CMDS+=("$*"); }

plan_debian() {
	local dev t=$WORK/debian
	log "tree: debian"
	debian_tree "$t" deb12-test "$(deb_fstab_single "$U_DEB_ROOT")" /boot "UUID=$U_DEB_ROOT"
	make_tar "$t" "$WORK/debian.tar" "${DEB_OWNERS[@]}"
	gf_drive debian.qcow2 200M "label: dos
label-id: $(mbr_id debian)
start=2048, type=83, bootable"
	dev=$GF_DEV
	gf mke2fs "${dev}1" fstype:ext4 blocksize:4096 label:debian-root "uuid:$U_DEB_ROOT"
	gf mount "${dev}1" /
	gf tar-in "\"$WORK/debian.tar\"" /
	gf umount-all
}

plan_rpm() {
	local dev t=$WORK/rpm
	log "tree: rpm (rpmbuild ${#RPM_PACKAGES[@]} packages)"
	rpm_build_packages "$WORK/rpmbuild"
	rpm_tree "$t" rocky9-test "$U_RPM_ROOT" "$WORK/rpmbuild"
	make_tar "$t" "$WORK/rpm.tar" "${RPM_OWNERS[@]}"
	gf_drive rpm.qcow2 320M "label: gpt
label-id: $(uuid_of gpt:rpm)
start=2048, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$(uuid_of gpt:rpm:1), name=root" # mkfs.xfs needs >= 300 MiB
	dev=$GF_DEV
	gf mkfs xfs "${dev}1" label:rocky-root
	gf set-uuid "${dev}1" "$U_RPM_ROOT"
	gf mount "${dev}1" /
	gf tar-in "\"$WORK/rpm.tar\"" /
	gf umount-all
}

plan_alpine() {
	local dev t=$WORK/alpine
	log "tree: alpine"
	alpine_tree "$t" alpine-test "$U_ALP_ROOT"
	make_tar "$t" "$WORK/alpine.tar" "${ALP_OWNERS[@]}"
	gf_drive alpine.qcow2 128M
	dev=$GF_DEV
	gf mke2fs "$dev" fstype:ext4 blocksize:4096 label:alpine-root "uuid:$U_ALP_ROOT"
	gf mount "$dev" /
	gf tar-in "\"$WORK/alpine.tar\"" /
	gf umount-all
}

plan_lvm() {
	local dev t=$WORK/lvm fstab
	log "tree: lvm"
	fstab=$(
		printf '# /etc/fstab: static file system information.\n'
		printf 'UUID=%s /       ext4 errors=remount-ro 0 1\n' "$U_LVM_ROOT"
		printf 'UUID=%s /boot   ext4 defaults          0 2\n' "$U_LVM_BOOT"
		printf '/dev/mapper/vg0-var                       /var    ext4 defaults          0 2\n'
		printf '/dev/mapper/vg0-swap                      none    swap sw                0 0\n'
	)
	debian_tree "$t" deb12-lvm "$fstab" "" /dev/mapper/vg0-root
	make_tar "$t" "$WORK/lvm.tar" "${DEB_OWNERS[@]}"
	gf_drive lvm.qcow2 300M "label: gpt
label-id: $(uuid_of gpt:lvm)
start=2048, size=131072, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$(uuid_of gpt:lvm:1), name=boot
start=133120, type=E6D6D379-F507-44C2-A23C-238F2A3DF928, uuid=$(uuid_of gpt:lvm:2), name=lvm"
	dev=$GF_DEV
	gf pvcreate "${dev}2"
	gf vgcreate vg0 "${dev}2"
	gf lvcreate root vg0 120
	gf lvcreate var vg0 64
	gf lvcreate swap vg0 32
	gf mke2fs "${dev}1" fstype:ext4 blocksize:4096 label:boot "uuid:$U_LVM_BOOT"
	gf mke2fs /dev/vg0/root fstype:ext4 blocksize:4096 label:root "uuid:$U_LVM_ROOT"
	gf mke2fs /dev/vg0/var fstype:ext4 blocksize:4096 label:var "uuid:$U_LVM_VAR"
	gf mkswap /dev/vg0/swap label:swap "uuid:$U_LVM_SWAP"
	gf mount /dev/vg0/root /
	gf mkdir /boot
	gf mkdir /var
	gf mount "${dev}1" /boot
	gf mount /dev/vg0/var /var
	gf tar-in "\"$WORK/lvm.tar\"" /
	gf umount-all
}

plan_multi() {
	local dev
	log "tree: multi-os"
	debian_tree "$WORK/multi-deb" multi-debian "$(deb_fstab_single "$U_MULTI_DEB")" /boot "UUID=$U_MULTI_DEB"
	make_tar "$WORK/multi-deb" "$WORK/multi-deb.tar" "${DEB_OWNERS[@]}"
	alpine_tree "$WORK/multi-alp" multi-alpine "$U_MULTI_ALP"
	make_tar "$WORK/multi-alp" "$WORK/multi-alp.tar" "${ALP_OWNERS[@]}"
	gf_drive multi-os.qcow2 256M "label: dos
label-id: $(mbr_id multi-os)
start=2048, size=262144, type=83, bootable
start=264192, type=83"
	dev=$GF_DEV
	gf mke2fs "${dev}1" fstype:ext4 blocksize:4096 label:debian-root "uuid:$U_MULTI_DEB"
	gf mke2fs "${dev}2" fstype:ext4 blocksize:4096 label:alpine-root "uuid:$U_MULTI_ALP"
	gf mount "${dev}1" /
	gf tar-in "\"$WORK/multi-deb.tar\"" /
	gf umount-all
	gf mount "${dev}2" /
	gf tar-in "\"$WORK/multi-alp.tar\"" /
	gf umount-all
}

plan_noos() {
	local dev t=$WORK/noos i
	log "tree: noos"
	mkdir -p "$t/data" "$t/reports" "$t/backup/2024"
	for i in 1 2 3; do head -c $((i * 512 * 1024)) /dev/urandom >"$t/data/blob-$i.bin"; done
	printf 'month,amount\n2024-01,1234\n2024-02,2345\n' >"$t/reports/2024-q1.csv"
	printf 'Data volume. There is no operating system on this disk.\n' >"$t/README.txt"
	head -c 262144 /dev/urandom | gzip -1 >"$t/backup/2024/etc-backup.tar.gz"
	make_tar "$t" "$WORK/noos.tar"
	gf_drive noos.qcow2 64M "label: dos
label-id: $(mbr_id noos)
start=2048, type=83"
	dev=$GF_DEV
	gf mke2fs "${dev}1" fstype:ext4 blocksize:4096 label:data "uuid:$U_NOOS"
	gf mount "${dev}1" /
	gf tar-in "\"$WORK/noos.tar\"" /
	gf umount-all
}

plan_bigpasswd() {
	local dev t=$WORK/bigpasswd
	log "tree: bigpasswd"
	debian_tree "$t" deb12-bigpasswd "$(deb_fstab_single "$U_BIG_ROOT")" /boot "UUID=$U_BIG_ROOT"
	make_tar "$t" "$WORK/bigpasswd.tar" "${DEB_OWNERS[@]}"
	gf_drive bigpasswd.qcow2 200M "label: dos
label-id: $(mbr_id bigpasswd)
start=2048, type=83, bootable"
	dev=$GF_DEV
	gf mke2fs "${dev}1" fstype:ext4 blocksize:4096 label:debian-root "uuid:$U_BIG_ROOT"
	gf mount "${dev}1" /
	gf tar-in "\"$WORK/bigpasswd.tar\"" /
	# keep the real passwd content at the start, then a 2 GiB hole
	gf truncate-size /etc/passwd "$BIGPASSWD_SIZE"
	gf umount-all
}

# profile-debian-*: the tree's fstab mounts UUID=<uuid> on / (and a tmpfs
# on /tmp): one ext4 partition with that UUID.
profile_debian_root_uuid() { # TREE-COPY
	local spec
	spec=$(profile_fstab_spec "$1" /)
	[[ $spec == UUID=* ]] || die "profile tree $1: fstab / is '$spec', want UUID=..."
	echo "${spec#UUID=}"
}
plan_profile_debian() { # NAME (profile-<tree>)
	local name=$1 dev t=$WORK/$1 uuid
	log "tree: $name"
	profile_tree "$PROFILE_TREES/${name#profile-}" "$t"
	uuid=$(profile_debian_root_uuid "$t")
	make_tar "$t" "$WORK/$name.tar" "${PROFILE_OWNERS[@]}"
	gf_drive "$name.qcow2" 64M "label: dos
label-id: $(mbr_id "$name")
start=2048, type=83, bootable"
	dev=$GF_DEV
	gf mke2fs "${dev}1" fstype:ext4 blocksize:4096 label:debian-root "uuid:$uuid"
	gf mount "${dev}1" /
	gf tar-in "\"$WORK/$name.tar\"" /
	gf umount-all
}

# profile-rhel-hardened: the layout its fstab describes: /dev/mapper/rhel-root
# on /, UUID=<uuid> on /boot, /dev/mapper/rhel-tmp on /tmp, rhel-swap. The
# fstab says xfs; the filesystems are ext4, since mkfs.xfs refuses anything
# under 300 MiB (mount does not care, neither do the rules).
PROFILE_RHEL_LAYOUT=("/|/dev/mapper/rhel-root" "/tmp|/dev/mapper/rhel-tmp" "none|/dev/mapper/rhel-swap")
profile_rhel_boot_uuid() { # TREE-COPY
	local e spec
	for e in "${PROFILE_RHEL_LAYOUT[@]}"; do
		spec=$(profile_fstab_spec "$1" "${e%%|*}")
		[[ $spec == "${e#*|}" ]] || die "profile tree $1: fstab ${e%%|*} is '$spec', want ${e#*|}"
	done
	spec=$(profile_fstab_spec "$1" /boot)
	[[ $spec == UUID=* ]] || die "profile tree $1: fstab /boot is '$spec', want UUID=..."
	echo "${spec#UUID=}"
}
plan_profile_rhel() {
	local name=profile-rhel-hardened dev t=$WORK/profile-rhel-hardened uuid
	profile_rpm_table "$PROFILE_TREES/rhel-hardened/PACKAGES"
	log "tree: $name (rpmbuild ${#PROFILE_RPMS[@]} packages)"
	profile_tree "$PROFILE_TREES/rhel-hardened" "$t"
	uuid=$(profile_rhel_boot_uuid "$t")
	rpm_build_packages "$WORK/rpmbuild-$name" PROFILE_RPMS
	rpm_install_db "$t" "$WORK/rpmbuild-$name" "${#PROFILE_RPMS[@]}"
	rpm_config "$t"
	make_tar "$t" "$WORK/$name.tar" "${PROFILE_OWNERS[@]}"
	gf_drive "$name.qcow2" 128M "label: gpt
label-id: $(uuid_of "gpt:$name")
start=2048, size=65536, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$(uuid_of "gpt:$name:1"), name=boot
start=67584, type=E6D6D379-F507-44C2-A23C-238F2A3DF928, uuid=$(uuid_of "gpt:$name:2"), name=lvm"
	dev=$GF_DEV
	gf pvcreate "${dev}2"
	gf vgcreate rhel "${dev}2"
	gf lvcreate root rhel 48
	gf lvcreate tmp rhel 16
	gf lvcreate swap rhel 8
	gf mke2fs "${dev}1" fstype:ext4 blocksize:4096 label:boot "uuid:$uuid"
	gf mke2fs /dev/rhel/root fstype:ext4 blocksize:4096 label:root "uuid:$U_PROF_RHEL_ROOT"
	gf mke2fs /dev/rhel/tmp fstype:ext4 blocksize:4096 label:tmp "uuid:$U_PROF_RHEL_TMP"
	gf mkswap /dev/rhel/swap label:swap "uuid:$U_PROF_RHEL_SWAP"
	gf mount /dev/rhel/root /
	gf mkdir /boot
	gf mkdir /tmp
	gf mount "${dev}1" /boot
	gf mount /dev/rhel/tmp /tmp
	gf tar-in "\"$WORK/$name.tar\"" /
	gf umount-all
}

have debian.qcow2 || plan_debian
have rpm.qcow2 || plan_rpm
have alpine.qcow2 || plan_alpine
have lvm.qcow2 || plan_lvm
have multi-os.qcow2 || plan_multi
have noos.qcow2 || plan_noos
have bigpasswd.qcow2 || plan_bigpasswd
have profile-debian-hardened.qcow2 || plan_profile_debian profile-debian-hardened
have profile-debian-misconfigured.qcow2 || plan_profile_debian profile-debian-misconfigured
have profile-rhel-hardened.qcow2 || plan_profile_rhel

if ((GF_N)); then
	log "guestfish: building ${GF_FILES[*]} in one appliance launch"
	t=$SECONDS
	{
		printf '%s\n' "${GF_ADD[@]}"
		echo run
		printf '%s\n' "${GF_CMDS[@]}"
		echo shutdown
	} >"$WORK/build.gf"
	# -x traces each command; the timestamped trace is kept in OUTDIR/.guestfish.log
	if ! { guestfish -x --no-progress-bars -f "$WORK/build.gf" 2>&1 1>&3 |
		while IFS= read -r l; do printf '%(%H:%M:%S)T %s\n' -1 "$l"; done >"$OUTDIR/.guestfish.log"; } 3>&1; then
		tail -20 "$OUTDIR/.guestfish.log" >&2
		die "guestfish failed (trace: $OUTDIR/.guestfish.log)"
	fi
	for f in "${GF_FILES[@]}"; do
		qemu-img convert -q -f raw -O qcow2 -o compat=1.1 "$OUTDIR/.tmp.$f.raw" "$OUTDIR/.tmp.$f"
		rm -f "$OUTDIR/.tmp.$f.raw"
		mv "$OUTDIR/.tmp.$f" "$OUTDIR/$f"
	done
	log "guestfish: done in $((SECONDS - t)) s"
fi

# ------------------------------------------------------------------ conversions
for c in vmdk vdi vhdx raw; do
	have "debian.$c" && continue
	log "convert: debian.qcow2 -> debian.$c"
	qemu-img convert -q -f qcow2 -O "$c" "$OUTDIR/debian.qcow2" "$OUTDIR/.tmp.debian.$c"
	mv "$OUTDIR/.tmp.debian.$c" "$OUTDIR/debian.$c"
done

# ------------------------------------------------------------------ bad images
atomic() { mv "$OUTDIR/.tmp.$1" "$OUTDIR/$1"; }
if ! have empty.img; then
	log "bad: empty.img"
	: >"$OUTDIR/.tmp.empty.img" && atomic empty.img
fi
if ! have random.img; then
	log "bad: random.img"
	head -c 4194304 /dev/urandom >"$OUTDIR/.tmp.random.img"
	# no accidental MBR/GPT boot signature, no accidental image magic
	printf '\x00\x00' | dd of="$OUTDIR/.tmp.random.img" bs=1 seek=510 conv=notrunc status=none
	printf '\x00\x00\x00\x00' | dd of="$OUTDIR/.tmp.random.img" bs=1 seek=0 conv=notrunc status=none
	atomic random.img
fi
if ! have text.img; then
	log "bad: text.img"
	for i in $(seq 1 200); do
		printf 'line %03d: this is a plain text file, not a virtual machine disk image.\n' "$i"
	done >"$OUTDIR/.tmp.text.img"
	atomic text.img
fi
if ! have truncated.qcow2; then
	log "bad: truncated.qcow2 (debian.qcow2 cut at half)"
	sz=$(stat -c %s "$OUTDIR/debian.qcow2")
	head -c $((sz / 2)) "$OUTDIR/debian.qcow2" >"$OUTDIR/.tmp.truncated.qcow2"
	atomic truncated.qcow2
fi
# -u: qemu-img must not open (or create) the backing file.
if ! have backing.qcow2; then
	log "bad: backing.qcow2 (backing file /etc/shadow)"
	qemu-img create -q -f qcow2 -u -F raw -b /etc/shadow "$OUTDIR/.tmp.backing.qcow2" 1G
	atomic backing.qcow2
fi
if ! have backing-json.qcow2; then
	log "bad: backing-json.qcow2"
	qemu-img create -q -f qcow2 -u -F raw -b 'json:{"file.driver":"file","file.filename":"/etc/shadow"}' \
		"$OUTDIR/.tmp.backing-json.qcow2" 1G
	atomic backing-json.qcow2
fi
if ! have vmdk-extent.vmdk; then
	log "bad: vmdk-extent.vmdk"
	put "$OUTDIR/.tmp.vmdk-extent.vmdk" <<-'EOF'
		# Disk DescriptorFile
		version=1
		CID=fffffffe
		parentCID=ffffffff
		createType="monolithicFlat"

		# Extent description
		RW 2048 FLAT "/etc/shadow" 0

		# The Disk Data Base
		#DDB

		ddb.virtualHWVersion = "4"
		ddb.geometry.cylinders = "2"
		ddb.geometry.heads = "16"
		ddb.geometry.sectors = "63"
		ddb.adapterType = "ide"
	EOF
	atomic vmdk-extent.vmdk
fi
if ! have datafile.qcow2; then
	log "bad: datafile.qcow2 (external data file /etc/shadow)"
	# qemu-img create would create (truncate!) the data file, so create the
	# image with a same-length dummy name in WORK and patch the name in the
	# header extension afterwards: /etc/shadow is never opened.
	dummy=ddddddd.raw # 11 characters, like /etc/shadow
	(cd "$WORK" && qemu-img create -q -f qcow2 -o "compat=1.1,data_file=$dummy" df.qcow2 64M)
	off=$(grep -obUa "$dummy" "$WORK/df.qcow2" | head -1 | cut -d: -f1)
	[[ -n $off ]] || die "datafile: data file name not found in the qcow2 header"
	printf '/etc/shadow' | dd of="$WORK/df.qcow2" bs=1 seek="$off" conv=notrunc status=none
	mv "$WORK/df.qcow2" "$OUTDIR/.tmp.datafile.qcow2"
	atomic datafile.qcow2
fi
if ! have huge.qcow2; then
	log "bad: huge.qcow2 (16 TiB virtual)"
	qemu-img create -q -f qcow2 "$OUTDIR/.tmp.huge.qcow2" 16T
	atomic huge.qcow2
fi

# ------------------------------------------------------------------ ground truth
fs_json() { # device fstype label uuid mountpoint
	printf '{"device": %s, "fstype": %s, "label": %s, "uuid": %s, "mountpoint": %s}' \
		"$(json_str "$1")" "$(json_str "$2")" "$(json_str "$3")" "$(json_str "$4")" \
		"$([[ -n $5 ]] && json_str "$5" || echo null)"
}
mnt_json() { # mountpoint device fstab-spec fstype
	printf '{"mountpoint": %s, "device": %s, "fstab_spec": %s, "fstype": %s}' \
		"$(json_str "$1")" "$(json_str "$2")" "$(json_str "$3")" "$(json_str "$4")"
}
header_json() { # name -> opening fields shared by every expected.json
	local i n f fmt exp desc
	for i in "${IMAGES[@]}"; do
		IFS='|' read -r n f fmt exp desc <<<"$i"
		[[ $n == "$1" ]] || continue
		printf '  "schema": "guestkit-testimage/v1",\n  "name": %s,\n  "file": %s,\n  "format": %s,\n  "expected": %s,\n  "description": %s,\n  "cache_key": %s,\n' \
			"$(json_str "$n")" "$(json_str "$f")" "$(json_str "$fmt")" "$(json_str "$exp")" "$(json_str "$desc")" "$(json_str "$KEY")"
	done
}
expected_debian_like() { # name vsize root-uuid hostname
	local name=$1 vsize=$2 uuid=$3 host=$4
	printf '{\n'
	header_json "$name"
	printf '  "virtual_size": %s,\n  "partition_table": "mbr",\n' "$vsize"
	printf '  "filesystems": [%s],\n' "$(fs_json /dev/sda1 ext4 debian-root "$uuid" /)"
	printf '  "operating_systems": [\n  '
	debian_os_json /dev/sda1 "$host" "[$(mnt_json / /dev/sda1 "UUID=$uuid" ext4)]"
	printf '  ]'
}
write_expected() { # name producer...
	local name=$1
	shift
	"$@" >"$OUTDIR/.tmp.$name.expected.json"
	if command -v jq >/dev/null; then
		jq empty "$OUTDIR/.tmp.$name.expected.json" || die "$name.expected.json is not valid JSON"
	fi
	mv "$OUTDIR/.tmp.$name.expected.json" "$OUTDIR/$name.expected.json"
}
exp_debian() { expected_debian_like "$1" 209715200 "$U_DEB_ROOT" deb12-test; printf '\n}\n'; }
exp_bigpasswd() {
	expected_debian_like bigpasswd 209715200 "$U_BIG_ROOT" deb12-bigpasswd
	printf ',\n  "notes": "/etc/passwd holds the normal entries followed by a hole up to %s bytes; a reader must bound its reads (internal/guest ErrTooLarge) and report users as unavailable, not fail or read 2 GiB",\n  "etc_passwd_size": %s\n}\n' \
		"$BIGPASSWD_SIZE" "$BIGPASSWD_SIZE"
}
exp_rpm() {
	printf '{\n'
	header_json rpm
	printf '  "virtual_size": %s,\n  "partition_table": "gpt",\n' $((320 * 1048576))
	printf '  "filesystems": [%s],\n' "$(fs_json /dev/sda1 xfs rocky-root "$U_RPM_ROOT" /)"
	printf '  "operating_systems": [\n  '
	rpm_os_json /dev/sda1 rocky9-test "[$(mnt_json / /dev/sda1 "UUID=$U_RPM_ROOT" xfs)]"
	printf '  ]\n}\n'
}
exp_alpine() {
	printf '{\n'
	header_json alpine
	printf '  "virtual_size": %s,\n  "partition_table": null,\n' $((128 * 1048576))
	printf '  "filesystems": [%s],\n' "$(fs_json /dev/sda ext4 alpine-root "$U_ALP_ROOT" /)"
	printf '  "operating_systems": [\n  '
	alpine_os_json /dev/sda alpine-test "[$(mnt_json / /dev/sda "UUID=$U_ALP_ROOT" ext4)]"
	printf '  ]\n}\n'
}
exp_lvm() {
	printf '{\n'
	header_json lvm
	printf '  "virtual_size": %s,\n  "partition_table": "gpt",\n' $((300 * 1048576))
	printf '  "lvm": {"vg": "vg0", "pv": "/dev/sda2", "lvs": ["/dev/vg0/root", "/dev/vg0/swap", "/dev/vg0/var"]},\n'
	printf '  "filesystems": [%s,\n    %s,\n    %s,\n    %s],\n' \
		"$(fs_json /dev/sda1 ext4 boot "$U_LVM_BOOT" /boot)" \
		"$(fs_json /dev/vg0/root ext4 root "$U_LVM_ROOT" /)" \
		"$(fs_json /dev/vg0/var ext4 var "$U_LVM_VAR" /var)" \
		"$(fs_json /dev/vg0/swap swap swap "$U_LVM_SWAP" "")"
	printf '  "package_db_filesystem": "/dev/vg0/var",\n'
	printf '  "operating_systems": [\n  '
	debian_os_json /dev/vg0/root deb12-lvm "[$(mnt_json / /dev/vg0/root "UUID=$U_LVM_ROOT" ext4),
      $(mnt_json /boot /dev/sda1 "UUID=$U_LVM_BOOT" ext4),
      $(mnt_json /var /dev/vg0/var /dev/mapper/vg0-var ext4)]"
	printf '  ]\n}\n'
}
exp_multi() {
	printf '{\n'
	header_json multi-os
	printf '  "virtual_size": %s,\n  "partition_table": "mbr",\n' $((256 * 1048576))
	printf '  "filesystems": [%s,\n    %s],\n' \
		"$(fs_json /dev/sda1 ext4 debian-root "$U_MULTI_DEB" "")" "$(fs_json /dev/sda2 ext4 alpine-root "$U_MULTI_ALP" "")"
	printf '  "operating_systems": [\n  '
	debian_os_json /dev/sda1 multi-debian "[$(mnt_json / /dev/sda1 "UUID=$U_MULTI_DEB" ext4)]"
	printf '  ,\n  '
	alpine_os_json /dev/sda2 multi-alpine "[$(mnt_json / /dev/sda2 "UUID=$U_MULTI_ALP" ext4)]"
	printf '  ]\n}\n'
}

# profile images: the tree copy is made again when the image was built by an
# earlier run (it takes a few milliseconds).
profile_copy() { # NAME -> the tree copy in WORK
	[[ -d $WORK/$1 ]] || profile_tree "$PROFILE_TREES/${1#profile-}" "$WORK/$1"
}
exp_profile_debian() { # NAME
	local name=$1 uuid
	profile_copy "$name"
	uuid=$(profile_debian_root_uuid "$WORK/$name")
	printf '{\n'
	header_json "$name"
	printf '  "virtual_size": %s,\n  "partition_table": "mbr",\n' $((64 * 1048576))
	printf '  "filesystems": [%s],\n' "$(fs_json /dev/sda1 ext4 debian-root "$uuid" /)"
	printf '  "operating_systems": [\n  '
	profile_os_json "$WORK/$name" "$name" /dev/sda1 "[$(mnt_json / /dev/sda1 "UUID=$uuid" ext4)]"
	printf '  ]\n}\n'
}
exp_profile_rhel() {
	local name=profile-rhel-hardened uuid
	profile_copy "$name"
	profile_rpm_table "$PROFILE_TREES/rhel-hardened/PACKAGES"
	uuid=$(profile_rhel_boot_uuid "$WORK/$name")
	printf '{\n'
	header_json "$name"
	printf '  "virtual_size": %s,\n  "partition_table": "gpt",\n' $((128 * 1048576))
	printf '  "lvm": {"vg": "rhel", "pv": "/dev/sda2", "lvs": ["/dev/rhel/root", "/dev/rhel/swap", "/dev/rhel/tmp"]},\n'
	printf '  "filesystems": [%s,\n    %s,\n    %s,\n    %s],\n' \
		"$(fs_json /dev/sda1 ext4 boot "$uuid" /boot)" \
		"$(fs_json /dev/rhel/root ext4 root "$U_PROF_RHEL_ROOT" /)" \
		"$(fs_json /dev/rhel/tmp ext4 tmp "$U_PROF_RHEL_TMP" /tmp)" \
		"$(fs_json /dev/rhel/swap swap swap "$U_PROF_RHEL_SWAP" "")"
	printf '  "operating_systems": [\n  '
	profile_os_json "$WORK/$name" "$name" /dev/rhel/root "[$(mnt_json / /dev/rhel/root /dev/mapper/rhel-root xfs),
      $(mnt_json /boot /dev/sda1 "UUID=$uuid" xfs),
      $(mnt_json /tmp /dev/rhel/tmp /dev/mapper/rhel-tmp xfs)]"
	printf '  ]\n}\n'
}

have debian.expected.json || write_expected debian exp_debian debian
for c in vmdk vdi vhdx raw; do have "debian-$c.expected.json" || write_expected "debian-$c" exp_debian "debian-$c"; done
have rpm.expected.json || write_expected rpm exp_rpm
have alpine.expected.json || write_expected alpine exp_alpine
have lvm.expected.json || write_expected lvm exp_lvm
have multi-os.expected.json || write_expected multi-os exp_multi
have bigpasswd.expected.json || write_expected bigpasswd exp_bigpasswd
have profile-debian-hardened.expected.json || write_expected profile-debian-hardened exp_profile_debian profile-debian-hardened
have profile-debian-misconfigured.expected.json || write_expected profile-debian-misconfigured exp_profile_debian profile-debian-misconfigured
have profile-rhel-hardened.expected.json || write_expected profile-rhel-hardened exp_profile_rhel

# ------------------------------------------------------------------ MANIFEST
{
	printf '# guestkit-batch synthetic test images; cache key %s\n' "$KEY"
	printf '# columns (tab-separated): name file format expected (result.go error code, or ok)\n'
	printf '# an empty format: the file has no image format; declare none and let the probe decide\n'
	for i in "${IMAGES[@]}"; do
		IFS='|' read -r n f fmt exp desc <<<"$i"
		printf '%s\t%s\t%s\t%s\n' "$n" "$f" "$fmt" "$exp"
	done
} >"$OUTDIR/.tmp.MANIFEST"
mv "$OUTDIR/.tmp.MANIFEST" "$OUTDIR/MANIFEST"
log "images ready in $((SECONDS - T0)) s"

# ------------------------------------------------------------------ verify
if ((VERIFY)); then
	TESTIMAGES_LOCKED=1 bash "$DEFS/verify.sh" "$OUTDIR" || die "verification failed"
fi

echo "$OUTDIR"
