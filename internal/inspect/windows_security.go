package inspect

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"

	"guestkit.io/batch/internal/winreg"
)

// SAM layouts (fixed offsets of the F and C binary values; every read
// below is checked against the value's length).
const (
	samFSize          = 0x50
	samFLastLogon     = 0x08
	samFPwdLastSet    = 0x18
	samFRID           = 0x30
	samFACB           = 0x38
	samFLogonCount    = 0x42
	acbDisabled       = 0x0001
	acbPwdNotReq      = 0x0004
	acbPwdNoExpire    = 0x0200
	acbAutoLocked     = 0x0400
	aliasCHeader      = 0x34
	aliasCMembersOff  = 0x28
	aliasCMemberCnt   = 0x30
	ridAdministrators = 0x220
	// maxAliasMembers bounds the SIDs read from one alias.
	maxAliasMembers = 4096
)

// users reads the local accounts of SAM and the members of
// BUILTIN\Administrators.
func (w *winHives) users() ([]WindowsUser, []string) {
	sam := w.open(secWinUsers, winreg.SAM)
	if sam == nil {
		return nil, nil
	}
	names := w.key(secWinUsers, sam, `SAM\Domains\Account\Users\Names`)
	if names == nil {
		return nil, nil
	}
	keys, err := names.Subkeys()
	if err != nil {
		w.problem(secWinUsers, sam.Name, err)
		return nil, nil
	}
	users := w.key(secWinUsers, sam, `SAM\Domains\Account\Users`)
	byRID := map[uint32]int{}
	var out []WindowsUser
	for _, k := range keys {
		// The RID is the type of the name key's default value.
		def, err := k.Value("")
		if err != nil {
			w.problemUnlessMissing(secWinUsers, sam, err)
			continue
		}
		u := WindowsUser{Name: k.Name(), RID: uint32(def.Type)}
		if users != nil {
			w.userDetails(sam, users, &u)
		}
		byRID[u.RID] = len(out)
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RID < out[j].RID })
	for i := range out {
		byRID[out[i].RID] = i
	}
	admins := w.administrators(sam, out, byRID)
	return out, admins
}

// userDetails reads Users\<RID>\F (flags, times) and V (full name).
func (w *winHives) userDetails(sam *winreg.Hive, users *winreg.Key, u *WindowsUser) {
	k, err := users.Subkey(fmt.Sprintf("%08X", u.RID))
	if err != nil {
		w.problemUnlessMissing(secWinUsers, sam, err)
		return
	}
	f, err := k.Value("F")
	if err != nil {
		w.problemUnlessMissing(secWinUsers, sam, err)
		return
	}
	if len(f.Data) < samFSize {
		w.problem(secWinUsers, sam.Name, fmt.Errorf("%s: %d bytes, want %d", hkey(k, "F"), len(f.Data), samFSize))
		return
	}
	le := binary.LittleEndian
	acb := le.Uint16(f.Data[samFACB:])
	u.Disabled = acb&acbDisabled != 0
	u.PasswordNotRequired = acb&acbPwdNotReq != 0
	u.PasswordNeverExpires = acb&acbPwdNoExpire != 0
	u.Locked = acb&acbAutoLocked != 0
	u.LastLogon = filetime(le.Uint64(f.Data[samFLastLogon:]))
	u.PasswordLastSet = filetime(le.Uint64(f.Data[samFPwdLastSet:]))
	u.LogonCount = int(le.Uint16(f.Data[samFLogonCount:]))
	if rid := le.Uint32(f.Data[samFRID:]); rid != u.RID {
		w.problem(secWinUsers, sam.Name, fmt.Errorf("%s: RID %d, the name key says %d", hkey(k, "F"), rid, u.RID))
	}
	if v, err := k.Value("V"); err == nil {
		u.FullName = samVString(v.Data, 1)
	}
}

// samVString reads string field i (0 name, 1 full name, 2 comment) of a
// user's V value: a 12-byte (offset, length, unknown) entry per field,
// offsets relative to 0xcc.
func samVString(v []byte, i int) string {
	at := i*12 + 0x0c
	if len(v) < at+8 {
		return ""
	}
	off := int64(binary.LittleEndian.Uint32(v[at:])) + 0xcc
	n := int64(binary.LittleEndian.Uint32(v[at+4:]))
	if n <= 0 || off+n > int64(len(v)) {
		return ""
	}
	return decodeUTF16LE(v[off : off+n])
}

func decodeUTF16LE(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return strings.TrimRight(string(utf16.Decode(u)), "\x00")
}

