package inspect

import (
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"guestkit.io/batch/internal/winreg/winregtest"
)

// regHex spells bytes as a .reg hex list.
func regHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ",")
}

// regMulti spells a REG_MULTI_SZ as hex(7).
func regMulti(ss ...string) string {
	var b []byte
	for _, s := range append(ss, "") {
		for _, r := range s + "\x00" {
			b = append(b, byte(r), 0)
		}
		if s == "" {
			break
		}
	}
	return "hex(7):" + regHex(b[:len(b)-2])
}

// regExpand spells a REG_EXPAND_SZ as hex(2).
func regExpand(s string) string {
	var b []byte
	for _, r := range s + "\x00" {
		b = append(b, byte(r), 0)
	}
	return "hex(2):" + regHex(b)
}

// sid encodes S-1-5-<subs...>.
func sid(subs ...uint32) []byte {
	b := []byte{1, byte(len(subs)), 0, 0, 0, 0, 0, 5}
	for _, s := range subs {
		b = binary.LittleEndian.AppendUint32(b, s)
	}
	return b
}

// samF builds a user's 0x50-byte F value.
func samF(rid uint32, acb uint16, lastLogon uint64, logons uint16) []byte {
	f := make([]byte, 0x50)
	binary.LittleEndian.PutUint64(f[0x08:], lastLogon)
	binary.LittleEndian.PutUint32(f[0x30:], rid)
	binary.LittleEndian.PutUint16(f[0x38:], acb)
	binary.LittleEndian.PutUint16(f[0x42:], logons)
	return f
}

// samV builds a user's V value with a name and a full name.
func samV(name, full string) []byte {
	enc := func(s string) []byte {
		var b []byte
		for _, r := range s {
			b = append(b, byte(r), 0)
		}
		return b
	}
	v := make([]byte, 0xcc)
	n, f := enc(name), enc(full)
	binary.LittleEndian.PutUint32(v[0x0c:], 0)
	binary.LittleEndian.PutUint32(v[0x10:], uint32(len(n)))
	binary.LittleEndian.PutUint32(v[0x18:], uint32(len(n)))
	binary.LittleEndian.PutUint32(v[0x1c:], uint32(len(f)))
	return append(append(v, n...), f...)
}

// aliasC builds an alias C value listing members.
func aliasC(members ...[]byte) []byte {
	c := make([]byte, 0x34)
	binary.LittleEndian.PutUint32(c[0x28:], 0)
	binary.LittleEndian.PutUint32(c[0x30:], uint32(len(members)))
	for _, m := range members {
		c = append(c, m...)
	}
	return c
}

// cmdExe is the smallest PE header that names a machine type.
func cmdExe(machine uint16) []byte {
	b := make([]byte, 0x80)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x40)
	copy(b[0x40:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x44:], machine)
	return b
}

const (
	hklmSoftware = `HKEY_LOCAL_MACHINE\SOFTWARE`
	hklmSystem   = `HKEY_LOCAL_MACHINE\SYSTEM`
	hklmSAM      = `HKEY_LOCAL_MACHINE\SAM`
	// 2024-01-15T10:00:00Z as a FILETIME.
	ftJan15 = uint64(1705312800)*10000000 + 116444736000000000
)

