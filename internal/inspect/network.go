package inspect

import (
	"path"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"guestkit.io/batch/internal/guestconf"
)

// readNetwork reads the network configuration from the image's own files:
// ifupdown, netplan, NetworkManager keyfiles, ifcfg, systemd-networkd and
// resolv.conf. Nothing comes from the host running the appliance.
func readNetwork(r *reader) *Network {
	n := &Network{Interfaces: []Interface{}}
	n.Interfaces = append(n.Interfaces, readIfupdown(r)...)
	n.Interfaces = append(n.Interfaces, readNetplan(r)...)
	n.Interfaces = append(n.Interfaces, readNMKeyfiles(r)...)
	n.Interfaces = append(n.Interfaces, readIfcfg(r)...)
	n.Interfaces = append(n.Interfaces, readNetworkd(r)...)
	readResolvConf(r, n)
	for _, l := range strings.Split(string(r.read("network", "etc/hosts")), "\n") {
		if t := uncomment(l); t != "" {
			n.Hosts = append(n.Hosts, strings.Join(fields(t), " "))
		}
	}
	if len(n.Interfaces) == 0 && len(n.Nameservers) == 0 && len(n.Hosts) == 0 {
		return nil
	}
	return n
}

func readIfupdown(r *reader) []Interface {
	files := []string{"etc/network/interfaces"}
	files = append(files, r.glob("network", "etc/network/interfaces.d/*")...)
	var out []Interface
	auto := map[string]bool{}
	for _, f := range files {
		data := r.read("network", f)
		var cur *Interface
		for _, l := range strings.Split(string(data), "\n") {
			t := fields(uncomment(l))
			if len(t) == 0 {
				continue
			}
			switch t[0] {
			case "auto", "allow-hotplug":
				for _, i := range t[1:] {
					auto[i] = true
				}
			case "iface":
				if len(t) < 4 {
					continue
				}
				out = append(out, Interface{Name: t[1], Source: "ifupdown", File: guestconf.Abs(f), Method: t[3]})
				if t[2] == "inet6" {
					out[len(out)-1].Method = "inet6 " + t[3]
				}
				cur = &out[len(out)-1]
			case "address":
				if cur != nil && len(t) > 1 {
					cur.Addresses = append(cur.Addresses, t[1])
				}
			case "netmask":
				if cur != nil && len(t) > 1 && len(cur.Addresses) > 0 && !strings.Contains(cur.Addresses[len(cur.Addresses)-1], "/") {
					cur.Addresses[len(cur.Addresses)-1] += "/" + t[1]
				}
			case "gateway":
				if cur != nil && len(t) > 1 {
					cur.Gateway = t[1]
				}
			case "dns-nameservers":
				if cur != nil {
					cur.DNS = append(cur.DNS, t[1:]...)
				}
			case "hwaddress":
				if cur != nil {
					cur.MAC = t[len(t)-1]
				}
			}
		}
	}
	for i := range out {
		on := auto[out[i].Name]
		out[i].OnBoot = &on
	}
	return out
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
		To  string `json:"to"`
		Via string `json:"via"`
	} `json:"routes"`
	Nameservers struct {
		Addresses []string `json:"addresses"`
	} `json:"nameservers"`
	Match struct {
		MACAddress string `json:"macaddress"`
	} `json:"match"`
	MACAddress string `json:"macaddress"`
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

func readNetplan(r *reader) []Interface {
	var files []string
	for _, d := range []string{"lib/netplan", "etc/netplan", "run/netplan"} {
		files = append(files, r.glob("network", d+"/*.yaml")...)
	}
	var out []Interface
	for _, f := range files {
		data := r.read("network", f)
		if data == nil {
			continue
		}
		var doc netplanDoc
		if err := yaml.Unmarshal(data, &doc); err != nil {
			r.problem("network", guestconf.Abs(f), err)
			continue
		}
		for _, group := range []map[string]netplanIf{doc.Network.Ethernets, doc.Network.Bonds, doc.Network.Bridges, doc.Network.Vlans, doc.Network.Wifis} {
			names := make([]string, 0, len(group))
			for name := range group {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				c := group[name]
				i := Interface{Name: name, Source: "netplan", File: guestconf.Abs(f), Method: "static", Gateway: c.Gateway4, DNS: c.Nameservers.Addresses}
				if truthy(c.DHCP4) || truthy(c.DHCP6) {
					i.Method = "dhcp"
				}
				for _, a := range c.Addresses {
					if s, ok := a.(string); ok {
						i.Addresses = append(i.Addresses, s)
					} else if m, ok := a.(map[string]any); ok {
						for k := range m {
							i.Addresses = append(i.Addresses, k)
						}
					}
				}
				for _, rt := range c.Routes {
					if (rt.To == "default" || rt.To == "0.0.0.0/0") && i.Gateway == "" {
						i.Gateway = rt.Via
					}
				}
				i.MAC = c.Match.MACAddress
				if i.MAC == "" {
					i.MAC = c.MACAddress
				}
				out = append(out, i)
			}
		}
	}
	return out
}

