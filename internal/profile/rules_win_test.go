package profile

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"guestkit.io/batch/internal/winreg"
	"guestkit.io/batch/internal/winreg/winregtest"
)

// Windows fixtures: hives written by the real hivexregedit --merge
// (winregtest.Hive) from .reg text, put into an in-memory guest tree as
// Windows lays it out (Windows/System32/config/<hive>, cmd.exe beside).
// A case merges its lines after its base's, so a value can be changed or
// deleted ("name"=-). Keys are written [SYSTEM\...], [SOFTWARE\...],
// [SAM\...]; winReg adds HKEY_LOCAL_MACHINE.

// samDomainFHex is SAM\Domains\Account's F value: maximum password age in
// days (-1: never), minimum length, lockout threshold and lockout duration
// in minutes (-1: until an administrator unlocks).
func samDomainFHex(maxAgeDays int64, minLen, threshold uint16, lockoutMins int64) string {
	f := make([]byte, 0x68)
	le := binary.LittleEndian
	le.PutUint16(f[0:], 3) // revision
	interval := func(v, unit int64) uint64 {
		if v < 0 {
			return 1 << 63 // never
		}
		return uint64(-(v * unit))
	}
	le.PutUint64(f[0x18:], interval(maxAgeDays, 864000000000))
	le.PutUint64(f[0x30:], interval(lockoutMins, 600000000))
	le.PutUint64(f[0x38:], interval(lockoutMins, 600000000)) // observation window
	le.PutUint32(f[0x48:], 1001)                             // next RID
	le.PutUint16(f[0x50:], minLen)
	le.PutUint16(f[0x52:], 24) // history
	le.PutUint16(f[0x54:], threshold)
	return regHex(f)
}

// samUserFHex is a user's F value with its account-control flags.
func samUserFHex(acb uint16) string {
	f := make([]byte, 0x50)
	binary.LittleEndian.PutUint32(f[0x30:], 501)
	binary.LittleEndian.PutUint16(f[0x38:], acb)
	return regHex(f)
}

func regHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return "hex:" + strings.Join(parts, ",")
}

// The hardened guest: every Windows rule passes.
var winHardened = map[string]string{
	winreg.System: `
[SYSTEM\Select]
"Current"=dword:00000001

[SYSTEM\ControlSet001\Control\Lsa]
"NoLMHash"=dword:00000001
"RunAsPPL"=dword:00000001
"RestrictAnonymousSAM"=dword:00000001
"RestrictAnonymous"=dword:00000001

[SYSTEM\ControlSet001\Control\SecurityProviders\WDigest]
"UseLogonCredential"=dword:00000000

[SYSTEM\ControlSet001\Control\Terminal Server]
"fDenyTSConnections"=dword:00000000

[SYSTEM\ControlSet001\Control\Terminal Server\WinStations\RDP-Tcp]
"UserAuthentication"=dword:00000001

[SYSTEM\ControlSet001\Services\LanmanServer\Parameters]
"SMB1"=dword:00000000

[SYSTEM\ControlSet001\Services\SharedAccess\Parameters\FirewallPolicy\DomainProfile]
"EnableFirewall"=dword:00000001

[SYSTEM\ControlSet001\Services\SharedAccess\Parameters\FirewallPolicy\StandardProfile]
"EnableFirewall"=dword:00000001

[SYSTEM\ControlSet001\Services\SharedAccess\Parameters\FirewallPolicy\PublicProfile]
"EnableFirewall"=dword:00000001

[SYSTEM\ControlSet002\Control\Lsa]
"NoLMHash"=dword:00000000
`,
	winreg.Software: `
[SOFTWARE\Microsoft\Windows NT\CurrentVersion]
"ProductName"="Windows Server 2022 Standard"
"CurrentBuildNumber"="20348"

[SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon]
"AutoAdminLogon"="0"

[SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System]
"EnableLUA"=dword:00000001

[SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services]
"UserAuthentication"=dword:00000001

[SOFTWARE\Policies\Microsoft\WindowsFirewall\DomainProfile]
"EnableFirewall"=dword:00000001

[SOFTWARE\Policies\Microsoft\WindowsFirewall\PrivateProfile]
"EnableFirewall"=dword:00000001

[SOFTWARE\Policies\Microsoft\WindowsFirewall\PublicProfile]
"EnableFirewall"=dword:00000001
`,
	winreg.SAM: `
[SAM\SAM\Domains\Account]
"F"=` + samDomainFHex(365, 14, 5, 15) + `

[SAM\SAM\Domains\Account\Users\000001F5]
"F"=` + samUserFHex(0x0211) + `
`,
}

