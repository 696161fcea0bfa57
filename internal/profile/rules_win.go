package profile

// The Windows rules. The file is not called rules_windows.go: Go would
// build a *_windows.go file only for GOOS=windows.
//
// Citations are items of the CIS Microsoft Windows Server 2022 Benchmark
// v3.0.0, Level 1 - Member Server unless said otherwise, with the numbers
// and titles ansible-lockdown's Windows-2022-CIS names its tasks by at the
// merge of its benchmark_v3.0.0 branch (commit 9051723,
// tasks/ansible_hardening/section01.yml, section02.yml, section09.yml,
// section18.yml, whose tags give each item's profile); TestCISCitations
// checks every citation against those rows (cisWindows2022 in
// cis_citations_test.go). ComplianceAsCode has no Windows content, so
// these rules have no CaC id.
//
// Registry hives are read with internal/winreg through guest.FS: SOFTWARE
// and SYSTEM for settings (SYSTEM through the current control set, as
// Windows resolves CurrentControlSet), and SAM for the local account
// policy and the Guest account. The SECURITY hive is not read: the
// account policy of a standalone or member server lives in SAM's
// Domains\Account F value, which secpol.msc and net accounts write.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/winreg"
)

// onWindows is the applicability of a Windows rule.
func onWindows() Applicability { return Applicability{Families: []string{FamilyWindows}} }

// windowsHive finds a hive file (winreg.System, ...) of the guest's
// Windows installation, ignoring case as NTFS does, and returns its io/fs
// path, or "" when there is none. It is how a tree given without OS is
// recognised as Windows (normalizeOS).
func windowsHive(fsys guest.FS, name string) string {
	root, err := winreg.SystemRoot(fsys)
	if err != nil {
		return ""
	}
	p, err := winreg.HivePath(fsys, root, name)
	if err != nil {
		return ""
	}
	if fi, err := fs.Stat(fsys, p); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	return p
}

// winRegistry is the guest's registry as the Windows rules read it: each
// hive opened once per evaluation (Env.windows).
type winRegistry struct {
	root  string // the system root, "/Windows"
	hives map[string]*winHive
	// ccs is SYSTEM's current control set ("ControlSet001"), or "" with
	// ccsErr saying why.
	ccs    string
	ccsErr error
}

type winHive struct {
	file string // guest path of the hive file, for evidence
	h    *winreg.Hive
	err  error
}

func openWinRegistry(fsys guest.FS) (*winRegistry, error) {
	root, err := winreg.SystemRoot(fsys)
	if err != nil {
		return nil, err
	}
	w := &winRegistry{root: root, hives: map[string]*winHive{}}
	for _, name := range []string{winreg.Software, winreg.System, winreg.SAM} {
		wh := &winHive{file: root + "/System32/config/" + name}
		if p, err := winreg.HivePath(fsys, root, name); err != nil {
			wh.err = fmt.Errorf("registry hive %s: %w", name, err)
		} else {
			wh.file = "/" + p
			wh.h, wh.err = winreg.Open(fsys, p)
		}
		w.hives[name] = wh
	}
	if sys := w.hives[winreg.System]; sys.err == nil {
		w.ccs, w.ccsErr = winreg.CurrentControlSet(sys.h)
	} else {
		w.ccsErr = sys.err
	}
	return w, nil
}

// windows returns the guest's registry, opened on first use.
func (e *Env) windows() (*winRegistry, error) {
	return e.winreg.get(func() (*winRegistry, error) { return openWinRegistry(e.fsys) })
}

// regValue is one registry value as a rule read it.
type regValue struct {
	file string // the hive file
	path string // HKLM\SYSTEM\ControlSet001\Control\Lsa
	name string
	v    *winreg.Value // nil: the key or value does not exist
}