// administrators reads BUILTIN\Administrators (alias 0x220): its C value
// lists member SIDs. Local users (the machine SID plus a RID found in
// SAM) are named, and flagged in users; other members stay SIDs.
func (w *winHives) administrators(sam *winreg.Hive, users []WindowsUser, byRID map[uint32]int) []string {
	alias := w.key(secWinUsers, sam, fmt.Sprintf(`SAM\Domains\Builtin\Aliases\%08X`, ridAdministrators))
	if alias == nil {
		return nil
	}
	c, err := alias.Value("C")
	if err != nil {
		w.problemUnlessMissing(secWinUsers, sam, err)
		return nil
	}
	sids, err := aliasMembers(c.Data)
	if err != nil {
		w.problem(secWinUsers, sam.Name, fmt.Errorf("%s: %w", hkey(alias, "C"), err))
		return nil
	}
	machine := ""
	if acct := w.key(secWinUsers, sam, `SAM\Domains\Account`); acct != nil {
		if v, err := acct.Value("V"); err == nil {
			machine = machineSID(v.Data)
		}
	}
	var out []string
	for _, sid := range sids {
		name := sid
		if prefix, rid, ok := splitRID(sid); ok && (machine == "" || prefix == machine) {
			if i, found := byRID[rid]; found {
				users[i].Administrator = true
				name = users[i].Name
			}
		}
		out = append(out, name)
	}
	return out
}

// aliasMembers parses the member SIDs of an alias C value.
func aliasMembers(c []byte) ([]string, error) {
	if len(c) < aliasCHeader {
		return nil, fmt.Errorf("%d bytes, shorter than the %d-byte header", len(c), aliasCHeader)
	}
	le := binary.LittleEndian
	off := int64(le.Uint32(c[aliasCMembersOff:])) + aliasCHeader
	count := le.Uint32(c[aliasCMemberCnt:])
	if count > maxAliasMembers {
		return nil, fmt.Errorf("%d members (limit %d)", count, maxAliasMembers)
	}
	var out []string
	for range count {
		sid, n, err := parseSID(c, off)
		if err != nil {
			return out, err
		}
		out = append(out, sid)
		off += int64(n)
	}
	return out, nil
}

// parseSID parses a binary SID at off, returning its string form and size.
func parseSID(b []byte, off int64) (string, int, error) {
	if off < 0 || off+8 > int64(len(b)) {
		return "", 0, fmt.Errorf("SID at %d outside %d bytes", off, len(b))
	}
	rev, subs := b[off], int(b[off+1])
	size := 8 + 4*subs
	if rev != 1 || subs > 15 || off+int64(size) > int64(len(b)) {
		return "", 0, fmt.Errorf("bad SID at %d (revision %d, %d sub-authorities)", off, rev, subs)
	}
	var auth uint64
	for _, x := range b[off+2 : off+8] {
		auth = auth<<8 | uint64(x)
	}
	s := "S-1-" + strconv.FormatUint(auth, 10)
	for i := range subs {
		s += "-" + strconv.FormatUint(uint64(binary.LittleEndian.Uint32(b[off+8+int64(4*i):])), 10)
	}
	return s, size, nil
}

// machineSID reads the machine SID (S-1-5-21-a-b-c) stored in the last
// 24 bytes of SAM\Domains\Account's V value; "" when it is not there.
func machineSID(v []byte) string {
	if len(v) < 24 {
		return ""
	}
	sid, _, err := parseSID(v, int64(len(v)-24))
	if err != nil || !strings.HasPrefix(sid, "S-1-5-21-") || strings.Count(sid, "-") != 6 {
		return ""
	}
	return sid
}

// splitRID splits S-1-5-21-a-b-c-RID into the domain SID and the RID.
func splitRID(sid string) (string, uint32, bool) {
	if !strings.HasPrefix(sid, "S-1-5-21-") || strings.Count(sid, "-") != 7 {
		return "", 0, false
	}
	i := strings.LastIndexByte(sid, '-')
	rid, err := strconv.ParseUint(sid[i+1:], 10, 32)
	if err != nil {
		return "", 0, false
	}
	return sid[:i], uint32(rid), true
}

// setting is a DWORD looked up in keys, first match winning (policy
// before local configuration), with where it came from.
type setting struct {
	value uint64
	src   string
	set   bool
}

func (w *winHives) first(section, name string, keys ...*winreg.Key) setting {
	for _, k := range keys {
		if k == nil {
			continue
		}
		if n, ok := w.num(section, k, name); ok {
			return setting{value: n, src: hkey(k, name), set: true}
		}
	}
	return setting{src: "default"}
}

