package inspect

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/winreg"
)

// Windows is what the Windows sections read from a Windows root's
// registry hives (SOFTWARE, SYSTEM, SAM) through guest.FS, beside the
// identity fields of OS that libguestfs fills. Settings name the registry
// value they come from ("HKLM\SOFTWARE\Policies\...\EnableFirewall"), or
// "default" when no value is set and Windows' default applies.
type Windows struct {
	Identity     *WindowsIdentity     `json:"identity,omitempty"`
	Applications []WindowsApplication `json:"applications,omitempty"`
	Users        []WindowsUser        `json:"users,omitempty"`
	// Administrators lists the members of BUILTIN\Administrators: local
	// user names, other accounts as SIDs.
	Administrators []string                 `json:"administrators,omitempty"`
	Services       []WindowsService         `json:"services,omitempty"`
	Network        *WindowsNetwork          `json:"network,omitempty"`
	Firewall       []WindowsFirewallProfile `json:"firewall,omitempty"`
	RDP            *WindowsRDP              `json:"rdp,omitempty"`
	SMB            *WindowsSMB              `json:"smb,omitempty"`
	Defender       *WindowsDefender         `json:"defender,omitempty"`
	Updates        []WindowsUpdate          `json:"updates,omitempty"`
}

// WindowsIdentity is the OS identity as read from the hives, field by
// field as virt-inspector gives it, plus what current tools add.
type WindowsIdentity struct {
	// ProductName is the registry's ProductName, verbatim.
	ProductName string `json:"product_name,omitempty"`
	// DisplayName is the product name corrected as current tools do:
	// Windows 11 keeps "Windows 10" in ProductName; a build of 22000 or
	// more is Windows 11. ProductNameNote says when it was corrected.
	DisplayName     string `json:"display_name,omitempty"`
	ProductNameNote string `json:"product_name_note,omitempty"`
	EditionID       string `json:"edition_id,omitempty"`
	// InstallationType is the registry's value ("Server", "Server Core",
	// "Client"); libguestfs reports it as product_variant.
	InstallationType string `json:"installation_type,omitempty"`
	// Variant is Server or Client.
	Variant        string `json:"variant,omitempty"`
	MajorVersion   int    `json:"major_version"`
	MinorVersion   int    `json:"minor_version"`
	Build          int    `json:"build,omitempty"`
	UBR            int    `json:"ubr,omitempty"`
	DisplayVersion string `json:"display_version,omitempty"` // 23H2
	Arch           string `json:"arch,omitempty"`            // from System32/cmd.exe's PE header
	// Hostname is Tcpip\Parameters Hostname (libguestfs's hostname);
	// ComputerName is the NetBIOS name.
	Hostname          string `json:"hostname,omitempty"`
	ComputerName      string `json:"computer_name,omitempty"`
	Domain            string `json:"domain,omitempty"`
	SystemRoot        string `json:"systemroot"`
	CurrentControlSet string `json:"current_control_set,omitempty"`
	// DriveMappings are MountedDevices' drive letters; the device is
	// named by what the registry records (an MBR disk signature and
	// partition offset, or a GPT partition GUID), since mapping it to a
	// disk device needs the disks, which libguestfs's drive_mappings does.
	DriveMappings []WindowsDrive `json:"drive_mappings,omitempty"`
	InstallDate   string         `json:"install_date,omitempty"`
}

// WindowsDrive is one \DosDevices\X: entry of MountedDevices.
type WindowsDrive struct {
	Letter string `json:"letter"`
	// Kind is mbr, gpt or other.
	Kind string `json:"kind"`
	// DiskSignature and Offset (bytes) identify an MBR partition.
	DiskSignature string `json:"disk_signature,omitempty"`
	Offset        uint64 `json:"offset,omitempty"`
	// PartitionGUID identifies a GPT partition (lower case).
	PartitionGUID string `json:"partition_guid,omitempty"`
}

