#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds the synthetic Windows test images (scripts/testimages/windows.sh)
# beside the Linux ones. See scripts/testimages/README.md, "Windows images".
#
#   bash scripts/windowsimages.sh [--verify] [--force] [OUTDIR]
#   bash scripts/windowsimages.sh --list
#
# OUTDIR defaults to ${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}/images,
# the folder scripts/testimages.sh fills. The Windows images have their own
# cache key (OUTDIR/.key-windows: a hash of this script, lib.sh, windows.sh
# and scripts/testimages/windows/) and their own manifest
# (OUTDIR/MANIFEST.windows), so a change here rebuilds only them and a
# change to the Linux images' scripts never rebuilds these. Both scripts
# take the same lock (OUTDIR/.lock). The last line printed is OUTDIR.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEFS=$HERE/testimages
# shellcheck source=testimages/lib.sh
source "$DEFS/lib.sh"
# shellcheck source=testimages/windows.sh
source "$DEFS/windows.sh"

export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS-force_tcg}

usage() {
	cat <<-EOF
		usage: $0 [--verify] [--force] [OUTDIR]
		       $0 --list
		  OUTDIR    default \${GUESTKIT_CACHE:-\$HOME/.cache/guestkit-batch}/images
		  --list    print the images and exit
		  --verify  after building, run virt-inspector on every image and compare
		            its findings with <name>.expected.json (testimages/verify-windows.sh)
		  --force   rebuild even if the cache key matches
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
	printf '%-34s %-40s %s\n' NAME FILE DESCRIPTION
	for i in "${WIN_IMAGES[@]}"; do
		IFS='|' read -r n ed var desc <<<"$i"
		printf '%-34s %-40s %s\n' "$n" "$n.qcow2" "$desc"
	done
	exit 0
fi

for c in hivexregedit perl guestfish qemu-img sfdisk; do
	command -v "$c" >/dev/null || die "$c not found: apt-get install -y \$(grep -v '^#' scripts/packages-test.txt)"
done

OUTDIR=${OUTDIR:-${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}/images}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

# ------------------------------------------------------------------ cache key
# README.md and verify-windows.sh are not inputs of the images.
KEY=$(cat "${BASH_SOURCE[0]}" "$DEFS/lib.sh" "$DEFS/windows.sh" "$WIN_DIR"/*.reg "$WIN_DIR"/*.pl | sha256sum | cut -c1-16)
exec 9>"$OUTDIR/.lock"
flock 9 # testimages.sh and parallel test packages wait for each other
WORK=$OUTDIR/.work.win.$$
cleanup() { rm -rf "$WORK" "$OUTDIR"/.tmp.win.*; }
trap cleanup EXIT
rm -rf "$OUTDIR"/.work.win.* "$OUTDIR"/.tmp.win.*
mkdir -p "$WORK"

all_files() {
	local i n ed var desc
	for i in "${WIN_IMAGES[@]}"; do
		IFS='|' read -r n ed var desc <<<"$i"
		printf '%s.qcow2\n%s.expected.json\n%s.inspector.xml\n%s.reg\n' "$n" "$n" "$n" "$n"
	done
	echo MANIFEST.windows
}
old_key=$(cat "$OUTDIR/.key-windows" 2>/dev/null || true)
if [[ $old_key != "$KEY" ]] || ((FORCE)); then
	[[ -n $old_key ]] && log "Windows images: cache key changed ($old_key -> $KEY): rebuilding them"
	while IFS= read -r f; do rm -f "${OUTDIR:?}/$f"; done < <(all_files)
	echo "$KEY" >"$OUTDIR/.tmp.win.key" && mv "$OUTDIR/.tmp.win.key" "$OUTDIR/.key-windows"
fi
have() { [[ -e $OUTDIR/$1 ]]; }
T0=$SECONDS

# ------------------------------------------------------------------ guestfish plan
# Every missing image is one drive of a single appliance launch, as in
# testimages.sh: the hives and files are made on the host, the disk is
# partitioned on the host with sfdisk, the appliance makes the filesystems
# and uploads the files.
GF_ADD=() GF_CMDS=() GF_FILES=() GF_N=0
gf() { GF_CMDS+=("$*"); }
gf_drive() { # FILE SIZE SFDISK-SCRIPT -> GF_DEV
	local f=$1 letters=abcdefghijklmnopqrstuvwxyz
	GF_DEV=/dev/sd${letters:GF_N:1}
	GF_N=$((GF_N + 1))
	rm -f "$OUTDIR/.tmp.win.$f.raw"
	truncate -s "$2" "$OUTDIR/.tmp.win.$f.raw"
	sfdisk --quiet --no-reread --no-tell-kernel "$OUTDIR/.tmp.win.$f.raw" <<<"$3" >/dev/null || die "sfdisk failed for $f"
	GF_ADD+=("add \"$OUTDIR/.tmp.win.$f.raw\" format:raw")
	GF_FILES+=("$f")
}

plan_windows() { # NAME EDITION VARIANT
	local name=$1 ed=$2 var=$3 t=$WORK/$1 dev
	log "Windows: $name (hives, files)"
	win_edition "$ed"
	win_reg "$name" "$ed" "$var" >"$WORK/$name.reg"
	win_hives "$WORK/$name.reg" "$WORK/$name-hives"
	win_check_hives "$WORK/$name-hives" "$ed" "$var"
	mkdir -p "$t/c/Windows/System32/config"
	cp "$WORK/$name-hives"/{SOFTWARE,SYSTEM,SAM,SECURITY} "$t/c/Windows/System32/config/"
	win_c_files "$t/c" "$ed"
	gf_drive "$name.qcow2" "$W_SIZE" "$(win_layout "$name" "$ed")"
	dev=$GF_DEV
	if [[ $ed == server2022 ]]; then
		mkdir -p "$t/boot/Boot" "$t/d/Shares/Finance" "$t/d/System Volume Information"
		head -c 8192 /dev/zero >"$t/boot/Boot/BCD"
		mkpe "$t/boot/bootmgr" i386
		printf 'quarterly numbers\r\n' >"$t/d/Shares/Finance/readme.txt"
		gf mkfs ntfs "${dev}1" "\"label:System Reserved\""
		gf mkfs ntfs "${dev}2" label:Windows
		gf mkfs ntfs "${dev}3" label:Data
		gf mount "${dev}1" /
		win_gf_upload "$t/boot" ""
		gf umount-all
		gf mount "${dev}3" /
		win_gf_upload "$t/d" ""
		gf umount-all
		gf mount "${dev}2" /
	else
		mkpe "$t/esp/EFI/Microsoft/Boot/bootmgfw.efi" x86_64
		mkpe "$t/esp/EFI/Boot/bootx64.efi" x86_64
		gf mkfs vfat "${dev}1" label:SYSTEM
		gf mkfs ntfs "${dev}3" label:Windows
		gf mount "${dev}1" /
		win_gf_upload "$t/esp" ""
		gf umount-all
		gf mount "${dev}3" /
	fi
	win_gf_upload "$t/c" ""
	gf umount-all
}

for i in "${WIN_IMAGES[@]}"; do
	IFS='|' read -r n ed var desc <<<"$i"
	have "$n.qcow2" || plan_windows "$n" "$ed" "$var"
done

if ((GF_N)); then
	log "guestfish: building ${GF_FILES[*]} in one appliance launch"
	t=$SECONDS
	{
		printf '%s\n' "${GF_ADD[@]}"
		echo run
		printf '%s\n' "${GF_CMDS[@]}"
		echo shutdown
	} >"$WORK/build.gf"
	if ! { guestfish -x --no-progress-bars -f "$WORK/build.gf" 2>&1 1>&3 |
		while IFS= read -r l; do printf '%(%H:%M:%S)T %s\n' -1 "$l"; done >"$OUTDIR/.guestfish-windows.log"; } 3>&1; then
		tail -20 "$OUTDIR/.guestfish-windows.log" >&2
		die "guestfish failed (trace: $OUTDIR/.guestfish-windows.log)"
	fi
	for f in "${GF_FILES[@]}"; do
		n=${f%.qcow2}
		ed=$(win_edition_of "$n")
		win_fix_serials "$OUTDIR/.tmp.win.$f.raw" "$n" "$ed"
		qemu-img convert -q -f raw -O qcow2 -o compat=1.1 "$OUTDIR/.tmp.win.$f.raw" "$OUTDIR/.tmp.win.$f"
		rm -f "$OUTDIR/.tmp.win.$f.raw"
		# the merged .reg text, for whoever wants to read what the hives hold
		cp "$WORK/${f%.qcow2}.reg" "$OUTDIR/${f%.qcow2}.reg"
		mv "$OUTDIR/.tmp.win.$f" "$OUTDIR/$f"
	done
	log "guestfish: done in $((SECONDS - t)) s"
fi

# ------------------------------------------------------------------ ground truth
for i in "${WIN_IMAGES[@]}"; do
	IFS='|' read -r n ed var desc <<<"$i"
	have "$n.expected.json" && continue
	win_edition "$ed"
	win_expected "$n" "$ed" "$var" "$desc" >"$OUTDIR/.tmp.win.$n.expected.json"
	if command -v jq >/dev/null; then
		jq empty "$OUTDIR/.tmp.win.$n.expected.json" || die "$n.expected.json is not valid JSON"
	fi
	mv "$OUTDIR/.tmp.win.$n.expected.json" "$OUTDIR/$n.expected.json"
done

{
	printf '# guestkit-batch synthetic Windows test images; cache key %s\n' "$KEY"
	printf '# columns (tab-separated): name file format expected edition variant\n'
	for i in "${WIN_IMAGES[@]}"; do
		IFS='|' read -r n ed var desc <<<"$i"
		printf '%s\t%s.qcow2\tqcow2\tok\t%s\t%s\n' "$n" "$n" "$ed" "$var"
	done
} >"$OUTDIR/.tmp.win.MANIFEST"
mv "$OUTDIR/.tmp.win.MANIFEST" "$OUTDIR/MANIFEST.windows"
log "Windows images ready in $((SECONDS - T0)) s"

if ((VERIFY)); then
	TESTIMAGES_LOCKED=1 bash "$DEFS/verify-windows.sh" "$OUTDIR" || die "Windows images: verification failed"
fi

echo "$OUTDIR"