// firewall reads the three profiles; a policy value wins over the local
// one, and a profile with neither is on (Windows' default).
func (w *winHives) firewall() []WindowsFirewallProfile {
	var out []WindowsFirewallProfile
	for _, p := range []struct{ name, local, policy string }{
		{"domain", "DomainProfile", "DomainProfile"},
		{"private", "StandardProfile", "PrivateProfile"},
		{"public", "PublicProfile", "PublicProfile"},
	} {
		pol := w.key(secWinSecurity, w.software, `Policies\Microsoft\WindowsFirewall\`+p.policy)
		local := w.ccsKey(secWinSecurity, `Services\SharedAccess\Parameters\FirewallPolicy\`+p.local)
		on := w.first(secWinSecurity, "EnableFirewall", pol, local)
		fp := WindowsFirewallProfile{Profile: p.name, Enabled: !on.set || on.value != 0, Source: on.src}
		if in := w.first(secWinSecurity, "DefaultInboundAction", pol, local); in.set {
			fp.DefaultInbound = map[bool]string{true: "block", false: "allow"}[in.value != 0]
		}
		out = append(out, fp)
	}
	return out
}

// rdp reads Terminal Server's settings; policies win. Without any value
// connections are denied (fDenyTSConnections defaults to 1) and NLA is
// reported off, as nothing enforces it.
func (w *winHives) rdp() *WindowsRDP {
	pol := w.key(secWinSecurity, w.software, `Policies\Microsoft\Windows NT\Terminal Services`)
	ts := w.ccsKey(secWinSecurity, `Control\Terminal Server`)
	tcp := w.ccsKey(secWinSecurity, `Control\Terminal Server\WinStations\RDP-Tcp`)
	deny := w.first(secWinSecurity, "fDenyTSConnections", pol, ts)
	nla := w.first(secWinSecurity, "UserAuthentication", pol, tcp)
	r := &WindowsRDP{
		Enabled:       deny.set && deny.value == 0,
		EnabledSource: deny.src,
		NLA:           nla.set && nla.value == 1,
		NLASource:     nla.src,
	}
	if sl := w.first(secWinSecurity, "SecurityLayer", pol, tcp); sl.set {
		n := int(sl.value)
		r.SecurityLayer = &n
	}
	if port, ok := w.num(secWinSecurity, tcp, "PortNumber"); ok {
		r.Port = int(port)
	}
	return r
}

// cbsStates names Component Based Servicing CurrentState values.
var cbsStates = map[uint64]string{
	0x00: "absent", 0x05: "uninstall pending", 0x10: "resolving", 0x20: "resolved",
	0x30: "staging", 0x40: "staged", 0x50: "superseded", 0x60: "install pending",
	0x65: "partially installed", 0x70: "installed", 0x80: "permanent",
}

func cbsState(n uint64) string {
	if s, ok := cbsStates[n]; ok {
		return s
	}
	return fmt.Sprintf("0x%x", n)
}

// cbsPackages lists Component Based Servicing\Packages once per run.
func (w *winHives) cbsPackages() []*winreg.Key {
	pk := w.key(secWinUpdates, w.software, `Microsoft\Windows\CurrentVersion\Component Based Servicing\Packages`)
	if pk == nil {
		return nil
	}
	keys, err := pk.Subkeys()
	if err != nil {
		w.problem(secWinUpdates, w.software.Name, err)
	}
	return keys
}

// smb reads the SMB server settings. The SMBv1 server runs unless
// LanmanServer's SMB1 value is 0 or its driver (srv) is absent or
// disabled; without the value, a present driver means on (the default
// before Windows 10 1709, and wherever the feature was added back).
func (w *winHives) smb() *WindowsSMB {
	params := w.ccsKey(secWinSecurity, `Services\LanmanServer\Parameters`)
	s := &WindowsSMB{}
	smb1 := w.first(secWinSecurity, "SMB1", params)
	if smb1.set {
		on := smb1.value != 0
		s.SMB1Setting = &on
	}
	if drv := w.ccsKey(secWinSecurity, `Services\srv`); drv != nil {
		n, ok := w.num(secWinSecurity, drv, "Start")
		s.SMB1Driver = startType(n, ok)
	}
	for _, k := range w.cbsPackages() {
		if !strings.HasPrefix(strings.ToLower(k.Name()), "microsoft-windows-smb1-package~") {
			continue
		}
		if n, ok := w.num(secWinSecurity, k, "CurrentState"); ok {
			s.SMB1Feature = cbsState(n)
			if n >= 0x70 {
				break
			}
		}
	}
	switch {
	case smb1.set && smb1.value == 0:
		s.Reason = smb1.src + " is 0"
	case s.SMB1Driver == "" && s.SMB1Feature != "" && s.SMB1Feature != "installed" && s.SMB1Feature != "permanent":
		s.Reason = "the SMB1 feature is " + s.SMB1Feature
	case s.SMB1Driver == "":
		s.Reason = "no SMBv1 server driver (Services\\srv)"
	case s.SMB1Driver == "disabled":
		s.Reason = "the SMBv1 server driver (Services\\srv) is disabled"
	case smb1.set:
		s.SMB1Server = true
		s.Reason = smb1.src + " is " + strconv.FormatUint(smb1.value, 10)
	default:
		s.SMB1Server = true
		s.Reason = "the SMBv1 server driver is installed and SMB1 is not set to 0"
	}
	sign := w.first(secWinSecurity, "RequireSecuritySignature", params)
	s.SigningRequired = sign.set && sign.value != 0
	return s
}

// defender reads Microsoft Defender Antivirus' switches; policy wins.
func (w *winHives) defender() *WindowsDefender {
	local := w.key(secWinSecurity, w.software, `Microsoft\Windows Defender`)
	pol := w.key(secWinSecurity, w.software, `Policies\Microsoft\Windows Defender`)
	d := &WindowsDefender{Installed: local != nil}
	if svc := w.ccsKey(secWinSecurity, `Services\WinDefend`); svc != nil {
		d.Installed = true
		n, ok := w.num(secWinSecurity, svc, "Start")
		d.Service = startType(n, ok)
	}
	if !d.Installed {
		return d
	}
	off := w.first(secWinSecurity, "DisableAntiSpyware", pol, local)
	d.Enabled, d.EnabledSource = !(off.set && off.value != 0), off.src
	if d.Service == "disabled" && !off.set {
		d.Enabled, d.EnabledSource = false, `HKLM\SYSTEM\`+w.ccsName+`\Services\WinDefend\Start`
	}
	var polRT, localRT *winreg.Key
	if pol != nil {
		polRT, _ = pol.Subkey("Real-Time Protection")
	}
	if local != nil {
		localRT, _ = local.Subkey("Real-Time Protection")
	}
	rt := w.first(secWinSecurity, "DisableRealtimeMonitoring", polRT, localRT)
	d.RealTime, d.RealTimeSrc = d.Enabled && !(rt.set && rt.value != 0), rt.src
	return d
}

// updates lists the KBs that Component Based Servicing records as
// packages (Package_for_KB...), then those of the older Hotfix key.
func (w *winHives) updates() []WindowsUpdate {
	byKB := map[string]int{}
	var out []WindowsUpdate
	for _, k := range w.cbsPackages() {
		if !strings.HasPrefix(strings.ToLower(k.Name()), "package_for_kb") {
			continue
		}
		m := kbPattern.FindStringSubmatch(k.Name())
		if m == nil {
			continue
		}
		u := WindowsUpdate{KB: "KB" + m[1], Source: "cbs", Package: k.Name()}
		state, ok := w.num(secWinUpdates, k, "CurrentState")
		if ok {
			u.State = cbsState(state)
		}
		hi, okHi := w.num(secWinUpdates, k, "InstallTimeHigh")
		lo, okLo := w.num(secWinUpdates, k, "InstallTimeLow")
		if okHi && okLo {
			u.InstalledAt = filetime(hi<<32 | lo&0xffffffff)
		}
		if i, seen := byKB[u.KB]; seen {
			// Several packages per KB (one per architecture or
			// language): keep the most installed state.
			if ok && state > stateRank(out[i].State) {
				out[i] = u
			}
			continue
		}
		byKB[u.KB] = len(out)
		out = append(out, u)
	}
	if hf := w.key(secWinUpdates, w.software, `Microsoft\Windows NT\CurrentVersion\Hotfix`); hf != nil {
		keys, err := hf.Subkeys()
		if err != nil {
			w.problem(secWinUpdates, w.software.Name, err)
		}
		for _, k := range keys {
			m := kbPattern.FindStringSubmatch(k.Name())
			if m == nil {
				continue
			}
			kb := "KB" + m[1]
			if _, seen := byKB[kb]; seen {
				continue
			}
			byKB[kb] = len(out)
			out = append(out, WindowsUpdate{KB: kb, Source: "hotfix", State: "installed"})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].KB < out[j].KB })
	return out
}

// stateRank inverts cbsState for comparisons.
func stateRank(s string) uint64 {
	for n, name := range cbsStates {
		if name == s {
			return n
		}
	}
	return 0
}
