package inspect

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"net/netip"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"guestkit.io/batch/internal/guestconf"
)

// Bounds on lists a hostile image could make huge; the report is not a
// copy of the guest's files.
const (
	maxHosts       = 1024
	maxNameservers = 64
	maxIfupdown    = 256 // files reached through source directives
)

// readNetwork reads the network configuration from the image's own files:
// ifupdown, netplan, NetworkManager keyfiles, ifcfg (RHEL and SUSE),
// systemd-networkd, resolv.conf and /etc/hosts. Nothing comes from the
// host running the appliance: every path resolves inside the guest.
func readNetwork(r *reader, units *guestconf.Systemd) *Network {
	n := &Network{Interfaces: []Interface{}}
	n.Interfaces = append(n.Interfaces, readIfupdown(r)...)
	n.Interfaces = append(n.Interfaces, readNetplan(r)...)
	n.Interfaces = append(n.Interfaces, readNMKeyfiles(r)...)
	n.Interfaces = append(n.Interfaces, readIfcfg(r, "etc/sysconfig/network-scripts")...)
	n.Interfaces = append(n.Interfaces, readIfcfg(r, "etc/sysconfig/network")...)
	n.Interfaces = append(n.Interfaces, readNetworkd(r, units)...)
	readResolvConf(r, n)
	readHosts(r, n)
	if len(n.Interfaces) == 0 && len(n.Nameservers) == 0 && len(n.Search) == 0 && len(n.Hosts) == 0 && n.DNSSource == "" {
		return nil
	}
	return n
}

// withPrefix appends a netmask to an address as a prefix length
// ("255.255.255.0" -> "/24"); an address that has one is kept.
func withPrefix(addr, mask string) string {
	if addr == "" || mask == "" || strings.Contains(addr, "/") {
		return addr
	}
	if m, err := netip.ParseAddr(mask); err == nil && m.Is4() {
		b := m.As4()
		v := binary.BigEndian.Uint32(b[:])
		ones := bits.LeadingZeros32(^v)
		if v == ^uint32(0)<<(32-ones) {
			return addr + "/" + strconv.Itoa(ones)
		}
	}
	return addr + "/" + mask
}

