#!/usr/bin/env bash
# verify.sh OUTDIR: runs virt-inspector on every image whose expected outcome
# is "ok" (two at a time, cached as OUTDIR/<name>.inspector.xml) and compares
# its findings with OUTDIR/<name>.expected.json: for each operating system
# (matched by root device) distro, version, arch, hostname, package format,
# mountpoints and every package's name/epoch/version/release/arch.
# Prints one summary line per image; exits 1 if any image disagrees.
set -euo pipefail
OUTDIR=$1
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS-force_tcg}
# testimages.sh holds the lock when it runs us; run alone, take it (its
# cleanup removes OUTDIR/.tmp.* files, ours included).
if [[ -z ${TESTIMAGES_LOCKED:-} ]]; then
	exec 9>"$OUTDIR/.lock"
	flock 9
fi
for c in jq xmllint virt-inspector; do
	command -v "$c" >/dev/null || die "verify needs $c (apt-get install jq libxml2-utils libguestfs-tools)"
done

mapfile -t GOOD < <(awk -F'\t' '!/^#/ && $4 == "ok" {print $1 "\t" $2 "\t" $3}' "$OUTDIR/MANIFEST")

inspect() { # name file format
	local n=$1 f=$2 fmt=$3 t=$SECONDS
	# cached, unless the image was rebuilt since
	[[ -s $OUTDIR/$n.inspector.xml && $OUTDIR/$n.inspector.xml -nt $OUTDIR/$f ]] && return 0
	if virt-inspector --format="$fmt" -a "$OUTDIR/$f" >"$OUTDIR/.tmp.$n.inspector.xml" 2>"$OUTDIR/.tmp.$n.inspector.err"; then
		mv "$OUTDIR/.tmp.$n.inspector.xml" "$OUTDIR/$n.inspector.xml"
		rm -f "$OUTDIR/.tmp.$n.inspector.err"
		log "virt-inspector $n: $((SECONDS - t)) s"
	else
		log "virt-inspector $n FAILED: $(tail -3 "$OUTDIR/.tmp.$n.inspector.err")"
		return 1
	fi
}