// regKeyPath is how a value is cited: HKLM\<hive>\<key>.
func regKeyPath(hive, key string) string { return `HKLM\` + hive + `\` + key }

// resolve finds a hive and the key path in it; a SYSTEM key starting with
// CurrentControlSet is read in the current control set.
func (w *winRegistry) resolve(hive, key string) (*winHive, string, error) {
	wh := w.hives[hive]
	if wh == nil {
		return nil, "", fmt.Errorf("registry hive %s: not opened", hive)
	}
	if hive == winreg.System {
		if rest, ok := cutFold(key, `CurrentControlSet\`); ok {
			if w.ccsErr != nil {
				return wh, key, fmt.Errorf("current control set: %w", w.ccsErr)
			}
			key = w.ccs + `\` + rest
		}
	}
	return wh, key, wh.err
}

// read reads a value (see resolve). A missing key or value is no error
// (v is nil); a missing or unreadable hive is.
func (w *winRegistry) read(hive, key, name string) (regValue, error) {
	wh, key, err := w.resolve(hive, key)
	rv := regValue{path: regKeyPath(hive, key), name: name}
	if wh != nil {
		rv.file = wh.file
	}
	if err != nil {
		return rv, err
	}
	k, err := wh.h.Key(key)
	if err != nil {
		if winreg.IsMissing(err) {
			return rv, nil
		}
		return rv, err
	}
	v, err := k.Value(name)
	if err != nil {
		if winreg.IsMissing(err) {
			return rv, nil
		}
		return rv, err
	}
	rv.v = v
	return rv, nil
}

// keyExists reports whether a key exists, and its cited path.
func (w *winRegistry) keyExists(hive, key string) (string, bool, error) {
	wh, key, err := w.resolve(hive, key)
	path := regKeyPath(hive, key)
	if err != nil {
		return path, false, err
	}
	if _, err := wh.h.Key(key); err != nil {
		if winreg.IsMissing(err) {
			return path, false, nil
		}
		return path, false, err
	}
	return path, true, nil
}

func cutFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// set reports whether the value exists.
func (r regValue) set() bool { return r.v != nil }

// number is the value as a number: a REG_DWORD or REG_QWORD, or a decimal
// REG_SZ (Winlogon keeps AutoAdminLogon as a string).
func (r regValue) number() (uint64, bool) {
	if r.v == nil {
		return 0, false
	}
	switch r.v.Type {
	case winreg.DWord, winreg.DWordBigEndian, winreg.QWord:
		return r.v.Uint, true
	case winreg.SZ, winreg.ExpandSZ:
		n, err := strconv.ParseUint(strings.TrimSpace(r.v.String), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// data renders the value's data and type for evidence.
func (r regValue) data() string {
	if r.v == nil {
		return "not set"
	}
	switch r.v.Type {
	case winreg.DWord, winreg.DWordBigEndian, winreg.QWord:
		return fmt.Sprintf("%d (%s)", r.v.Uint, r.v.Type)
	case winreg.SZ, winreg.ExpandSZ:
		return fmt.Sprintf("%q (%s)", truncateEvidence(r.v.String), r.v.Type)
	case winreg.MultiSZ:
		return fmt.Sprintf("%q (%s)", truncateEvidence(strings.Join(r.v.Strings, ", ")), r.v.Type)
	}
	return fmt.Sprintf("%d bytes (%s)", len(r.v.Data), r.v.Type)
}

// truncateEvidence bounds a string copied from the guest into evidence.
func truncateEvidence(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// evidence cites the value: the hive file, key\name = data, and note.
func (r regValue) evidence(format string, a ...any) Evidence {
	return Evidence{File: r.file, Value: r.path + `\` + r.name + " = " + r.data(), Note: fmt.Sprintf(format, a...)}
}

// winFailure turns a registry error into an outcome: a hive that is not
// there (or no control set) is notchecked, anything else (a corrupt or
// oversized hive) is an error.
func winFailure(err error) Outcome {
	var file string
	var pe *fs.PathError
	if errors.As(err, &pe) {
		file = "/" + strings.TrimPrefix(pe.Path, "/")
	}
	if winreg.IsMissing(err) {
		return Outcome{Status: StatusNotChecked, Evidence: []Evidence{{File: file, Note: "the registry could not be read: " + err.Error()}}}
	}
	if errors.Is(err, guest.ErrTooLarge) {
		return Outcome{Status: StatusNotChecked, Evidence: []Evidence{{File: file, Note: "not read: " + err.Error()}}}
	}
	return Outcome{Status: StatusError, Evidence: []Evidence{{File: file, Note: "could not read the registry: " + err.Error()}}}
}

// winEval wraps a Windows rule's check: the registry is opened, and a
// guest without a Windows system root is notchecked.
func winEval(check func(w *winRegistry) (Outcome, error)) func(context.Context, *Env) Outcome {
	return func(_ context.Context, e *Env) Outcome {
		w, err := e.windows()
		if err != nil {
			if winreg.IsMissing(err) {
				return notChecked("no Windows system root (Windows, WINNT, ... holding System32/config and cmd.exe) on this filesystem: " + err.Error())
			}
			return winFailure(err)
		}
		out, err := check(w)
		if err != nil {
			return winFailure(err)
		}
		return out
	}
}

// Hive key paths the rules read.
const (
	keyLsa            = `CurrentControlSet\Control\Lsa`
	keyWinlogon       = `Microsoft\Windows NT\CurrentVersion\Winlogon`
	keyCurrentVersion = `Microsoft\Windows NT\CurrentVersion`
	keyUACPolicy      = `Microsoft\Windows\CurrentVersion\Policies\System`
	keyTSPolicy       = `Policies\Microsoft\Windows NT\Terminal Services`
	keyRDPTcp         = `CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp`
	keyTerminalServer = `CurrentControlSet\Control\Terminal Server`
	keySMBServer      = `CurrentControlSet\Services\LanmanServer\Parameters`
	keySMB1Driver     = `CurrentControlSet\Services\srv`
	keyWDigest        = `CurrentControlSet\Control\SecurityProviders\WDigest`
	keyFirewallPolicy = `Policies\Microsoft\WindowsFirewall`
	keyFirewallLocal  = `CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy`
	keySAMAccount     = `SAM\Domains\Account`
	// guestRID is the Guest account's relative id (501), the name of its
	// key under SAM\Domains\Account\Users.
	guestRID = "000001F5"
)

// dwordRule is a rule on one SYSTEM or SOFTWARE value: pass when ok says
// so; absent decides a missing value (Windows' default).
type dwordRule struct {
	hive, key, name string
	want            string // what passes, for notes
	ok              func(n uint64) bool
	absent          func(r regValue) Outcome
}

func (d dwordRule) eval(w *winRegistry) (Outcome, error) {
	r, err := w.read(d.hive, d.key, d.name)
	if err != nil {
		return Outcome{}, err
	}
	if !r.set() {
		return d.absent(r), nil
	}
	n, ok := r.number()
	if !ok {
		return fail(r.evidence("not a number; want %s", d.want)), nil
	}
	return decide(d.ok(n), r.evidence("want %s", d.want)), nil
}

func eq(v uint64) func(uint64) bool { return func(n uint64) bool { return n == v } }

// defaultPass is the outcome of an unset value whose Windows default is
// the secure one: pass, saying so.
func defaultPass(why string) func(regValue) Outcome {
	return func(r regValue) Outcome { return pass(r.evidence("not set; %s", why)) }
}

// defaultFail is the outcome of an unset value whose default is insecure.
func defaultFail(why string) func(regValue) Outcome {
	return func(r regValue) Outcome { return fail(r.evidence("not set; %s", why)) }
}

// policyOverLocal decides a setting that Group Policy (a key under
// SOFTWARE\Policies) overrides: the policy value when set, else the local
// one, else absent.
func policyOverLocal(w *winRegistry, policy, local regSpec, want string, ok func(uint64) bool, absent func(policy, local regValue) Outcome) (Outcome, error) {
	p, err := w.read(policy.hive, policy.key, policy.name)
	if err != nil {
		return Outcome{}, err
	}
	l, err := w.read(local.hive, local.key, local.name)
	if err != nil {
		return Outcome{}, err
	}
	if p.set() {
		n, isNum := p.number()
		ev := []Evidence{p.evidence("the Group Policy value wins; want %s", want)}
		if l.set() {
			ev = append(ev, l.evidence("overridden by the policy"))
		}
		return decide(isNum && ok(n), ev...), nil
	}
	if l.set() {
		n, isNum := l.number()
		return decide(isNum && ok(n), l.evidence("no Group Policy value; want %s", want), p.evidence("policy not set")), nil
	}
	return absent(p, l), nil
}

// regSpec names one value.
type regSpec struct{ hive, key, name string }

// windowsBuild is CurrentBuildNumber (or CurrentBuild) of SOFTWARE's
// CurrentVersion key: 20348 is Server 2022, 17763 Server 2019, 9600
// Server 2012 R2 and Windows 8.1.
func windowsBuild(w *winRegistry) (int, regValue, error) {
	var first regValue
	for i, name := range []string{"CurrentBuildNumber", "CurrentBuild"} {
		r, err := w.read(winreg.Software, keyCurrentVersion, name)
		if err != nil {
			return 0, r, err
		}
		if i == 0 {
			first = r
		}
		if n, ok := r.number(); ok && n > 0 && n < 1<<20 {
			return int(n), r, nil
		}
	}
	return 0, first, nil
}

// samDomainF is the part of SAM\Domains\Account's F value (the
// DOMAIN_ACCOUNT_F structure, as mimikatz and samdump document it) the
// account-policy rules read. Intervals are negative 100 ns counts; the
// most negative one means "never".
type samDomainF struct {
	maxPasswordAge   int64  // 0x18
	lockoutDuration  int64  // 0x30
	minPasswordLen   uint16 // 0x50
	lockoutThreshold uint16 // 0x54
}

// samDomainFMin is the length up to LockoutThreshold; Windows writes
// some 0xf0 bytes, and nothing past the fields read here is looked at.
const samDomainFMin = 0x56

// readSAMDomainF reads and bounds the domain F value.
func readSAMDomainF(w *winRegistry) (samDomainF, regValue, error) {
	r, err := w.read(winreg.SAM, keySAMAccount, "F")
	if err != nil || !r.set() {
		return samDomainF{}, r, err
	}
	if len(r.v.Data) < samDomainFMin {
		return samDomainF{}, r, fmt.Errorf("registry hive %s: %s\\F is %d bytes, shorter than the %d of its account policy: %w", r.file, r.path, len(r.v.Data), samDomainFMin, winreg.ErrCorrupt)
	}
	d := r.v.Data
	le := binary.LittleEndian
	return samDomainF{
		maxPasswordAge:   int64(le.Uint64(d[0x18:])),
		lockoutDuration:  int64(le.Uint64(d[0x30:])),
		minPasswordLen:   le.Uint16(d[0x50:]),
		lockoutThreshold: le.Uint16(d[0x54:]),
	}, r, nil
}

// intervalNever is the "never" interval of SAM (0x8000000000000000).
const intervalNever = -1 << 63

// intervalDays converts a SAM interval to whole days; ok is false for
// "never" (or a positive, meaningless value).
func intervalDays(v int64) (int64, bool) {
	if v == intervalNever || v >= 0 {
		return 0, v == 0
	}
	return -v / (864000000000), true
}

// samPolicyEvidence cites the F value and the field read.
func samPolicyEvidence(r regValue, field, value, note string) Evidence {
	return Evidence{File: r.file, Value: fmt.Sprintf(`%s\F (REG_BINARY, %d bytes): %s = %s`, r.path, len(r.v.Data), field, value), Note: note}
}

// samPolicyRule decides one field of the local account policy.
func samPolicyRule(check func(f samDomainF, r regValue) Outcome) func(*winRegistry) (Outcome, error) {
	return func(w *winRegistry) (Outcome, error) {
		f, r, err := readSAMDomainF(w)
		if err != nil {
			return Outcome{}, err
		}
		if !r.set() {
			return notChecked("the SAM hive has no account policy (" + r.path + `\F missing)`), nil
		}
		return check(f, r), nil
	}
}

func windowsRules() []Rule {
	sec := []string{"security"}
	secHard := []string{"security", "hardening"}
	hard := []string{"hardening"}
	var rules []Rule
	add := func(r Rule, check func(*winRegistry) (Outcome, error)) {
		r.Applies = onWindows()
		r.Eval = winEval(check)
		rules = append(rules, r)
	}

	// CIS 18.10.56.3.9.4 (L1) Ensure 'Require user authentication for
	// remote connections by using Network Level Authentication' is set to
	// 'Enabled'. The policy key wins over RDP-Tcp's own UserAuthentication.
	add(Rule{
		ID: "windows_rdp_nla_required", Title: "Remote Desktop requires Network Level Authentication", Severity: SeverityHigh,
		References:  References{CISWindows: "18.10.56.3.9.4", CISLevel: 1, PCIDSS: []string{"2.2.7", "8.3.1"}},
		Profiles:    secHard,
		Remediation: `Set Computer Configuration > Administrative Templates > Windows Components > Remote Desktop Services > Remote Desktop Session Host > Security > "Require user authentication for remote connections by using Network Level Authentication" to Enabled (HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services UserAuthentication = 1).`,
		Offline:     `UserAuthentication is 1 under SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services, or, without that policy, under SYSTEM's RDP-Tcp WinStation; unset in both fails.`,
	}, func(w *winRegistry) (Outcome, error) {
		deny, err := w.read(winreg.System, keyTerminalServer, "fDenyTSConnections")
		if err != nil {
			return Outcome{}, err
		}
		out, err := policyOverLocal(w,
			regSpec{winreg.Software, keyTSPolicy, "UserAuthentication"},
			regSpec{winreg.System, keyRDPTcp, "UserAuthentication"},
			"1 (NLA required)", eq(1),
			func(p, l regValue) Outcome {
				return fail(p.evidence("policy not set"), l.evidence("not set on RDP-Tcp either: nothing on disk requires NLA"))
			})
		if err == nil && out.Status == StatusFail {
			rdp := "not set"
			if n, ok := deny.number(); ok && n == 1 {
				rdp = "RDP connections are denied now, but enabling Remote Desktop would accept sessions without NLA"
			} else if ok {
				rdp = "RDP connections are allowed"
			}
			out.Evidence = append(out.Evidence, deny.evidence("%s", rdp))
		}
		return out, err
	})

	// CIS 18.4.4 (L1) Ensure 'Configure SMB v1 server' is set to
	// 'Disabled' (LanmanServer\Parameters SMB1 = 0). Without the value the
	// SMBv1 server runs when its driver (srv.sys, service key
	// Services\srv) is installed; since Windows 10 and Server 1709 the
	// SMB1Protocol-Server feature, and with it that driver, is not
	// installed by default (Microsoft KB 4034314).
	add(Rule{
		ID: "windows_smb1_server_disabled", Title: "The SMBv1 server is disabled", Severity: SeverityHigh,
		References:  References{CISWindows: "18.4.4", CISLevel: 1, PCIDSS: []string{"2.2.4", "4.2.1"}},
		Profiles:    secHard,
		Remediation: `Set-SmbServerConfiguration -EnableSMB1Protocol $false (LanmanServer\Parameters SMB1 = 0), or remove the feature: Uninstall-WindowsFeature FS-SMB1.`,
		Offline:     `SMB1 is 0 under SYSTEM's Services\LanmanServer\Parameters; unset passes only when the SMBv1 server driver (Services\srv) is absent or disabled (Start 4).`,
	}, func(w *winRegistry) (Outcome, error) {
		r, err := w.read(winreg.System, keySMBServer, "SMB1")
		if err != nil {
			return Outcome{}, err
		}
		if r.set() {
			n, ok := r.number()
			return decide(ok && n == 0, r.evidence("want 0 (SMBv1 server off)")), nil
		}
		start, err := w.read(winreg.System, keySMB1Driver, "Start")
		if err != nil {
			return Outcome{}, err
		}
		path, exists, err := w.keyExists(winreg.System, keySMB1Driver)
		if err != nil {
			return Outcome{}, err
		}
		if !exists {
			return pass(r.evidence("not set"), Evidence{File: r.file, Value: path + " absent", Note: "the SMBv1 server driver (srv.sys) is not installed"}), nil
		}
		if n, ok := start.number(); ok && n == 4 {
			return pass(r.evidence("not set"), start.evidence("the SMBv1 server driver is disabled")), nil
		}
		return fail(r.evidence("not set: the SMBv1 server is on while its driver is installed"), start.evidence("the SMBv1 server driver (srv.sys) is installed and not disabled")), nil
	})

	// CIS 9.1.1, 9.2.1, 9.3.1 (L1) Ensure 'Windows Firewall: Domain /
	// Private / Public: Firewall state' is set to 'On (recommended)'. The
	// policy keys (DomainProfile, PrivateProfile, PublicProfile under
	// SOFTWARE\Policies\Microsoft\WindowsFirewall) win over the local
	// FirewallPolicy (DomainProfile, StandardProfile, PublicProfile).
	for _, fw := range []struct{ id, name, cis, policy, local string }{
		{"windows_firewall_domain_enabled", "Domain", "9.1.1", "DomainProfile", "DomainProfile"},
		{"windows_firewall_private_enabled", "Private", "9.2.1", "PrivateProfile", "StandardProfile"},
		{"windows_firewall_public_enabled", "Public", "9.3.1", "PublicProfile", "PublicProfile"},
	} {
		add(Rule{
			ID: fw.id, Title: "Windows Firewall is on for the " + fw.name + " profile", Severity: SeverityHigh,
			References:  References{CISWindows: fw.cis, CISLevel: 1, PCIDSS: []string{"1.4.1", "1.5.1"}},
			Profiles:    secHard,
			Remediation: fmt.Sprintf(`Set-NetFirewallProfile -Profile %s -Enabled True, and set "Windows Firewall: %s: Firewall state" to On in Group Policy (HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall\%s EnableFirewall = 1).`, fw.name, fw.name, fw.policy),
			Offline:     fmt.Sprintf(`EnableFirewall is 1 under SOFTWARE\Policies\Microsoft\WindowsFirewall\%s, or, without that policy, under SYSTEM's SharedAccess\Parameters\FirewallPolicy\%s; unset in both passes (Windows turns every profile on by default).`, fw.policy, fw.local),
		}, func(w *winRegistry) (Outcome, error) {
			return policyOverLocal(w,
				regSpec{winreg.Software, keyFirewallPolicy + `\` + fw.policy, "EnableFirewall"},
				regSpec{winreg.System, keyFirewallLocal + `\` + fw.local, "EnableFirewall"},
				"1 (on)", eq(1),
				func(p, l regValue) Outcome {
					return pass(p.evidence("policy not set"), l.evidence("not set: Windows Firewall is on by default for every profile"))
				})
		})
	}

	// CIS 2.3.1.2 (L1, Member Server) Ensure 'Accounts: Guest account
	// status' is set to 'Disabled'. Read from the Guest account's (RID
	// 501) F value in SAM: its account-control flags at 0x38, bit 0x0001
	// ACB_DISABLED.
	add(Rule{
		ID: "windows_guest_account_disabled", Title: "The Guest account is disabled", Severity: SeverityMedium,
		References:  References{CISWindows: "2.3.1.2", CISLevel: 1, PCIDSS: []string{"2.2.2", "8.2.2"}},
		Profiles:    sec,
		Remediation: `net user Guest /active:no, or set "Accounts: Guest account status" to Disabled.`,
		Offline:     `The account-control flags of SAM\Domains\Account\Users\000001F5 (RID 501, Guest), F value offset 0x38, have ACB_DISABLED (0x0001); a SAM without the account passes.`,
	}, func(w *winRegistry) (Outcome, error) {
		r, err := w.read(winreg.SAM, keySAMAccount+`\Users\`+guestRID, "F")
		if err != nil {
			return Outcome{}, err
		}
		if !r.set() {
			return pass(r.evidence("the Guest account (RID 501) does not exist")), nil
		}
		if len(r.v.Data) < 0x3a {
			return Outcome{}, fmt.Errorf("registry hive %s: %s\\F is %d bytes, too short for its account-control flags at 0x38: %w", r.file, r.path, len(r.v.Data), winreg.ErrCorrupt)
		}
		acb := binary.LittleEndian.Uint16(r.v.Data[0x38:])
		ev := Evidence{File: r.file, Value: fmt.Sprintf(`%s\F (REG_BINARY, %d bytes): account control 0x%04x`, r.path, len(r.v.Data), acb)}
		if acb&0x0001 != 0 {
			ev.Note = "ACB_DISABLED is set: the Guest account is disabled"
			return pass(ev), nil
		}
		ev.Note = "ACB_DISABLED (0x0001) is not set: the Guest account is enabled"
		return fail(ev), nil
	})

	// CIS 18.5.1 (L1) Ensure 'MSS: (AutoAdminLogon) Enable Automatic
	// Logon (not recommended)' is set to 'Disabled'. A DefaultPassword
	// beside it is the password in clear text.
	add(Rule{
		ID: "windows_autoadminlogon_disabled", Title: "Automatic logon is off and no logon password is stored in the registry", Severity: SeverityHigh,
		References:  References{CISWindows: "18.5.1", CISLevel: 1, PCIDSS: []string{"8.3.2"}},
		Profiles:    sec,
		Remediation: `Set Winlogon AutoAdminLogon to "0" and delete DefaultPassword (HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon).`,
		Offline:     `SOFTWARE's Winlogon key has no AutoAdminLogon of 1 and no non-empty DefaultPassword.`,
	}, func(w *winRegistry) (Outcome, error) {
		auto, err := w.read(winreg.Software, keyWinlogon, "AutoAdminLogon")
		if err != nil {
			return Outcome{}, err
		}
		pw, err := w.read(winreg.Software, keyWinlogon, "DefaultPassword")
		if err != nil {
			return Outcome{}, err
		}
		var bad []Evidence
		if n, ok := auto.number(); ok && n == 1 {
			bad = append(bad, auto.evidence("automatic logon is on: the machine logs on without a password prompt"))
		}
		if pw.set() && (pw.v.String != "" || (pw.v.Type != winreg.SZ && pw.v.Type != winreg.ExpandSZ && len(pw.v.Data) > 0)) {
			// The password itself is never copied into evidence.
			bad = append(bad, Evidence{File: pw.file, Value: pw.path + `\DefaultPassword = (set, ` + pw.v.Type.String() + `, not shown)`, Note: "a logon password is stored in clear text"})
		}
		if len(bad) > 0 {
			return fail(bad...), nil
		}
		return pass(auto.evidence("automatic logon is off (want not 1)"), Evidence{File: pw.file, Value: pw.path + `\DefaultPassword not set or empty`}), nil
	})

	// CIS 2.3.11.5 (L1) Ensure 'Network security: Do not store LAN Manager
	// hash value on next password change' is set to 'Enabled'. Enabled is
	// Windows' default since Vista and Server 2008.
	add(Rule{
		ID: "windows_no_lm_hash", Title: "LAN Manager password hashes are not stored", Severity: SeverityHigh,
		References:  References{CISWindows: "2.3.11.5", CISLevel: 1, PCIDSS: []string{"8.3.2"}},
		Profiles:    secHard,
		Remediation: `Set "Network security: Do not store LAN Manager hash value on next password change" to Enabled (Lsa NoLMHash = 1), then change every password.`,
		Offline:     `NoLMHash is 1 under SYSTEM's Control\Lsa; unset passes (the default since Vista and Server 2008 is on).`,
	}, dwordRule{
		hive: winreg.System, key: keyLsa, name: "NoLMHash", want: "1", ok: eq(1),
		absent: defaultPass("Windows does not store LM hashes by default since Vista and Server 2008"),
	}.eval)

	// CIS 18.4.8 (L1) Ensure 'WDigest Authentication' is set to
	// 'Disabled' (UseLogonCredential = 0). Since Windows 8.1 and Server
	// 2012 R2 (build 9600) WDigest keeps no password when the value is
	// absent (Microsoft's KB 2871997 advisory); on older builds absent
	// means it does.
	add(Rule{
		ID: "windows_wdigest_no_plaintext", Title: "WDigest does not keep logon passwords in memory", Severity: SeverityHigh,
		References:  References{CISWindows: "18.4.8", CISLevel: 1, PCIDSS: []string{"8.3.2"}},
		Profiles:    secHard,
		Remediation: `Set "WDigest Authentication" to Disabled (HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\WDigest UseLogonCredential = 0).`,
		Offline:     `UseLogonCredential is 0 under SYSTEM's SecurityProviders\WDigest; unset passes on build 9600 (Windows 8.1, Server 2012 R2) and later, where WDigest keeps no password by default, and fails before.`,
	}, func(w *winRegistry) (Outcome, error) {
		return dwordRule{
			hive: winreg.System, key: keyWDigest, name: "UseLogonCredential", want: "0", ok: eq(0),
			absent: func(r regValue) Outcome {
				build, b, err := windowsBuild(w)
				switch {
				case err != nil:
					return winFailure(err)
				case build == 0:
					return notChecked("UseLogonCredential is not set and the Windows build is unknown: the default depends on it", r.evidence("not set"), b.evidence("no build number"))
				case build >= 9600:
					return pass(r.evidence("not set; from build 9600 (Windows 8.1, Server 2012 R2) WDigest keeps no password by default"), b.evidence("build %d", build))
				}
				return fail(r.evidence("not set; before build 9600 WDigest keeps logon passwords by default"), b.evidence("build %d", build))
			},
		}.eval(w)
	})

	// CIS 2.3.17.6 (L1) Ensure 'User Account Control: Run all
	// administrators in Admin Approval Mode' is set to 'Enabled'
	// (EnableLUA = 1, Windows' default).
	add(Rule{
		ID: "windows_uac_enabled", Title: "User Account Control is on (Admin Approval Mode)", Severity: SeverityHigh,
		References:  References{CISWindows: "2.3.17.6", CISLevel: 1, PCIDSS: []string{"2.2.6"}},
		Profiles:    secHard,
		Remediation: `Set "User Account Control: Run all administrators in Admin Approval Mode" to Enabled (Policies\System EnableLUA = 1) and restart.`,
		Offline:     `EnableLUA is 1 under SOFTWARE's Microsoft\Windows\CurrentVersion\Policies\System; unset passes (on by default).`,
	}, dwordRule{
		hive: winreg.Software, key: keyUACPolicy, name: "EnableLUA", want: "1", ok: eq(1),
		absent: defaultPass("User Account Control is on by default"),
	}.eval)

	// CIS 18.9.26.2 (Next Generation Windows Security profile, not Level
	// 1) Ensure 'Configures LSASS to run as a protected process' is set to
	// 'Enabled: Enabled with UEFI Lock' (RunAsPPL = 1). RunAsPPL = 2
	// (Windows 11 22H2 and later: enabled without the UEFI lock) also
	// protects LSASS and passes, saying so. Not in a CIS profile here.
	add(Rule{
		ID: "windows_lsa_protection", Title: "LSASS runs as a protected process (LSA protection)", Severity: SeverityMedium,
		References:  References{CISWindows: "18.9.26.2", PCIDSS: []string{"8.3.2"}},
		Profiles:    secHard,
		Remediation: `Set HKLM\SYSTEM\CurrentControlSet\Control\Lsa RunAsPPL = 1 (with UEFI lock) and restart.`,
		Offline:     `RunAsPPL is 1 (or 2, without UEFI lock) under SYSTEM's Control\Lsa; unset fails (off by default on Server 2022).`,
	}, dwordRule{
		hive: winreg.System, key: keyLsa, name: "RunAsPPL", want: "1 (with UEFI lock) or 2",
		ok:     func(n uint64) bool { return n == 1 || n == 2 },
		absent: defaultFail("LSASS is not a protected process by default on Windows Server 2022"),
	}.eval)

	// CIS 2.3.10.2 (L1, Member Server) Ensure 'Network access: Do not
	// allow anonymous enumeration of SAM accounts' is set to 'Enabled'
	// (RestrictAnonymousSAM = 1, Windows' default).
	add(Rule{
		ID: "windows_restrict_anonymous_sam", Title: "Anonymous enumeration of SAM accounts is not allowed", Severity: SeverityMedium,
		References:  References{CISWindows: "2.3.10.2", CISLevel: 1, PCIDSS: []string{"2.2.6"}},
		Profiles:    secHard,
		Remediation: `Set "Network access: Do not allow anonymous enumeration of SAM accounts" to Enabled (Lsa RestrictAnonymousSAM = 1).`,
		Offline:     `RestrictAnonymousSAM is 1 under SYSTEM's Control\Lsa; unset passes (on by default).`,
	}, dwordRule{
		hive: winreg.System, key: keyLsa, name: "RestrictAnonymousSAM", want: "1", ok: eq(1),
		absent: defaultPass("anonymous SAM enumeration is refused by default"),
	}.eval)

	// CIS 2.3.10.3 (L1, Member Server) Ensure 'Network access: Do not
	// allow anonymous enumeration of SAM accounts and shares' is set to
	// 'Enabled' (RestrictAnonymous = 1; Windows' default is 0).
	add(Rule{
		ID: "windows_restrict_anonymous", Title: "Anonymous enumeration of SAM accounts and shares is not allowed", Severity: SeverityMedium,
		References:  References{CISWindows: "2.3.10.3", CISLevel: 1, PCIDSS: []string{"2.2.6"}},
		Profiles:    secHard,
		Remediation: `Set "Network access: Do not allow anonymous enumeration of SAM accounts and shares" to Enabled (Lsa RestrictAnonymous = 1).`,
		Offline:     `RestrictAnonymous is 1 (or 2) under SYSTEM's Control\Lsa; unset fails (0 by default).`,
	}, dwordRule{
		hive: winreg.System, key: keyLsa, name: "RestrictAnonymous", want: "1 or more",
		ok:     func(n uint64) bool { return n >= 1 && n <= 2 },
		absent: defaultFail("the default, 0, lets anonymous users list accounts and shares"),
	}.eval)

	// CIS 1.2.2 (L1) Ensure 'Account lockout threshold' is set to '5 or
	// fewer invalid logon attempt(s), but not 0'.
	add(Rule{
		ID: "windows_account_lockout_threshold", Title: "Accounts lock after at most 5 failed logons", Severity: SeverityMedium,
		References:  References{CISWindows: "1.2.2", CISLevel: 1, PCIDSS: []string{"8.3.4"}},
		Profiles:    sec,
		Remediation: `net accounts /lockoutthreshold:5 (or "Account lockout threshold" = 5 in the account policy).`,
		Offline:     `The lockout threshold of SAM\Domains\Account's F value (offset 0x54) is 1 to 5.`,
	}, samPolicyRule(func(f samDomainF, r regValue) Outcome {
		n := f.lockoutThreshold
		ev := samPolicyEvidence(r, "lockout threshold", strconv.Itoa(int(n)), "want 1 to 5 (0 never locks)")
		return decide(n >= 1 && n <= 5, ev)
	}))

	// CIS 1.1.4 (L1) Ensure 'Minimum password length' is set to '14 or
	// more character(s)'.
	add(Rule{
		ID: "windows_password_min_length", Title: "Passwords are at least 14 characters long", Severity: SeverityMedium,
		References:  References{CISWindows: "1.1.4", CISLevel: 1, PCIDSS: []string{"8.3.6"}},
		Profiles:    sec,
		Remediation: `net accounts /minpwlen:14 (or "Minimum password length" = 14 in the account policy).`,
		Offline:     `The minimum password length of SAM\Domains\Account's F value (offset 0x50) is 14 or more.`,
	}, samPolicyRule(func(f samDomainF, r regValue) Outcome {
		n := f.minPasswordLen
		return decide(n >= 14, samPolicyEvidence(r, "minimum password length", strconv.Itoa(int(n)), "want 14 or more"))
	}))

	// CIS 1.1.2 (L1) Ensure 'Maximum password age' is set to '365 or
	// fewer days, but not 0'.
	add(Rule{
		ID: "windows_password_max_age", Title: "Passwords expire within 365 days", Severity: SeverityMedium,
		// No PCI-DSS reference: 8.3.9's 90 days contradicts CIS's 365.
		References:  References{CISWindows: "1.1.2", CISLevel: 1},
		Profiles:    sec,
		Remediation: `net accounts /maxpwage:365 (or fewer; "Maximum password age" in the account policy).`,
		Offline:     `The maximum password age of SAM\Domains\Account's F value (offset 0x18, a negative 100 ns interval) is 1 to 365 days; never fails.`,
	}, samPolicyRule(func(f samDomainF, r regValue) Outcome {
		days, ok := intervalDays(f.maxPasswordAge)
		if !ok || days == 0 {
			return fail(samPolicyEvidence(r, "maximum password age", "never", "passwords never expire; want 1 to 365 days"))
		}
		return decide(days <= 365, samPolicyEvidence(r, "maximum password age", fmt.Sprintf("%d days", days), "want 1 to 365 days"))
	}))

	// CIS 1.2.1 (L1) Ensure 'Account lockout duration' is set to '15 or
	// more minute(s)'.
	add(Rule{
		ID: "windows_account_lockout_duration", Title: "Locked accounts stay locked for at least 15 minutes", Severity: SeverityLow,
		// No PCI-DSS reference: 8.3.4 wants 30 minutes, CIS 15.
		References:  References{CISWindows: "1.2.1", CISLevel: 1},
		Profiles:    hard,
		Remediation: `net accounts /lockoutduration:15 (or more; "Account lockout duration" in the account policy).`,
		Offline:     `The lockout duration of SAM\Domains\Account's F value (offset 0x30, a negative 100 ns interval) is 15 minutes or more, or until an administrator unlocks.`,
	}, samPolicyRule(func(f samDomainF, r regValue) Outcome {
		v := f.lockoutDuration
		if v == intervalNever {
			return pass(samPolicyEvidence(r, "lockout duration", "until an administrator unlocks", "want 15 minutes or more"))
		}
		if v >= 0 {
			return fail(samPolicyEvidence(r, "lockout duration", "0", "want 15 minutes or more"))
		}
		mins := -v / 600000000
		return decide(mins >= 15, samPolicyEvidence(r, "lockout duration", fmt.Sprintf("%d minutes", mins), "want 15 minutes or more"))
	}))
	return rules
}