// server2022 is a Windows Server 2022 guest with a few misconfigurations:
// the private firewall profile off, SMBv1 on, real-time protection off.
func server2022(t *testing.T) fstest.MapFS {
	software := `
[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows NT\CurrentVersion]
"ProductName"="Windows Server 2022 Datacenter"
"EditionID"="ServerDatacenter"
"InstallationType"="Server"
"CurrentVersion"="6.3"
"CurrentMajorVersionNumber"=dword:0000000a
"CurrentMinorVersionNumber"=dword:00000000
"CurrentBuildNumber"="20348"
"UBR"=dword:00000887
"DisplayVersion"="21H2"
"InstallDate"=dword:6553f100

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Hotfix\KB4589208]
"Installed"=dword:00000001

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\7-Zip]
"DisplayName"="7-Zip 23.01 (x64)"
"DisplayVersion"="23.01"
"Publisher"="Igor Pavlov"
"InstallDate"="20240115"
"InstallLocation"="C:\\Program Files\\7-Zip\\"

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\{6F320B93-EE3C-4826-85E0-ADF79F8D4C61}]
"DisplayName"="Microsoft Visual C++ 2022 X64 Minimum Runtime - 14.38.33130"
"DisplayVersion"="14.38.33130"
"Publisher"="Microsoft Corporation"
"SystemComponent"=dword:00000001

[HKEY_LOCAL_MACHINE\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\Notepad++]
"DisplayName"="Notepad++ (32-bit x86)"
"DisplayVersion"="8.6.2"
"Publisher"="Notepad++ Team"
"InstallDate"="2024/02/01"

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\Packages\Package_for_KB5034439~31bf3856ad364e35~amd64~~20348.2200.1.0]
"CurrentState"=dword:00000050

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\Packages\Package_for_KB5034439~31bf3856ad364e35~amd64~~20348.2220.1.0]
"CurrentState"=dword:00000070
"InstallTimeHigh"=dword:` + fmt.Sprintf("%08x", ftJan15>>32) + `
"InstallTimeLow"=dword:` + fmt.Sprintf("%08x", ftJan15&0xffffffff) + `

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\Packages\Package_for_RollupFix~31bf3856ad364e35~amd64~~20348.2227.1.7]
"CurrentState"=dword:00000070

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\Packages\Microsoft-Windows-SMB1-Package~31bf3856ad364e35~amd64~~10.0.20348.1]
"CurrentState"=dword:00000070

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows Defender]
"DisableAntiSpyware"=dword:00000000

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows Defender\Real-Time Protection]
"DisableRealtimeMonitoring"=dword:00000001

[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Microsoft\WindowsFirewall\PublicProfile]
"EnableFirewall"=dword:00000001

[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services]
"UserAuthentication"=dword:00000001
`
	gptD := append([]byte("DMIO:ID:"), 0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff)
	system := `
[HKEY_LOCAL_MACHINE\SYSTEM\Select]
"Current"=dword:00000001

[HKEY_LOCAL_MACHINE\SYSTEM\MountedDevices]
"\\DosDevices\\C:"=hex:78,56,34,12,00,00,10,00,00,00,00,00
"\\DosDevices\\D:"=hex:` + regHex(gptD) + `
"\\??\\Volume{0a1b2c3d-0000-0000-0000-100000000000}"=hex:78,56,34,12,00,00,10,00,00,00,00,00

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\ComputerName\ComputerName]
"ComputerName"="WIN-SRV22"

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\Network\{4D36E972-E325-11CE-BFC1-08002BE10318}\{11111111-1111-1111-1111-111111111111}\Connection]
"Name"="Ethernet"

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\Terminal Server]
"fDenyTSConnections"=dword:00000000

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\Terminal Server\WinStations\RDP-Tcp]
"UserAuthentication"=dword:00000000
"SecurityLayer"=dword:00000002
"PortNumber"=dword:00000d3d

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\LanmanServer\Parameters]
"SMB1"=dword:00000001
"RequireSecuritySignature"=dword:00000001

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\SharedAccess\Parameters\FirewallPolicy\DomainProfile]
"EnableFirewall"=dword:00000001

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\SharedAccess\Parameters\FirewallPolicy\StandardProfile]
"EnableFirewall"=dword:00000000

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\SharedAccess\Parameters\FirewallPolicy\PublicProfile]
"EnableFirewall"=dword:00000000
"DefaultInboundAction"=dword:00000001

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\Spooler]
"Type"=dword:00000110
"Start"=dword:00000004
"ObjectName"="LocalSystem"
"ImagePath"=` + regExpand(`%SystemRoot%\System32\spoolsv.exe`) + `

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\srv]
"Type"=dword:00000001
"Start"=dword:00000003

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\Tcpip]
"Type"=dword:00000001
"Start"=dword:00000000

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\Tcpip\Parameters]
"Hostname"="win-srv22"
"Domain"="corp.example"
"NameServer"="10.0.0.2,10.0.0.3"
"SearchList"="corp.example example.org"

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\Tcpip\Parameters\Interfaces\{11111111-1111-1111-1111-111111111111}]
"EnableDHCP"=dword:00000000
"IPAddress"=` + regMulti("10.0.0.10", "10.0.0.11") + `
"SubnetMask"=` + regMulti("255.255.255.0", "255.255.0.0") + `
"DefaultGateway"=` + regMulti("10.0.0.1") + `
"NameServer"="10.0.0.2"

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\Tcpip\Parameters\Interfaces\{22222222-2222-2222-2222-222222222222}]
"EnableDHCP"=dword:00000001
"DhcpIPAddress"="192.168.1.50"
"DhcpNameServer"="192.168.1.1 192.168.1.2"
"Domain"="lan"

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\Tcpip\Parameters\Interfaces\{33333333-3333-3333-3333-333333333333}]
"EnableDHCP"=dword:00000000

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\TermService]
"Type"=dword:00000020
"Start"=dword:00000003
"DisplayName"="Remote Desktop Services"
"ObjectName"="NT Authority\\NetworkService"
"ImagePath"=` + regExpand(`%SystemRoot%\System32\svchost.exe -k NetworkService`) + `

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\WinDefend]
"Type"=dword:00000010
"Start"=dword:00000002
"ObjectName"="LocalSystem"
"ImagePath"="\"C:\\ProgramData\\Microsoft\\Windows Defender\\platform\\4.18.23110.3-0\\MsMpEng.exe\""

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\wuauserv]
"Type"=dword:00000020
"Start"=dword:00000002
"DelayedAutostart"=dword:00000001
"ObjectName"="LocalSystem"
`
	accountV := append(make([]byte, 16), sid(21, 1000, 2000, 3000)...)
	sam := `
[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Account]
"V"=hex:` + regHex(accountV) + `

[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Account\Users\000001F4]
"F"=hex:` + regHex(samF(500, 0x0210, ftJan15, 7)) + `
"V"=hex:` + regHex(samV("Administrator", "")) + `

[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Account\Users\000001F5]
"F"=hex:` + regHex(samF(501, 0x0215, 0, 0)) + `

[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Account\Users\000003E8]
"F"=hex:` + regHex(samF(1000, 0x0010, 0, 0)) + `
"V"=hex:` + regHex(samV("alice", "Alice Example")) + `

[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Account\Users\000003E9]
"F"=hex:` + regHex(samF(1001, 0x0011, 0, 0)) + `

[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Account\Users\Names\Administrator]
@=hex(1f4):

[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Account\Users\Names\Guest]
@=hex(1f5):

[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Account\Users\Names\alice]
@=hex(3e8):

[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Account\Users\Names\bob]
@=hex(3e9):

[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Builtin\Aliases\00000220]
"C"=hex:` + regHex(aliasC(sid(21, 1000, 2000, 3000, 500), sid(21, 1000, 2000, 3000, 1000), sid(21, 9, 9, 9, 1105))) + `
`
	return fstest.MapFS{
		"Windows/System32/cmd.exe":         {Data: cmdExe(0x8664)},
		"Windows/System32/config/SOFTWARE": {Data: winregtest.Hive(t, hklmSoftware, software)},
		"Windows/System32/config/SYSTEM":   {Data: winregtest.Hive(t, hklmSystem, system)},
		"Windows/System32/config/SAM":      {Data: winregtest.Hive(t, hklmSAM, sam)},
	}
}

