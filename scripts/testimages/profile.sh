# shellcheck shell=bash
# shellcheck disable=SC2034 # the tables are read through namerefs and by testimages.sh
# Profile images: the profile engine's guest trees
# (internal/profile/testdata/trees/<tree>: root/, MODES, PACKAGES) turned
# into disks, so that the rules run on a real appliance against the same
# files the unit tests evaluate in memory (internal/runner/profile_images_test.go
# compares the two rule by rule).
#
# The trees are used as they are. An image adds only what libguestfs needs
# and no rule reads:
#   - /usr/bin/bash, a 129-byte x86-64 ELF (libguestfs takes the guest's
#     architecture from it), when the tree has none;
#   - for a tree with a PACKAGES file (rpm): a real sqlite rpmdb holding
#     exactly those packages, and the rpm configuration librpm reads inside
#     the guest (rpm.sh), so that package-based rules see the packages
#     through inspection as they would on a real RHEL;
#   - lost+found at the root of each ext4 filesystem.

# tree|expected profile outcome (noncompliant or compliant)
PROFILE_TREES_USED=(
	"debian-hardened|compliant"
	"debian-misconfigured|noncompliant"
	"rhel-hardened|compliant"
)

# sshd settings in effect (sshd keeps the first value it reads; the
# Include comes first), as "Keyword value": checked against the inspection.
declare -A PROFILE_SSHD_EFFECTIVE=(
	[debian-hardened]="PermitRootLogin no|PasswordAuthentication no|X11Forwarding no|MaxAuthTries 4"
	[debian-misconfigured]="PermitRootLogin yes|PasswordAuthentication no|X11Forwarding no|MaxAuthTries 4"
	[rhel-hardened]="PermitRootLogin no|PasswordAuthentication no|X11Forwarding no|MaxAuthTries 3"
)

# profile_trees_digest DIR: a hash of what the trees put into images (paths,
# types, link targets, executable bits, contents), for the cache key.
profile_trees_digest() {
	local d=$1
	[[ -d $d ]] || die "profile trees not found: $d"
	(
		cd "$d" || exit 1
		find . -printf '%y %p -> %l\n' | LC_ALL=C sort
		find . -type f -perm /111 -printf 'x %p\n' | LC_ALL=C sort
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
	) | sha256sum | cut -c1-16
}