// ignoredConfig reports editor and package manager leftovers that network
// tools skip when they scan a directory.
func ignoredConfig(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
		return true
	}
	for _, s := range []string{".bak", ".old", ".orig", ".swp", ".tmp", ".rpmnew", ".rpmorig", ".rpmsave", ".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-tmp"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// runPartsName is what ifupdown's source-directory accepts (run-parts).
var runPartsName = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// readIfupdown reads /etc/network/interfaces and the files it includes
// with source and source-directory. An interface's inet and inet6 stanzas
// make one Interface; the method is the inet one when both exist.
func readIfupdown(r *reader) []Interface {
	p := &ifupdown{r: r, idx: map[string]int{}, auto: map[string]bool{}, seen: map[string]bool{}}
	p.readFile("etc/network/interfaces", 0)
	for i := range p.out {
		on := p.auto[p.out[i].Name]
		p.out[i].OnBoot = &on
	}
	return p.out
}

// ifupdown collects interfaces across /etc/network/interfaces and the
// files it includes.
type ifupdown struct {
	r    *reader
	out  []Interface
	idx  map[string]int // interface name -> index in out
	auto map[string]bool
	seen map[string]bool // files read, against include loops
}

// readFile reads one interfaces file. Option lines belong to the iface
// stanza above them; any other stanza ends it.
func (p *ifupdown) readFile(f string, depth int) {
	if depth > 8 || p.seen[f] || len(p.seen) >= maxIfupdown {
		return
	}
	p.seen[f] = true
	data := p.r.read("network", f)
	cur, family := -1, ""
	for ln, l := range strings.Split(string(data), "\n") {
		t := fields(uncomment(l))
		if len(t) == 0 {
			continue
		}
		switch t[0] {
		case "auto", "allow-auto", "allow-hotplug":
			for _, i := range t[1:] {
				p.auto[i] = true
			}
			cur = -1
		case "mapping", "no-auto-down", "no-scripts", "rename":
			cur = -1
		case "source":
			cur = -1
			p.source(f, ln+1, t[1:], depth)
		case "source-directory":
			cur = -1
			p.sourceDirectory(f, t[1:], depth)
		case "iface":
			if cur = p.iface(f, ln+1, t); cur >= 0 {
				family = t[2]
			}
		default:
			if cur < 0 || strings.HasPrefix(t[0], "allow-") {
				cur = -1
				continue
			}
			ifupdownOption(&p.out[cur], family, t)
		}
	}
}

// ifupdownInclude makes a source path relative to the including file
// absolute.
func ifupdownInclude(f, pattern string) string {
	if !strings.HasPrefix(pattern, "/") {
		pattern = path.Join("/", path.Dir(f), pattern)
	}
	return pattern
}

// source reads the files matching each pattern of a source line.
func (p *ifupdown) source(f string, line int, patterns []string, depth int) {
	for _, pat := range patterns {
		pat = ifupdownInclude(f, pat)
		if strings.ContainsAny(path.Dir(pat), "*?[") {
			// Wildcards in directories would walk the whole guest.
			p.r.problem("network", guestconf.Abs(f), fmt.Errorf("line %d: source %s: wildcards only in the file name are read", line, pat))
			continue
		}
		for _, g := range p.r.glob("network", pat) {
			p.readFile(g, depth+1)
		}
	}
}

// sourceDirectory reads the files of each directory that run-parts would.
func (p *ifupdown) sourceDirectory(f string, dirs []string, depth int) {
	for _, dir := range dirs {
		d := strings.TrimPrefix(ifupdownInclude(f, dir), "/")
		ents, err := guestconf.ReadDir(p.r.fsys, d)
		if err != nil {
			p.r.notExistOK("network", d, err)
			continue
		}
		for _, e := range ents {
			if runPartsName.MatchString(e.Name()) && !e.IsDir() {
				p.readFile(path.Join(d, e.Name()), depth+1)
			}
		}
	}
}

// iface starts a stanza "iface NAME FAMILY METHOD" and returns the index
// of its Interface, or -1 for a malformed line.
func (p *ifupdown) iface(f string, line int, t []string) int {
	if len(t) < 4 {
		p.r.problem("network", guestconf.Abs(f), fmt.Errorf("line %d: iface needs a name, a family and a method", line))
		return -1
	}
	name := t[1]
	i, ok := p.idx[name]
	if !ok {
		i = len(p.out)
		p.idx[name] = i
		p.out = append(p.out, Interface{Name: name, Source: "ifupdown", File: guestconf.Abs(f)})
	}
	if p.out[i].Method == "" || t[2] == "inet" {
		p.out[i].Method = t[3]
	}
	return i
}

// ifupdownOption applies an option line of an iface stanza of family.
func ifupdownOption(ifc *Interface, family string, t []string) {
	switch t[0] {
	case "address":
		if len(t) > 1 {
			ifc.Addresses = append(ifc.Addresses, t[1])
		}
	case "netmask":
		if len(t) > 1 && len(ifc.Addresses) > 0 {
			last := &ifc.Addresses[len(ifc.Addresses)-1]
			*last = withPrefix(*last, t[1])
		}
	case "gateway":
		if len(t) > 1 && (ifc.Gateway == "" || family == "inet") {
			ifc.Gateway = t[1]
		}
	case "dns-nameservers":
		ifc.DNS = append(ifc.DNS, t[1:]...)
	case "hwaddress":
		if len(t) > 1 {
			ifc.MAC = t[len(t)-1]
		}
	}
}

// netplanDoc is the part of netplan's schema the report uses.
type netplanDoc struct {
	Network struct {
		Ethernets map[string]netplanIf `json:"ethernets"`
		Bonds     map[string]netplanIf `json:"bonds"`
		Bridges   map[string]netplanIf `json:"bridges"`
		Vlans     map[string]netplanIf `json:"vlans"`
		Wifis     map[string]netplanIf `json:"wifis"`
	} `json:"network"`
}

type netplanIf struct {
	DHCP4     any    `json:"dhcp4"`
	DHCP6     any    `json:"dhcp6"`
	Addresses []any  `json:"addresses"`
	Gateway4  string `json:"gateway4"`
	Gateway6  string `json:"gateway6"`
	Routes    []struct {
		To  any    `json:"to"`
		Via string `json:"via"`
	} `json:"routes"`
	Nameservers struct {
		Addresses []string `json:"addresses"`
	} `json:"nameservers"`
	Match struct {
		MACAddress string `json:"macaddress"`
	} `json:"match"`
	MACAddress string `json:"macaddress"`
	SetName    string `json:"set-name"`
}

func truthy(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		switch strings.ToLower(b) {
		case "yes", "true", "on", "y":
			return true
		}
	}
	return false
}

