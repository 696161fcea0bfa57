# shellcheck shell=bash
# shellcheck disable=SC2034 # the tables are read through namerefs and by testimages.sh
# Tree definition: a Rocky Linux 9.4 guest (RHEL 9 family), merged /usr,
# systemd, SELinux enforcing, firewalld, NetworkManager, and a REAL rpm
# database (sqlite, /var/lib/rpm/rpmdb.sqlite, as RHEL 9 writes it) made by
# rpmbuild + rpm --justdb from generated spec files.

RPM_VERSION_ID=9.4
RPM_PRETTY="Rocky Linux 9.4 (Blue Onyx)"
RPM_ARCH=x86_64
RPM_KVER=5.14.0-427.13.1.el9_4.x86_64

# name|epoch|version|release|arch|url|license|summary|description
RPM_PACKAGES=(
	"bash||5.1.8|9.el9|x86_64|https://www.gnu.org/software/bash|GPLv3+|The GNU Bourne Again shell|The GNU Bourne Again shell (Bash) is a shell or command language\ninterpreter that is compatible with the Bourne shell (sh)."
	"openssh-server||8.7p1|38.el9_4.4|x86_64|http://www.openssh.com/portable.html|BSD|An open source SSH server daemon|OpenSSH is a free version of SSH (Secure SHell), a program for logging\ninto and executing commands on a remote machine."
	"kernel-core||5.14.0|427.13.1.el9_4|x86_64|https://www.kernel.org/|GPLv2 and Redistributable, no modification permitted|The Linux kernel|The kernel package contains the Linux kernel (vmlinuz), the core of any\nLinux operating system."
	"systemd||252|32.el9_4|x86_64|https://systemd.io|LGPLv2+ and MIT and GPLv2+|System and Service Manager|systemd is a system and service manager that runs as PID 1 and starts\nthe rest of the system."
	"chrony||4.5|1.el9|x86_64|https://chrony-project.org|GPLv2|An NTP client/server|chrony is a versatile implementation of the Network Time Protocol (NTP)."
	"NetworkManager|1|1.46.0|8.el9_4|x86_64|https://networkmanager.dev/|GPLv2+ and LGPLv2+|Network connection manager and user applications|NetworkManager is a system service that manages network interfaces and\nconnections based on user or automatic configuration."
	"openssl|1|3.0.7|27.el9|x86_64|http://www.openssl.org/|ASL 2.0|Utilities from the general purpose cryptography library with TLS implementation|The OpenSSL toolkit provides support for secure communications between\nmachines."
	"shadow-utils|2|4.9|8.el9|x86_64|https://github.com/shadow-maint/shadow|BSD and GPLv2+|Utilities for managing accounts and shadow password files|The shadow-utils package includes the necessary programs for converting\nUNIX password files to the shadow password format."
	"firewalld||1.3.4|1.el9|noarch|http://www.firewalld.org|GPLv2+|A firewall daemon with D-Bus interface providing a dynamic firewall|firewalld is a firewall service daemon that provides a dynamic customizable\nfirewall with a D-Bus interface."
	"dnf||4.14.0|9.el9|noarch|https://github.com/rpm-software-management/dnf|GPLv2+|Package manager|Utility that allows users to manage packages on their systems."
	"tzdata||2024a|1.el9|noarch|https://www.iana.org/time-zones|Public Domain|Timezone data|This package contains data files with rules for various timezones around\nthe world."
	"selinux-policy-targeted||38.1.35|2.el9_4|noarch|https://github.com/fedora-selinux/selinux-policy|GPLv2+|SELinux targeted policy|SELinux targeted policy package."
	"cloud-init||23.4|7.el9_4.0.1|noarch|https://cloud-init.io/|GPL-3.0-only|Cloud instance init scripts|Cloud-init is a set of init scripts for cloud instances.  Cloud instances\nneed special scripts to run during initialization to retrieve and install\nssh keys and to let the user run various scripts."
	"rocky-release||9.4|1.7.el9|noarch|https://rockylinux.org|BSD-3-Clause AND CC-BY-SA-4.0|Rocky Linux release files|Rocky Linux release files."
)

