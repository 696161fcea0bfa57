# shellcheck shell=bash
# shellcheck disable=SC2034 # tables are read through namerefs
# Synthetic Windows disks for scripts/windowsimages.sh, built the way
# libguestfs builds its phony Windows guests (test-data/phony-guests): the
# registry hives are written with hivex (an empty hive from
# windows/mkhive.pl, then hivexregedit --merge of .reg text) and the NTFS
# filesystems are made and filled by guestfish (mkfs ntfs, mkdir-p,
# upload), so libguestfs's Windows inspection finds a Windows root:
# Windows/System32/config/{SOFTWARE,SYSTEM}, Windows/System32/cmd.exe (a PE
# whose header says the architecture).
#
# The .reg text is base.reg, the edition's file (server2022.reg, win11.reg)
# and what is generated here from the tables below, which are also the
# ground truth written to <name>.expected.json. Sourced, never run.

WIN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/windows" && pwd)

# name|edition|variant|description
WIN_IMAGES=(
	"windows-server2022-hardened|server2022|hardened|Windows Server 2022 Datacenter (build 20348), MBR: System Reserved + C: + D:, every Windows setting hardened"
	"windows-server2022-misconfigured|server2022|misconfigured|Windows Server 2022 Datacenter, same disk, the planted Windows findings"
	"windows-11-hardened|win11|hardened|Windows 11 Pro (ProductName \"Windows 10 Pro\", build 22631), GPT: ESP + MSR + C:, every Windows setting hardened"
	"windows-11-misconfigured|win11|misconfigured|Windows 11 Pro, same disk, the planted Windows findings"
)

# ------------------------------------------------------------------ editions
win_edition_of() { # NAME -> EDITION
	local i n ed rest
	for i in "${WIN_IMAGES[@]}"; do
		IFS='|' read -r n ed rest <<<"$i"
		if [[ $n == "$1" ]]; then echo "$ed"; return 0; fi
	done
	die "no Windows image named $1"
}

# Identity, as HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion holds it.
# OSINFO is what libguestfs 1.48 derives (it has no win11: Windows 11 is
# told apart by CurrentBuildNumber >= 22000).
win_edition() { # EDITION -> sets W_* variables
	case $1 in
	server2022)
		W_PRODUCT="Windows Server 2022 Datacenter" W_EDITION_ID=ServerDatacenter W_VARIANT=Server
		W_BUILD=20348 W_UBR=2227 W_DISPLAY_VERSION=21H2 W_OSINFO=win2k22
		W_PARTITION_TABLE=mbr W_SIZE=$((96 * 1048576)) W_ROOT=/dev/sda2
		;;
	win11)
		W_PRODUCT="Windows 10 Pro" W_EDITION_ID=Professional W_VARIANT=Client
		W_BUILD=22631 W_UBR=3007 W_DISPLAY_VERSION=23H2 W_OSINFO=win10
		W_PARTITION_TABLE=gpt W_SIZE=$((96 * 1048576)) W_ROOT=/dev/sda3
		;;
	*) die "unknown Windows edition $1" ;;
	esac
	W_MAJOR=10 W_MINOR=0
}

# Hostnames per image (NetBIOS names: 15 characters at most).
declare -A WIN_HOSTNAME=(
	[windows-server2022-hardened]=WS2022-HARDENED
	[windows-server2022-misconfigured]=WS2022-MISCONF
	[windows-11-hardened]=WIN11-HARDENED
	[windows-11-misconfigured]=WIN11-MISCONF
)

# ------------------------------------------------------------------ applications
# key|DisplayName|DisplayVersion|Publisher|InstallDate|wow64 (1: under
# WOW6432Node, a 32-bit program)|InstallLocation. The key is what
# libguestfs reports as the application's name.
WIN_APPS_server2022=(
	"7-Zip|7-Zip 23.01 (x64)|23.01|Igor Pavlov|20240115|0|C:\\Program Files\\7-Zip\\"
	"{6B1C2D3E-4F50-4A61-8B72-9C83D4E5F601}|PowerShell 7-x64|7.4.1.0|Microsoft Corporation|20240118|0|C:\\Program Files\\PowerShell\\7\\"
	"{0E2B5D49-A1C3-4F6D-9E8B-7A6C5D4E3F21}|Acme Backup Agent|4.2.1|Acme Corp|20240120|0|C:\\Program Files\\Acme\\Backup\\"
	"Notepad++|Notepad++ (32-bit x86)|8.6.2|Notepad++ Team|20240122|1|C:\\Program Files (x86)\\Notepad++"
	"{D8A6E8A0-5C1B-4E0F-9E3A-2B7C6D5E4F30}|Microsoft Visual C++ 2015-2022 Redistributable (x86) - 14.38.33130|14.38.33130.0|Microsoft Corporation|20240110|1|"
)
WIN_APPS_win11=(
	"7-Zip|7-Zip 23.01 (x64)|23.01|Igor Pavlov|20240115|0|C:\\Program Files\\7-Zip\\"
	"Git_is1|Git|2.43.0|The Git Development Community|20240116|0|C:\\Program Files\\Git\\"
	"{A3F1C2B4-7D6E-4B5A-9C8D-1E2F3A4B5C6D}|Microsoft Teams|24004.1307.2669.7070|Microsoft Corporation|20240125|0|"
	"VLC media player|VLC media player|3.0.20|VideoLAN|20240112|1|C:\\Program Files (x86)\\VideoLAN\\VLC"
	"{D8A6E8A0-5C1B-4E0F-9E3A-2B7C6D5E4F30}|Microsoft Visual C++ 2015-2022 Redistributable (x86) - 14.38.33130|14.38.33130.0|Microsoft Corporation|20240110|1|"
)

# Installed updates, as Component Based Servicing records them:
# KB|package name (CurrentState 0x70: installed).
WIN_UPDATES_server2022=(
	"KB5034129|Package_for_RollupFix~31bf3856ad364e35~amd64~~20348.2227.1.7"
	"KB5032198|Package_for_ServicingStack_2110~31bf3856ad364e35~amd64~~20348.2110.1.1"
)
WIN_UPDATES_win11=(
	"KB5034204|Package_for_RollupFix~31bf3856ad364e35~amd64~~22621.3007.1.6"
	"KB5032005|Package_for_ServicingStack_3000~31bf3856ad364e35~amd64~~22621.3000.1.1"
)