// netplanGroups are the device types of a netplan document, in report order.
func netplanGroups() []string { return []string{"ethernets", "bonds", "bridges", "vlans", "wifis"} }

// readNetplan merges netplan's files as netplan generate does: a file in
// /run shadows one of the same name in /etc, which shadows /lib; the
// files are then applied in name order, later scalars overriding,
// sequences appended and mappings merged.
func readNetplan(r *reader) []Interface {
	byName := map[string]string{}
	for _, d := range []string{"lib/netplan", "etc/netplan", "run/netplan"} {
		for _, f := range r.glob("network", d+"/*.yaml") {
			byName[path.Base(f)] = f
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	merged := map[string]any{}
	lastFile := map[string]string{} // group/name -> last file defining it
	for _, n := range names {
		f := byName[n]
		data := r.read("network", f)
		if data == nil {
			continue
		}
		var doc map[string]any
		var typed netplanDoc
		err := yaml.Unmarshal(data, &doc)
		if err == nil {
			err = yaml.Unmarshal(data, &typed) // the schema check, per file
		}
		if err != nil {
			r.problem("network", guestconf.Abs(f), err)
			continue
		}
		if nw, ok := doc["network"].(map[string]any); ok {
			for _, g := range netplanGroups() {
				if devs, ok := nw[g].(map[string]any); ok {
					for name := range devs {
						lastFile[g+"/"+name] = guestconf.Abs(f)
					}
				}
			}
		}
		merged = mergeYAML(merged, doc, 0).(map[string]any)
	}
	var doc netplanDoc
	if b, err := json.Marshal(merged); err == nil {
		if err := json.Unmarshal(b, &doc); err != nil {
			r.problem("network", "/etc/netplan", err)
		}
	}
	groups := map[string]map[string]netplanIf{
		"ethernets": doc.Network.Ethernets, "bonds": doc.Network.Bonds, "bridges": doc.Network.Bridges,
		"vlans": doc.Network.Vlans, "wifis": doc.Network.Wifis,
	}
	var out []Interface
	for _, g := range netplanGroups() {
		devs := groups[g]
		ids := make([]string, 0, len(devs))
		for id := range devs {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			out = append(out, netplanInterface(id, devs[id], lastFile[g+"/"+id]))
		}
	}
	return out
}

func netplanInterface(id string, c netplanIf, file string) Interface {
	i := Interface{Name: id, Source: "netplan", File: file, DNS: c.Nameservers.Addresses}
	if c.SetName != "" {
		i.Name = c.SetName
	}
	for _, a := range c.Addresses {
		switch v := a.(type) {
		case string:
			i.Addresses = append(i.Addresses, v)
		case map[string]any: // "10.0.0.1/24": {lifetime: 0}
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			i.Addresses = append(i.Addresses, keys...)
		}
	}
	switch {
	case truthy(c.DHCP4) || truthy(c.DHCP6):
		i.Method = "dhcp"
	case len(i.Addresses) > 0:
		i.Method = "static"
	default:
		i.Method = "manual"
	}
	var gw6 string
	for _, rt := range c.Routes {
		switch fmt.Sprint(rt.To) {
		case "default", "0.0.0.0/0":
			if c.Gateway4 == "" && i.Gateway == "" {
				i.Gateway = rt.Via
			}
		case "::/0":
			if gw6 == "" {
				gw6 = rt.Via
			}
		}
	}
	if c.Gateway4 != "" {
		i.Gateway = c.Gateway4
	}
	if i.Gateway == "" {
		i.Gateway = c.Gateway6
	}
	if i.Gateway == "" {
		i.Gateway = gw6
	}
	i.MAC = c.Match.MACAddress
	if i.MAC == "" {
		i.MAC = c.MACAddress
	}
	return i
}

// mergeYAML merges b into a as netplan does: mappings merge, sequences
// concatenate, anything else is replaced.
func mergeYAML(a, b any, depth int) any {
	if am, ok := a.(map[string]any); ok && depth < 32 {
		if bm, ok := b.(map[string]any); ok {
			for k, v := range bm {
				if old, ok := am[k]; ok {
					am[k] = mergeYAML(old, v, depth+1)
				} else {
					am[k] = v
				}
			}
			return am
		}
	}
	if as, ok := a.([]any); ok {
		if bs, ok := b.([]any); ok {
			return append(as, bs...)
		}
	}
	return b
}

// readNMKeyfiles reads NetworkManager connection profiles.
func readNMKeyfiles(r *reader) []Interface {
	var out []Interface
	for _, f := range r.glob("network", "etc/NetworkManager/system-connections/*") {
		if ignoredConfig(path.Base(f)) {
			continue
		}
		data := r.read("network", f)
		if data == nil {
			continue
		}
		ini := guestconf.ParseINI(data, guestconf.Abs(f))
		get := func(key string, secs ...string) string {
			v := ""
			for _, e := range ini {
				for _, s := range secs {
					if e.Section == s && e.Key == key {
						v = e.Value
					}
				}
			}
			return v
		}
		i := Interface{Name: get("interface-name", "connection"), Source: "networkmanager", File: guestconf.Abs(f)}
		if i.Name == "" {
			i.Name = get("id", "connection")
		}
		i.Method = nmMethod(get("method", "ipv4"))
		if m := get("method", "ipv4"); m == "" || m == "disabled" {
			if m6 := nmMethod(get("method", "ipv6")); m6 == "dhcp" || m6 == "static" {
				i.Method = m6
			}
		}
		if get("type", "connection") == "loopback" {
			i.Method = "loopback"
		}
		gws := map[string]string{}
		for _, fam := range []string{"ipv4", "ipv6"} {
			for _, e := range ini {
				if e.Section != fam || !isNMAddressKey(e.Key) {
					continue
				}
				// address1=192.0.2.1/24,192.0.2.254 (the gateway is optional)
				addr, gw, _ := strings.Cut(e.Value, ",")
				if addr = strings.TrimSpace(addr); addr != "" {
					i.Addresses = append(i.Addresses, addr)
				}
				if gw = strings.TrimSpace(gw); gw != "" && gws[fam] == "" {
					gws[fam] = gw
				}
			}
			if gw := get("gateway", fam); gw != "" {
				gws[fam] = gw
			}
			i.DNS = append(i.DNS, strings.FieldsFunc(get("dns", fam), func(c rune) bool { return c == ';' || c == ',' || c == ' ' })...)
		}
		i.Gateway = gws["ipv4"]
		if i.Gateway == "" {
			i.Gateway = gws["ipv6"]
		}
		i.MAC = strings.TrimRight(get("mac-address", "ethernet", "802-3-ethernet", "wifi", "802-11-wireless"), ";")
		// autoconnect defaults to true.
		ac := strings.ToLower(get("autoconnect", "connection"))
		on := ac != "false" && ac != "no" && ac != "0"
		i.OnBoot = &on
		out = append(out, i)
	}
	return out
}

// isNMAddressKey matches address, addresses, address1, addresses2...
func isNMAddressKey(k string) bool {
	rest, ok := strings.CutPrefix(k, "addresses")
	if !ok {
		rest, ok = strings.CutPrefix(k, "address")
	}
	return ok && strings.Trim(rest, "0123456789") == ""
}

func nmMethod(m string) string {
	switch m {
	case "auto", "dhcp":
		return "dhcp"
	case "manual":
		return "static"
	}
	return m
}

// readIfcfg reads ifcfg-* files: RHEL's network-scripts (initscripts and
// NetworkManager's ifcfg-rh) or SUSE's wicked (/etc/sysconfig/network).
func readIfcfg(r *reader, dir string) []Interface {
	suse := dir == "etc/sysconfig/network"
	var out []Interface
	for _, f := range r.glob("network", dir+"/ifcfg-*") {
		if ignoredConfig(path.Base(f)) {
			continue
		}
		data := r.read("network", f)
		if data == nil {
			continue
		}
		kv := map[string]string{}
		for _, e := range guestconf.ParseEqualKV(data, guestconf.Abs(f)) {
			kv[e.Key] = e.Value
		}
		i := Interface{Name: kv["DEVICE"], Source: "ifcfg", File: guestconf.Abs(f), Gateway: kv["GATEWAY"], MAC: kv["HWADDR"]}
		if i.Name == "" || suse {
			i.Name = strings.TrimPrefix(path.Base(f), "ifcfg-")
		}
		if i.MAC == "" {
			i.MAC = kv["MACADDR"]
		}
		// IPADDR, IPADDR0..IPADDRn with the PREFIX/NETMASK of the same suffix.
		for _, sfx := range append([]string{""}, digits(10)...) {
			ip := kv["IPADDR"+sfx]
			if ip == "" {
				continue
			}
			if p := kv["PREFIX"+sfx]; p != "" {
				ip = withPrefix(ip, p)
			} else if p := kv["PREFIXLEN"+sfx]; p != "" {
				ip = withPrefix(ip, p)
			} else {
				ip = withPrefix(ip, kv["NETMASK"+sfx])
			}
			i.Addresses = append(i.Addresses, ip)
		}
		if v6 := kv["IPV6ADDR"]; v6 != "" {
			i.Addresses = append(i.Addresses, v6)
		}
		i.Addresses = append(i.Addresses, strings.Fields(kv["IPV6ADDR_SECONDARIES"])...)
		if i.Gateway == "" {
			i.Gateway, _, _ = strings.Cut(kv["IPV6_DEFAULTGW"], "%")
		}
		switch bp := strings.ToLower(kv["BOOTPROTO"]); bp {
		case "dhcp", "bootp", "dhcp4", "dhcp6", "dhcp+autoip":
			i.Method = "dhcp"
		case "static", "none", "":
			i.Method = "static"
			if len(i.Addresses) == 0 {
				i.Method = "manual"
			}
		default:
			i.Method = bp
		}
		for _, k := range []string{"DNS1", "DNS2", "DNS3"} {
			if v := kv[k]; v != "" {
				i.DNS = append(i.DNS, v)
			}
		}
		if suse {
			// wicked's STARTMODE defaults to manual.
			sm := strings.ToLower(kv["STARTMODE"])
			on := sm == "auto" || sm == "onboot" || sm == "hotplug" || sm == "ifplugd" || sm == "nfsroot"
			i.OnBoot = &on
		} else {
			// initscripts and NetworkManager start what ONBOOT does not refuse.
			ob := strings.ToLower(kv["ONBOOT"])
			on := ob != "no" && ob != "false" && ob != "n" && ob != "f" && ob != "0"
			i.OnBoot = &on
		}
		if i.Name == "lo" {
			i.Method = "loopback"
		}
		out = append(out, i)
	}
	return out
}

func digits(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}

// readNetworkd reads systemd-networkd .network files, a basename in a
// higher-priority directory replacing lower ones and /dev/null masking.
func readNetworkd(r *reader, units *guestconf.Systemd) []Interface {
	files, err := guestconf.Fragments(r.fsys, networkdDirs(units), ".network")
	if err != nil {
		r.problem("network", "/etc/systemd/network", err)
	}
	var out []Interface
	for _, f := range files {
		if data := r.read("network", f); data != nil {
			out = append(out, networkdInterface(f, data))
		}
	}
	return out
}

// networkdDirs are the .network directories, highest priority first. The
// vendor directories count only when networkd is enabled: systemd ships
// examples there (80-container-host0.network) that configure nothing
// otherwise.
func networkdDirs(units *guestconf.Systemd) []string {
	dirs := []string{"etc/systemd/network", "run/systemd/network"}
	if units != nil {
		if st, err := units.Unit("systemd-networkd.service"); err == nil && st.Enabled && !st.Masked {
			dirs = append(dirs, "usr/local/lib/systemd/network", "usr/lib/systemd/network", "lib/systemd/network")
		}
	}
	return dirs
}

// networkdFile is what one .network file says about its interface.
type networkdFile struct {
	Interface
	dhcp         bool
	routeGW      map[int]string // [Route] section number -> Gateway
	routeDefault map[int]bool   // [Route] section number -> default route
}

// networkdInterface reads the interface of the .network file f.
func networkdInterface(f string, data []byte) Interface {
	// Sections repeat ([Route] per route): number them by header line.
	var headers []int
	for n, l := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "[") {
			headers = append(headers, n+1)
		}
	}
	nf := &networkdFile{
		Interface: Interface{Source: "systemd-networkd", File: guestconf.Abs(f)},
		routeGW:   map[int]string{}, routeDefault: map[int]bool{},
	}
	for _, e := range guestconf.ParseINI(data, guestconf.Abs(f)) {
		nf.apply(e, sort.SearchInts(headers, e.Line))
	}
	i := nf.Interface
	if i.Gateway == "" {
		i.Gateway = nf.defaultRouteGateway()
	}
	switch {
	case nf.dhcp:
		i.Method = "dhcp"
	case len(i.Addresses) > 0:
		i.Method = "static"
	default:
		i.Method = "manual"
	}
	if i.Name == "" {
		i.Name = strings.TrimSuffix(path.Base(f), ".network")
	}
	return i
}

