# shellcheck shell=bash
# shellcheck disable=SC2034 # the tables are read through namerefs and by testimages.sh
# Tree definition: a Debian 12 (bookworm) guest, merged /usr, systemd.
# Used by debian.qcow2 (+ its conversions), lvm.qcow2, multi-os.qcow2 and
# bigpasswd.qcow2. Every fact written into the tree comes from the variables
# below, and debian_os_json derives the ground truth from the same variables.

DEB_VERSION_ID=12
DEB_DEBIAN_VERSION=12.5
DEB_CODENAME=bookworm
DEB_PRETTY="Debian GNU/Linux 12 (bookworm)"
DEB_ARCH=x86_64
DEB_KVER=6.1.0-18-amd64
DEB_KPKG_VERSION=6.1.76-1
DEB_KBANNER="6.1.0-18-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"

# name|version|arch|source|homepage|section|installed-size|status|summary|long description (\n-separated)
DEB_PACKAGES=(
	"base-files|12.4+deb12u5|amd64||https://tracker.debian.org/pkg/base-files|admin|341|install ok installed|Debian base system miscellaneous files|This package contains the basic filesystem hierarchy of a Debian system."
	"bash|5.2.15-2+b2|amd64|bash (5.2.15-2)|http://tiswww.case.edu/php/chet/bash/bashtop.html|shells|7163|install ok installed|GNU Bourne Again SHell|Bash is an sh-compatible command language interpreter."
	"dash|0.5.12-2|amd64||http://gondor.apana.org.au/~herbert/dash/|shells|212|install ok installed|POSIX-compliant shell|The Debian Almquist Shell (dash) is a POSIX-compliant shell derived from ash."
	"libc6|2.36-9+deb12u4|amd64|glibc|https://www.gnu.org/software/libc/libc.html|libs|12993|install ok installed|GNU C Library: Shared libraries|Contains the standard libraries that are used by nearly all programs on\nthe system."
	"systemd|252.22-1~deb12u1|amd64||https://www.freedesktop.org/wiki/Software/systemd|admin|10990|install ok installed|system and service manager|systemd is a system and service manager for Linux."
	"openssh-server|1:9.2p1-2+deb12u2|amd64|openssh|https://www.openssh.com/|net|1950|install ok installed|secure shell (SSH) server, for secure access from remote machines|This is the portable version of OpenSSH, a free implementation of\nthe Secure Shell protocol as specified by the IETF secsh working\ngroup."
	"qemu-guest-agent|1:7.2+dfsg-7+deb12u5|amd64|qemu|http://www.qemu.org/|admin|2823|install ok installed|Guest-side qemu-system agent|This package provides a daemon (agent) to run inside qemu-system\nguests (full system emulation)."
	"cloud-init|22.4.2-1+deb12u1|all||https://cloud-init.io/|admin|3007|install ok installed|initialization and customization tool for cloud instances|Cloud-init provides a framework and tool to configure and customize virtual\nmachine instances."
	"linux-image-6.1.0-18-amd64|6.1.76-1|amd64|linux-signed-amd64 (6.1.76+1)|https://www.kernel.org/|kernel|398865|install ok installed|Linux 6.1 for 64-bit PCs (signed)|The Linux kernel 6.1 and modules for use on PCs with AMD64, Intel 64 or\nVIA Nano processors."
	"apparmor|3.0.8-3|amd64||https://apparmor.net/|admin|2743|install ok installed|user-space parser utility for AppArmor|apparmor provides the system initialization scripts needed to use the\nAppArmor Mandatory Access Control system."
	"ufw|0.36.2-1|all||https://launchpad.net/ufw|admin|880|install ok installed|program for managing a Netfilter firewall|The Uncomplicated FireWall is a front-end for iptables."
	"ca-certificates|20230311|all|||misc|384|install ok installed|Common CA certificates|Contains the certificate authorities shipped with Mozilla's browser."
	"rsyslog|8.2302.0-1|amd64||https://www.rsyslog.com/|admin|1915|deinstall ok config-files|reliable system and kernel logging daemon|Removed package whose configuration files remain: not installed."
)