// WindowsApplication is one Uninstall entry.
type WindowsApplication struct {
	// Key is the Uninstall subkey name (a product code or a name).
	Key             string `json:"key"`
	DisplayName     string `json:"display_name,omitempty"`
	Version         string `json:"version,omitempty"`
	Publisher       string `json:"publisher,omitempty"`
	InstallDate     string `json:"install_date,omitempty"` // YYYY-MM-DD when the registry has YYYYMMDD
	InstallLocation string `json:"install_location,omitempty"`
	// Arch is x64 for SOFTWARE\Microsoft\..., x86 for WOW6432Node
	// entries (32-bit applications on 64-bit Windows).
	Arch            string `json:"arch"`
	SystemComponent bool   `json:"system_component,omitempty"`
}

// WindowsUser is a local account of SAM.
type WindowsUser struct {
	Name     string `json:"name"`
	RID      uint32 `json:"rid"`
	FullName string `json:"full_name,omitempty"`
	Disabled bool   `json:"disabled"`
	// PasswordNotRequired and PasswordNeverExpires are ACB flags.
	PasswordNotRequired  bool   `json:"password_not_required,omitempty"`
	PasswordNeverExpires bool   `json:"password_never_expires,omitempty"`
	Locked               bool   `json:"locked,omitempty"`
	Administrator        bool   `json:"administrator"`
	LastLogon            string `json:"last_logon,omitempty"`
	PasswordLastSet      string `json:"password_last_set,omitempty"`
	LogonCount           int    `json:"logon_count,omitempty"`
}

// WindowsService is a Win32 service (Type 0x10 or 0x20).
type WindowsService struct {
	Name        string `json:"name"`
	DisplayName string `json:"display_name,omitempty"`
	// Start is boot, system, auto, manual or disabled.
	Start   string `json:"start"`
	Delayed bool   `json:"delayed,omitempty"`
	// Account is ObjectName (LocalSystem, NT AUTHORITY\...).
	Account   string `json:"account,omitempty"`
	ImagePath string `json:"image_path,omitempty"`
}

// WindowsNetwork is the TCP/IP configuration of SYSTEM.
type WindowsNetwork struct {
	Domain      string             `json:"domain,omitempty"`
	SearchList  []string           `json:"search_list,omitempty"`
	Nameservers []string           `json:"nameservers,omitempty"`
	Interfaces  []WindowsInterface `json:"interfaces,omitempty"`
}

// WindowsInterface is one Tcpip\Parameters\Interfaces\{GUID} key.
type WindowsInterface struct {
	GUID string `json:"guid"`
	// Name is the connection name (Control\Network), when recorded.
	Name      string   `json:"name,omitempty"`
	DHCP      bool     `json:"dhcp"`
	Addresses []string `json:"addresses,omitempty"` // address/prefix for static ones
	Gateways  []string `json:"gateways,omitempty"`
	DNS       []string `json:"dns,omitempty"`
	Domain    string   `json:"domain,omitempty"`
	// DHCPAddress is the last lease, when the image kept one.
	DHCPAddress string `json:"dhcp_address,omitempty"`
}

// WindowsFirewallProfile is the effective state of one firewall profile.
type WindowsFirewallProfile struct {
	// Profile is domain, private (StandardProfile) or public.
	Profile string `json:"profile"`
	Enabled bool   `json:"enabled"`
	Source  string `json:"source"`
	// DefaultInbound is block or allow, when set.
	DefaultInbound string `json:"default_inbound,omitempty"`
}

// WindowsRDP is the Remote Desktop server configuration.
type WindowsRDP struct {
	Enabled       bool   `json:"enabled"`
	EnabledSource string `json:"enabled_source"`
	// NLA is Network Level Authentication (UserAuthentication = 1).
	NLA           bool   `json:"nla"`
	NLASource     string `json:"nla_source"`
	SecurityLayer *int   `json:"security_layer,omitempty"` // 0 RDP, 1 negotiate, 2 TLS
	Port          int    `json:"port,omitempty"`
}