# two appliances at a time (2 cores; each TCG appliance is mostly one busy thread)
pids=() rc=0
for g in "${GOOD[@]}"; do
	IFS=$'\t' read -r n f fmt <<<"$g"
	inspect "$n" "$f" "$fmt" &
	pids+=($!)
	if ((${#pids[@]} >= 2)); then
		wait "${pids[0]}" || rc=1
		pids=("${pids[@]:1}")
	fi
done
for p in "${pids[@]}"; do wait "$p" || rc=1; done
((rc == 0)) || die "virt-inspector failed on some images"

x() { xmllint --xpath "$2" "$1" 2>/dev/null || true; }

# canonical package line (tab-separated): name epoch version release arch url
# summary source. libguestfs puts an apk package's one-line T: text in
# <description>, not <summary>; the expected.json calls it "summary".
xml_pkgs() { # xml root package-format
	local xml=$1 root=$2 pf=$3 i n base e sum
	base="//operatingsystem[root='$root']/applications/application"
	n=$(x "$xml" "count($base)")
	for ((i = 1; i <= n; i++)); do
		e=$(x "$xml" "string(${base}[$i]/epoch)")
		if [[ $pf == apk ]]; then
			sum=$(x "$xml" "string(${base}[$i]/description)")
		else
			sum=$(x "$xml" "string(${base}[$i]/summary)")
		fi
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(x "$xml" "string(${base}[$i]/name)")" "${e:-0}" \
			"$(x "$xml" "string(${base}[$i]/version)")" "$(x "$xml" "string(${base}[$i]/release)")" \
			"$(x "$xml" "string(${base}[$i]/arch)")" "$(x "$xml" "string(${base}[$i]/url)")" \
			"$sum" "$(x "$xml" "string(${base}[$i]/source_package)")"
	done | sort
}
xml_mounts() {
	local xml=$1 root=$2 i n base
	base="//operatingsystem[root='$root']/mountpoints/mountpoint"
	n=$(x "$xml" "count($base)")
	for ((i = 1; i <= n; i++)); do
		printf '%s %s\n' "$(x "$xml" "string(${base}[$i])")" "$(x "$xml" "string(${base}[$i]/@dev)")"
	done | sort
}

fail=0
for g in "${GOOD[@]}"; do
	IFS=$'\t' read -r n f fmt <<<"$g"
	xml=$OUTDIR/$n.inspector.xml exp=$OUTDIR/$n.expected.json
	problems=() summary=()
	nos_exp=$(jq '.operating_systems | length' "$exp")
	nos_got=$(x "$xml" "count(//operatingsystem)")
	[[ $nos_exp == "$nos_got" ]] || problems+=("$nos_got operating systems, want $nos_exp")
	for ((k = 0; k < nos_exp; k++)); do
		os=$(jq -c ".operating_systems[$k]" "$exp")
		root=$(jq -r .root <<<"$os")
		for fld in distro product_name major_version minor_version arch hostname package_format package_management; do
			# libguestfs names a Debian guest after /etc/debian_version ("12.5"), not PRETTY_NAME
			want=$(jq -r "if .${fld}_libguestfs then .${fld}_libguestfs else .$fld end" <<<"$os")
			got=$(x "$xml" "string(//operatingsystem[root='$root']/$fld)")
			[[ $want == "$got" ]] || problems+=("$root $fld: got '$got', want '$want'")
		done
		want=$(jq -r '.packages[] | [.name, .epoch, .version, .release, .arch, .url, .summary, (.source // "")] | map(tostring) | join("\t")' <<<"$os" | sort)
		got=$(xml_pkgs "$xml" "$root" "$(jq -r .package_format <<<"$os")")
		npkgs=$(grep -c . <<<"$got" || true)
		if [[ $want != "$got" ]]; then
			problems+=("$root packages differ:$(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | sed 's/^/ /' | tr '\n' ';' || true)")
		fi
		want=$(jq -r '.mountpoints[] | "\(.mountpoint) \(.device)"' <<<"$os" | sort)
		got=$(xml_mounts "$xml" "$root")
		[[ $want == "$got" ]] || problems+=("$root mountpoints: got [$(echo "$got" | tr '\n' ',')], want [$(echo "$want" | tr '\n' ',')]")
		summary+=("$root=$(x "$xml" "string(//operatingsystem[root='$root']/distro)") $(x "$xml" "string(//operatingsystem[root='$root']/major_version)").$(x "$xml" "string(//operatingsystem[root='$root']/minor_version)") $(x "$xml" "string(//operatingsystem[root='$root']/arch)") host=$(x "$xml" "string(//operatingsystem[root='$root']/hostname)") pkgs=$npkgs/$(jq '.packages | length' <<<"$os") $(jq -r .package_format <<<"$os")")
	done
	# filesystems: the image's list against the union of every OS's list
	want=$(jq -r '.filesystems[] | "\(.device) \(.fstype) \(.label) \(.uuid)"' "$exp" | sort)
	got=$(
		nf=$(x "$xml" "count(//filesystem)")
		for ((i = 1; i <= nf; i++)); do
			printf '%s %s %s %s\n' "$(x "$xml" "string((//filesystem)[$i]/@dev)")" "$(x "$xml" "string((//filesystem)[$i]/type)")" \
				"$(x "$xml" "string((//filesystem)[$i]/label)")" "$(x "$xml" "string((//filesystem)[$i]/uuid)")"
		done | sort -u
	)
	[[ $want == "$got" ]] || problems+=("filesystems: got [$(echo "$got" | tr '\n' ',')], want [$(echo "$want" | tr '\n' ',')]")
	if ((${#problems[@]})); then
		fail=1
		printf 'FAIL %-12s %s\n' "$n" "${summary[*]}"
		printf '     - %s\n' "${problems[@]}"
	else
		printf 'PASS %-12s %s\n' "$n" "${summary[*]}"
	fi
done
exit "$fail"
