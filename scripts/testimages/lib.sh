# shellcheck shell=bash
# Helpers shared by the tree definitions of scripts/testimages.sh.
# Sourced, never run. Everything here is pure bash + coreutils + tar.

# Fixed timestamp for every file in every tree (2024-02-01T00:00:00Z), so
# that trees and tarballs do not depend on when they were built.
TI_EPOCH=1706745600

log() { printf '[testimages %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# put FILE [MODE] < content: write a file in a tree, creating parents.
put() {
	local f=$1 mode=${2:-0644}
	mkdir -p "$(dirname "$f")"
	cat >"$f"
	chmod "$mode" "$f"
}

# lnk TARGET LINKPATH: symlink, creating parents (TARGET as written, may be absolute).
lnk() {
	mkdir -p "$(dirname "$2")"
	ln -sfn "$1" "$2"
}

# mkelf FILE ARCH: a 129-byte static ELF executable (it runs exit(0) on
# x86-64) that `file` and libguestfs's arch detection recognise.
# ARCH: x86_64 or aarch64.
mkelf() {
	local f=$1 m
	case $2 in
	x86_64) m='\x3e' ;;
	aarch64) m='\xb7' ;;
	*) die "mkelf: unknown arch $2" ;;
	esac
	mkdir -p "$(dirname "$f")"
	{
		# ELF header: 64-bit, LSB, SysV, ET_EXEC, e_machine, entry 0x400078, 1 phdr
		printf '%b' '\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00'"$m"'\x00\x01\x00\x00\x00'
		printf '\x78\x00\x40\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x00\x00\x00'
		printf '\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x40\x00\x38\x00'
		printf '\x01\x00\x00\x00\x00\x00\x00\x00'
		# PT_LOAD R+X, offset 0, vaddr 0x400000, filesz=memsz=129, align 4K
		printf '\x01\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
		printf '\x00\x00\x40\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x00'
		printf '\x81\x00\x00\x00\x00\x00\x00\x00\x81\x00\x00\x00\x00\x00\x00\x00'
		printf '\x00\x10\x00\x00\x00\x00\x00\x00'
		# xor edi,edi; mov eax,60; syscall
		printf '\x31\xff\xb8\x3c\x00\x00\x00\x0f\x05'
	} >"$f"
	chmod 0755 "$f"
}

# mkkernel FILE VERSION-BANNER: a 4 KiB file with an x86 bzImage setup
# header, so `file` reports "Linux kernel x86 boot executable bzImage,
# version <banner>". It does not boot.
mkkernel() {
	local f=$1 banner=$2
	mkdir -p "$(dirname "$f")"
	head -c 4096 /dev/zero >"$f"
	_poke() { printf '%b' "$2" | dd of="$f" bs=1 seek="$1" conv=notrunc status=none; }
	_poke 498 '\x01\x00'      # root_flags: read-only root
	_poke 510 '\x55\xaa'      # boot signature
	_poke 514 'HdrS\x0f\x02'  # setup header magic, boot protocol 2.15
	_poke 526 '\x00\x02'      # kernel_version pointer (string at 0x200+0x200)
	_poke 529 '\x01'          # loadflags: LOADED_HIGH (bzImage)
	printf '%s\0' "$banner" | dd of="$f" bs=1 seek=1024 conv=notrunc status=none
	chmod 0644 "$f"
}

# mkinitrd FILE: a small gzip'd newc cpio with one file, like an initramfs.
mkinitrd() {
	local f=$1 d
	d=$(mktemp -d)
	mkdir -p "$d/etc" && echo "synthetic initramfs" >"$d/etc/initrd-release"
	(cd "$d" && printf '%s\n' . etc etc/initrd-release | cpio --quiet -o -H newc --reproducible 2>/dev/null) | gzip -n -9 >"$f"
	rm -rf "$d"
	chmod 0644 "$f"
}

# uuid_of SEED: a deterministic RFC 4122-shaped UUID (version 4 bits) from a seed.
uuid_of() {
	local h
	h=$(printf '%s' "$1" | sha256sum)
	printf '%s-%s-4%s-a%s-%s\n' "${h:0:8}" "${h:8:4}" "${h:13:3}" "${h:17:3}" "${h:20:12}"
}

# machine_id_of SEED: 32 hex chars.
machine_id_of() {
	local h
	h=$(printf 'machine-id:%s' "$1" | sha256sum)
	printf '%s\n' "${h:0:32}"
}

# ---------------------------------------------------------------- users
# A user table is an array of "name:uid:gid:gecos:home:shell:human" lines
# (human is 1 for accounts of people, 0 for system accounts). Groups are
# "name:gid:members".

