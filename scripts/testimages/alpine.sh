# shellcheck shell=bash
# shellcheck disable=SC2034 # the tables are read through namerefs and by testimages.sh
# Tree definition: an Alpine Linux 3.19 guest for aarch64 (deliberately not
# the host's architecture), busybox, OpenRC, apk database in its real
# format. Used by alpine.qcow2 and the second root of multi-os.qcow2.

ALP_VERSION_ID=3.19.1
ALP_PRETTY="Alpine Linux v3.19"
ALP_ARCH=aarch64
ALP_KVER=6.6.14-0-virt

# name|version|origin|url|license|summary|installed-size|dependencies
ALP_PACKAGES=(
	"alpine-baselayout|3.4.3-r2|alpine-baselayout|https://git.alpinelinux.org/cgit/aports/tree/main/alpine-baselayout|GPL-2.0-only|Alpine base dir structure and init scripts|8192|alpine-baselayout-data=3.4.3-r2 /bin/sh"
	"alpine-release|3.19.1-r0|alpine-base|https://alpinelinux.org|MIT|Alpine release data|24576|"
	"musl|1.2.4_git20230717-r4|musl|https://musl.libc.org/|MIT|the musl c library (libc) implementation|708608|"
	"busybox|1.36.1-r15|busybox|https://busybox.net/|GPL-2.0-only|Size optimized toolbox of many common UNIX utilities|950272|so:libc.musl-aarch64.so.1"
	"apk-tools|2.14.0-r5|apk-tools|https://gitlab.alpinelinux.org/alpine/apk-tools|GPL-2.0-only|Alpine Package Keeper - package manager for alpine|315392|musl>=1.2 ca-certificates-bundle so:libc.musl-aarch64.so.1"
	"openrc|0.52.1-r2|openrc|https://github.com/OpenRC/openrc|BSD-2-Clause|OpenRC manages the services, startup and shutdown of a host|2588672|ifupdown-any so:libc.musl-aarch64.so.1"
	"openssh-server|9.6_p1-r0|openssh|https://www.openssh.com/portable.html|SSH-OpenSSH|OpenSSH server|999424|openssh-keygen openssh-server-common so:libc.musl-aarch64.so.1"
	"chrony|4.5-r0|chrony|https://chrony-project.org|GPL-2.0-only|NTP client and server programs|442368|so:libc.musl-aarch64.so.1"
	"linux-virt|6.6.14-r0|linux-lts|https://www.kernel.org|GPL-2.0-only|Linux lts kernel optimized for virtual guests|33079296|initramfs-generator"
)
ALP_WORLD=(alpine-base chrony linux-virt openssh-server)

ALP_USERS=(
	"root:0:0:root:/root:/bin/ash:0"
	"bin:1:1:bin:/bin:/sbin/nologin:0"
	"daemon:2:2:daemon:/sbin:/sbin/nologin:0"
	"sshd:22:22:sshd:/dev/null:/sbin/nologin:0"
	"chrony:100:101:chrony:/var/lib/chrony:/sbin/nologin:0"
	"nobody:65534:65534:nobody:/:/sbin/nologin:0"
	"carol:1000:1000:Carol Example:/home/carol:/bin/ash:1"
)
ALP_GROUPS=("root:0:" "bin:1:root,bin,daemon" "daemon:2:root,bin,daemon" "wheel:10:root,carol" "sshd:22:sshd"
	"shadow:42:" "chrony:101:chrony" "nogroup:65533:" "nobody:65534:" "carol:1000:")
ALP_OWNERS=("home/carol:1000:1000" "etc/shadow:0:42")

# runlevel|service
ALP_RUNLEVELS=(
	"sysinit|devfs" "sysinit|dmesg" "sysinit|mdev" "sysinit|hwdrivers"
	"boot|bootmisc" "boot|hostname" "boot|hwclock" "boot|modules" "boot|networking" "boot|sysctl" "boot|syslog"
	"default|sshd" "default|chronyd" "default|crond"
	"shutdown|killprocs" "shutdown|mount-ro" "shutdown|savecache"
)

# mkkernel_arm64 FILE: an arm64 "Image" header ("ARM\x64" magic at 0x38).
mkkernel_arm64() {
	local f=$1
	head -c 4096 /dev/zero >"$f"
	printf '\x4d\x5a\x40\xfa' | dd of="$f" bs=1 seek=0 conv=notrunc status=none
	printf '\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x0a\x00\x00\x00\x00\x00\x00\x00' |
		dd of="$f" bs=1 seek=16 conv=notrunc status=none
	printf 'ARM\x64' | dd of="$f" bs=1 seek=56 conv=notrunc status=none
	chmod 0644 "$f"
}