# profile_tree SRC DST: copies SRC/root to DST with the modes git keeps
# (files 0644, or 0755 when executable; directories 0755), then applies
# SRC/MODES ("mode uid gid path"; a path ending in / is a directory git
# cannot keep). Owners other than 0:0 go to PROFILE_OWNERS, make_tar's
# "path:uid:gid" overrides.
profile_tree() {
	local src=$1 t=$2 mode uid gid p rest
	PROFILE_OWNERS=()
	[[ -d $src/root && -f $src/MODES ]] || die "profile tree $src: want root/ and MODES"
	rm -rf "$t"
	mkdir -p "$t"
	cp -a "$src/root/." "$t/"
	find "$t" -type d -exec chmod 0755 {} +
	find "$t" -type f -perm /111 -exec chmod 0755 {} +
	find "$t" -type f ! -perm /111 -exec chmod 0644 {} +
	while read -r mode uid gid p rest; do
		[[ -z $mode || $mode == \#* ]] && continue
		[[ $mode =~ ^[0-7]{3,4}$ && $uid =~ ^[0-9]+$ && $gid =~ ^[0-9]+$ && $p == /* && -z $rest ]] ||
			die "$src/MODES: bad line '$mode $uid $gid $p $rest'"
		[[ $p == */ ]] && mkdir -p "$t$p"
		[[ -e $t$p || -L $t$p ]] || die "$src/MODES: $p is not in the tree"
		chmod "$mode" "$t$p"
		p=${p#/}
		if [[ $uid != 0 || $gid != 0 ]]; then PROFILE_OWNERS+=("${p%/}:$uid:$gid"); fi
	done <"$src/MODES"
	[[ -e $t/usr/bin/bash || -L $t/usr/bin/bash ]] || mkelf "$t/usr/bin/bash" x86_64
	return 0
}

# profile_fstab_spec TREE MOUNTPOINT: the fstab spec of a mountpoint.
profile_fstab_spec() {
	awk -v mp="$2" '!/^[[:space:]]*#/ && $2 == mp { print $1; exit }' "$1/etc/fstab"
}

# profile_rpm_table PACKAGES_FILE: PROFILE_RPMS, in rpm.sh's table format
# (name|epoch|version|release|arch|url|license|summary|description), from
# "name version-release arch" lines.
profile_rpm_table() {
	local name vr arch rest
	PROFILE_RPMS=()
	while read -r name vr arch rest; do
		[[ -z $name || $name == \#* ]] && continue
		[[ $vr == *-* && -n $arch && -z $rest ]] || die "$1: bad line '$name $vr $arch $rest'"
		PROFILE_RPMS+=("$name||${vr%-*}|${vr##*-}|$arch|https://packages.example.invalid/$name|MIT|$name (synthetic package of a profile test image)|Headers only: this package has no files.")
	done <"$1"
	((${#PROFILE_RPMS[@]})) || die "$1 lists no packages"
}

# os_release_value TREE KEY
os_release_value() {
	sed -n "s/^$2=//p" "$1/etc/os-release" | head -1 | sed 's/^"\(.*\)"$/\1/'
}

# profile_deb_packages_json TREE: the installed packages of var/lib/dpkg/status.
profile_deb_packages_json() {
	local first=1 name ver arch src home sum epoch upstream rev
	printf '['
	while IFS=$'\037' read -r name ver arch src home sum; do
		IFS=$'\t' read -r epoch upstream rev < <(deb_split "$ver")
		((first)) || printf ',\n      '
		first=0
		printf '{"name": %s, "version_full": %s, "epoch": %s, "version": %s, "release": %s, "arch": %s, "source": %s, "url": %s, "summary": %s}' \
			"$(json_str "$name")" "$(json_str "$ver")" "$epoch" "$(json_str "$upstream")" "$(json_str "$rev")" \
			"$(json_str "$arch")" "$(json_str "${src%% *}")" "$(json_str "$home")" "$(json_str "$sum")"
	done < <(awk '
		function flush() { if (st == "install ok installed") printf "%s\037%s\037%s\037%s\037%s\037%s\n", p, v, a, s, h, d; p = v = a = s = h = d = st = "" }
		/^$/ { flush(); next }
		/^Package: / { p = substr($0, 10) }
		/^Status: / { st = substr($0, 9) }
		/^Version: / { v = substr($0, 10) }
		/^Architecture: / { a = substr($0, 15) }
		/^Source: / { s = substr($0, 9) }
		/^Homepage: / { h = substr($0, 11) }
		/^Description: / { d = substr($0, 14) }
		END { flush() }' "$1/var/lib/dpkg/status")
	printf ']'
}

# profile_rpm_packages_json: the packages of PROFILE_RPMS.
profile_rpm_packages_json() {
	local p first=1 name epoch ver rel arch url lic sum desc
	printf '['
	for p in "${PROFILE_RPMS[@]}"; do
		IFS='|' read -r name epoch ver rel arch url lic sum desc <<<"$p"
		((first)) || printf ',\n      '
		first=0
		printf '{"name": %s, "epoch": %s, "version": %s, "release": %s, "arch": %s, "url": %s, "summary": %s}' \
			"$(json_str "$name")" "${epoch:-0}" "$(json_str "$ver")" "$(json_str "$rel")" \
			"$(json_str "$arch")" "$(json_str "$url")" "$(json_str "$sum")"
	done
	printf ']'
}

# profile_os_json TREE NAME ROOT_DEVICE MOUNTS_JSON: one entry of
# "operating_systems", derived from the files of TREE (a profile_tree copy).
profile_os_json() {
	local t=$1 tree=${2#profile-} root=$3 mounts=$4 id ver pkgs pf pm pn l n tgt u line
	local -a users=() enabled=() masked=() aliases=() sshd=()
	local apparmor=false selinux=null firewall=null expect
	id=$(os_release_value "$t" ID)
	case $id in
	debian)
		ver=$(<"$t/etc/debian_version")
		pf=deb pm=apt
		pkgs=$(profile_deb_packages_json "$t")
		# libguestfs names a Debian guest after /etc/debian_version
		pn="\"product_name_libguestfs\": $(json_str "$ver"),"
		;;
	rhel)
		ver=$(os_release_value "$t" VERSION_ID)
		pf=rpm pm=dnf
		pkgs=$(profile_rpm_packages_json)
		pn=""
		;;
	*) die "profile tree $tree: unknown os-release ID '$id'" ;;
	esac
	while IFS=: read -r n _ u line; do
		local gid gecos home shell human=0
		IFS=: read -r gid gecos home shell <<<"$line"
		((u >= 1000 && u < 65534)) && human=1
		users+=("$n:$u:$gid:$gecos:$home:$shell:$human")
	done <"$t/etc/passwd"
	for l in "$t"/etc/systemd/system/*.wants/*; do
		[[ -L $l ]] || continue
		n=${l##*/}
		[[ $n == *.target ]] || enabled+=("$n")
		[[ $n == apparmor.service ]] && apparmor=true
	done
	for l in "$t"/etc/systemd/system/*; do
		[[ -L $l ]] || continue
		tgt=$(readlink "$l")
		if [[ $tgt == /dev/null ]]; then masked+=("${l##*/}"); else aliases+=("${l##*/} -> ${tgt##*/}"); fi
	done
	if [[ -f $t/etc/selinux/config ]]; then
		selinux=$(printf '{"mode": %s, "type": %s}' \
			"$(json_str "$(sed -n 's/^SELINUX=//p' "$t/etc/selinux/config")")" \
			"$(json_str "$(sed -n 's/^SELINUXTYPE=//p' "$t/etc/selinux/config")")")
	fi
	if grep -qx 'ENABLED=yes' "$t/etc/ufw/ufw.conf" 2>/dev/null && [[ " ${enabled[*]} " == *" ufw.service "* ]]; then
		firewall='{"type": "ufw", "enabled": true}'
	elif [[ " ${enabled[*]} " == *" firewalld.service "* ]]; then
		firewall='{"type": "firewalld", "enabled": true}'
	fi
	IFS='|' read -r -a sshd <<<"${PROFILE_SSHD_EFFECTIVE[$tree]}"
	for l in "${PROFILE_TREES_USED[@]}"; do [[ ${l%%|*} == "$tree" ]] && expect=${l#*|}; done
	cat <<-EOF
		{
		    "root": $(json_str "$root"),
		    "type": "linux",
		    "distro": $(json_str "$id"),
		    "product_name": $(json_str "$(os_release_value "$t" PRETTY_NAME)"),
		    $pn
		    "os_release_version_id": $(json_str "$(os_release_value "$t" VERSION_ID)"),
		    "major_version": ${ver%%.*},
		    "minor_version": ${ver#*.},
		    "arch": "x86_64",
		    "hostname": $(json_str "$(<"$t/etc/hostname")"),
		    "package_format": "$pf",
		    "package_management": "$pm",
		    "init_system": "systemd",
		    "mountpoints": $mounts,
		    "packages": $pkgs,
		    "users": $(json_users users),
		    "services": {
		      "enabled": $(json_arr_str "${enabled[@]}"),
		      "aliases": $(json_arr_str "${aliases[@]}"),
		      "masked": $(json_arr_str "${masked[@]}")
		    },
		    "sshd_effective": $(json_arr_str "${sshd[@]}"),
		    "network": {"nameservers": [], "search": []},
		    "cloud_init": false,
		    "selinux": $selinux,
		    "apparmor": $apparmor,
		    "firewall": $firewall,
		    "profile": {"tree": $(json_str "internal/profile/testdata/trees/$tree"), "expected": $(json_str "$expect")}
		  }
	EOF
}