# write_users TREE USERS_ARRAY_NAME GROUPS_ARRAY_NAME
write_users() {
	local tree=$1 u g
	local -n _users=$2 _groups=$3
	mkdir -p "$tree/etc"
	: >"$tree/etc/passwd"
	: >"$tree/etc/shadow"
	: >"$tree/etc/group"
	: >"$tree/etc/gshadow"
	for u in "${_users[@]}"; do
		IFS=: read -r name uid gid gecos home shell human <<<"$u"
		printf '%s:x:%s:%s:%s:%s:%s\n' "$name" "$uid" "$gid" "$gecos" "$home" "$shell" >>"$tree/etc/passwd"
		if [[ $human == 1 ]]; then
			# a locked-looking but well-formed yescrypt hash; nobody knows the password
			# shellcheck disable=SC2016 # a literal hash
			printf '%s:%s:19754:0:99999:7:::\n' "$name" '$y$j9T$synthetic$0000000000000000000000000000000000000000000' >>"$tree/etc/shadow"
		elif [[ $name == root ]]; then
			printf 'root:*:19754:0:99999:7:::\n' >>"$tree/etc/shadow"
		else
			printf '%s:!*:19754::::::\n' "$name" >>"$tree/etc/shadow"
		fi
	done
	for g in "${_groups[@]}"; do
		IFS=: read -r name gid members <<<"$g"
		printf '%s:x:%s:%s\n' "$name" "$gid" "$members" >>"$tree/etc/group"
		printf '%s:*::%s\n' "$name" "$members" >>"$tree/etc/gshadow"
	done
	chmod 0644 "$tree/etc/passwd" "$tree/etc/group"
	chmod 0640 "$tree/etc/shadow" "$tree/etc/gshadow"
}

# ---------------------------------------------------------------- tarballs
# make_tar TREE OUT [OWNER_OVERRIDE...]: a tar of TREE with every file
# owned by 0:0 and mtime TI_EPOCH, except the paths given as "path:uid:gid"
# (relative to TREE, recursive), which are appended with that owner. Needs
# no root and does not touch the tree's real ownership.
make_tar() {
	local tree=$1 out=$2 o p uid gid
	shift 2
	local -a excl=()
	for o in "$@"; do excl+=("--exclude=./${o%%:*}"); done
	tar -C "$tree" --sort=name --numeric-owner --owner=0 --group=0 --mtime="@$TI_EPOCH" \
		"${excl[@]}" -cf "$out" .
	for o in "$@"; do
		IFS=: read -r p uid gid <<<"$o"
		tar -C "$tree" --sort=name --numeric-owner --owner="$uid" --group="$gid" --mtime="@$TI_EPOCH" \
			-rf "$out" "./$p"
	done
}

# ---------------------------------------------------------------- JSON
# json_str STRING: a JSON string literal.
json_str() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/\\n}
	s=${s//$'\t'/\\t}
	s=${s//$'\r'/\\r}
	printf '"%s"' "$s"
}

# json_arr_str ITEM...: a JSON array of strings.
json_arr_str() {
	local first=1 x
	printf '['
	for x in "$@"; do
		((first)) || printf ', '
		first=0
		json_str "$x"
	done
	printf ']'
}

# json_users USERS_ARRAY_NAME: the users array of an expected.json.
json_users() {
	local -n _ju=$1
	local first=1 u
	printf '['
	for u in "${_ju[@]}"; do
		IFS=: read -r name uid gid gecos home shell human <<<"$u"
		((first)) || printf ',\n      '
		first=0
		printf '{"name": %s, "uid": %s, "gid": %s, "gecos": %s, "home": %s, "shell": %s, "human": %s}' \
			"$(json_str "$name")" "$uid" "$gid" "$(json_str "$gecos")" "$(json_str "$home")" \
			"$(json_str "$shell")" "$([[ $human == 1 ]] && echo true || echo false)"
	done
	printf ']'
}

# deb_split VERSION: prints "epoch<TAB>upstream<TAB>revision" the way dpkg
# splits a Debian version (epoch before the first ':', revision after the
# last '-'; missing parts are 0 and "").
deb_split() {
	local v=$1 epoch=0 rev=""
	if [[ $v == *:* ]]; then epoch=${v%%:*}; v=${v#*:}; fi
	if [[ $v == *-* ]]; then rev=${v##*-}; v=${v%-*}; fi
	printf '%s\t%s\t%s\n' "$epoch" "$v" "$rev"
}

# apk_split VERSION: "upstream<TAB>release" for apk versions like 9.6_p1-r0;
# the release is the number after "-r" (libguestfs reports 9.6_p1 and 0).
apk_split() {
	local v=$1
	if [[ $v == *-r* ]]; then printf '%s\t%s\n' "${v%-r*}" "${v##*-r}"; else printf '%s\t\n' "$v"; fi
}