// apply records one setting of section number sec.
func (nf *networkdFile) apply(e guestconf.INIEntry, sec int) {
	switch e.Section + "." + e.Key {
	case "Match.Name":
		nf.Name = e.Value
	case "Match.MACAddress":
		nf.MAC = e.Value
	case "Network.DHCP":
		switch strings.ToLower(e.Value) {
		case "yes", "true", "ipv4", "ipv6", "both", "1", "on":
			nf.dhcp = true
		default:
			nf.dhcp = false
		}
	case "Network.Address", "Address.Address":
		nf.Addresses = append(nf.Addresses, e.Value)
	case "Network.Gateway":
		if nf.Gateway == "" {
			nf.Gateway = e.Value
		}
	case "Network.DNS":
		nf.DNS = append(nf.DNS, fields(e.Value)...)
	case "Route.Gateway":
		nf.routeGW[sec] = e.Value
	case "Route.Destination":
		d := e.Value
		nf.routeDefault[sec] = d == "0.0.0.0/0" || d == "::/0" || d == ""
	}
}

// defaultRouteGateway is the gateway of the first [Route] section that
// is a default route (no Destination, or 0.0.0.0/0 or ::/0).
func (nf *networkdFile) defaultRouteGateway() string {
	secs := make([]int, 0, len(nf.routeGW))
	for s := range nf.routeGW {
		secs = append(secs, s)
	}
	sort.Ints(secs)
	for _, s := range secs {
		if def, set := nf.routeDefault[s]; !set || def {
			return nf.routeGW[s]
		}
	}
	return ""
}