# ------------------------------------------------------------------ users (SAM)
# rid|name|full name|comment|admin (1: member of Administrators)|disabled
# (1, 0, or "guest": the variant decides). Every account is a local one.
WIN_USERS_server2022=(
	"500|Administrator||Built-in account for administering the computer/domain|1|0"
	"501|Guest||Built-in account for guest access to the computer/domain|0|guest"
	"503|DefaultAccount||A user account managed by the system.|0|1"
	"1001|svc_backup|Backup service account|Runs Acme Backup Agent|0|0"
	"1002|alice|Alice Admin||1|0"
)
WIN_USERS_win11=(
	"500|Administrator||Built-in account for administering the computer/domain|1|1"
	"501|Guest||Built-in account for guest access to the computer/domain|0|guest"
	"503|DefaultAccount||A user account managed by the system.|0|1"
	"504|WDAGUtilityAccount||A user account managed and used by the system for Windows Defender Application Guard scenarios.|0|1"
	"1001|bob|Bob||1|0"
	"1002|carol|Carol||0|0"
)

# Password and lockout policy, in SAM\Domains\Account\F (where Windows keeps
# it: net accounts and secedit read it there):
# min length|history|max age (days, 0: never)|min age (days)|complexity|
# lockout threshold|lockout duration (minutes)|observation window (minutes)
declare -A WIN_POLICY=(
	[hardened]="14|24|60|1|1|5|15|15"
	[misconfigured]="0|0|0|0|0|0|30|30"
)

# ------------------------------------------------------------------ services
# name|DisplayName|Start (0 boot, 1 system, 2 automatic, 3 manual,
# 4 disabled)|Type|ObjectName (empty for drivers)|ImagePath
WIN_SERVICES=(
	"Tcpip|TCP/IP Protocol Driver|0|1||System32\\drivers\\tcpip.sys"
	"LanmanServer|Server|2|32|LocalSystem|%SystemRoot%\\system32\\svchost.exe -k smbsvcs"
	"LanmanWorkstation|Workstation|2|32|NT AUTHORITY\\NetworkService|%SystemRoot%\\System32\\svchost.exe -k NetworkService -p"
	"TermService|Remote Desktop Services|3|32|NT Authority\\NetworkService|%SystemRoot%\\System32\\svchost.exe -k NetworkService"
	"MpsSvc|Windows Defender Firewall|2|32|NT Authority\\LocalService|%SystemRoot%\\system32\\svchost.exe -k LocalServiceNoNetworkFirewall -p"
	"WinDefend|Microsoft Defender Antivirus Service|2|16|LocalSystem|\"C:\\ProgramData\\Microsoft\\Windows Defender\\platform\\4.18.23110.3-0\\MsMpEng.exe\""
	"W32Time|Windows Time|3|32|NT AUTHORITY\\LocalService|%SystemRoot%\\system32\\svchost.exe -k LocalService"
	"Spooler|Print Spooler|2|272|LocalSystem|%SystemRoot%\\System32\\spoolsv.exe"
	"RemoteRegistry|Remote Registry|4|32|NT AUTHORITY\\LocalService|%SystemRoot%\\system32\\svchost.exe -k localService -p"
	"AcmeBackupAgent|Acme Backup Agent|2|16|.\\svc_backup|\"C:\\Program Files\\Acme\\Backup\\agent.exe\" --service"
)
# The SMBv1 server driver: present (the SMB1 feature installed) only in the
# misconfigured variant, whose LanmanServer SMB1 = 1 then really serves
# SMBv1; a hardened Windows has the feature removed.
WIN_SMB1_DRIVER="srv|Server SMB 1.xxx Driver|3|2||System32\\DRIVERS\\srv.sys"

# win_services VARIANT: the services of the variant, one per line.
win_services() {
	printf '%s\n' "${WIN_SERVICES[@]}"
	[[ $1 == misconfigured ]] && printf '%s\n' "$WIN_SMB1_DRIVER"
	return 0
}

# ------------------------------------------------------------------ network
# Tcpip\Parameters\Interfaces\{GUID}: guid|dhcp (0/1)|address|mask|gateway|
# name servers (comma-separated, as Windows writes NameServer)
declare -A WIN_INTERFACE=(
	[server2022]="{4D36E972-E325-11CE-BFC1-08002BE10318}|0|10.0.20.10|255.255.255.0|10.0.20.1|10.0.20.2,10.0.20.3"
	[win11]="{7A1C3E5F-2B4D-4F6A-8C9E-0D1F2A3B4C5D}|1|192.168.1.23|255.255.255.0|192.168.1.1|192.168.1.1"
)
declare -A WIN_DOMAIN=([server2022]=corp.example.com [win11]="")

# ------------------------------------------------------------------ settings
# What the Windows profile checks. id|key (with its hive)|value name|type
# (dword or sz)|hardened value|misconfigured value ("-": the value is
# absent). Both editions get the same settings.
WIN_SETTINGS=(
	"rdp_enabled|SYSTEM\\ControlSet001\\Control\\Terminal Server|fDenyTSConnections|dword|0|0"
	"rdp_nla|SYSTEM\\ControlSet001\\Control\\Terminal Server\\WinStations\\RDP-Tcp|UserAuthentication|dword|1|0"
	"rdp_security_layer|SYSTEM\\ControlSet001\\Control\\Terminal Server\\WinStations\\RDP-Tcp|SecurityLayer|dword|2|0"
	"smb1_server|SYSTEM\\ControlSet001\\Services\\LanmanServer\\Parameters|SMB1|dword|0|1"
	"firewall_domain|SYSTEM\\ControlSet001\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\DomainProfile|EnableFirewall|dword|1|1"
	"firewall_private|SYSTEM\\ControlSet001\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\StandardProfile|EnableFirewall|dword|1|1"
	"firewall_public|SYSTEM\\ControlSet001\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\PublicProfile|EnableFirewall|dword|1|0"
	"auto_admin_logon|SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon|AutoAdminLogon|sz|0|1"
	"default_user_name|SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon|DefaultUserName|sz|-|Administrator"
	"default_password|SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon|DefaultPassword|sz|-|Synthetic-Pa55w0rd"
	"no_lm_hash|SYSTEM\\ControlSet001\\Control\\Lsa|NoLMHash|dword|1|0"
	"wdigest_use_logon_credential|SYSTEM\\ControlSet001\\Control\\SecurityProviders\\WDigest|UseLogonCredential|dword|0|1"
	"uac_enable_lua|SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System|EnableLUA|dword|1|0"
	"lsa_run_as_ppl|SYSTEM\\ControlSet001\\Control\\Lsa|RunAsPPL|dword|1|-"
	"restrict_anonymous|SYSTEM\\ControlSet001\\Control\\Lsa|RestrictAnonymous|dword|1|0"
	"restrict_anonymous_sam|SYSTEM\\ControlSet001\\Control\\Lsa|RestrictAnonymousSAM|dword|1|0"
	"defender_realtime_disabled|SOFTWARE\\Policies\\Microsoft\\Windows Defender\\Real-Time Protection|DisableRealtimeMonitoring|dword|0|1"
)