func readNMKeyfiles(r *reader) []Interface {
	var out []Interface
	for _, f := range r.glob("network", "etc/NetworkManager/system-connections/*") {
		data := r.read("network", f)
		if data == nil {
			continue
		}
		ini := guestconf.ParseINI(data, guestconf.Abs(f))
		get := func(sec, key string) string {
			v := ""
			for _, e := range ini {
				if e.Section == sec && e.Key == key {
					v = e.Value
				}
			}
			return v
		}
		i := Interface{Name: get("connection", "interface-name"), Source: "networkmanager", File: guestconf.Abs(f)}
		if i.Name == "" {
			i.Name = get("connection", "id")
		}
		switch m := get("ipv4", "method"); m {
		case "auto":
			i.Method = "dhcp"
		case "manual":
			i.Method = "static"
		default:
			i.Method = m
		}
		for _, e := range ini {
			if e.Section == "ipv4" && (strings.HasPrefix(e.Key, "address") || e.Key == "addresses") {
				addr, gw, _ := strings.Cut(e.Value, ",")
				i.Addresses = append(i.Addresses, addr)
				if gw != "" && i.Gateway == "" {
					i.Gateway = gw
				}
			}
		}
		if gw := get("ipv4", "gateway"); gw != "" {
			i.Gateway = gw
		}
		for _, d := range strings.Split(get("ipv4", "dns"), ";") {
			if d = strings.TrimSpace(d); d != "" {
				i.DNS = append(i.DNS, d)
			}
		}
		i.MAC = get("ethernet", "mac-address")
		if ac := get("connection", "autoconnect"); ac != "" {
			on := ac != "false"
			i.OnBoot = &on
		}
		out = append(out, i)
	}
	return out
}

func readIfcfg(r *reader) []Interface {
	var out []Interface
	for _, f := range r.glob("network", "etc/sysconfig/network-scripts/ifcfg-*") {
		data := r.read("network", f)
		if data == nil {
			continue
		}
		kv := map[string]string{}
		for _, e := range guestconf.ParseEqualKV(data, guestconf.Abs(f)) {
			kv[e.Key] = e.Value
		}
		i := Interface{Name: kv["DEVICE"], Source: "ifcfg", File: guestconf.Abs(f), Gateway: kv["GATEWAY"], MAC: kv["HWADDR"]}
		if i.Name == "" {
			i.Name = strings.TrimPrefix(path.Base(f), "ifcfg-")
		}
		switch strings.ToLower(kv["BOOTPROTO"]) {
		case "dhcp", "bootp":
			i.Method = "dhcp"
		case "static", "none", "":
			i.Method = "static"
		default:
			i.Method = strings.ToLower(kv["BOOTPROTO"])
		}
		if ip := kv["IPADDR"]; ip != "" {
			if p := kv["PREFIX"]; p != "" {
				ip += "/" + p
			} else if m := kv["NETMASK"]; m != "" {
				ip += "/" + m
			}
			i.Addresses = append(i.Addresses, ip)
		}
		for _, k := range []string{"DNS1", "DNS2", "DNS3"} {
			if v := kv[k]; v != "" {
				i.DNS = append(i.DNS, v)
			}
		}
		if ob, ok := kv["ONBOOT"]; ok {
			on := strings.EqualFold(ob, "yes")
			i.OnBoot = &on
		}
		if i.Name == "lo" {
			i.Method = "loopback"
		}
		out = append(out, i)
	}
	return out
}

func readNetworkd(r *reader) []Interface {
	var out []Interface
	for _, d := range []string{"etc/systemd/network", "run/systemd/network", "usr/lib/systemd/network", "lib/systemd/network"} {
		for _, f := range r.glob("network", d+"/*.network") {
			data := r.read("network", f)
			i := Interface{Source: "systemd-networkd", File: guestconf.Abs(f), Method: "static"}
			for _, e := range guestconf.ParseINI(data, guestconf.Abs(f)) {
				switch e.Section + "." + e.Key {
				case "Match.Name":
					i.Name = e.Value
				case "Match.MACAddress":
					i.MAC = e.Value
				case "Network.DHCP":
					if e.Value != "no" && e.Value != "false" {
						i.Method = "dhcp"
					}
				case "Network.Address", "Address.Address":
					i.Addresses = append(i.Addresses, e.Value)
				case "Network.Gateway", "Route.Gateway":
					i.Gateway = e.Value
				case "Network.DNS":
					i.DNS = append(i.DNS, fields(e.Value)...)
				}
			}
			if i.Name == "" {
				i.Name = strings.TrimSuffix(path.Base(f), ".network")
			}
			out = append(out, i)
		}
	}
	return out
}

func readResolvConf(r *reader, n *Network) {
	name := "etc/resolv.conf"
	n.DNSSource = "/etc/resolv.conf"
	if link, err := isSymlink(r, name); err == nil && link {
		// A link into /run (systemd-resolved, NetworkManager) is empty on a
		// powered-off disk; say so rather than report nothing.
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
			n.Nameservers = append(n.Nameservers, f[1])
		case "search", "domain":
			n.Search = append(n.Search, f[1:]...)
		}
	}
}