// The misconfigured guest: every Windows rule fails.
var winMisconfigured = map[string]string{
	winreg.System: `
[SYSTEM\Select]
"Current"=dword:00000002

[SYSTEM\ControlSet002\Control\Lsa]
"NoLMHash"=dword:00000000
"RestrictAnonymousSAM"=dword:00000000
"RestrictAnonymous"=dword:00000000

[SYSTEM\ControlSet002\Control\SecurityProviders\WDigest]
"UseLogonCredential"=dword:00000001

[SYSTEM\ControlSet002\Control\Terminal Server\WinStations\RDP-Tcp]
"UserAuthentication"=dword:00000000

[SYSTEM\ControlSet002\Services\LanmanServer\Parameters]
"SMB1"=dword:00000001

[SYSTEM\ControlSet002\Services\SharedAccess\Parameters\FirewallPolicy\DomainProfile]
"EnableFirewall"=dword:00000000

[SYSTEM\ControlSet002\Services\SharedAccess\Parameters\FirewallPolicy\StandardProfile]
"EnableFirewall"=dword:00000000

[SYSTEM\ControlSet002\Services\SharedAccess\Parameters\FirewallPolicy\PublicProfile]
"EnableFirewall"=dword:00000001
`,
	winreg.Software: `
[SOFTWARE\Microsoft\Windows NT\CurrentVersion]
"ProductName"="Windows Server 2022 Standard"
"CurrentBuildNumber"="20348"

[SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon]
"AutoAdminLogon"="1"
"DefaultUserName"="Administrator"
"DefaultPassword"="Hunter2-secret"

[SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System]
"EnableLUA"=dword:00000000

[SOFTWARE\Policies\Microsoft\WindowsFirewall\PublicProfile]
"EnableFirewall"=dword:00000000
`,
	winreg.SAM: `
[SAM\SAM\Domains\Account]
"F"=` + samDomainFHex(-1, 0, 0, 0) + `

[SAM\SAM\Domains\Account\Users\000001F5]
"F"=` + samUserFHex(0x0210) + `
`,
}

// winHiveCache keeps built hives: each costs a hivexregedit run.
var winHiveCache sync.Map