# ------------------------------------------------------------------ encoding helpers
# Hex text as hivexregedit reads it: "0a,0b,...".
hex_commas() { sed -E 's/(..)/\1,/g; s/,$//' <<<"$1"; }
le16() { local v; v=$(printf '%04x' $(($1 & 0xffff))); printf '%s' "${v:2:2}${v:0:2}"; }
le32() { local v; v=$(printf '%08x' $(($1 & 0xffffffff))); printf '%s' "${v:6:2}${v:4:2}${v:2:2}${v:0:2}"; }
le64() { # signed 64-bit (bash arithmetic), little endian
	local v i out=""
	v=$(printf '%016x' "$1")
	for ((i = 14; i >= 0; i -= 2)); do out+=${v:i:2}; done
	printf '%s' "$out"
}
utf16hex() { # ASCII STRING -> its UTF-16LE bytes as hex (no terminator)
	local s=$1 i
	for ((i = 0; i < ${#s}; i++)); do printf '%02x00' "'${s:i:1}"; done
}
reg_quote() { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }
reg_dword() { printf '%s=dword:%08x\n' "$(reg_quote "$1")" "$2"; }
reg_sz() { printf '%s=%s\n' "$(reg_quote "$1")" "$(reg_quote "$2")"; }
reg_expand() { printf '%s=str(2):%s\n' "$(reg_quote "$1")" "$(reg_quote "$2")"; }
reg_hex() { printf '%s=hex(%x):%s\n' "$(reg_quote "$1")" "$2" "$(hex_commas "$3")"; }
reg_multi() { # NAME STRING...: REG_MULTI_SZ
	local n=$1 h="" s
	shift
	for s in "$@"; do h+="$(utf16hex "$s")0000"; done
	reg_hex "$n" 7 "${h}0000"
}
# A binary SID: S-1-5-SUB...
sid_hex() {
	local s h
	h=$(printf '01%02x000000000005' $#)
	for s in "$@"; do h+=$(le32 "$s"); done
	printf '%s' "$h"
}
# FILETIME of a YYYYMMDD date at 00:00 UTC.
filetime_of() { echo $((($(date -u -d "$1" +%s) + 11644473600) * 10000000)); }
DAY_100NS=864000000000
MIN_100NS=600000000

# The machine's domain SID (S-1-5-21-a-b-c), deterministic per image.
win_machine_sid() { # NAME -> "a b c"
	local h
	h=$(printf 'sid:%s' "$1" | sha256sum)
	echo "$((16#${h:0:7})) $((16#${h:8:7})) $((16#${h:16:7}))"
}

# ------------------------------------------------------------------ .reg generation
win_reg_identity() {
	printf '[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion]\n'
	reg_sz ProductName "$W_PRODUCT"
	reg_sz EditionID "$W_EDITION_ID"
	reg_sz InstallationType "$W_VARIANT"
	reg_dword CurrentMajorVersionNumber "$W_MAJOR"
	reg_dword CurrentMinorVersionNumber "$W_MINOR"
	reg_sz CurrentVersion 6.3
	reg_sz CurrentBuildNumber "$W_BUILD"
	reg_sz CurrentBuild "$W_BUILD"
	reg_dword UBR "$W_UBR"
	reg_sz DisplayVersion "$W_DISPLAY_VERSION"
	reg_sz BuildLabEx "$W_BUILD.1.amd64fre.synthetic.240201-0000"
	echo
}

win_reg_apps() { # EDITION
	local -n _apps=WIN_APPS_$1
	local a key dn ver pub date wow loc base
	for a in "${_apps[@]}"; do
		IFS='|' read -r key dn ver pub date wow loc <<<"$a"
		base='HKEY_LOCAL_MACHINE\SOFTWARE'
		((wow)) && base+='\WOW6432Node'
		printf '[%s\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\%s]\n' "$base" "$key"
		reg_sz DisplayName "$dn"
		reg_sz DisplayVersion "$ver"
		reg_sz Publisher "$pub"
		reg_sz InstallDate "$date"
		[[ -n $loc ]] && reg_sz InstallLocation "$loc"
		reg_dword NoModify 1
		echo
	done
}

win_reg_updates() { # EDITION
	local -n _ups=WIN_UPDATES_$1
	local u kb pkg
	for u in "${_ups[@]}"; do
		IFS='|' read -r kb pkg <<<"$u"
		printf '[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\Packages\\%s]\n' "$pkg"
		reg_dword CurrentState 0x70
		reg_sz InstallName "${pkg}.mum"
		reg_sz InstallLocation "\\\\?\\C:\\Windows\\SoftwareDistribution\\Download\\$kb"
		reg_dword InstallTimeHigh 0x01da5498
		reg_dword InstallTimeLow 0x00000000
		echo
	done
}

win_reg_network() { # EDITION NAME
	local host=${WIN_HOSTNAME[$2]} guid dhcp ip mask gw ns
	IFS='|' read -r guid dhcp ip mask gw ns <<<"${WIN_INTERFACE[$1]}"
	printf '[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control\\ComputerName\\ComputerName]\n'
	reg_sz ComputerName "$host"
	printf '\n[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\Tcpip\\Parameters]\n'
	reg_sz Hostname "$host"
	reg_sz "NV Hostname" "$host"
	reg_sz Domain "${WIN_DOMAIN[$1]}"
	reg_sz "NV Domain" "${WIN_DOMAIN[$1]}"
	printf '\n[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\Tcpip\\Parameters\\Interfaces\\%s]\n' "$guid"
	reg_dword EnableDHCP "$dhcp"
	if ((dhcp)); then
		reg_multi IPAddress 0.0.0.0
		reg_multi SubnetMask 0.0.0.0
		reg_sz DhcpIPAddress "$ip"
		reg_sz DhcpSubnetMask "$mask"
		reg_multi DhcpDefaultGateway "$gw"
		reg_sz DhcpNameServer "${ns//,/ }"
		reg_sz NameServer ""
	else
		reg_multi IPAddress "$ip"
		reg_multi SubnetMask "$mask"
		reg_multi DefaultGateway "$gw"
		reg_sz NameServer "$ns"
	fi
	echo
}

win_reg_services() { # VARIANT
	local s name dn start type obj img
	local -a svcs
	mapfile -t svcs < <(win_services "$1")
	for s in "${svcs[@]}"; do
		IFS='|' read -r name dn start type obj img <<<"$s"
		printf '[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\%s]\n' "$name"
		reg_sz DisplayName "$dn"
		reg_dword Start "$start"
		reg_dword Type "$type"
		reg_dword ErrorControl 1
		reg_expand ImagePath "$img"
		[[ -n $obj ]] && reg_sz ObjectName "$obj"
		echo
	done
}

# MountedDevices: C: (and D:) as libguestfs decodes them: on MBR the disk
# signature (MBR bytes 0x1b8-0x1bb) and the partition's byte offset; on GPT
# "DMIO:ID:" and the partition's unique GUID in Windows's byte order.
win_guid_hex() { # GUID -> 16 bytes, mixed endian
	local g=${1//-/}
	printf '%s%s%s%s' "$(le32 $((16#${g:0:8})))" "$(le16 $((16#${g:8:4})))" "$(le16 $((16#${g:12:4})))" "${g:16:16}"
}
win_reg_mounted() { # NAME EDITION
	local name=$1
	printf '[HKEY_LOCAL_MACHINE\\SYSTEM\\MountedDevices]\n'
	if [[ $2 == server2022 ]]; then
		local sig
		sig=$(le32 $(($(win_mbr_id "$name"))))
		reg_hex '\DosDevices\C:' 3 "${sig}$(le64 $((WIN_MBR_C_START * 512)))"
		reg_hex '\DosDevices\D:' 3 "${sig}$(le64 $((WIN_MBR_D_START * 512)))"
	else
		reg_hex '\DosDevices\C:' 3 "444d494f3a49443a$(win_guid_hex "$(uuid_of "gpt:$name:3")")" # "DMIO:ID:" GUID
	fi
	echo
}

# SAM: Domains\Account (F: the policy, V: the machine SID), a key per user
# (F: flags and RID, V: name, full name and comment), Names\<user> (the
# RID as the default value's type), Builtin\Aliases (C: members of
# Administrators and Users). Layouts as Windows writes them; only the
# fields a reader needs are filled, the rest is zero.
win_user_f() { # RID ACB
	local h
	h="0200000000000000"                                        # 0x00 revision
	h+=$(le64 "$(filetime_of 20240201)") h+=$(le64 0)           # 0x08 last logon, 0x10
	h+=$(le64 "$(filetime_of 20240115)")                        # 0x18 password last set
	h+=$(le64 0x7fffffffffffffff) h+=$(le64 0)                  # 0x20 account expires (never), 0x28 last failed logon
	h+=$(le32 "$1") h+=$(le32 0x201)                            # 0x30 RID, 0x34 primary group (None)
	h+=$(le16 "$2") h+="0000" h+="0000" h+="0000"               # 0x38 ACB flags, country, code page
	h+=$(le16 0) h+=$(le16 3) h+=$(le32 0) h+=$(le64 0)         # 0x40 bad password count, logon count
	printf '%s' "$h"
}
win_user_v() { # NAME FULLNAME COMMENT
	local -a strs=("$1" "$2" "$3")
	local hdr data="" i s off len
	# 17 entries of (offset, length, 0); offsets from the end of the header (0xcc)
	local -a ent=()
	for ((i = 0; i < 17; i++)); do ent[i]="000000000000000000000000"; done
	for i in 0 1 2; do
		s=$(utf16hex "${strs[i]}")
		off=$((${#data} / 2)) len=$((${#s} / 2))
		ent[i + 1]="$(le32 $off)$(le32 $len)00000000"
		data+=$s
		while (((${#data} / 2) % 4)); do data+=00; done
	done
	# LM and NT hash entries (13 and 14): empty, as for an account without
	# a stored hash
	hdr=$(printf '%s' "${ent[@]}")
	printf '%s%s' "$hdr" "$data"
}
win_alias_c() { # RID NAME COMMENT SID-HEX...
	local rid=$1 name comment members="" n=0 s data
	name=$(utf16hex "$2") comment=$(utf16hex "$3")
	shift 3
	for s in "$@"; do members+=$s; n=$((n + 1)); done
	data=$name
	local coff=$((${#data} / 2))
	data+=$comment
	while (((${#data} / 2) % 4)); do data+=00; done
	local moff=$((${#data} / 2))
	data+=$members
	printf '%s' "$(le32 "$rid")$(le32 0)$(le32 0)$(le32 0)$(le32 0)$(le32 $((${#name} / 2)))$(le32 0)$(le32 "$coff")$(le32 $((${#comment} / 2)))$(le32 0)$(le32 "$moff")$(le32 $((${#members} / 2)))$(le32 $n)$data"
}
win_domain_f() { # VARIANT
	local minlen hist maxage minage cplx thr dur win maxage100
	IFS='|' read -r minlen hist maxage minage cplx thr dur win <<<"${WIN_POLICY[$1]}"
	if ((maxage == 0)); then maxage100=$((-0x7fffffffffffffff - 1)); else maxage100=$((-maxage * DAY_100NS)); fi
	local h
	h=$(le32 3)$(le32 0)                                        # 0x00 revision
	h+=$(le64 "$(filetime_of 20240101)")$(le64 42)              # 0x08 creation time, 0x10 modified count
	h+=$(le64 $maxage100)$(le64 $((-minage * DAY_100NS)))       # 0x18 max password age, 0x20 min password age
	h+=$(le64 $((-0x7fffffffffffffff - 1)))                      # 0x28 force logoff: never
	h+=$(le64 $((-dur * MIN_100NS)))$(le64 $((-win * MIN_100NS))) # 0x30 lockout duration, 0x38 observation window
	h+=$(le64 0)$(le32 1003)$(le32 "$cplx")                     # 0x40, 0x48 next RID, 0x4c password properties
	h+=$(le16 "$minlen")$(le16 "$hist")$(le16 "$thr")$(le16 0)  # 0x50 min length, history, lockout threshold
	h+=$(le32 1)$(le16 3)$(le16 0)$(le64 0)                     # 0x58 server state, role, 0x60
	printf '%s' "$h"
}
win_acb() { # DISABLED-FIELD VARIANT RID -> ACB flags
	local d=$1
	[[ $d == guest ]] && { [[ $2 == hardened ]] && d=1 || d=0; }
	local acb=$((0x0010 | 0x0200)) # normal account, password never expires
	(($3 == 501)) && acb=$((acb | 0x0004)) # Guest: no password required
	((d)) && acb=$((acb | 0x0001))
	echo "$acb"
}
win_reg_sam() { # NAME EDITION VARIANT
	local name=$1
	local -a sid
	local -n _users=WIN_USERS_$2
	read -ra sid <<<"$(win_machine_sid "$name")"
	local acct='HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Account' u rid un full comment admin dis ridhex
	local -a admins=() users=()
	printf '[%s]\n' "$acct"
	reg_hex F 3 "$(win_domain_f "$3")"
	reg_hex V 3 "$(sid_hex 21 "${sid[@]}")"
	echo
	for u in "${_users[@]}"; do
		IFS='|' read -r rid un full comment admin dis <<<"$u"
		ridhex=$(printf '%08X' "$rid")
		printf '[%s\\Users\\%s]\n' "$acct" "$ridhex"
		reg_hex F 3 "$(win_user_f "$rid" "$(win_acb "$dis" "$3" "$rid")")"
		reg_hex V 3 "$(win_user_v "$un" "$full" "$comment")"
		printf '\n[%s\\Users\\Names\\%s]\n@=hex(%x):\n\n' "$acct" "$un" "$rid"
		((admin)) && admins+=("$(sid_hex 21 "${sid[@]}" "$rid")")
		((rid >= 1000)) && users+=("$(sid_hex 21 "${sid[@]}" "$rid")")
	done
	local b='HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Builtin\Aliases'
	printf '[%s\\00000220]\n' "$b"
	reg_hex C 3 "$(win_alias_c 544 Administrators "Administrators have complete and unrestricted access to the computer/domain" "${admins[@]}")"
	printf '\n[%s\\00000221]\n' "$b"
	reg_hex C 3 "$(win_alias_c 545 Users "Users are prevented from making accidental or intentional system-wide changes" "${users[@]}")"
	printf '\n[%s\\Names\\Administrators]\n@=hex(220):\n\n[%s\\Names\\Users]\n@=hex(221):\n\n' "$b" "$b"
}

win_reg_settings() { # VARIANT
	local s id key vn type hv mv v
	for s in "${WIN_SETTINGS[@]}"; do
		IFS='|' read -r id key vn type hv mv <<<"$s"
		[[ $1 == hardened ]] && v=$hv || v=$mv
		[[ $v == - ]] && continue
		printf '[HKEY_LOCAL_MACHINE\\%s]\n' "$key"
		case $type in
		dword) reg_dword "$vn" "$v" ;;
		sz) reg_sz "$vn" "$v" ;;
		*) die "setting $id: unknown type $type" ;;
		esac
		echo
	done
}

# win_reg NAME EDITION VARIANT: the image's whole .reg text.
win_reg() {
	cat "$WIN_DIR/base.reg"
	echo
	cat "$WIN_DIR/$2.reg"
	echo
	win_reg_identity
	win_reg_apps "$2"
	win_reg_updates "$2"
	win_reg_network "$2" "$1"
	win_reg_services "$3"
	win_reg_mounted "$1" "$2"
	win_reg_sam "$1" "$2" "$3"
	win_reg_settings "$3"
}

# win_hives REGFILE DIR: SOFTWARE, SYSTEM, SAM and SECURITY in DIR. Each
# hive gets the sections under its HKLM prefix, with every missing parent
# key added before its child (hivexregedit creates a key only under an
# existing parent).
win_hives() {
	local reg=$1 dir=$2 hive
	mkdir -p "$dir"
	for hive in SOFTWARE SYSTEM SAM SECURITY; do
		awk -v pfx="HKEY_LOCAL_MACHINE\\\\$hive" '
			BEGIN { plen = length(pfx); on = 0 }
			/^Windows Registry Editor/ || /^[ \t]*;/ { next }
			/^\[/ {
				k = substr($0, 2, length($0) - 2)
				if (toupper(substr(k, 1, plen)) != toupper(pfx) || (length(k) > plen && substr(k, plen + 1, 1) != "\\")) { on = 0; next }
				on = 1
				n = split(substr(k, plen + 2), parts, "\\")
				p = pfx
				for (i = 1; i < n; i++) {
					p = p "\\" parts[i]
					if (!(toupper(p) in seen)) { seen[toupper(p)] = 1; print "[" p "]"; print "" }
				}
				seen[toupper(k)] = 1
				print; next
			}
			on { print }
		' "$reg" >"$dir/$hive.reg"
		perl "$WIN_DIR/mkhive.pl" "$dir/$hive" "$hive"
		hivexregedit --merge "$dir/$hive" --prefix "HKEY_LOCAL_MACHINE\\$hive" "$dir/$hive.reg" ||
			die "hivexregedit --merge $hive failed ($reg)"
	done
}

# mkpe FILE ARCH: a 1 KiB PE executable header (console subsystem) that
# `file`, and so libguestfs's architecture check, reads as "PE32+ executable
# (console) x86-64" (x86_64) or "PE32 executable (console) Intel 80386"
# (i386). It does not run.
mkpe() {
	local f=$1 mach magic opt chars
	case $2 in
	x86_64) mach='\x64\x86' magic='\x0b\x02' opt='\xf0\x00' chars='\x22\x00' ;;
	i386) mach='\x4c\x01' magic='\x0b\x01' opt='\xe0\x00' chars='\x02\x01' ;;
	*) die "mkpe: unknown arch $2" ;;
	esac
	mkdir -p "$(dirname "$f")"
	head -c 1024 /dev/zero >"$f"
	_pe() { printf '%b' "$2" | dd of="$f" bs=1 seek=$(($1)) conv=notrunc status=none; }
	_pe 0 'MZ'
	_pe 0x3c '\x80'          # e_lfanew
	_pe 0x80 'PE\x00\x00'
	_pe 0x84 "$mach"         # COFF Machine
	_pe 0x94 "$opt"          # SizeOfOptionalHeader
	_pe 0x96 "$chars"        # Characteristics
	_pe 0x98 "$magic"        # optional header magic
	_pe $((0x98 + 68)) '\x03\x00' # Subsystem: Windows console
}

# ------------------------------------------------------------------ disks
# server2022: MBR, System Reserved (NTFS, active), C: and D: (NTFS).
# win11: GPT, EFI System Partition (FAT), Microsoft Reserved (no
# filesystem), C: (NTFS). Start sectors are fixed: MountedDevices names
# partitions by offset (MBR) or GUID (GPT).
WIN_MBR_C_START=34816 WIN_MBR_D_START=133120
win_mbr_id() { printf '0x%s' "$(uuid_of "mbr:$1" | cut -c1-8)"; }
win_layout() { # NAME EDITION -> sfdisk script
	if [[ $2 == server2022 ]]; then
		printf 'label: dos\nlabel-id: %s\n' "$(win_mbr_id "$1")"
		printf 'start=2048, size=32768, type=7, bootable\n'
		printf 'start=%s, size=98304, type=7\n' "$WIN_MBR_C_START"
		printf 'start=%s, type=7\n' "$WIN_MBR_D_START"
	else
		printf 'label: gpt\nlabel-id: %s\n' "$(uuid_of "gpt:$1")"
		printf 'start=2048, size=32768, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=%s, name="EFI system partition"\n' "$(uuid_of "gpt:$1:1")"
		printf 'start=34816, size=32768, type=E3C9E316-0B5C-4DB8-817D-F92DF00215AE, uuid=%s, name="Microsoft reserved partition"\n' "$(uuid_of "gpt:$1:2")"
		printf 'start=67584, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=%s, name="Basic data partition"\n' "$(uuid_of "gpt:$1:3")"
	fi
}

# The files of C: (besides the hives): what libguestfs's inspection needs
# (Windows/System32/cmd.exe, Windows/System32/config) and what a Windows
# root looks like, with an executable for each application that has an
# install location.
win_c_files() { # TREE EDITION
	local t=$1 a key dn ver pub date wow loc dir
	local -n _apps=WIN_APPS_$2
	mkpe "$t/Windows/System32/cmd.exe" x86_64
	mkpe "$t/Windows/System32/ntoskrnl.exe" x86_64
	mkpe "$t/Windows/explorer.exe" x86_64
	mkpe "$t/Windows/SysWOW64/cmd.exe" i386
	mkdir -p "$t/Windows/System32/drivers/etc" "$t/Windows/System32/config/RegBack" "$t/ProgramData/Microsoft/Windows Defender" \
		"$t/Users/Public" "$t/Users/Default" "$t/System Volume Information"
	printf '# Copyright (c) 1993-2009 Microsoft Corp.\r\n#\r\n127.0.0.1       localhost\r\n::1             localhost\r\n' \
		>"$t/Windows/System32/drivers/etc/hosts"
	for a in "${_apps[@]}"; do
		IFS='|' read -r key dn ver pub date wow loc <<<"$a"
		[[ -n $loc ]] || continue
		dir=${loc#C:\\}
		dir=${dir%\\}
		dir=${dir//\\//}
		mkpe "$t/$dir/$(tr -cd '[:alnum:]' <<<"$key" | tr '[:upper:]' '[:lower:]').exe" "$( ((wow)) && echo i386 || echo x86_64)"
	done
}

# win_gf_upload TREE MOUNT: guestfish commands that recreate TREE under
# MOUNT (mkdir-p, upload): tar-in would try to chown on NTFS.
win_gf_upload() {
	local t=$1 m=$2 p
	while IFS= read -r -d '' p; do
		p=${p#"$t"}
		[[ -z $p ]] && continue
		if [[ -d $t$p ]]; then
			gf mkdir-p "\"$m$p\""
		else
			gf upload "\"$t$p\"" "\"$m$p\""
		fi
	done < <(find "$t" -print0 | sort -z)
}

# ------------------------------------------------------------------ ground truth
# win_expected NAME EDITION VARIANT DESCRIPTION (after win_edition): the
# image's <name>.expected.json, from the same tables that wrote the hives.
win_expected() {
	local name=$1 ed=$2 var=$3 desc=$4 first a u s x
	local -n _apps=WIN_APPS_$ed _users=WIN_USERS_$ed _ups=WIN_UPDATES_$ed
	local key dn ver pub date wow loc rid un full comment admin dis
	sep() { ((first)) || printf ',\n      '; first=0; }
	printf '{\n  "schema": "guestkit-testimage/v1",\n  "name": %s,\n  "file": %s,\n  "format": "qcow2",\n  "expected": "ok",\n' \
		"$(json_str "$name")" "$(json_str "$name.qcow2")"
	printf '  "description": %s,\n  "cache_key": %s,\n  "virtual_size": %s,\n  "partition_table": %s,\n' \
		"$(json_str "$desc")" "$(json_str "$KEY")" "$W_SIZE" "$(json_str "$W_PARTITION_TABLE")"
	if [[ $ed == server2022 ]]; then
		printf '  "disk_signature": %s,\n' "$(json_str "$(win_mbr_id "$name")")"
		printf '  "filesystems": [{"device": "/dev/sda1", "fstype": "ntfs", "label": "System Reserved", "uuid": %s},\n    {"device": "/dev/sda2", "fstype": "ntfs", "label": "Windows", "uuid": %s},\n    {"device": "/dev/sda3", "fstype": "ntfs", "label": "Data", "uuid": %s}],\n' \
			"$(json_str "$(win_fs_uuid "$name" 2048 ntfs)")" "$(json_str "$(win_fs_uuid "$name" "$WIN_MBR_C_START" ntfs)")" "$(json_str "$(win_fs_uuid "$name" "$WIN_MBR_D_START" ntfs)")"
		x='{"C": "/dev/sda2", "D": "/dev/sda3"}'
	else
		printf '  "partition_guids": {"/dev/sda1": %s, "/dev/sda2": %s, "/dev/sda3": %s},\n' \
			"$(json_str "$(uuid_of "gpt:$name:1")")" "$(json_str "$(uuid_of "gpt:$name:2")")" "$(json_str "$(uuid_of "gpt:$name:3")")"
		printf '  "filesystems": [{"device": "/dev/sda1", "fstype": "vfat", "label": "SYSTEM", "uuid": %s},\n    {"device": "/dev/sda3", "fstype": "ntfs", "label": "Windows", "uuid": %s}],\n' \
			"$(json_str "$(win_fs_uuid "$name" 2048 vfat)")" "$(json_str "$(win_fs_uuid "$name" 67584 ntfs)")"
		x='{"C": "/dev/sda3"}'
	fi
	printf '  "operating_systems": [{\n'
	printf '    "root": %s, "type": "windows", "distro": "windows", "arch": "x86_64",\n' "$(json_str "$W_ROOT")"
	printf '    "product_name": %s, "product_variant": %s, "edition_id": %s,\n' "$(json_str "$W_PRODUCT")" "$(json_str "$W_VARIANT")" "$(json_str "$W_EDITION_ID")"
	printf '    "major_version": %s, "minor_version": %s, "build": %s, "ubr": %s, "display_version": %s,\n' \
		"$W_MAJOR" "$W_MINOR" "$(json_str "$W_BUILD")" "$W_UBR" "$(json_str "$W_DISPLAY_VERSION")"
	printf '    "windows_11": %s, "osinfo": %s, "hostname": %s,\n' "$( ((W_BUILD >= 22000)) && echo true || echo false)" \
		"$(json_str "$W_OSINFO")" "$(json_str "${WIN_HOSTNAME[$name]}")"
	printf '    "windows_systemroot": "/Windows", "windows_current_control_set": "ControlSet001",\n'
	printf '    "drive_mappings": %s,\n    "mountpoints": [{"mountpoint": "/", "device": %s}],\n' "$x" "$(json_str "$W_ROOT")"
	first=1
	printf '    "applications": [\n      '
	for a in "${_apps[@]}"; do
		IFS='|' read -r key dn ver pub date wow loc <<<"$a"
		sep
		printf '{"name": %s, "display_name": %s, "version": %s, "publisher": %s, "install_date": %s, "install_path": %s, "wow64": %s}' \
			"$(json_str "$key")" "$(json_str "$dn")" "$(json_str "$ver")" "$(json_str "$pub")" "$(json_str "$date")" "$(json_str "$loc")" \
			"$( ((wow)) && echo true || echo false)"
	done
	printf '],\n    "applications_not_listed": ["Connection Manager"],\n'
	first=1
	printf '    "users": [\n      '
	local -a sid
	read -ra sid <<<"$(win_machine_sid "$name")"
	for u in "${_users[@]}"; do
		IFS='|' read -r rid un full comment admin dis <<<"$u"
		sep
		printf '{"rid": %s, "name": %s, "full_name": %s, "comment": %s, "sid": %s, "administrator": %s, "disabled": %s, "acb": %s}' \
			"$rid" "$(json_str "$un")" "$(json_str "$full")" "$(json_str "$comment")" "$(json_str "S-1-5-21-${sid[0]}-${sid[1]}-${sid[2]}-$rid")" \
			"$( ((admin)) && echo true || echo false)" "$( (($(win_acb "$dis" "$var" "$rid") & 1)) && echo true || echo false)" \
			"$(win_acb "$dis" "$var" "$rid")"
	done
	printf '],\n'
	local minlen hist maxage minage cplx thr dur win
	IFS='|' read -r minlen hist maxage minage cplx thr dur win <<<"${WIN_POLICY[$var]}"
	printf '    "password_policy": {"min_length": %s, "history": %s, "max_age_days": %s, "min_age_days": %s, "complexity": %s, "lockout_threshold": %s, "lockout_duration_minutes": %s, "lockout_window_minutes": %s},\n' \
		"$minlen" "$hist" "$maxage" "$minage" "$( ((cplx)) && echo true || echo false)" "$thr" "$dur" "$win"
	first=1
	printf '    "services": [\n      '
	local sname sdn start type obj img
	local -a svcs
	mapfile -t svcs < <(win_services "$var")
	for s in "${svcs[@]}"; do
		IFS='|' read -r sname sdn start type obj img <<<"$s"
		sep
		printf '{"name": %s, "display_name": %s, "start": %s, "type": %s, "object_name": %s, "image_path": %s}' \
			"$(json_str "$sname")" "$(json_str "$sdn")" "$start" "$type" "$(json_str "$obj")" "$(json_str "$img")"
	done
	printf '],\n'
	local guid dhcp ip mask gw ns
	IFS='|' read -r guid dhcp ip mask gw ns <<<"${WIN_INTERFACE[$ed]}"
	printf '    "network": {"hostname": %s, "domain": %s, "interfaces": [{"guid": %s, "dhcp": %s, "address": %s, "mask": %s, "gateway": %s, "nameservers": %s}]},\n' \
		"$(json_str "${WIN_HOSTNAME[$name]}")" "$(json_str "${WIN_DOMAIN[$ed]}")" "$(json_str "$guid")" "$( ((dhcp)) && echo true || echo false)" \
		"$(json_str "$ip")" "$(json_str "$mask")" "$(json_str "$gw")" "$(IFS=,; read -ra x <<<"$ns"; json_arr_str "${x[@]}")"
	first=1
	printf '    "updates": [\n      '
	local kb pkg
	for u in "${_ups[@]}"; do
		IFS='|' read -r kb pkg <<<"$u"
		sep
		printf '{"kb": %s, "package": %s}' "$(json_str "$kb")" "$(json_str "$pkg")"
	done
	printf '],\n'
	first=1
	printf '    "settings": [\n      '
	local id vn hv mv v jv
	for s in "${WIN_SETTINGS[@]}"; do
		IFS='|' read -r id key vn type hv mv <<<"$s"
		[[ $var == hardened ]] && v=$hv || v=$mv
		if [[ $v == - ]]; then jv=null
		elif [[ $type == dword ]]; then jv=$v
		else jv=$(json_str "$v")
		fi
		sep
		printf '{"id": %s, "key": %s, "value_name": %s, "type": %s, "value": %s, "hardened": %s}' \
			"$(json_str "$id")" "$(json_str "HKLM\\$key")" "$(json_str "$vn")" "$(json_str "$type")" "$jv" \
			"$([[ $v == "$hv" ]] && echo true || echo false)"
	done
	printf '],\n'
	printf '    "profile": {"variant": %s, "expected": %s}\n' "$(json_str "$var")" "$(json_str "$([[ $var == hardened ]] && echo compliant || echo noncompliant)")"
	printf '  }]\n}\n'
}

# win_check_hives DIR EDITION VARIANT: reads the merged hives back with
# hivexregedit --export and requires every setting of the table (present
# with its value, or absent) and every account (Names\<user> typed with its
# RID, the F value's disabled bit): what the .reg text says reached the hive.
win_check_hives() {
	local dir=$1 ed=$2 var=$3 hive s id key vn type hv mv v want sect
	local -A text=()
	for hive in SOFTWARE SYSTEM SAM; do text[$hive]=$(hivexregedit --export "$dir/$hive" "\\"); done
	section() { # HIVE PATH-IN-HIVE -> the section's value lines
		# the header through the environment: awk -v would read its backslashes as escapes
		H="[\\$2]" awk 'tolower($0) == tolower(ENVIRON["H"]) { on = 1; next } /^\[/ { on = 0 } on && NF' <<<"${text[$1]}"
	}
	for s in "${WIN_SETTINGS[@]}"; do
		IFS='|' read -r id key vn type hv mv <<<"$s"
		[[ $var == hardened ]] && v=$hv || v=$mv
		hive=${key%%\\*}
		sect=$(section "$hive" "${key#*\\}")
		if [[ $v == - ]]; then
			! grep -q "^\"$vn\"=" <<<"$sect" || die "setting $id: $key $vn is in the hive, want it absent"
		else
			case $type in
			dword) want=$(printf '"%s"=dword:%08x' "$vn" "$v") ;;
			sz) want=$(printf '"%s"=hex(1):%s' "$vn" "$(hex_commas "$(utf16hex "$v")0000")") ;;
			esac
			grep -qxF "$want" <<<"$sect" || die "setting $id: $key $vn: want $want, the hive has: $(grep "^\"$vn\"=" <<<"$sect" || echo nothing)"
		fi
	done
	local -n _wu=WIN_USERS_$ed
	local u rid un full comment admin dis f acb
	for u in "${_wu[@]}"; do
		IFS='|' read -r rid un full comment admin dis <<<"$u"
		grep -qxF "$(printf '@=hex(%x):' "$rid")" <<<"$(section SAM "SAM\\Domains\\Account\\Users\\Names\\$un")" ||
			die "account $un: Names\\$un does not carry RID $rid"
		f=$(section SAM "SAM\\Domains\\Account\\Users\\$(printf '%08X' "$rid")" | sed -n 's/^"F"=hex(3)://p' | tr -d ,)
		acb=$((16#${f:114:2}${f:112:2}))
		[[ $acb == "$(win_acb "$dis" "$var" "$rid")" ]] || die "account $un: ACB flags $acb in the hive, want $(win_acb "$dis" "$var" "$rid")"
	done
}

# ------------------------------------------------------------------ volume serials
# mkntfs and mkfs.vfat pick random serial numbers (what blkid and
# virt-inspector print as the filesystem's UUID); libguestfs cannot set
# them. win_fix_serials patches them on the host, in the raw disk, to
# values derived from the image's name, so the ground truth can name them:
# NTFS at boot sector offset 0x48 (8 bytes) in the boot sector and its
# backup in the volume's last sector, FAT16 at 0x27 (4 bytes).
win_serial() { uuid_of "serial:$1" | tr -d - | cut -c1-16 | tr '[:lower:]' '[:upper:]'; }
win_fs_starts() { # EDITION -> "start:fstype" per filesystem
	if [[ $1 == server2022 ]]; then
		echo "2048:ntfs 34816:ntfs 133120:ntfs"
	else
		echo "2048:vfat 67584:ntfs"
	fi
}
win_fix_serials() { # RAW NAME EDITION
	local raw=$1 name=$2 e start fs serial off n hex i bytes
	for e in $(win_fs_starts "$3"); do
		start=${e%%:*} fs=${e#*:} off=$((${e%%:*} * 512))
		serial=$(win_serial "$name:$start")
		case $fs in
		ntfs)
			[[ $(dd if="$raw" bs=1 skip=$((off + 3)) count=4 status=none) == NTFS ]] || die "$name: no NTFS boot sector at sector $start"
			# number of sectors in the volume (0x28, 8 bytes LE); the backup boot sector follows it
			n=$(od -An -t u8 -j $((off + 0x28)) -N 8 "$raw" | tr -d ' ')
			[[ $(dd if="$raw" bs=1 skip=$((off + n * 512 + 3)) count=4 status=none) == NTFS ]] || die "$name: no NTFS backup boot sector at sector $((start + n))"
			hex=$(le64 $((16#$serial)))
			;;
		vfat)
			[[ $(dd if="$raw" bs=1 skip=$((off + 0x36)) count=5 status=none) == FAT16 ]] || die "$name: no FAT16 boot sector at sector $start"
			hex=$(le32 $((16#${serial:0:8})))
			;;
		esac
		bytes=""
		for ((i = 0; i < ${#hex}; i += 2)); do bytes+="\\x${hex:i:2}"; done
		if [[ $fs == ntfs ]]; then
			printf '%b' "$bytes" | dd of="$raw" bs=1 seek=$((off + 0x48)) conv=notrunc status=none
			printf '%b' "$bytes" | dd of="$raw" bs=1 seek=$((off + n * 512 + 0x48)) conv=notrunc status=none
		else
			printf '%b' "$bytes" | dd of="$raw" bs=1 seek=$((off + 0x27)) conv=notrunc status=none
		fi
	done
}
# win_fs_uuid NAME START FSTYPE: the UUID blkid reports after win_fix_serials.
win_fs_uuid() {
	local s
	s=$(win_serial "$1:$2")
	if [[ $3 == ntfs ]]; then echo "$s"; else echo "${s:0:4}-${s:4:4}"; fi
}