DEB_USERS=(
	"root:0:0:root:/root:/bin/bash:0"
	"daemon:1:1:daemon:/usr/sbin:/usr/sbin/nologin:0"
	"bin:2:2:bin:/bin:/usr/sbin/nologin:0"
	"sys:3:3:sys:/dev:/usr/sbin/nologin:0"
	"sync:4:65534:sync:/bin:/bin/sync:0"
	"_apt:42:65534::/nonexistent:/usr/sbin/nologin:0"
	"nobody:65534:65534:nobody:/nonexistent:/usr/sbin/nologin:0"
	"systemd-network:998:998:systemd Network Management:/:/usr/sbin/nologin:0"
	"sshd:100:65534::/run/sshd:/usr/sbin/nologin:0"
	"alice:1000:1000:Alice Example,,,:/home/alice:/bin/bash:1"
	"bob:1001:1001:Bob Builder,,,:/home/bob:/usr/sbin/nologin:1"
)
DEB_GROUPS=(
	"root:0:" "daemon:1:" "bin:2:" "sys:3:" "adm:4:alice" "sudo:27:alice" "shadow:42:"
	"users:100:" "nogroup:65534:" "systemd-network:998:" "alice:1000:" "bob:1001:"
)
DEB_OWNERS=("home/alice:1000:1000" "home/bob:1001:1001" "etc/shadow:0:42" "etc/gshadow:0:42")

# systemd units shipped in /lib/systemd/system (= usr/lib/systemd/system, merged /usr)
DEB_UNITS=(ssh.service ssh.socket cloud-init.service cloud-init-local.service cloud-config.service
	cloud-final.service ufw.service apparmor.service systemd-networkd.service
	systemd-networkd-wait-online.service getty@.service qemu-guest-agent.service
	multi-user.target sysinit.target getty.target cloud-init.target)
# enabled: "wants-dir|link name|target unit"
DEB_ENABLED=(
	"multi-user.target.wants|ssh.service|ssh.service"
	"multi-user.target.wants|ufw.service|ufw.service"
	"multi-user.target.wants|systemd-networkd.service|systemd-networkd.service"
	"cloud-init.target.wants|cloud-init.service|cloud-init.service"
	"cloud-init.target.wants|cloud-init-local.service|cloud-init-local.service"
	"cloud-init.target.wants|cloud-config.service|cloud-config.service"
	"cloud-init.target.wants|cloud-final.service|cloud-final.service"
	"multi-user.target.wants|cloud-init.target|cloud-init.target"
	"sysinit.target.wants|apparmor.service|apparmor.service"
	"getty.target.wants|getty@tty1.service|getty@.service"
)
DEB_ALIASES=("sshd.service|ssh.service")
DEB_MASKED=(systemd-networkd-wait-online.service)
DEB_SYSV=(foo)   # /etc/init.d/foo, S01 in rc2-5, K01 in rc0,1,6

DEB_SSHD_EFFECTIVE=("PasswordAuthentication no" "PermitRootLogin no" "Port 22")

# debian_status_entry RECORD: one stanza of var/lib/dpkg/status.
debian_status_entry() {
	local name ver arch src home sect isz status sum desc
	IFS='|' read -r name ver arch src home sect isz status sum desc <<<"$1"
	printf 'Package: %s\nStatus: %s\nPriority: optional\nSection: %s\nInstalled-Size: %s\n' "$name" "$status" "$sect" "$isz"
	printf 'Maintainer: Debian Maintainers <debian-devel@lists.debian.org>\nArchitecture: %s\n' "$arch"
	[[ $name == libc6 ]] && printf 'Multi-Arch: same\n'
	[[ -n $src ]] && printf 'Source: %s\n' "$src"
	printf 'Version: %s\n' "$ver"
	[[ $name == openssh-server ]] && printf 'Depends: libc6 (>= 2.36), openssh-client (= 1:9.2p1-2+deb12u2)\nConffiles:\n /etc/default/ssh 500e3cf069fe9a7b9936108eb9d9c035\n /etc/ssh/moduli 0e6ec53a8ea4c6a3a1e2ad5e2c38b89c\n'
	printf 'Description: %s\n' "$sum"
	local line
	while IFS= read -r line; do printf ' %s\n' "$line"; done < <(printf '%b\n' "$desc")
	[[ -n $home ]] && printf 'Homepage: %s\n' "$home"
	printf '\n'
}

