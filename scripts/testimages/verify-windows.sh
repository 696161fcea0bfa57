#!/usr/bin/env bash
# verify-windows.sh OUTDIR: runs virt-inspector on every Windows image of
# OUTDIR/MANIFEST.windows (two at a time, cached as <name>.inspector.xml)
# and compares, field by field, with <name>.expected.json: root, type,
# distro, arch, product name and variant, major and minor version, osinfo,
# hostname, system root, current control set, drive mappings, mountpoints,
# the root's filesystem (type, label, UUID) and every application (name,
# display name, version, publisher, install path; native and WOW6432Node).
# Exits 1 if any image disagrees.
set -euo pipefail
OUTDIR=$1
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS-force_tcg}
if [[ -z ${TESTIMAGES_LOCKED:-} ]]; then
	exec 9>"$OUTDIR/.lock"
	flock 9
fi
for c in jq xmllint virt-inspector; do
	command -v "$c" >/dev/null || die "verify needs $c (apt-get install jq libxml2-utils libguestfs-tools)"
done
mapfile -t IMGS < <(awk -F'\t' '!/^#/ && NF >= 2 {print $1 "\t" $2}' "$OUTDIR/MANIFEST.windows")

inspect() { # name file
	local n=$1 f=$2 t=$SECONDS
	[[ -s $OUTDIR/$n.inspector.xml && $OUTDIR/$n.inspector.xml -nt $OUTDIR/$f ]] && return 0
	if virt-inspector --no-icon --format=qcow2 -a "$OUTDIR/$f" >"$OUTDIR/.tmp.win.$n.inspector.xml" 2>"$OUTDIR/.tmp.win.$n.inspector.err"; then
		mv "$OUTDIR/.tmp.win.$n.inspector.xml" "$OUTDIR/$n.inspector.xml"
		rm -f "$OUTDIR/.tmp.win.$n.inspector.err"
		log "virt-inspector $n: $((SECONDS - t)) s"
	else
		log "virt-inspector $n FAILED: $(tail -3 "$OUTDIR/.tmp.win.$n.inspector.err")"
		return 1
	fi
}
pids=() rc=0
for g in "${IMGS[@]}"; do
	IFS=$'\t' read -r n f <<<"$g"
	inspect "$n" "$f" &
	pids+=($!)
	if ((${#pids[@]} >= 2)); then
		wait "${pids[0]}" || rc=1
		pids=("${pids[@]:1}")
	fi
done
for p in "${pids[@]}"; do wait "$p" || rc=1; done
((rc == 0)) || die "virt-inspector failed on some Windows images"

x() { xmllint --xpath "$2" "$1" 2>/dev/null || true; }

# One canonical text per image from each side; diff shows what differs.
from_xml() { # xml
	local xml=$1 o='/operatingsystems/operatingsystem'
	printf 'roots\t%s\n' "$(x "$xml" "count($o)")"
	for f in root name distro arch product_name product_variant major_version minor_version osinfo hostname windows_systemroot windows_current_control_set; do
		printf '%s\t%s\n' "$f" "$(x "$xml" "string(${o}[1]/$f)")"
	done
	local i n
	n=$(x "$xml" "count(${o}[1]/drive_mappings/drive_mapping)")
	for ((i = 1; i <= n; i++)); do
		printf 'drive\t%s\t%s\n' "$(x "$xml" "string(${o}[1]/drive_mappings/drive_mapping[$i]/@name)")" "$(x "$xml" "string(${o}[1]/drive_mappings/drive_mapping[$i])")"
	done
	n=$(x "$xml" "count(${o}[1]/mountpoints/mountpoint)")
	for ((i = 1; i <= n; i++)); do
		printf 'mount\t%s\t%s\n' "$(x "$xml" "string(${o}[1]/mountpoints/mountpoint[$i])")" "$(x "$xml" "string(${o}[1]/mountpoints/mountpoint[$i]/@dev)")"
	done
	n=$(x "$xml" "count(${o}[1]/filesystems/filesystem)")
	for ((i = 1; i <= n; i++)); do
		local fs="${o}[1]/filesystems/filesystem[$i]"
		printf 'fs\t%s\t%s\t%s\t%s\n' "$(x "$xml" "string($fs/@dev)")" "$(x "$xml" "string($fs/type)")" \
			"$(x "$xml" "string($fs/label)")" "$(x "$xml" "string($fs/uuid)")"
	done
	n=$(x "$xml" "count(${o}[1]/applications/application)")
	for ((i = 1; i <= n; i++)); do
		local a="${o}[1]/applications/application[$i]"
		printf 'app\t%s\t%s\t%s\t%s\t%s\n' "$(x "$xml" "string($a/name)")" "$(x "$xml" "string($a/display_name)")" \
			"$(x "$xml" "string($a/version)")" "$(x "$xml" "string($a/publisher)")" "$(x "$xml" "string($a/install_path)")"
	done | sort
}
from_json() { # expected.json
	jq -r '
		"roots\t\(.operating_systems | length)",
		(.operating_systems[0] |
			"root\t\(.root)", "name\t\(.type)", "distro\t\(.distro)", "arch\t\(.arch)",
			"product_name\t\(.product_name)", "product_variant\t\(.product_variant)",
			"major_version\t\(.major_version)", "minor_version\t\(.minor_version)", "osinfo\t\(.osinfo)",
			"hostname\t\(.hostname)", "windows_systemroot\t\(.windows_systemroot)",
			"windows_current_control_set\t\(.windows_current_control_set)",
			(.drive_mappings | to_entries | sort_by(.key)[] | "drive\t\(.key)\t\(.value)"),
			(.mountpoints[] | "mount\t\(.mountpoint)\t\(.device)")),
		# virt-inspector lists the filesystems of the root only
		(.operating_systems[0].root as $r | .filesystems[] | select(.device == $r) |
			"fs\t\(.device)\t\(.fstype)\t\(.label)\t\(.uuid)")
	' "$1"
	jq -r '.operating_systems[0].applications[] | "app\t\(.name)\t\(.display_name)\t\(.version)\t\(.publisher)\t\(.install_path)"' "$1" | sort
}

bad=0
for g in "${IMGS[@]}"; do
	IFS=$'\t' read -r n f <<<"$g"
	if d=$(diff <(from_json "$OUTDIR/$n.expected.json") <(from_xml "$OUTDIR/$n.inspector.xml")); then
		log "verify $n: ok ($(grep -c '^app' <(from_xml "$OUTDIR/$n.inspector.xml")) applications, drives $(from_xml "$OUTDIR/$n.inspector.xml" | awk -F'\t' '$1 == "drive" {printf "%s=%s ", $2, $3}'))"
	else
		log "verify $n: virt-inspector (>) differs from the ground truth (<):"
		printf '%s\n' "$d" >&2
		bad=1
	fi
done
exit "$bad"