RPM_USERS=(
	"root:0:0:root:/root:/bin/bash:0"
	"bin:1:1:bin:/bin:/sbin/nologin:0"
	"daemon:2:2:daemon:/sbin:/sbin/nologin:0"
	"adm:3:4:adm:/var/adm:/sbin/nologin:0"
	"nobody:65534:65534:Kernel Overflow User:/:/sbin/nologin:0"
	"systemd-network:192:192:systemd Network Management:/:/usr/sbin/nologin:0"
	"sshd:74:74:Privilege-separated SSH:/usr/share/empty.sshd:/sbin/nologin:0"
	"chrony:995:992:chrony system user:/var/lib/chrony:/sbin/nologin:0"
	"rocky:1000:1000:Cloud User:/home/rocky:/bin/bash:1"
	"svc-backup:1001:1001:Backup Service Account:/home/svc-backup:/sbin/nologin:1"
)
RPM_GROUPS=(
	"root:0:" "bin:1:" "daemon:2:" "sys:3:" "adm:4:" "wheel:10:rocky" "systemd-network:192:"
	"sshd:74:" "chrony:992:" "nobody:65534:" "rocky:1000:" "svc-backup:1001:"
)
RPM_OWNERS=("home/rocky:1000:1000" "home/svc-backup:1001:1001")

RPM_UNITS=(sshd.service chronyd.service firewalld.service NetworkManager.service
	NetworkManager-wait-online.service NetworkManager-dispatcher.service dnf-makecache.timer
	dnf-makecache.service cloud-init.service cloud-init-local.service cloud-config.service
	cloud-final.service getty@.service multi-user.target network-online.target timers.target)
RPM_ENABLED=(
	"multi-user.target.wants|sshd.service|sshd.service"
	"multi-user.target.wants|chronyd.service|chronyd.service"
	"multi-user.target.wants|firewalld.service|firewalld.service"
	"multi-user.target.wants|NetworkManager.service|NetworkManager.service"
	"network-online.target.wants|NetworkManager-wait-online.service|NetworkManager-wait-online.service"
	"multi-user.target.wants|cloud-init.service|cloud-init.service"
	"multi-user.target.wants|cloud-init-local.service|cloud-init-local.service"
	"multi-user.target.wants|cloud-config.service|cloud-config.service"
	"multi-user.target.wants|cloud-final.service|cloud-final.service"
	"getty.target.wants|getty@tty1.service|getty@.service"
)
RPM_ALIASES=("dbus-org.fedoraproject.FirewallD1.service|firewalld.service"
	"dbus-org.freedesktop.nm-dispatcher.service|NetworkManager-dispatcher.service")
RPM_MASKED=(dnf-makecache.timer)
RPM_SSHD_EFFECTIVE=("PasswordAuthentication no" "PermitRootLogin no" "X11Forwarding yes" "UsePAM yes")

# rpm_build_packages WORKDIR [TABLE]: builds one tiny binary rpm per entry
# of TABLE (the name of an array like RPM_PACKAGES, the default) into
# WORKDIR/RPMS/<arch>/.
rpm_build_packages() {
	local w=$1 p name epoch ver rel arch url lic sum desc spec
	local -n _pkgs=${2:-RPM_PACKAGES}
	mkdir -p "$w/SPECS"
	for p in "${_pkgs[@]}"; do
		IFS='|' read -r name epoch ver rel arch url lic sum desc <<<"$p"
		spec="$w/SPECS/$name.spec"
		{
			printf '%%global debug_package %%{nil}\n%%global _build_id_links none\n%%global __os_install_post %%{nil}\n'
			printf 'Name: %s\n' "$name"
			[[ -n $epoch ]] && printf 'Epoch: %s\n' "$epoch"
			printf 'Version: %s\nRelease: %s\nSummary: %s\nLicense: %s\nURL: %s\nBuildArch: %s\n' \
				"$ver" "$rel" "$sum" "$lic" "$url" "$arch"
			printf 'Vendor: Rocky Enterprise Software Foundation\nPackager: Rocky Linux Build System (Peridot) <releng@rockylinux.org>\n'
			printf '\n%%description\n%b\n\n%%files\n' "$desc"
		} >"$spec"
		SOURCE_DATE_EPOCH=$TI_EPOCH rpmbuild --quiet -bb "$spec" \
			--define "_topdir $w" \
			--define '_buildhost build.rockylinux.org' \
			--define 'use_source_date_epoch_as_buildtime 1' \
			--define '_binary_payload w9.gzdio' >/dev/null ||
			die "rpmbuild $name failed"
	done
}