// readResolvConf reads /etc/resolv.conf. A link into /run
// (systemd-resolved, NetworkManager) has no target on a powered-off disk:
// the link is reported as the source, rather than nothing.
func readResolvConf(r *reader, n *Network) {
	const name = "etc/resolv.conf"
	link, err := isSymlink(r, name)
	if err != nil {
		r.notExistOK("network", name, err)
		return
	}
	n.DNSSource = "/etc/resolv.conf"
	if link {
		if t, err := readlink(r, name); err == nil {
			n.DNSSource = "/etc/resolv.conf -> " + t
		}
	}
	for _, l := range strings.Split(string(r.read("network", name)), "\n") {
		f := fields(uncomment(strings.ReplaceAll(l, ";", "#")))
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(n.Nameservers) < maxNameservers {
				n.Nameservers = append(n.Nameservers, f[1])
			}
		case "search", "domain":
			// The last search or domain line wins, as in glibc.
			n.Search = append([]string(nil), f[1:min(len(f), maxNameservers+1)]...)
		}
	}
}

// readHosts reads /etc/hosts, bounded.
func readHosts(r *reader, n *Network) {
	for _, l := range strings.Split(string(r.read("network", "etc/hosts")), "\n") {
		t := uncomment(l)
		if t == "" {
			continue
		}
		if len(n.Hosts) == maxHosts {
			r.problem("network", "/etc/hosts", fmt.Errorf("more than %d entries; the rest are not reported", maxHosts))
			return
		}
		n.Hosts = append(n.Hosts, strings.Join(fields(t), " "))
	}
}