# debian_tree TREE HOSTNAME FSTAB BOOT_PREFIX ROOT_SPEC
#   FSTAB: full fstab text; BOOT_PREFIX: "/boot" when /boot is on the root
#   filesystem, "" when it is its own partition (paths in grub.cfg);
#   ROOT_SPEC: kernel root= argument.
debian_tree() {
	local t=$1 host=$2 fstab=$3 bp=$4 rootspec=$5 d u e p
	mkdir -p "$t"
	# merged /usr
	mkdir -p "$t"/usr/{bin,sbin,lib,lib64} "$t"/{boot,dev,home,media,mnt,opt,proc,root,run,srv,sys,tmp,var}
	lnk usr/bin "$t/bin"; lnk usr/sbin "$t/sbin"; lnk usr/lib "$t/lib"; lnk usr/lib64 "$t/lib64"
	chmod 1777 "$t/tmp"; chmod 0700 "$t/root"
	mkdir -p "$t"/var/{cache,log,tmp,lib/apt,lib/dpkg/info,lib/dpkg/updates,spool}
	chmod 1777 "$t/var/tmp"
	mkelf "$t/usr/bin/bash" "$DEB_ARCH"
	mkelf "$t/usr/bin/dash" "$DEB_ARCH"
	mkelf "$t/usr/bin/ls" "$DEB_ARCH"
	mkelf "$t/usr/sbin/sshd" "$DEB_ARCH"
	mkelf "$t/usr/sbin/nologin" "$DEB_ARCH"
	lnk dash "$t/usr/bin/sh"
	lnk ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$t/usr/lib64/ld-linux-x86-64.so.2"
	mkelf "$t/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$DEB_ARCH"

	# identity
	put "$t/usr/lib/os-release" <<-EOF
		PRETTY_NAME="$DEB_PRETTY"
		NAME="Debian GNU/Linux"
		VERSION_ID="$DEB_VERSION_ID"
		VERSION="$DEB_VERSION_ID ($DEB_CODENAME)"
		VERSION_CODENAME=$DEB_CODENAME
		ID=debian
		HOME_URL="https://www.debian.org/"
		SUPPORT_URL="https://www.debian.org/support"
		BUG_REPORT_URL="https://bugs.debian.org/"
	EOF
	lnk ../usr/lib/os-release "$t/etc/os-release"
	echo "$DEB_DEBIAN_VERSION" | put "$t/etc/debian_version"
	echo "$host" | put "$t/etc/hostname"
	put "$t/etc/hosts" <<-EOF
		127.0.0.1	localhost
		127.0.1.1	$host.example.internal $host
		::1		localhost ip6-localhost ip6-loopback
	EOF
	machine_id_of "$host" | put "$t/etc/machine-id" 0444
	echo "Etc/UTC" | put "$t/etc/timezone"
	printf '%s\n' "$fstab" | put "$t/etc/fstab"

	# users
	write_users "$t" DEB_USERS DEB_GROUPS
	mkdir -p "$t/home/alice/.ssh" "$t/home/bob"
	echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISyntheticKeyForTestsOnly0000000000000000 alice@laptop" |
		put "$t/home/alice/.ssh/authorized_keys" 0600
	chmod 0700 "$t/home/alice/.ssh"
	printf 'export PATH\n' | put "$t/home/alice/.bashrc"
	put "$t/etc/shells" <<-'EOF'
		# /etc/shells: valid login shells
		/bin/sh
		/usr/bin/sh
		/bin/bash
		/usr/bin/bash
		/bin/dash
		/usr/bin/dash
	EOF

	# packages
	: >"$t/var/lib/dpkg/status"
	for p in "${DEB_PACKAGES[@]}"; do debian_status_entry "$p" >>"$t/var/lib/dpkg/status"; done
	printf '/.\n/usr/bin/bash\n/usr/bin/rbash\n' | put "$t/var/lib/dpkg/info/bash.list"
	printf '/.\n/usr/bin/dash\n' | put "$t/var/lib/dpkg/info/dash.list"
	: | put "$t/var/lib/dpkg/available"
	put "$t/etc/apt/sources.list.d/debian.sources" <<-EOF
		Types: deb
		URIs: http://deb.debian.org/debian
		Suites: $DEB_CODENAME $DEB_CODENAME-updates
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF

	# kernel and boot loader
	mkkernel "$t/boot/vmlinuz-$DEB_KVER" "$DEB_KBANNER"
	mkinitrd "$t/boot/initrd.img-$DEB_KVER"
	printf 'ffffffff81000000 T _text\n' | put "$t/boot/System.map-$DEB_KVER"
	printf 'CONFIG_64BIT=y\nCONFIG_X86_64=y\nCONFIG_VIRTIO_BLK=m\nCONFIG_EXT4_FS=y\n' | put "$t/boot/config-$DEB_KVER"
	lnk "boot/vmlinuz-$DEB_KVER" "$t/vmlinuz"
	lnk "boot/initrd.img-$DEB_KVER" "$t/initrd.img"
	mkdir -p "$t/usr/lib/modules/$DEB_KVER/kernel/drivers/block"
	: | put "$t/usr/lib/modules/$DEB_KVER/modules.dep"
	put "$t/etc/default/grub" <<-'EOF'
		GRUB_DEFAULT=0
		GRUB_TIMEOUT=5
		GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
		GRUB_CMDLINE_LINUX_DEFAULT="quiet"
		GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200"
	EOF
	put "$t/boot/grub/grub.cfg" <<-EOF
		# DO NOT EDIT THIS FILE (synthetic, generated by guestkit-batch testimages)
		set default="0"
		set timeout=5
		menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os \$menuentry_id_option 'gnulinux-simple' {
		        insmod part_msdos
		        insmod ext2
		        echo    'Loading Linux $DEB_KVER ...'
		        linux   $bp/vmlinuz-$DEB_KVER root=$rootspec ro console=tty0 console=ttyS0,115200 quiet
		        echo    'Loading initial ramdisk ...'
		        initrd  $bp/initrd.img-$DEB_KVER
		}
	EOF

	# systemd
	for u in "${DEB_UNITS[@]}"; do
		put "$t/usr/lib/systemd/system/$u" <<-EOF
			[Unit]
			Description=$u (synthetic)

			[Install]
			WantedBy=multi-user.target
		EOF
	done
	for e in "${DEB_ENABLED[@]}"; do
		IFS='|' read -r d u p <<<"$e"
		lnk "/lib/systemd/system/$p" "$t/etc/systemd/system/$d/$u"
	done
	for e in "${DEB_ALIASES[@]}"; do lnk "/lib/systemd/system/${e#*|}" "$t/etc/systemd/system/${e%%|*}"; done
	for u in "${DEB_MASKED[@]}"; do lnk /dev/null "$t/etc/systemd/system/$u"; done
	lnk /lib/systemd/system/multi-user.target "$t/etc/systemd/system/default.target"

	# SysV
	for u in "${DEB_SYSV[@]}"; do
		put "$t/etc/init.d/$u" 0755 <<-EOF
			#!/bin/sh
			### BEGIN INIT INFO
			# Provides:          $u
			# Required-Start:    \$remote_fs
			# Required-Stop:     \$remote_fs
			# Default-Start:     2 3 4 5
			# Default-Stop:      0 1 6
			# Short-Description: synthetic SysV service $u
			### END INIT INFO
			exit 0
		EOF
		for d in 2 3 4 5; do lnk "../init.d/$u" "$t/etc/rc$d.d/S01$u"; done
		for d in 0 1 6; do lnk "../init.d/$u" "$t/etc/rc$d.d/K01$u"; done
	done

	# ssh
	put "$t/etc/ssh/sshd_config" <<-'EOF'
		# This is the sshd server system-wide configuration file.
		Include /etc/ssh/sshd_config.d/*.conf

		Port 22
		PermitRootLogin prohibit-password
		PasswordAuthentication yes
		KbdInteractiveAuthentication no
		UsePAM yes
		X11Forwarding yes
		PrintMotd no
		AcceptEnv LANG LC_*
		Subsystem	sftp	/usr/lib/openssh/sftp-server
	EOF
	# sshd keeps the first value it reads, and the Include comes first:
	# the drop-ins win over the settings below it (DEB_SSHD_EFFECTIVE).
	printf 'PasswordAuthentication no\n' | put "$t/etc/ssh/sshd_config.d/50-cloud-init.conf" 0600
	printf 'PermitRootLogin no\n' | put "$t/etc/ssh/sshd_config.d/60-hardening.conf"
	printf 'synthetic host key, not a real key\n' | put "$t/etc/ssh/ssh_host_ed25519_key" 0600

	# network
	put "$t/etc/network/interfaces" <<-'EOF'
		# interfaces(5) file used by ifup(8) and ifdown(8)
		source /etc/network/interfaces.d/*

		auto lo
		iface lo inet loopback
	EOF
	mkdir -p "$t/etc/network/interfaces.d"
	put "$t/etc/netplan/50-cloud-init.yaml" 0600 <<-'EOF'
		# generated by cloud-init (synthetic)
		network:
		    version: 2
		    ethernets:
		        eth0:
		            dhcp4: true
		            match:
		                macaddress: 52:54:00:12:34:56
		            set-name: eth0
	EOF
	put "$t/etc/resolv.conf" <<-'EOF'
		nameserver 10.0.2.3
		search example.internal
	EOF

	# cloud-init
	put "$t/etc/cloud/cloud.cfg" <<-'EOF'
		users:
		  - default
		disable_root: true
		datasource_list: [ NoCloud, ConfigDrive, OpenStack, Ec2, None ]
		cloud_init_modules:
		  - seed_random
		  - growpart
		  - resizefs
		  - set_hostname
		  - update_hostname
		  - users_groups
		  - ssh
		system_info:
		  distro: debian
		  default_user:
		    name: debian
		    lock_passwd: True
		    shell: /bin/bash
	EOF

	# AppArmor, ufw; no /etc/selinux on purpose
	put "$t/etc/apparmor.d/tunables/global" <<<'#include <tunables/home>'
	put "$t/etc/apparmor.d/tunables/home" <<<'@{HOME}=@{HOMEDIRS}/*/ /root/'
	put "$t/etc/apparmor.d/abstractions/base" <<<'  /etc/ld.so.cache r,'
	put "$t/etc/apparmor.d/usr.bin.man" <<-'EOF'
		#include <tunables/global>
		/usr/bin/man {
		  #include <abstractions/base>
		  /usr/bin/man mr,
		}
	EOF
	put "$t/etc/ufw/ufw.conf" <<-'EOF'
		# /etc/ufw/ufw.conf
		ENABLED=yes
		LOGLEVEL=low
	EOF
	printf 'IPV6=yes\nDEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"\n' | put "$t/etc/default/ufw"
	return 0
}