# rpm_install_db TREE WORKDIR [COUNT]: a real sqlite rpmdb in TREE/var/lib/rpm
# with the packages of WORKDIR (headers only: --justdb); it must end up
# holding COUNT packages (default: as many as RPM_PACKAGES lists).
rpm_install_db() {
	local t=$1 w=$2 want=${3:-${#RPM_PACKAGES[@]}}
	local -a rpmargs=(--root "$(realpath "$t")" --dbpath /var/lib/rpm --define '_db_backend sqlite')
	rpm "${rpmargs[@]}" --initdb
	# Debian's rpm warns that it is not the system package manager; the
	# warning is expected here.
	rpm "${rpmargs[@]}" -i --justdb --nodeps --noscripts --notriggers --ignorearch --ignoreos \
		"$w"/RPMS/*/*.rpm 2> >(grep -v -e 'should not be used directly' -e 'assuming you know' >&2)
	local n
	n=$(rpm "${rpmargs[@]}" -qa | wc -l)
	[[ $n == "$want" ]] || die "rpmdb holds $n packages, want $want"
	[[ -s $t/var/lib/rpm/rpmdb.sqlite ]] || die "rpm did not write var/lib/rpm/rpmdb.sqlite"
	rm -f "$t/var/lib/rpm/.rpm.lock"
}

# rpm_config TREE: the rpm configuration librpm reads inside the guest
# (libguestfs runs librpm chrooted into it): minimal macros naming
# /var/lib/rpm and sqlite, as a real RHEL 9 has through its rpm package.
rpm_config() {
	local t=$1
	put "$t/usr/lib/rpm/macros" <<-'EOF'
		# Minimal rpm macros (synthetic; the real file comes with the rpm package)
		%_usr		/usr
		%_var		/var
		%_dbpath	%{_var}/lib/rpm
		%_db_backend	sqlite
	EOF
	put "$t/usr/lib/rpm/rpmrc" <<-'EOF'
		# Minimal rpmrc (synthetic)
		optflags: x86_64 -O2 -g
		arch_compat: x86_64: amd64 em64t athlon noarch
		buildarch_compat: x86_64: noarch
	EOF
}

# rpm_tree TREE HOSTNAME ROOT_UUID WORKDIR
rpm_tree() {
	local t=$1 host=$2 root_uuid=$3 w=$4 d u p e mid
	mid=$(machine_id_of "$host")
	mkdir -p "$t"/usr/{bin,sbin,lib,lib64} "$t"/{boot,dev,home,media,mnt,opt,proc,root,run,srv,sys,tmp,var}
	lnk usr/bin "$t/bin"; lnk usr/sbin "$t/sbin"; lnk usr/lib "$t/lib"; lnk usr/lib64 "$t/lib64"
	chmod 1777 "$t/tmp"; chmod 0550 "$t/root"
	mkdir -p "$t"/var/{cache,log,tmp,lib/chrony,adm,spool}
	chmod 1777 "$t/var/tmp"
	mkelf "$t/usr/bin/bash" "$RPM_ARCH"
	mkelf "$t/usr/bin/ls" "$RPM_ARCH"
	mkelf "$t/usr/sbin/sshd" "$RPM_ARCH"
	mkelf "$t/usr/sbin/chronyd" "$RPM_ARCH"
	mkelf "$t/usr/sbin/nologin" "$RPM_ARCH"
	lnk bash "$t/usr/bin/sh"
	mkelf "$t/usr/lib64/ld-linux-x86-64.so.2" "$RPM_ARCH"

	put "$t/usr/lib/os-release" <<-EOF
		NAME="Rocky Linux"
		VERSION="9.4 (Blue Onyx)"
		ID="rocky"
		ID_LIKE="rhel centos fedora"
		VERSION_ID="$RPM_VERSION_ID"
		PLATFORM_ID="platform:el9"
		PRETTY_NAME="$RPM_PRETTY"
		ANSI_COLOR="0;32"
		LOGO="fedora-logo-icon"
		CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
		HOME_URL="https://rockylinux.org/"
		BUG_REPORT_URL="https://bugs.rockylinux.org/"
		SUPPORT_END="2032-05-31"
		ROCKY_SUPPORT_PRODUCT="Rocky-Linux-9"
		ROCKY_SUPPORT_PRODUCT_VERSION="$RPM_VERSION_ID"
		REDHAT_SUPPORT_PRODUCT="Rocky Linux"
		REDHAT_SUPPORT_PRODUCT_VERSION="$RPM_VERSION_ID"
	EOF
	lnk ../usr/lib/os-release "$t/etc/os-release"
	echo "$RPM_PRETTY" | sed 's/^Rocky Linux /Rocky Linux release /' | put "$t/etc/rocky-release"
	lnk rocky-release "$t/etc/redhat-release"
	lnk rocky-release "$t/etc/system-release"
	echo "cpe:/o:rocky:rocky:9::baseos" | put "$t/etc/system-release-cpe"
	echo "$host" | put "$t/etc/hostname"
	printf '127.0.0.1   localhost localhost.localdomain\n::1         localhost localhost.localdomain\n' | put "$t/etc/hosts"
	echo "$mid" | put "$t/etc/machine-id" 0444
	put "$t/etc/fstab" <<-EOF

		#
		# /etc/fstab
		# Created by anaconda (synthetic)
		#
		UUID=$root_uuid /                       xfs     defaults        0 0
	EOF
	echo "# Created by anaconda" | put "$t/etc/sysconfig/network"

	write_users "$t" RPM_USERS RPM_GROUPS
	chmod 0000 "$t/etc/shadow" "$t/etc/gshadow"
	mkdir -p "$t/home/rocky/.ssh" "$t/home/svc-backup"
	echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISyntheticKeyForTestsOnly1111111111111111 rocky@cloud" |
		put "$t/home/rocky/.ssh/authorized_keys" 0600
	chmod 0700 "$t/home/rocky/.ssh"
	printf '/bin/sh\n/bin/bash\n/usr/bin/sh\n/usr/bin/bash\n' | put "$t/etc/shells"

	# rpm: the database, and the rpm configuration librpm reads inside the
	# guest (libguestfs runs librpm chrooted into the guest).
	rpm_install_db "$t" "$w"
	rpm_config "$t"
	put "$t/etc/yum.repos.d/rocky.repo" <<-'EOF'
		[baseos]
		name=Rocky Linux $releasever - BaseOS
		mirrorlist=https://mirrors.rockylinux.org/mirrorlist?arch=$basearch&repo=BaseOS-$releasever$rltype
		gpgcheck=1
		enabled=1
		gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-9
	EOF
	echo "9" | put "$t/etc/dnf/vars/releasever"

	# kernel + BLS boot entries
	mkkernel "$t/boot/vmlinuz-$RPM_KVER" "$RPM_KVER (mockbuild@iad1-prod-build001.bld.equ.rockylinux.org) #1 SMP PREEMPT_DYNAMIC Wed May 1 19:11:28 UTC 2024"
	mkkernel "$t/usr/lib/modules/$RPM_KVER/vmlinuz" "$RPM_KVER (mockbuild@iad1-prod-build001.bld.equ.rockylinux.org) #1 SMP PREEMPT_DYNAMIC Wed May 1 19:11:28 UTC 2024"
	mkinitrd "$t/boot/initramfs-$RPM_KVER.img"
	printf 'ffffffff81000000 T _text\n' | put "$t/boot/System.map-$RPM_KVER"
	printf 'CONFIG_64BIT=y\nCONFIG_X86_64=y\nCONFIG_XFS_FS=m\n' | put "$t/boot/config-$RPM_KVER"
	: | put "$t/usr/lib/modules/$RPM_KVER/modules.dep"
	put "$t/boot/loader/entries/$mid-$RPM_KVER.conf" <<-EOF
		title Rocky Linux ($RPM_KVER) 9.4 (Blue Onyx)
		version $RPM_KVER
		linux /boot/vmlinuz-$RPM_KVER
		initrd /boot/initramfs-$RPM_KVER.img \$tuned_initrd
		options root=UUID=$root_uuid console=tty0 console=ttyS0,115200n8 no_timer_check net.ifnames=0 crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M
		grub_users \$grub_users
		grub_arg --unrestricted
		grub_class rocky
	EOF
	put "$t/boot/grub2/grub.cfg" <<-'EOF'
		# DO NOT EDIT THIS FILE (synthetic)
		set default="${saved_entry}"
		insmod blscfg
		blscfg
	EOF
	printf '# GRUB Environment Block\nsaved_entry=%s-%s\nboot_success=0\n' "$mid" "$RPM_KVER" | put "$t/boot/grub2/grubenv"
	put "$t/etc/default/grub" <<-'EOF'
		GRUB_TIMEOUT=1
		GRUB_DEFAULT=saved
		GRUB_DISABLE_SUBMENU=true
		GRUB_TERMINAL_OUTPUT="console"
		GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8 no_timer_check net.ifnames=0"
		GRUB_ENABLE_BLSCFG=true
	EOF

	# systemd
	for u in "${RPM_UNITS[@]}"; do
		printf '[Unit]\nDescription=%s (synthetic)\n\n[Install]\nWantedBy=multi-user.target\n' "$u" |
			put "$t/usr/lib/systemd/system/$u"
	done
	for e in "${RPM_ENABLED[@]}"; do
		IFS='|' read -r d u p <<<"$e"
		lnk "/usr/lib/systemd/system/$p" "$t/etc/systemd/system/$d/$u"
	done
	for e in "${RPM_ALIASES[@]}"; do lnk "/usr/lib/systemd/system/${e#*|}" "$t/etc/systemd/system/${e%%|*}"; done
	for u in "${RPM_MASKED[@]}"; do lnk /dev/null "$t/etc/systemd/system/$u"; done
	lnk /usr/lib/systemd/system/multi-user.target "$t/etc/systemd/system/default.target"

	# SELinux
	put "$t/etc/selinux/config" <<-'EOF'
		# This file controls the state of SELinux on the system.
		SELINUX=enforcing
		SELINUXTYPE=targeted
	EOF
	mkdir -p "$t/etc/selinux/targeted/policy" "$t/etc/selinux/targeted/contexts/files"
	printf '/.*\tsystem_u:object_r:default_t:s0\n' | put "$t/etc/selinux/targeted/contexts/files/file_contexts"

	# network: a NetworkManager keyfile and a legacy ifcfg file
	put "$t/etc/NetworkManager/system-connections/eth0.nmconnection" 0600 <<-EOF
		[connection]
		id=eth0
		uuid=$(uuid_of "nm:$host:eth0")
		type=ethernet
		interface-name=eth0
		autoconnect=true

		[ethernet]

		[ipv4]
		method=auto

		[ipv6]
		addr-gen-mode=eui64
		method=auto
	EOF
	put "$t/etc/sysconfig/network-scripts/ifcfg-eth1" <<-'EOF'
		DEVICE=eth1
		TYPE=Ethernet
		BOOTPROTO=none
		ONBOOT=yes
		IPADDR=192.168.100.10
		PREFIX=24
		GATEWAY=192.168.100.1
		DNS1=192.168.100.1
	EOF
	printf '# Generated by NetworkManager\nsearch example.internal\nnameserver 10.0.2.3\n' | put "$t/etc/resolv.conf"
	put "$t/etc/chrony.conf" <<-'EOF'
		# Use public servers from the pool.ntp.org project.
		pool 2.rocky.pool.ntp.org iburst
		sourcedir /run/chrony-dhcp
		driftfile /var/lib/chrony/drift
		makestep 1.0 3
		rtcsync
		keyfile /etc/chrony.keys
		ntsdumpdir /var/lib/chrony
		leapsectz right/UTC
		logdir /var/log/chrony
	EOF
	put "$t/etc/firewalld/firewalld.conf" <<<'DefaultZone=public'
	put "$t/etc/firewalld/zones/public.xml" <<-'EOF'
		<?xml version="1.0" encoding="utf-8"?>
		<zone>
		  <short>Public</short>
		  <service name="ssh"/>
		  <service name="dhcpv6-client"/>
		  <service name="cockpit"/>
		</zone>
	EOF

	# ssh (RHEL 9 layout: the Include is first, drop-ins win)
	put "$t/etc/ssh/sshd_config" 0600 <<-'EOF'
		#	$OpenBSD: sshd_config,v 1.104 2021/07/02 05:11:21 dtucker Exp $
		Include /etc/ssh/sshd_config.d/*.conf
		#Port 22
		PermitRootLogin yes
		AuthorizedKeysFile	.ssh/authorized_keys
		Subsystem	sftp	/usr/libexec/openssh/sftp-server
	EOF
	put "$t/etc/ssh/sshd_config.d/50-redhat.conf" 0600 <<-'EOF'
		Include /etc/crypto-policies/back-ends/opensshserver.config
		SyslogFacility AUTHPRIV
		ChallengeResponseAuthentication no
		GSSAPIAuthentication yes
		GSSAPICleanupCredentials no
		UsePAM yes
		X11Forwarding yes
		PrintMotd no
	EOF
	printf 'PasswordAuthentication no\nPermitRootLogin no\n' | put "$t/etc/ssh/sshd_config.d/50-cloud-init.conf" 0600
	: | put "$t/etc/crypto-policies/back-ends/opensshserver.config"
	put "$t/etc/cloud/cloud.cfg" <<-'EOF'
		users:
		 - default
		disable_root: 1
		ssh_pwauth:   0
		system_info:
		  distro: rhel
		  default_user:
		    name: rocky
	EOF
	return 0
}

rpm_packages_json() {
	local p first=1 name epoch ver rel arch url lic sum desc
	printf '['
	for p in "${RPM_PACKAGES[@]}"; do
		IFS='|' read -r name epoch ver rel arch url lic sum desc <<<"$p"
		((first)) || printf ',\n      '
		first=0
		printf '{"name": %s, "epoch": %s, "version": %s, "release": %s, "arch": %s, "url": %s, "summary": %s}' \
			"$(json_str "$name")" "${epoch:-0}" "$(json_str "$ver")" "$(json_str "$rel")" \
			"$(json_str "$arch")" "$(json_str "$url")" "$(json_str "$sum")"
	done
	printf ']'
}

# rpm_os_json ROOT_DEVICE HOSTNAME MOUNTS_JSON
rpm_os_json() {
	local root=$1 host=$2 mounts=$3 e d u p
	local -a enabled=()
	for e in "${RPM_ENABLED[@]}"; do
		IFS='|' read -r d u p <<<"$e"
		enabled+=("$u")
	done
	cat <<-EOF
		{
		    "root": $(json_str "$root"),
		    "type": "linux",
		    "distro": "rocky",
		    "distro_family": "rhel",
		    "product_name": $(json_str "$RPM_PRETTY"),
		    "os_release_version_id": $(json_str "$RPM_VERSION_ID"),
		    "major_version": ${RPM_VERSION_ID%%.*},
		    "minor_version": ${RPM_VERSION_ID#*.},
		    "arch": $(json_str "$RPM_ARCH"),
		    "hostname": $(json_str "$host"),
		    "machine_id": $(json_str "$(machine_id_of "$host")"),
		    "package_format": "rpm",
		    "package_management": "dnf",
		    "rpmdb": {"path": "/var/lib/rpm/rpmdb.sqlite", "backend": "sqlite"},
		    "init_system": "systemd",
		    "mountpoints": $mounts,
		    "packages": $(rpm_packages_json),
		    "users": $(json_users RPM_USERS),
		    "human_users": $(json_arr_str rocky svc-backup),
		    "login_shell_users": $(json_arr_str root rocky),
		    "services": {
		      "enabled": $(json_arr_str "${enabled[@]}"),
		      "aliases": $(json_arr_str "${RPM_ALIASES[@]/|/ -> }"),
		      "masked": $(json_arr_str "${RPM_MASKED[@]}"),
		      "default_target": "multi-user.target"
		    },
		    "kernels": [{"version": $(json_str "$RPM_KVER"), "package": "kernel-core", "vmlinuz": "/boot/vmlinuz-$RPM_KVER", "initrd": "/boot/initramfs-$RPM_KVER.img", "modules": "/usr/lib/modules/$RPM_KVER"}],
		    "bootloader": {"type": "grub2-bls", "config": "/boot/grub2/grub.cfg", "grub_default": "saved", "entries": ["/boot/loader/entries/$(machine_id_of "$host")-$RPM_KVER.conf"]},
		    "sshd_effective": $(json_arr_str "${RPM_SSHD_EFFECTIVE[@]}"),
		    "network": {"nm_keyfiles": ["/etc/NetworkManager/system-connections/eth0.nmconnection"], "ifcfg": ["/etc/sysconfig/network-scripts/ifcfg-eth1"], "nameservers": ["10.0.2.3"], "search": ["example.internal"]},
		    "time_sync": {"type": "chrony", "config": "/etc/chrony.conf", "pools": ["2.rocky.pool.ntp.org"]},
		    "cloud_init": true,
		    "selinux": {"mode": "enforcing", "type": "targeted"},
		    "apparmor": false,
		    "firewall": {"type": "firewalld", "enabled": true, "default_zone": "public"}
		  }
	EOF
}