// winHiveData builds (once) the hive of .reg text reg.
func winHiveData(t testing.TB, hive, reg string) []byte {
	t.Helper()
	key := hive + "\x00" + reg
	if b, ok := winHiveCache.Load(key); ok {
		return b.([]byte)
	}
	var lines []string
	for _, l := range strings.Split(reg, "\n") {
		// hivexregedit wants a blank line before each section.
		switch {
		case strings.HasPrefix(l, "[-"):
			lines = append(lines, "")
			l = `[-HKEY_LOCAL_MACHINE\` + l[2:]
		case strings.HasPrefix(l, "["):
			lines = append(lines, "")
			l = `[HKEY_LOCAL_MACHINE\` + l[1:]
		}
		lines = append(lines, l)
	}
	b := winregtest.Hive(t, `HKEY_LOCAL_MACHINE\`+hive, strings.Join(lines, "\n")+"\n")
	winHiveCache.Store(key, b)
	return b
}

// winTree is a Windows guest tree: base's hives with more merged after
// (a hive's text "-" leaves the hive file out).
func winTree(t testing.TB, base map[string]string, more map[string]string) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{
		"Windows/System32/cmd.exe":     txt("MZ"),
		"Windows/System32/drivers/etc": dirMode(0o755),
		"Program Files/README.txt":     txt("x"),
		"Users/Public/desktop.ini":     txt("x"),
	}
	for _, h := range []string{winreg.System, winreg.Software, winreg.SAM} {
		if more[h] == "-" {
			continue
		}
		m["Windows/System32/config/"+h] = &fstest.MapFile{Data: winHiveData(t, h, base[h]+"\n"+more[h]), Mode: 0o644}
	}
	return m
}

// winOS is what inspection gives for a Windows root.
var winOS = OSInfo{Type: "windows", Distro: "windows", Version: "10.0"}

type winCase struct {
	rule, name string
	base       map[string]string // winHardened when nil
	more       map[string]string // merged after the base, by hive
	want       Status
	evidence   string
}

func (c winCase) target(t testing.TB) Target {
	base := c.base
	if base == nil {
		base = winHardened
	}
	return Target{FS: winTree(t, base, c.more), OS: winOS}
}

func sysReg(s string) map[string]string  { return map[string]string{winreg.System: s} }
func softReg(s string) map[string]string { return map[string]string{winreg.Software: s} }
func samReg(s string) map[string]string  { return map[string]string{winreg.SAM: s} }

// windowsCases are the pass and fail fixtures of every Windows rule.
func windowsCases() []winCase {
	bad := winMisconfigured
	var cs []winCase
	for _, r := range windowsRules() {
		cs = append(cs,
			winCase{rule: r.ID, name: "hardened", want: StatusPass, evidence: `HKLM\`},
			winCase{rule: r.ID, name: "misconfigured", base: bad, want: StatusFail, evidence: `HKLM\`})
	}
	return append(cs,
		// RDP: the policy wins over RDP-Tcp, both ways.
		winCase{rule: "windows_rdp_nla_required", name: "policy on over local off", base: bad,
			more: softReg("[SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services]\n\"UserAuthentication\"=dword:00000001\n"),
			want: StatusPass, evidence: "the Group Policy value wins"},
		winCase{rule: "windows_rdp_nla_required", name: "policy off over local on",
			more: softReg("[SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services]\n\"UserAuthentication\"=dword:00000000\n"),
			want: StatusFail, evidence: `HKLM\SYSTEM\ControlSet001\Control\Terminal Server\WinStations\RDP-Tcp\UserAuthentication = 1 (REG_DWORD) | overridden by the policy`},
		winCase{rule: "windows_rdp_nla_required", name: "local on without policy",
			more: softReg("[SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services]\n\"UserAuthentication\"=-\n"),
			want: StatusPass, evidence: "no Group Policy value"},
		winCase{rule: "windows_rdp_nla_required", name: "set nowhere, RDP denied",
			more: map[string]string{
				winreg.Software: "[SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services]\n\"UserAuthentication\"=-\n",
				winreg.System:   "[SYSTEM\\ControlSet001\\Control\\Terminal Server]\n\"fDenyTSConnections\"=dword:00000001\n[SYSTEM\\ControlSet001\\Control\\Terminal Server\\WinStations\\RDP-Tcp]\n\"UserAuthentication\"=-\n",
			},
			want: StatusFail, evidence: "nothing on disk requires NLA"},
		// SMBv1: without the SMB1 value, the driver decides.
		winCase{rule: "windows_smb1_server_disabled", name: "unset, driver absent",
			more: sysReg("[SYSTEM\\ControlSet001\\Services\\LanmanServer\\Parameters]\n\"SMB1\"=-\n"),
			want: StatusPass, evidence: `HKLM\SYSTEM\ControlSet001\Services\srv absent`},
		winCase{rule: "windows_smb1_server_disabled", name: "unset, driver installed",
			more: sysReg("[SYSTEM\\ControlSet001\\Services\\LanmanServer\\Parameters]\n\"SMB1\"=-\n[SYSTEM\\ControlSet001\\Services\\srv]\n\"Start\"=dword:00000003\n"),
			want: StatusFail, evidence: "srv.sys) is installed and not disabled"},
		winCase{rule: "windows_smb1_server_disabled", name: "unset, driver disabled",
			more: sysReg("[SYSTEM\\ControlSet001\\Services\\LanmanServer\\Parameters]\n\"SMB1\"=-\n[SYSTEM\\ControlSet001\\Services\\srv]\n\"Start\"=dword:00000004\n"),
			want: StatusPass, evidence: "driver is disabled"},
		// The firewall: policy over local, default on.
		winCase{rule: "windows_firewall_public_enabled", name: "policy off over local on",
			more: softReg("[SOFTWARE\\Policies\\Microsoft\\WindowsFirewall\\PublicProfile]\n\"EnableFirewall\"=dword:00000000\n"),
			want: StatusFail, evidence: `WindowsFirewall\PublicProfile\EnableFirewall = 0 (REG_DWORD) | the Group Policy value wins`},
		winCase{rule: "windows_firewall_private_enabled", name: "StandardProfile off without policy",
			more: map[string]string{
				winreg.Software: "[-SOFTWARE\\Policies\\Microsoft\\WindowsFirewall\\PrivateProfile]\n",
				winreg.System:   "[SYSTEM\\ControlSet001\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\StandardProfile]\n\"EnableFirewall\"=dword:00000000\n",
			},
			want: StatusFail, evidence: `FirewallPolicy\StandardProfile\EnableFirewall = 0`},
		winCase{rule: "windows_firewall_domain_enabled", name: "set nowhere",
			more: map[string]string{
				winreg.Software: "[-SOFTWARE\\Policies\\Microsoft\\WindowsFirewall\\DomainProfile]\n",
				winreg.System:   "[-SYSTEM\\ControlSet001\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\DomainProfile]\n",
			},
			want: StatusPass, evidence: "on by default"},
		// Guest, AutoAdminLogon.
		winCase{rule: "windows_guest_account_disabled", name: "no guest account",
			more: samReg("[-SAM\\SAM\\Domains\\Account\\Users\\000001F5]\n"), want: StatusPass, evidence: "does not exist"},
		winCase{rule: "windows_autoadminlogon_disabled", name: "password stored without autologon",
			more: softReg("[SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon]\n\"DefaultPassword\"=\"Secret123\"\n"),
			want: StatusFail, evidence: "DefaultPassword = (set, REG_SZ, not shown)"},
		winCase{rule: "windows_autoadminlogon_disabled", name: "autologon as a dword",
			more: softReg("[SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon]\n\"AutoAdminLogon\"=dword:00000001\n"),
			want: StatusFail, evidence: "AutoAdminLogon = 1 (REG_DWORD)"},
		winCase{rule: "windows_autoadminlogon_disabled", name: "empty password, autologon unset",
			more: softReg("[SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon]\n\"AutoAdminLogon\"=-\n\"DefaultPassword\"=\"\"\n"),
			want: StatusPass, evidence: "AutoAdminLogon = not set"},
		// Defaults of unset values.
		winCase{rule: "windows_no_lm_hash", name: "unset", more: sysReg("[SYSTEM\\ControlSet001\\Control\\Lsa]\n\"NoLMHash\"=-\n"),
			want: StatusPass, evidence: "does not store LM hashes by default"},
		winCase{rule: "windows_uac_enabled", name: "unset", more: softReg("[SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System]\n\"EnableLUA\"=-\n"),
			want: StatusPass, evidence: "on by default"},
		winCase{rule: "windows_restrict_anonymous_sam", name: "unset", more: sysReg("[SYSTEM\\ControlSet001\\Control\\Lsa]\n\"RestrictAnonymousSAM\"=-\n"),
			want: StatusPass, evidence: "refused by default"},
		winCase{rule: "windows_restrict_anonymous", name: "unset", more: sysReg("[SYSTEM\\ControlSet001\\Control\\Lsa]\n\"RestrictAnonymous\"=-\n"),
			want: StatusFail, evidence: "the default, 0"},
		winCase{rule: "windows_lsa_protection", name: "without UEFI lock", more: sysReg("[SYSTEM\\ControlSet001\\Control\\Lsa]\n\"RunAsPPL\"=dword:00000002\n"),
			want: StatusPass, evidence: "RunAsPPL = 2 (REG_DWORD)"},
		winCase{rule: "windows_lsa_protection", name: "unset", more: sysReg("[SYSTEM\\ControlSet001\\Control\\Lsa]\n\"RunAsPPL\"=-\n"),
			want: StatusFail, evidence: "not a protected process by default"},
		// WDigest: the default depends on the build.
		winCase{rule: "windows_wdigest_no_plaintext", name: "unset on Server 2022",
			more: sysReg("[SYSTEM\\ControlSet001\\Control\\SecurityProviders\\WDigest]\n\"UseLogonCredential\"=-\n"),
			want: StatusPass, evidence: "build 20348"},
		winCase{rule: "windows_wdigest_no_plaintext", name: "unset on Server 2008 R2",
			more: map[string]string{
				winreg.System:   "[SYSTEM\\ControlSet001\\Control\\SecurityProviders\\WDigest]\n\"UseLogonCredential\"=-\n",
				winreg.Software: "[SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion]\n\"CurrentBuildNumber\"=\"7601\"\n",
			},
			want: StatusFail, evidence: "before build 9600"},
		winCase{rule: "windows_wdigest_no_plaintext", name: "unset, build unknown",
			more: map[string]string{
				winreg.System:   "[SYSTEM\\ControlSet001\\Control\\SecurityProviders\\WDigest]\n\"UseLogonCredential\"=-\n",
				winreg.Software: "[SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion]\n\"CurrentBuildNumber\"=-\n",
			},
			want: StatusNotChecked, evidence: "build is unknown"},
		// The account policy in SAM.
		winCase{rule: "windows_password_max_age", name: "42 days",
			more: samReg("[SAM\\SAM\\Domains\\Account]\n\"F\"=" + samDomainFHex(42, 14, 5, 15) + "\n"), want: StatusPass, evidence: "maximum password age = 42 days"},
		winCase{rule: "windows_password_max_age", name: "400 days",
			more: samReg("[SAM\\SAM\\Domains\\Account]\n\"F\"=" + samDomainFHex(400, 14, 5, 15) + "\n"), want: StatusFail, evidence: "maximum password age = 400 days"},
		winCase{rule: "windows_account_lockout_threshold", name: "10 attempts",
			more: samReg("[SAM\\SAM\\Domains\\Account]\n\"F\"=" + samDomainFHex(42, 14, 10, 15) + "\n"), want: StatusFail, evidence: "lockout threshold = 10"},
		winCase{rule: "windows_account_lockout_duration", name: "until unlocked",
			more: samReg("[SAM\\SAM\\Domains\\Account]\n\"F\"=" + samDomainFHex(42, 14, 5, -1) + "\n"), want: StatusPass, evidence: "until an administrator unlocks"},
		winCase{rule: "windows_password_min_length", name: "F value too short",
			more: samReg("[SAM\\SAM\\Domains\\Account]\n\"F\"=hex:01,02,03,04\n"), want: StatusError, evidence: "shorter than the 86 of its account policy"},
		winCase{rule: "windows_password_min_length", name: "no SAM hive",
			more: map[string]string{winreg.SAM: "-"}, want: StatusNotChecked, evidence: "registry hive SAM"},
		winCase{rule: "windows_password_min_length", name: "no account policy",
			more: samReg("[SAM\\SAM\\Domains\\Account]\n\"F\"=-\n"), want: StatusNotChecked, evidence: "no account policy"},
		// The current control set is the one Select\Current names.
		winCase{rule: "windows_no_lm_hash", name: "another control set is current",
			more: sysReg("[SYSTEM\\Select]\n\"Current\"=dword:00000002\n"), want: StatusFail, evidence: `HKLM\SYSTEM\ControlSet002\Control\Lsa\NoLMHash = 0`},
	)
}

func TestWindowsRules(t *testing.T) {
	for _, c := range windowsCases() {
		t.Run(c.rule+"/"+c.name, func(t *testing.T) {
			out := runRule(t, c.rule, c.target(t))
			text := evidenceText(out.Evidence)
			if out.Status != c.want {
				t.Fatalf("status %s, want %s\n%s", out.Status, c.want, text)
			}
			if !strings.Contains(text, c.evidence) {
				t.Errorf("evidence lacks %q:\n%s", c.evidence, text)
			}
			if (out.Status == StatusPass || out.Status == StatusFail) && !strings.Contains(text, "/Windows/System32/config/") {
				t.Errorf("evidence names no hive file:\n%s", text)
			}
			if strings.Contains(text, "Hunter2") || strings.Contains(text, "Secret123") {
				t.Errorf("a stored password leaked into evidence:\n%s", text)
			}
		})
	}
}

// TestWindowsRegistryUnreadable: a corrupt hive is an error naming it;
// a Windows guest without a system root is notchecked.
func TestWindowsRegistryUnreadable(t *testing.T) {
	m := winTree(t, winHardened, nil)
	m["Windows/System32/config/SYSTEM"] = &fstest.MapFile{Data: append([]byte("regf"), make([]byte, 8192)...), Mode: 0o644}
	out := runRule(t, "windows_no_lm_hash", Target{FS: m, OS: winOS})
	if text := evidenceText(out.Evidence); out.Status != StatusError || !strings.Contains(text, "/Windows/System32/config/SYSTEM") {
		t.Errorf("corrupt SYSTEM: %s\n%s", out.Status, text)
	}
	out = runRule(t, "windows_uac_enabled", Target{FS: fstest.MapFS{"Users/x": txt("x")}, OS: winOS})
	if text := evidenceText(out.Evidence); out.Status != StatusNotChecked || !strings.Contains(text, "no Windows system root") {
		t.Errorf("no system root: %s\n%s", out.Status, text)
	}
}

// TestWindowsGuestProfiles is point 4 of issue 16 on whole guests: on a
// Windows guest (as inspection describes it, and as a bare tree) every
// Linux rule is notapplicable and says why, the Windows rules decide,
// and a profile without a Windows rule says so; scores count only
// decided rules.
func TestWindowsGuestProfiles(t *testing.T) {
	for _, tc := range []struct {
		name  string
		base  map[string]string
		os    OSInfo
		want  Status
		index int
	}{
		{"hardened", winHardened, winOS, StatusPass, 100},
		{"hardened, OS from the tree", winHardened, OSInfo{}, StatusPass, 100},
		{"misconfigured", winMisconfigured, winOS, StatusFail, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := Target{FS: winTree(t, tc.base, nil), OS: tc.os}
			rep, err := Evaluate(context.Background(), tg, Options{Profiles: allProfiles()})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OS.Family != FamilyWindows || rep.OS.Type != FamilyWindows {
				t.Errorf("os %+v", rep.OS)
			}
			win := 0
			for _, r := range rep.Results {
				text := evidenceText(r.Evidence)
				if windowsRule(r.ID) {
					win++
					if r.Status != tc.want {
						t.Errorf("%s: %s, want %s\n%s", r.ID, r.Status, tc.want, text)
					}
					continue
				}
				if r.Status != StatusNotApplicable || !strings.Contains(text, "does not apply to a windows guest") {
					t.Errorf("Linux rule %s on Windows: %s\n%s", r.ID, r.Status, text)
				}
			}
			if win < 15 {
				t.Errorf("%d Windows rules evaluated, want at least 15", win)
			}
			if s := rep.Summary.ByStatus; s.NotApplicable != len(rep.Results)-win || s.Pass+s.Fail != win {
				t.Errorf("summary %+v with %d Windows rules of %d", s, win, len(rep.Results))
			}
			if rep.HardeningIndex != tc.index {
				t.Errorf("hardening index %d, want %d", rep.HardeningIndex, tc.index)
			}
			// compliance holds no Windows rule; every other profile does.
			for _, p := range rep.Profiles {
				if p.Applicable != p.Rules-p.Counts.NotApplicable {
					t.Errorf("profile %s: applicable %d of %d rules, %d notapplicable", p.Name, p.Applicable, p.Rules, p.Counts.NotApplicable)
				}
				if p.Name == "compliance" {
					if p.Applicable != 0 || p.PassRate != nil || p.Note != "no rule of profile compliance applies to windows" {
						t.Errorf("compliance on Windows: %+v", p)
					}
					continue
				}
				if p.Applicable == 0 || p.Note != "" {
					t.Errorf("profile %s holds Windows rules: %+v", p.Name, p)
				}
			}
		})
	}
}

// TestNotApplicableCountedApart: SARIF and JUnit keep not-applicable
// rules apart from passes, fails and skips of undecided rules.
func TestNotApplicableCountedApart(t *testing.T) {
	rep, err := Evaluate(context.Background(), Target{FS: winTree(t, winMisconfigured, nil), OS: winOS}, Options{Profiles: []string{"security", "compliance"}})
	if err != nil {
		t.Fatal(err)
	}
	var sarif strings.Builder
	if err := WriteSARIF(&sarif, rep, "test"); err != nil {
		t.Fatal(err)
	}
	s := sarif.String()
	if want := fmt.Sprintf(`"notapplicable": %d,`, rep.Summary.ByStatus.NotApplicable); !strings.Contains(s, want) || rep.Summary.ByStatus.NotApplicable == 0 {
		t.Errorf("SARIF run properties lack %s", want)
	}
	if strings.Contains(s, `"status": "notapplicable"`) || !strings.Contains(s, `"ruleId": "windows_smb1_server_disabled"`) || !strings.Contains(s, `"CIS-Windows-Server-2022:18.4.4"`) {
		t.Error("SARIF: a notapplicable rule is a result, or a Windows failure is missing")
	}
	var junit strings.Builder
	if err := WriteJUnit(&junit, rep); err != nil {
		t.Fatal(err)
	}
	j := junit.String()
	comp := rep.Profiles[1]
	for _, want := range []string{
		fmt.Sprintf(`<property name="notapplicable" value="%d"></property>`, comp.Rules),
		`<property name="applicable" value="0"></property>`,
		`<property name="note" value="no rule of profile compliance applies to windows"></property>`,
		`<skipped message="notapplicable: rule is for linux; guest family is windows: a rule written for linux does not apply to a windows guest"></skipped>`,
	} {
		if !strings.Contains(j, want) {
			t.Errorf("JUnit lacks %s", want)
		}
	}
}