alpine_installed_entry() {
	local name ver origin url lic sum isz deps h
	IFS='|' read -r name ver origin url lic sum isz deps <<<"$1"
	h=$(printf '%s' "$name-$ver" | sha1sum | cut -c1-40 | sed 's/../\\x&/g')
	h=$(printf '%b' "$h" | base64)  # apk's Q1 checksums: base64 of a raw sha1
	printf 'C:Q1%s\nP:%s\nV:%s\nA:%s\nS:%s\nI:%s\nT:%s\nU:%s\nL:%s\no:%s\n' \
		"$h" "$name" "$ver" "$ALP_ARCH" "$((isz / 3))" "$isz" "$sum" "$url" "$lic" "$origin"
	printf 'm:Natanael Copa <ncopa@alpinelinux.org>\nt:%s\nc:%s\n' "$TI_EPOCH" \
		"$(printf 'commit:%s' "$name" | sha1sum | cut -c1-40)"
	[[ -n $deps ]] && printf 'D:%s\n' "$deps"
	case $name in
	busybox) printf 'F:bin\nR:busybox\na:0:0:755\nZ:Q1%s\n' "$h" ;;
	alpine-release) printf 'F:etc\nR:alpine-release\nZ:Q1%s\nR:os-release\nZ:Q1%s\n' "$h" "$h" ;;
	esac
	printf '\n'
}