# debian_packages_json: the installed packages (Status "install ok installed").
debian_packages_json() {
	local p first=1 name ver arch src home sect isz status sum desc epoch upstream rev
	printf '['
	for p in "${DEB_PACKAGES[@]}"; do
		IFS='|' read -r name ver arch src home sect isz status sum desc <<<"$p"
		[[ $status == "install ok installed" ]] || continue
		IFS=$'\t' read -r epoch upstream rev < <(deb_split "$ver")
		((first)) || printf ',\n      '
		first=0
		printf '{"name": %s, "version_full": %s, "epoch": %s, "version": %s, "release": %s, "arch": %s, "source": %s, "url": %s, "summary": %s}' \
			"$(json_str "$name")" "$(json_str "$ver")" "$epoch" "$(json_str "$upstream")" "$(json_str "$rev")" \
			"$(json_str "$arch")" "$(json_str "${src%% *}")" "$(json_str "$home")" "$(json_str "$sum")"
	done
	printf ']'
}

# debian_os_json ROOT_DEVICE HOSTNAME MOUNTS_JSON [PACKAGE_DB_NOTE]: one
# entry of "operating_systems" in an expected.json.
debian_os_json() {
	local root=$1 host=$2 mounts=$3 e d u p first
	local -a notinst=() enabled=()
	for p in "${DEB_PACKAGES[@]}"; do
		[[ $p == *"|install ok installed|"* ]] || notinst+=("${p%%|*}")
	done
	for e in "${DEB_ENABLED[@]}"; do
		IFS='|' read -r d u p <<<"$e"
		enabled+=("$u")
	done
	cat <<-EOF
		{
		    "root": $(json_str "$root"),
		    "type": "linux",
		    "distro": "debian",
		    "product_name": $(json_str "$DEB_PRETTY"),
		    "product_name_libguestfs": $(json_str "$DEB_DEBIAN_VERSION"),
		    "os_release_version_id": $(json_str "$DEB_VERSION_ID"),
		    "debian_version": $(json_str "$DEB_DEBIAN_VERSION"),
		    "major_version": ${DEB_DEBIAN_VERSION%%.*},
		    "minor_version": ${DEB_DEBIAN_VERSION#*.},
		    "arch": $(json_str "$DEB_ARCH"),
		    "hostname": $(json_str "$host"),
		    "machine_id": $(json_str "$(machine_id_of "$host")"),
		    "package_format": "deb",
		    "package_management": "apt",
		    "init_system": "systemd",
		    "mountpoints": $mounts,
		    "packages": $(debian_packages_json),
		    "packages_not_installed": $(json_arr_str "${notinst[@]}"),
		    "users": $(json_users DEB_USERS),
		    "human_users": $(json_arr_str alice bob),
		    "login_shell_users": $(json_arr_str root alice),
		    "services": {
		      "enabled": $(json_arr_str "${enabled[@]}"),
		      "aliases": $(json_arr_str "${DEB_ALIASES[@]/|/ -> }"),
		      "masked": $(json_arr_str "${DEB_MASKED[@]}"),
		      "sysv_enabled": $(json_arr_str "${DEB_SYSV[@]}"),
		      "default_target": "multi-user.target"
		    },
		    "kernels": [{"version": $(json_str "$DEB_KVER"), "package": "linux-image-$DEB_KVER", "package_version": $(json_str "$DEB_KPKG_VERSION"), "vmlinuz": "/boot/vmlinuz-$DEB_KVER", "initrd": "/boot/initrd.img-$DEB_KVER", "modules": "/usr/lib/modules/$DEB_KVER"}],
		    "bootloader": {"type": "grub2", "config": "/boot/grub/grub.cfg", "grub_default": "0", "entries": ["Debian GNU/Linux"]},
		    "sshd_effective": $(json_arr_str "${DEB_SSHD_EFFECTIVE[@]}"),
		    "sshd_dropins": ["/etc/ssh/sshd_config.d/50-cloud-init.conf", "/etc/ssh/sshd_config.d/60-hardening.conf"],
		    "network": {"ifupdown": "/etc/network/interfaces", "netplan": ["/etc/netplan/50-cloud-init.yaml"], "nameservers": ["10.0.2.3"], "search": ["example.internal"]},
		    "cloud_init": true,
		    "selinux": null,
		    "apparmor": true,
		    "firewall": {"type": "ufw", "enabled": true}
		  }
	EOF
}