// WindowsSMB is the SMB server configuration.
type WindowsSMB struct {
	// SMB1Server is whether the SMBv1 server would run, Reason why.
	SMB1Server bool   `json:"smb1_server"`
	Reason     string `json:"reason"`
	// SMB1Setting is LanmanServer\Parameters SMB1, when set.
	SMB1Setting *bool `json:"smb1_setting,omitempty"`
	// SMB1Driver is the start type of the SMBv1 server driver service
	// (srv), absent when the SMB1 feature is not installed.
	SMB1Driver string `json:"smb1_driver,omitempty"`
	// SMB1Feature is the state of the SMB1 optional feature's servicing
	// packages (installed, staged, ...), when recorded.
	SMB1Feature     string `json:"smb1_feature,omitempty"`
	SigningRequired bool   `json:"signing_required"`
}

// WindowsDefender is Microsoft Defender Antivirus' configuration.
type WindowsDefender struct {
	Installed bool `json:"installed"`
	// Enabled is false when DisableAntiSpyware is set (the policy wins).
	Enabled       bool   `json:"enabled"`
	EnabledSource string `json:"enabled_source"`
	RealTime      bool   `json:"real_time_protection"`
	RealTimeSrc   string `json:"real_time_source"`
	// Service is the WinDefend service's start type.
	Service string `json:"service,omitempty"`
}

// WindowsUpdate is an installed update (a KB) the registry records.
type WindowsUpdate struct {
	KB string `json:"kb"`
	// State is installed, staged, superseded, ... (CBS CurrentState).
	State       string `json:"state,omitempty"`
	InstalledAt string `json:"installed_at,omitempty"`
	// Source is cbs (Component Based Servicing\Packages) or hotfix.
	Source  string `json:"source"`
	Package string `json:"package,omitempty"`
}

// Section names for Problems.
const (
	secWinIdentity = "windows_identity"
	secWinApps     = "windows_applications"
	secWinUsers    = "windows_users"
	secWinServices = "windows_services"
	secWinNetwork  = "windows_network"
	secWinSecurity = "windows_security"
	secWinUpdates  = "windows_updates"
)

// winHives holds the hives of one Windows root, each opened once.
type winHives struct {
	r          *reader
	fsys       guest.FS
	systemroot string
	software   *winreg.Hive
	system     *winreg.Hive
	ccs        *winreg.Key
	ccsName    string
	// seen drops repeats: a corrupt hive fails every section alike.
	seen map[string]bool
}

func (w *winHives) problem(section, path string, err error) {
	k := section + "\x00" + path + "\x00" + err.Error()
	if w.seen[k] {
		return
	}
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	w.seen[k] = true
	w.r.problem(section, path, err)
}

// open opens one hive; a missing or unreadable hive is a problem of
// section (a Windows root without its hives is worth saying).
func (w *winHives) open(section, name string) *winreg.Hive {
	h, err := winreg.OpenHive(w.fsys, w.systemroot, name)
	if err != nil {
		w.problem(section, w.systemroot+"/System32/config/"+name, err)
		return nil
	}
	return h
}

// readWindows reads the Windows sections of a mounted Windows root. The
// system root is found as libguestfs finds it, so both agree.
func readWindows(ctx context.Context, r *reader, fsys guest.FS, os *OS, opts Options) {
	root := os.WindowsSystemroot
	if root == "" {
		var err error
		if root, err = winreg.SystemRoot(fsys); err != nil {
			r.problem(secWinIdentity, "/", err)
			return
		}
	}
	w := &winHives{r: r, fsys: fsys, systemroot: root}
	w.software = w.open(secWinIdentity, winreg.Software)
	w.system = w.open(secWinIdentity, winreg.System)
	if w.system != nil {
		var err error
		if w.ccsName, err = winreg.CurrentControlSet(w.system); err == nil {
			w.ccs, err = w.system.Key(w.ccsName)
		}
		if err != nil {
			w.problem(secWinIdentity, w.system.Name, err)
		}
	}
	win := &Windows{}
	steps := []struct {
		skip bool
		fn   func()
	}{
		{false, func() { win.Identity = w.identity() }},
		{opts.SkipApplications, func() { win.Applications = w.applications() }},
		{opts.SkipUsers, func() { win.Users, win.Administrators = w.users() }},
		{opts.SkipServices, func() { win.Services = w.services() }},
		{opts.SkipNetwork, func() { win.Network = w.network() }},
		{opts.SkipSecurity, func() {
			win.Firewall = w.firewall()
			win.RDP = w.rdp()
			win.SMB = w.smb()
			win.Defender = w.defender()
		}},
		{opts.SkipApplications, func() { win.Updates = w.updates() }},
	}
	for _, s := range steps {
		if ctx.Err() != nil {
			return
		}
		if !s.skip {
			s.fn()
		}
	}
	os.Windows = win
}