// windows11 is a Windows 11 Pro client (build 22631) whose ProductName
// still says Windows 10, with a hardened configuration and Defender
// turned off by policy. Its directories are spelled in upper case.
func windows11(t *testing.T) fstest.MapFS {
	software := `
[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows NT\CurrentVersion]
"ProductName"="Windows 10 Pro"
"EditionID"="Professional"
"InstallationType"="Client"
"CurrentVersion"="6.3"
"CurrentMajorVersionNumber"=dword:0000000a
"CurrentMinorVersionNumber"=dword:00000000
"CurrentBuildNumber"="22631"
"UBR"=dword:00000bbf
"DisplayVersion"="23H2"

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\Packages\Package_for_KB5031455~31bf3856ad364e35~amd64~~22621.2506.1.2]
"CurrentState"=dword:00000070

[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\Packages\Microsoft-Windows-SMB1-Package~31bf3856ad364e35~amd64~~10.0.22621.1]
"CurrentState"=dword:00000000

[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Microsoft\Windows Defender]
"DisableAntiSpyware"=dword:00000001
`
	system := `
[HKEY_LOCAL_MACHINE\SYSTEM\Select]
"Current"=dword:00000002

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\Tcpip\Parameters]
"Hostname"="OLD-NAME"

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet002\Control\ComputerName\ComputerName]
"ComputerName"="DESKTOP-W11"

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet002\Services\Tcpip\Parameters]
"Hostname"="desktop-w11"

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet002\Services\Tcpip\Parameters\Interfaces\{44444444-4444-4444-4444-444444444444}]
"EnableDHCP"=dword:00000001
"DhcpIPAddress"="0.0.0.0"

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet002\Services\LanmanServer\Parameters]
"RequireSecuritySignature"=dword:00000000

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet002\Services\WinDefend]
"Type"=dword:00000010
"Start"=dword:00000002
"ObjectName"="LocalSystem"
`
	sam := `
[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Account\Users\000003E9]
"F"=hex:` + regHex(samF(1001, 0x0010, 0, 0)) + `

[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Account\Users\Names\bob]
@=hex(3e9):

[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Builtin\Aliases\00000220]
"C"=hex:` + regHex(aliasC(sid(21, 5, 6, 7, 1001))) + `
`
	return fstest.MapFS{
		"WINDOWS/SYSTEM32/CMD.EXE":         {Data: cmdExe(0x8664)},
		"WINDOWS/SYSTEM32/CONFIG/software": {Data: winregtest.Hive(t, hklmSoftware, software)},
		"WINDOWS/SYSTEM32/CONFIG/system":   {Data: winregtest.Hive(t, hklmSystem, system)},
		"WINDOWS/SYSTEM32/CONFIG/sam":      {Data: winregtest.Hive(t, hklmSAM, sam)},
	}
}