# alpine_tree TREE HOSTNAME ROOT_UUID
alpine_tree() {
	local t=$1 host=$2 root_uuid=$3 p e lvl svc
	mkdir -p "$t"/{bin,sbin,lib,usr/bin,usr/sbin,usr/lib,boot,dev,home,media,mnt,opt,proc,root,run,srv,sys,tmp,var}
	chmod 1777 "$t/tmp"; chmod 0700 "$t/root"
	mkdir -p "$t"/var/{cache/apk,log,tmp,lib/chrony,empty}
	mkelf "$t/bin/busybox" "$ALP_ARCH"
	for p in sh ash ls echo rm cat mount; do lnk /bin/busybox "$t/bin/$p"; done
	mkelf "$t/lib/ld-musl-$ALP_ARCH.so.1" "$ALP_ARCH"
	lnk "ld-musl-$ALP_ARCH.so.1" "$t/lib/libc.musl-$ALP_ARCH.so.1"
	mkelf "$t/sbin/apk" "$ALP_ARCH"
	mkelf "$t/usr/sbin/sshd" "$ALP_ARCH"
	mkelf "$t/usr/sbin/chronyd" "$ALP_ARCH"
	mkelf "$t/sbin/openrc" "$ALP_ARCH"
	lnk /bin/busybox "$t/sbin/nologin"

	put "$t/etc/os-release" <<-EOF
		NAME="Alpine Linux"
		ID=alpine
		VERSION_ID=$ALP_VERSION_ID
		PRETTY_NAME="$ALP_PRETTY"
		HOME_URL="https://alpinelinux.org/"
		BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
	EOF
	echo "$ALP_VERSION_ID" | put "$t/etc/alpine-release"
	echo "$host" | put "$t/etc/hostname"
	printf '127.0.0.1\t%s.example.internal %s localhost.localdomain localhost\n::1\t\tlocalhost localhost.localdomain\n' "$host" "$host" |
		put "$t/etc/hosts"
	put "$t/etc/fstab" <<-EOF
		UUID=$root_uuid	/	ext4	rw,relatime 0 1
		/dev/cdrom	/media/cdrom	iso9660	noauto,ro 0 0
	EOF
	write_users "$t" ALP_USERS ALP_GROUPS
	mkdir -p "$t/home/carol"
	printf '/bin/sh\n/bin/ash\n' | put "$t/etc/shells"

	# apk
	: | put "$t/lib/apk/db/installed"
	for p in "${ALP_PACKAGES[@]}"; do alpine_installed_entry "$p" >>"$t/lib/apk/db/installed"; done
	: | put "$t/lib/apk/db/lock"
	: | put "$t/lib/apk/db/triggers"
	printf '%s\n' "${ALP_WORLD[@]}" | put "$t/etc/apk/world"
	echo "$ALP_ARCH" | put "$t/etc/apk/arch"
	printf 'https://dl-cdn.alpinelinux.org/alpine/v3.19/main\nhttps://dl-cdn.alpinelinux.org/alpine/v3.19/community\n' |
		put "$t/etc/apk/repositories"

	# OpenRC
	for e in "${ALP_RUNLEVELS[@]}"; do
		IFS='|' read -r lvl svc <<<"$e"
		[[ -e $t/etc/init.d/$svc ]] || printf '#!/sbin/openrc-run\n\ndescription="%s (synthetic)"\n\ndepend() {\n\tneed localmount\n}\n' "$svc" |
			put "$t/etc/init.d/$svc" 0755
		lnk "/etc/init.d/$svc" "$t/etc/runlevels/$lvl/$svc"
	done
	mkdir -p "$t/etc/runlevels/nonetwork"
	printf 'rc_parallel="NO"\nrc_logger="YES"\n' | put "$t/etc/rc.conf"
	printf 'sshd_disable_keygen="no"\n' | put "$t/etc/conf.d/sshd"

	# network, ssh, time
	put "$t/etc/network/interfaces" <<-'EOF'
		auto lo
		iface lo inet loopback

		auto eth0
		iface eth0 inet dhcp
	EOF
	printf 'nameserver 10.0.2.3\n' | put "$t/etc/resolv.conf"
	put "$t/etc/ssh/sshd_config" <<-'EOF'
		Include /etc/ssh/sshd_config.d/*.conf
		PermitRootLogin no
		AuthorizedKeysFile	.ssh/authorized_keys
		AllowTcpForwarding no
		GatewayPorts no
		X11Forwarding no
		Subsystem	sftp	internal-sftp
	EOF
	mkdir -p "$t/etc/ssh/sshd_config.d"
	printf 'pool pool.ntp.org iburst\ninitstepslew 10 pool.ntp.org\ndriftfile /var/lib/chrony/chrony.drift\nrtcsync\n' |
		put "$t/etc/chrony/chrony.conf"

	# kernel
	mkkernel_arm64 "$t/boot/vmlinuz-virt"
	mkinitrd "$t/boot/initramfs-virt"
	: | put "$t/lib/modules/$ALP_KVER/modules.dep"
	put "$t/boot/grub/grub.cfg" <<-EOF
		set default=0
		set timeout=1
		menuentry 'Linux virt' {
		        linux   /boot/vmlinuz-virt root=UUID=$root_uuid modules=sd-mod,usb-storage,ext4 quiet rootfstype=ext4 console=ttyAMA0
		        initrd  /boot/initramfs-virt
		}
	EOF
	return 0
}

alpine_packages_json() {
	local p first=1 name ver origin url lic sum isz deps up rel
	printf '['
	for p in "${ALP_PACKAGES[@]}"; do
		IFS='|' read -r name ver origin url lic sum isz deps <<<"$p"
		IFS=$'\t' read -r up rel < <(apk_split "$ver")
		((first)) || printf ',\n      '
		first=0
		printf '{"name": %s, "version_full": %s, "epoch": 0, "version": %s, "release": %s, "arch": %s, "origin": %s, "url": %s, "summary": %s}' \
			"$(json_str "$name")" "$(json_str "$ver")" "$(json_str "$up")" "$(json_str "$rel")" \
			"$(json_str "$ALP_ARCH")" "$(json_str "$origin")" "$(json_str "$url")" "$(json_str "$sum")"
	done
	printf ']'
}

# alpine_os_json ROOT_DEVICE HOSTNAME MOUNTS_JSON
alpine_os_json() {
	local root=$1 host=$2 mounts=$3 e lvl svc
	local -a def=() boot=()
	for e in "${ALP_RUNLEVELS[@]}"; do
		IFS='|' read -r lvl svc <<<"$e"
		[[ $lvl == default ]] && def+=("$svc")
		[[ $lvl == boot ]] && boot+=("$svc")
	done
	local minor=${ALP_VERSION_ID#*.}
	cat <<-EOF
		{
		    "root": $(json_str "$root"),
		    "type": "linux",
		    "distro": "alpinelinux",
		    "product_name": $(json_str "$ALP_PRETTY"),
		    "os_release_version_id": $(json_str "$ALP_VERSION_ID"),
		    "major_version": ${ALP_VERSION_ID%%.*},
		    "minor_version": ${minor%%.*},
		    "arch": $(json_str "$ALP_ARCH"),
		    "hostname": $(json_str "$host"),
		    "package_format": "apk",
		    "package_management": "apk",
		    "init_system": "openrc",
		    "mountpoints": $mounts,
		    "packages": $(alpine_packages_json),
		    "apk_world": $(json_arr_str "${ALP_WORLD[@]}"),
		    "users": $(json_users ALP_USERS),
		    "human_users": $(json_arr_str carol),
		    "login_shell_users": $(json_arr_str root carol),
		    "services": {
		      "enabled": $(json_arr_str "${def[@]}"),
		      "openrc_default": $(json_arr_str "${def[@]}"),
		      "openrc_boot": $(json_arr_str "${boot[@]}")
		    },
		    "kernels": [{"version": $(json_str "$ALP_KVER"), "package": "linux-virt", "vmlinuz": "/boot/vmlinuz-virt", "initrd": "/boot/initramfs-virt", "modules": "/lib/modules/$ALP_KVER"}],
		    "network": {"ifupdown": "/etc/network/interfaces", "nameservers": ["10.0.2.3"]},
		    "selinux": null,
		    "apparmor": false,
		    "firewall": null
		  }
	EOF
}