// hkey is how settings name their source: HKLM\<hive>\<path>\<value>.
func hkey(k *winreg.Key, value string) string {
	s := `HKLM\` + strings.ToUpper(hiveBase(k.Hive().Name))
	if k.Path() != "" {
		s += `\` + k.Path()
	}
	return s + `\` + value
}

func hiveBase(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		return name[i+1:]
	}
	return name
}

// problemUnlessMissing records err unless it only says "absent".
func (w *winHives) problemUnlessMissing(section string, h *winreg.Hive, err error) {
	if err != nil && !winreg.IsMissing(err) {
		w.problem(section, h.Name, err)
	}
}

// key opens a key, recording errors other than absence.
func (w *winHives) key(section string, h *winreg.Hive, path string) *winreg.Key {
	if h == nil {
		return nil
	}
	k, err := h.Key(path)
	if err != nil {
		w.problemUnlessMissing(section, h, err)
		return nil
	}
	return k
}

// ccsKey opens a key below the current control set.
func (w *winHives) ccsKey(section, path string) *winreg.Key {
	if w.ccs == nil {
		return nil
	}
	k, err := w.ccs.Key(path)
	if err != nil {
		w.problemUnlessMissing(section, w.system, err)
		return nil
	}
	return k
}

// str reads a string value, "" when absent; other errors are problems.
func (w *winHives) str(section string, k *winreg.Key, name string) string {
	if k == nil {
		return ""
	}
	s, err := k.String(name)
	if err != nil {
		w.problemUnlessMissing(section, k.Hive(), err)
		return ""
	}
	return strings.TrimSpace(s)
}

// num reads a DWORD/QWORD value; ok is false when absent or unreadable.
// A number stored as a decimal string (some tools write them so) counts.
func (w *winHives) num(section string, k *winreg.Key, name string) (uint64, bool) {
	if k == nil {
		return 0, false
	}
	v, err := k.Value(name)
	if err != nil {
		w.problemUnlessMissing(section, k.Hive(), err)
		return 0, false
	}
	switch v.Type {
	case winreg.DWord, winreg.DWordBigEndian, winreg.QWord:
		return v.Uint, true
	case winreg.SZ:
		if n, err := strconv.ParseUint(strings.TrimSpace(v.String), 10, 64); err == nil {
			return n, true
		}
	}
	w.problem(section, k.Hive().Name, fmt.Errorf("%s is %s %q, not a number", hkey(k, name), v.Type, v.String))
	return 0, false
}

// strs reads a REG_MULTI_SZ (or REG_SZ) value, nil when absent.
func (w *winHives) strs(section string, k *winreg.Key, name string) []string {
	if k == nil {
		return nil
	}
	ss, err := k.Strings(name)
	if err != nil {
		w.problemUnlessMissing(section, k.Hive(), err)
		return nil
	}
	var out []string
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// identity reads the identity fields.
func (w *winHives) identity() *WindowsIdentity {
	id := &WindowsIdentity{SystemRoot: w.systemroot, CurrentControlSet: w.ccsName}
	if cv := w.key(secWinIdentity, w.software, `Microsoft\Windows NT\CurrentVersion`); cv != nil {
		id.ProductName = w.str(secWinIdentity, cv, "ProductName")
		id.EditionID = w.str(secWinIdentity, cv, "EditionID")
		id.InstallationType = w.str(secWinIdentity, cv, "InstallationType")
		id.DisplayVersion = w.str(secWinIdentity, cv, "DisplayVersion")
		// As libguestfs: the numbers when present, else CurrentVersion.
		major, okMaj := w.num(secWinIdentity, cv, "CurrentMajorVersionNumber")
		minor, okMin := w.num(secWinIdentity, cv, "CurrentMinorVersionNumber")
		if okMaj && okMin {
			id.MajorVersion, id.MinorVersion = int(major), int(minor)
		} else if v := w.str(secWinIdentity, cv, "CurrentVersion"); v != "" {
			maj, min, _ := strings.Cut(v, ".")
			id.MajorVersion, _ = strconv.Atoi(maj)
			id.MinorVersion, _ = strconv.Atoi(min)
		}
		id.Build, _ = strconv.Atoi(w.str(secWinIdentity, cv, "CurrentBuildNumber"))
		if ubr, ok := w.num(secWinIdentity, cv, "UBR"); ok {
			id.UBR = int(ubr)
		}
		if t, ok := w.num(secWinIdentity, cv, "InstallDate"); ok && t > 0 {
			id.InstallDate = time.Unix(int64(t), 0).UTC().Format(time.RFC3339)
		}
	}
	switch {
	case strings.HasPrefix(id.InstallationType, "Server"):
		id.Variant = "Server"
	case id.InstallationType == "Client":
		id.Variant = "Client"
	default:
		id.Variant = id.InstallationType
	}
	id.DisplayName = id.ProductName
	if id.Build >= 22000 && strings.Contains(id.ProductName, "Windows 10") {
		id.DisplayName = strings.Replace(id.ProductName, "Windows 10", "Windows 11", 1)
		id.ProductNameNote = fmt.Sprintf("ProductName says %q; build %d (22000 or later) is Windows 11", id.ProductName, id.Build)
	}
	id.Arch = w.arch()
	if p := w.ccsKey(secWinIdentity, `Services\Tcpip\Parameters`); p != nil {
		id.Hostname = w.str(secWinIdentity, p, "Hostname")
		id.Domain = w.str(secWinIdentity, p, "Domain")
	}
	if cn := w.ccsKey(secWinIdentity, `Control\ComputerName\ComputerName`); cn != nil {
		id.ComputerName = w.str(secWinIdentity, cn, "ComputerName")
	}
	id.DriveMappings = w.drives()
	return id
}

// peMachines maps PE machine types to libguestfs's architecture names.
var peMachines = map[uint16]string{0x14c: "i386", 0x8664: "x86_64", 0xaa64: "aarch64", 0x1c4: "arm", 0x200: "ia64"}

// arch reads the machine type of System32/cmd.exe's PE header, the file
// libguestfs takes the architecture from. Only the first 4 KiB are read.
func (w *winHives) arch() string {
	p, err := winreg.ResolvePath(w.fsys, strings.TrimPrefix(w.systemroot, "/")+"/System32/cmd.exe")
	if err != nil {
		return ""
	}
	f, err := w.fsys.Open(p)
	if err != nil {
		w.problem(secWinIdentity, "/"+p, err)
		return ""
	}
	defer f.Close()
	head := make([]byte, 4096)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		w.problem(secWinIdentity, "/"+p, err)
		return ""
	}
	head = head[:n]
	if len(head) < 0x40 || string(head[:2]) != "MZ" {
		return ""
	}
	pe := int(binary.LittleEndian.Uint32(head[0x3c:]))
	if pe < 0 || pe+6 > len(head) || string(head[pe:pe+4]) != "PE\x00\x00" {
		return ""
	}
	return peMachines[binary.LittleEndian.Uint16(head[pe+4:])]
}

// drives decodes MountedDevices' \DosDevices\X: values, as libguestfs
// selects them: REG_BINARY, 12 bytes (MBR) or "DMIO:ID:" and a GUID.
func (w *winHives) drives() []WindowsDrive {
	md := w.key(secWinIdentity, w.system, "MountedDevices")
	if md == nil {
		return nil
	}
	vals, err := md.Values()
	if err != nil {
		w.problem(secWinIdentity, w.system.Name, err)
		return nil
	}
	var out []WindowsDrive
	for _, v := range vals {
		n := v.Name
		if len(n) != 14 || !strings.EqualFold(n[:12], `\DosDevices\`) || n[13] != ':' || !isLetter(n[12]) || v.Type != winreg.Binary {
			continue
		}
		d := WindowsDrive{Letter: strings.ToUpper(n[12:13]), Kind: "other"}
		switch b := v.Data; {
		case len(b) >= 24 && string(b[:8]) == "DMIO:ID:":
			d.Kind = "gpt"
			d.PartitionGUID = fmt.Sprintf("%08x-%04x-%04x-%04x-%012x",
				binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint16(b[12:]), binary.LittleEndian.Uint16(b[14:]),
				binary.BigEndian.Uint16(b[16:]), b[18:24])
		case len(b) == 12:
			d.Kind = "mbr"
			d.DiskSignature = fmt.Sprintf("%08x", binary.LittleEndian.Uint32(b[:4]))
			d.Offset = binary.LittleEndian.Uint64(b[4:])
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Letter < out[j].Letter })
	return out
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// applications lists the Uninstall entries, native then WOW6432Node.
func (w *winHives) applications() []WindowsApplication {
	var out []WindowsApplication
	for _, src := range []struct{ path, arch string }{
		{`Microsoft\Windows\CurrentVersion\Uninstall`, "x64"},
		{`WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall`, "x86"},
	} {
		u := w.key(secWinApps, w.software, src.path)
		if u == nil {
			continue
		}
		keys, err := u.Subkeys()
		if err != nil {
			w.problem(secWinApps, w.software.Name, err)
			continue
		}
		for _, k := range keys {
			a := WindowsApplication{
				Key:             k.Name(),
				DisplayName:     w.str(secWinApps, k, "DisplayName"),
				Version:         w.str(secWinApps, k, "DisplayVersion"),
				Publisher:       w.str(secWinApps, k, "Publisher"),
				InstallDate:     installDate(w.str(secWinApps, k, "InstallDate")),
				InstallLocation: w.str(secWinApps, k, "InstallLocation"),
				Arch:            src.arch,
			}
			if n, ok := w.num(secWinApps, k, "SystemComponent"); ok && n != 0 {
				a.SystemComponent = true
			}
			out = append(out, a)
		}
	}
	return out
}

// installDate turns the usual YYYYMMDD into YYYY-MM-DD, leaving other
// spellings as they are.
func installDate(s string) string {
	if t, err := time.Parse("20060102", s); err == nil {
		return t.Format("2006-01-02")
	}
	return s
}

// filetime converts a Windows FILETIME; 0 and "never" give "".
func filetime(ft uint64) string {
	if ft == 0 || ft >= 0x7fffffffffffffff {
		return ""
	}
	const epochDiff = 116444736000000000 // 1601-01-01 to 1970-01-01 in 100 ns
	if ft < epochDiff {
		return ""
	}
	d := ft - epochDiff
	return time.Unix(int64(d/1e7), int64(d%1e7)*100).UTC().Format(time.RFC3339)
}

// startTypes are the Services Start values.
var startTypes = map[uint64]string{0: "boot", 1: "system", 2: "auto", 3: "manual", 4: "disabled"}

func startType(n uint64, ok bool) string {
	if !ok {
		return ""
	}
	if s, found := startTypes[n]; found {
		return s
	}
	return strconv.FormatUint(n, 10)
}

// services lists the Win32 services of the current control set.
func (w *winHives) services() []WindowsService {
	svcs := w.ccsKey(secWinServices, "Services")
	if svcs == nil {
		return nil
	}
	keys, err := svcs.Subkeys()
	if err != nil {
		w.problem(secWinServices, w.system.Name, err)
		return nil
	}
	var out []WindowsService
	for _, k := range keys {
		typ, ok := w.num(secWinServices, k, "Type")
		if !ok || typ&0x30 == 0 {
			continue
		}
		start, ok := w.num(secWinServices, k, "Start")
		s := WindowsService{
			Name:        k.Name(),
			DisplayName: w.str(secWinServices, k, "DisplayName"),
			Start:       startType(start, ok),
			Account:     w.str(secWinServices, k, "ObjectName"),
			ImagePath:   w.str(secWinServices, k, "ImagePath"),
		}
		if d, ok := w.num(secWinServices, k, "DelayedAutostart"); ok && d != 0 && s.Start == "auto" {
			s.Delayed = true
		}
		out = append(out, s)
	}
	return out
}

// splitList splits NameServer-style lists (commas or spaces).
func splitList(s string) []string {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == ';' })
	if len(f) == 0 {
		return nil
	}
	return f
}

// network reads Tcpip\Parameters and its Interfaces.
func (w *winHives) network() *WindowsNetwork {
	p := w.ccsKey(secWinNetwork, `Services\Tcpip\Parameters`)
	if p == nil {
		return nil
	}
	n := &WindowsNetwork{
		Domain:      w.str(secWinNetwork, p, "Domain"),
		SearchList:  splitList(w.str(secWinNetwork, p, "SearchList")),
		Nameservers: splitList(w.str(secWinNetwork, p, "NameServer")),
	}
	ifs := w.key(secWinNetwork, w.system, w.ccsName+`\Services\Tcpip\Parameters\Interfaces`)
	if ifs == nil {
		return n
	}
	keys, err := ifs.Subkeys()
	if err != nil {
		w.problem(secWinNetwork, w.system.Name, err)
		return n
	}
	for _, k := range keys {
		i := WindowsInterface{GUID: k.Name()}
		dhcp, _ := w.num(secWinNetwork, k, "EnableDHCP")
		i.DHCP = dhcp != 0
		if i.DHCP {
			i.DHCPAddress = w.str(secWinNetwork, k, "DhcpIPAddress")
			if i.DHCPAddress == "0.0.0.0" {
				i.DHCPAddress = ""
			}
			i.DNS = splitList(w.str(secWinNetwork, k, "DhcpNameServer"))
		} else {
			addrs := w.strs(secWinNetwork, k, "IPAddress")
			masks := w.strs(secWinNetwork, k, "SubnetMask")
			for j, a := range addrs {
				if a == "0.0.0.0" {
					continue
				}
				if j < len(masks) {
					if bits, ok := maskBits(masks[j]); ok {
						a = fmt.Sprintf("%s/%d", a, bits)
					}
				}
				i.Addresses = append(i.Addresses, a)
			}
			i.Gateways = w.strs(secWinNetwork, k, "DefaultGateway")
		}
		if dns := splitList(w.str(secWinNetwork, k, "NameServer")); len(dns) > 0 {
			i.DNS = dns // a static server wins over DHCP's
		}
		i.Domain = w.str(secWinNetwork, k, "Domain")
		if c := w.ccsKey(secWinNetwork, `Control\Network\{4D36E972-E325-11CE-BFC1-08002BE10318}\`+k.Name()+`\Connection`); c != nil {
			i.Name = w.str(secWinNetwork, c, "Name")
		}
		// An interface key without any configuration is an adapter that
		// was never set up (Windows makes them for every virtual NIC).
		if !i.DHCP && len(i.Addresses) == 0 && len(i.DNS) == 0 && i.Name == "" {
			continue
		}
		n.Interfaces = append(n.Interfaces, i)
	}
	return n
}

// maskBits converts a dotted netmask to a prefix length.
func maskBits(mask string) (int, bool) {
	parts := strings.Split(mask, ".")
	if len(parts) != 4 {
		return 0, false
	}
	var m uint32
	for _, p := range parts {
		n, err := strconv.ParseUint(p, 10, 8)
		if err != nil {
			return 0, false
		}
		m = m<<8 | uint32(n)
	}
	bits := 0
	for m&0x80000000 != 0 {
		bits++
		m <<= 1
	}
	if m != 0 {
		return 0, false
	}
	return bits, true
}

// kbPattern finds a KB number in a package or key name.
var kbPattern = regexp.MustCompile(`(?i)KB(\d{6,8})`)