// runWindows runs inspection on one Windows root served by the fake
// backend, with the identity libguestfs would give.
func runWindows(t *testing.T, tree fstest.MapFS, systemroot string) (*OS, []Problem) {
	t.Helper()
	b := &fakeBackend{
		roots: []string{"/dev/sda2"},
		os:    map[string]OS{"/dev/sda2": {Type: "windows", Distro: "windows", WindowsSystemroot: systemroot}},
		trees: map[string]fstest.MapFS{"/dev/sda2": tree},
	}
	rep, err := Run(context.Background(), b, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Only the Windows sections' problems (the fake's storage has its own).
	var probs []Problem
	for _, p := range rep.Problems {
		if strings.HasPrefix(p.Section, "windows_") {
			probs = append(probs, p)
		}
	}
	return &rep.OperatingSystems[0], probs
}

func intp(n int) *int    { return &n }
func boolp(b bool) *bool { return &b }

func TestWindowsServer2022(t *testing.T) {
	os, probs := runWindows(t, server2022(t), "/Windows")
	for _, p := range probs {
		t.Errorf("problem: %+v", p)
	}
	w := os.Windows
	if w == nil {
		t.Fatal("no windows section")
	}
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", name, asJSON(got), asJSON(want))
		}
	}
	check("identity", w.Identity, &WindowsIdentity{
		ProductName: "Windows Server 2022 Datacenter", DisplayName: "Windows Server 2022 Datacenter",
		EditionID: "ServerDatacenter", InstallationType: "Server", Variant: "Server",
		MajorVersion: 10, MinorVersion: 0, Build: 20348, UBR: 2183, DisplayVersion: "21H2",
		Arch: "x86_64", Hostname: "win-srv22", ComputerName: "WIN-SRV22", Domain: "corp.example",
		SystemRoot: "/Windows", CurrentControlSet: "ControlSet001",
		DriveMappings: []WindowsDrive{
			{Letter: "C", Kind: "mbr", DiskSignature: "12345678", Offset: 1048576},
			{Letter: "D", Kind: "gpt", PartitionGUID: "00112233-4455-6677-8899-aabbccddeeff"},
		},
		InstallDate: "2023-11-14T22:13:20Z",
	})
	check("applications", w.Applications, []WindowsApplication{
		{Key: "7-Zip", DisplayName: "7-Zip 23.01 (x64)", Version: "23.01", Publisher: "Igor Pavlov",
			InstallDate: "2024-01-15", InstallLocation: `C:\Program Files\7-Zip\`, Arch: "x64"},
		{Key: "{6F320B93-EE3C-4826-85E0-ADF79F8D4C61}", DisplayName: "Microsoft Visual C++ 2022 X64 Minimum Runtime - 14.38.33130",
			Version: "14.38.33130", Publisher: "Microsoft Corporation", Arch: "x64", SystemComponent: true},
		{Key: "Notepad++", DisplayName: "Notepad++ (32-bit x86)", Version: "8.6.2", Publisher: "Notepad++ Team",
			InstallDate: "2024/02/01", Arch: "x86"},
	})
	check("users", w.Users, []WindowsUser{
		{Name: "Administrator", RID: 500, PasswordNeverExpires: true, Administrator: true,
			LastLogon: "2024-01-15T10:00:00Z", LogonCount: 7},
		{Name: "Guest", RID: 501, Disabled: true, PasswordNotRequired: true, PasswordNeverExpires: true},
		{Name: "alice", RID: 1000, FullName: "Alice Example", Administrator: true},
		{Name: "bob", RID: 1001, Disabled: true},
	})
	check("administrators", w.Administrators, []string{"Administrator", "alice", "S-1-5-21-9-9-9-1105"})
	check("services", w.Services, []WindowsService{
		{Name: "Spooler", Start: "disabled", Account: "LocalSystem", ImagePath: `%SystemRoot%\System32\spoolsv.exe`},
		{Name: "TermService", DisplayName: "Remote Desktop Services", Start: "manual", Account: `NT Authority\NetworkService`,
			ImagePath: `%SystemRoot%\System32\svchost.exe -k NetworkService`},
		{Name: "WinDefend", Start: "auto", Account: "LocalSystem",
			ImagePath: `"C:\ProgramData\Microsoft\Windows Defender\platform\4.18.23110.3-0\MsMpEng.exe"`},
		{Name: "wuauserv", Start: "auto", Delayed: true, Account: "LocalSystem"},
	})
	check("network", w.Network, &WindowsNetwork{
		Domain: "corp.example", SearchList: []string{"corp.example", "example.org"}, Nameservers: []string{"10.0.0.2", "10.0.0.3"},
		Interfaces: []WindowsInterface{
			{GUID: "{11111111-1111-1111-1111-111111111111}", Name: "Ethernet", Addresses: []string{"10.0.0.10/24", "10.0.0.11/16"},
				Gateways: []string{"10.0.0.1"}, DNS: []string{"10.0.0.2"}},
			{GUID: "{22222222-2222-2222-2222-222222222222}", DHCP: true, DHCPAddress: "192.168.1.50",
				DNS: []string{"192.168.1.1", "192.168.1.2"}, Domain: "lan"},
		},
	})
	fw := `HKLM\SYSTEM\ControlSet001\Services\SharedAccess\Parameters\FirewallPolicy\`
	check("firewall", w.Firewall, []WindowsFirewallProfile{
		{Profile: "domain", Enabled: true, Source: fw + `DomainProfile\EnableFirewall`},
		{Profile: "private", Enabled: false, Source: fw + `StandardProfile\EnableFirewall`},
		{Profile: "public", Enabled: true, Source: `HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall\PublicProfile\EnableFirewall`, DefaultInbound: "block"},
	})
	check("rdp", w.RDP, &WindowsRDP{
		Enabled: true, EnabledSource: `HKLM\SYSTEM\ControlSet001\Control\Terminal Server\fDenyTSConnections`,
		NLA: true, NLASource: `HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services\UserAuthentication`,
		SecurityLayer: intp(2), Port: 3389,
	})
	check("smb", w.SMB, &WindowsSMB{
		SMB1Server: true, Reason: `HKLM\SYSTEM\ControlSet001\Services\LanmanServer\Parameters\SMB1 is 1`,
		SMB1Setting: boolp(true), SMB1Driver: "manual", SMB1Feature: "installed", SigningRequired: true,
	})
	check("defender", w.Defender, &WindowsDefender{
		Installed: true, Enabled: true, EnabledSource: `HKLM\SOFTWARE\Microsoft\Windows Defender\DisableAntiSpyware`,
		RealTime: false, RealTimeSrc: `HKLM\SOFTWARE\Microsoft\Windows Defender\Real-Time Protection\DisableRealtimeMonitoring`,
		Service: "auto",
	})
	check("updates", w.Updates, []WindowsUpdate{
		{KB: "KB4589208", State: "installed", Source: "hotfix"},
		{KB: "KB5034439", State: "installed", InstalledAt: "2024-01-15T10:00:00Z", Source: "cbs",
			Package: "Package_for_KB5034439~31bf3856ad364e35~amd64~~20348.2220.1.0"},
	})
	// What libguestfs gave is kept as it was.
	if os.Type != "windows" || os.WindowsSystemroot != "/Windows" || os.ProductName != "" {
		t.Errorf("libguestfs fields changed: %+v", os)
	}
}

func TestWindows11(t *testing.T) {
	// No system root from the backend: the sections find it themselves,
	// as libguestfs does, whatever the case of the directories.
	os, probs := runWindows(t, windows11(t), "")
	for _, p := range probs {
		t.Errorf("problem: %+v", p)
	}
	w := os.Windows
	id := w.Identity
	if id.ProductName != "Windows 10 Pro" || id.DisplayName != "Windows 11 Pro" || id.Build != 22631 || id.UBR != 3007 ||
		id.Variant != "Client" || id.DisplayVersion != "23H2" || id.MajorVersion != 10 || id.MinorVersion != 0 {
		t.Errorf("identity %s", asJSON(id))
	}
	if want := `ProductName says "Windows 10 Pro"; build 22631 (22000 or later) is Windows 11`; id.ProductNameNote != want {
		t.Errorf("note %q", id.ProductNameNote)
	}
	if id.SystemRoot != "/WINDOWS" || id.CurrentControlSet != "ControlSet002" || id.Hostname != "desktop-w11" ||
		id.ComputerName != "DESKTOP-W11" || id.Arch != "x86_64" {
		t.Errorf("identity %s", asJSON(id))
	}
	if !reflect.DeepEqual(w.Users, []WindowsUser{{Name: "bob", RID: 1001, Administrator: true}}) ||
		!reflect.DeepEqual(w.Administrators, []string{"bob"}) {
		t.Errorf("users %s admins %q", asJSON(w.Users), w.Administrators)
	}
	for _, p := range w.Firewall {
		if !p.Enabled || p.Source != "default" {
			t.Errorf("firewall profile %+v: want on by default", p)
		}
	}
	if w.RDP.Enabled || w.RDP.EnabledSource != "default" || w.RDP.NLA || w.RDP.NLASource != "default" {
		t.Errorf("rdp %s", asJSON(w.RDP))
	}
	if w.SMB.SMB1Server || w.SMB.Reason != "the SMB1 feature is absent" || w.SMB.SigningRequired {
		t.Errorf("smb %s", asJSON(w.SMB))
	}
	if !w.Defender.Installed || w.Defender.Enabled || w.Defender.RealTime ||
		w.Defender.EnabledSource != `HKLM\SOFTWARE\Policies\Microsoft\Windows Defender\DisableAntiSpyware` {
		t.Errorf("defender %s", asJSON(w.Defender))
	}
	if !reflect.DeepEqual(w.Network.Interfaces, []WindowsInterface{{GUID: "{44444444-4444-4444-4444-444444444444}", DHCP: true}}) {
		t.Errorf("network %s", asJSON(w.Network))
	}
	if len(w.Updates) != 1 || w.Updates[0].KB != "KB5031455" || w.Updates[0].State != "installed" {
		t.Errorf("updates %s", asJSON(w.Updates))
	}
	if len(w.Services) != 1 || w.Services[0].Name != "WinDefend" {
		t.Errorf("services %s", asJSON(w.Services))
	}
}

func TestWindowsSkipOptions(t *testing.T) {
	b := &fakeBackend{
		roots: []string{"/dev/sda2"},
		os:    map[string]OS{"/dev/sda2": {Type: "windows", WindowsSystemroot: "/Windows"}},
		trees: map[string]fstest.MapFS{"/dev/sda2": server2022(t)},
	}
	rep, err := Run(context.Background(), b, Options{SkipUsers: true, SkipServices: true, SkipNetwork: true, SkipSecurity: true, SkipApplications: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := rep.OperatingSystems[0].Windows
	if w.Identity == nil || w.Users != nil || w.Services != nil || w.Network != nil || w.Firewall != nil || w.RDP != nil || w.Applications != nil || w.Updates != nil {
		t.Errorf("skipped sections read: %s", asJSON(w))
	}
}

func TestWindowsMissingAndCorruptHives(t *testing.T) {
	tree := server2022(t)
	delete(tree, "Windows/System32/config/SAM")
	sys := tree["Windows/System32/config/SYSTEM"].Data
	tree["Windows/System32/config/SYSTEM"] = &fstest.MapFile{Data: sys[:0x1800]}
	os, probs := runWindows(t, tree, "/Windows")
	var got []string
	for _, p := range probs {
		got = append(got, p.Section+" "+p.Path)
	}
	want := []string{
		"windows_identity /Windows/System32/config/SYSTEM",
		"windows_users /Windows/System32/config/SAM",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems %q, want %q (%s)", got, want, asJSON(probs))
	}
	// SOFTWARE still gives its sections.
	w := os.Windows
	if w.Identity.ProductName != "Windows Server 2022 Datacenter" || len(w.Applications) != 3 || w.Identity.Hostname != "" {
		t.Errorf("identity %s apps %d", asJSON(w.Identity), len(w.Applications))
	}
}

func TestWindowsHostileValues(t *testing.T) {
	// A C value claiming a million members, a short F value and a
	// Services key whose Start is a string: each is a bounded problem.
	sam := `
[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Account\Users\000003E9]
"F"=hex:01,02,03

[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Account\Users\Names\bob]
@=hex(3e9):

[HKEY_LOCAL_MACHINE\SAM\SAM\Domains\Builtin\Aliases\00000220]
"C"=hex:` + regHex(func() []byte { c := aliasC(); binary.LittleEndian.PutUint32(c[0x30:], 1<<20); return c }()) + `
`
	system := `
[HKEY_LOCAL_MACHINE\SYSTEM\Select]
"Current"=dword:00000001

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\Evil]
"Type"=dword:00000010
"Start"="two"
`
	tree := fstest.MapFS{
		"Windows/System32/cmd.exe":         {Data: []byte("MZ")},
		"Windows/System32/config/SOFTWARE": {Data: winregtest.Empty()},
		"Windows/System32/config/SYSTEM":   {Data: winregtest.Hive(t, hklmSystem, system)},
		"Windows/System32/config/SAM":      {Data: winregtest.Hive(t, hklmSAM, sam)},
	}
	os, probs := runWindows(t, tree, "/Windows")
	msgs := ""
	for _, p := range probs {
		msgs += p.Section + ": " + p.Message + "\n"
	}
	for _, want := range []string{
		"windows_users: " + `HKLM\SAM\SAM\Domains\Account\Users\000003E9\F: 3 bytes, want 80`,
		"windows_users: " + `HKLM\SAM\SAM\Domains\Builtin\Aliases\00000220\C: 1048576 members (limit 4096)`,
		"windows_services: " + `HKLM\SYSTEM\ControlSet001\Services\Evil\Start is REG_SZ "two", not a number`,
	} {
		if !strings.Contains(msgs, want) {
			t.Errorf("no problem %q in\n%s", want, msgs)
		}
	}
	w := os.Windows
	if !reflect.DeepEqual(w.Users, []WindowsUser{{Name: "bob", RID: 1001}}) || w.Administrators != nil {
		t.Errorf("users %s admins %q", asJSON(w.Users), w.Administrators)
	}
	if len(w.Services) != 1 || w.Services[0].Start != "" || w.Identity.Arch != "" {
		t.Errorf("services %s arch %q", asJSON(w.Services), w.Identity.Arch)
	}
}
