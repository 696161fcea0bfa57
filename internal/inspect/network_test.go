package inspect

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"guestkit.io/batch/internal/guestconf"
)

// ifc is the part of an Interface the tests compare, in one line.
func ifc(i Interface) string {
	on := "-"
	if i.OnBoot != nil {
		on = fmt.Sprint(*i.OnBoot)
	}
	return fmt.Sprintf("%s %s %s %s addr=%s gw=%s dns=%s mac=%s onboot=%s", i.Name, i.Source, i.File, i.Method,
		strings.Join(i.Addresses, ","), i.Gateway, strings.Join(i.DNS, ","), i.MAC, on)
}

func TestReadNetworkInterfaces(t *testing.T) {
	cases := []struct {
		name     string
		fsys     fstest.MapFS
		want     []string
		problems []string // paths with a problem
	}{
		{
			name: "ifupdown with source, inet6 merged, allow-hotplug",
			fsys: fstest.MapFS{
				"etc/network/interfaces": file(`# interfaces(5)
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

allow-hotplug ens3
iface ens3 inet static
	address 192.0.2.10
	netmask 255.255.255.0
	gateway 192.0.2.1
	dns-nameservers 192.0.2.53 192.0.2.54
	hwaddress ether 52:54:00:12:34:56
iface ens3 inet6 static
	address 2001:db8::10
	netmask 64
	gateway 2001:db8::1

iface ens9 inet manual
iface broken inet
`),
				"etc/network/interfaces.d/eth1": file("auto eth1\niface eth1 inet dhcp\n"),
			},
			want: []string{
				"eth1 ifupdown /etc/network/interfaces.d/eth1 dhcp addr= gw= dns= mac= onboot=true",
				"lo ifupdown /etc/network/interfaces loopback addr= gw= dns= mac= onboot=true",
				"ens3 ifupdown /etc/network/interfaces static addr=192.0.2.10/24,2001:db8::10/64 gw=192.0.2.1 dns=192.0.2.53,192.0.2.54 mac=52:54:00:12:34:56 onboot=true",
				"ens9 ifupdown /etc/network/interfaces manual addr= gw= dns= mac= onboot=false",
			},
			problems: []string{"/etc/network/interfaces"},
		},
		{
			name: "ifupdown: interfaces.d only when sourced; source-directory takes run-parts names",
			fsys: fstest.MapFS{
				"etc/network/interfaces":            file("source-directory interfaces.d\nsource /etc/network/interfaces # self: read once\nsource /*/*/*\n"),
				"etc/network/interfaces.d/eth3":     file("auto eth3\niface eth3 inet6 auto\n"),
				"etc/network/interfaces.d/eth4.cfg": file("iface eth4 inet dhcp\n"),
			},
			want:     []string{"eth3 ifupdown /etc/network/interfaces.d/eth3 auto addr= gw= dns= mac= onboot=true"},
			problems: []string{"/etc/network/interfaces"},
		},
		{
			name: "ifupdown without source line ignores interfaces.d",
			fsys: fstest.MapFS{
				"etc/network/interfaces":        file("auto lo\niface lo inet loopback\n"),
				"etc/network/interfaces.d/eth1": file("iface eth1 inet dhcp\n"),
			},
			want: []string{"lo ifupdown /etc/network/interfaces loopback addr= gw= dns= mac= onboot=true"},
		},
		{
			name: "netplan: shadowing, merge in name order, bad files reported",
			fsys: fstest.MapFS{
				"lib/netplan/00-vendor.yaml": file("network:\n  ethernets:\n    eth0:\n      dhcp4: true\n"),
				"etc/netplan/50-cloud-init.yaml": file(`network:
  version: 2
  ethernets:
    ens3:
      match:
        macaddress: "52:54:00:aa:bb:cc"
      set-name: ens3
      dhcp4: true
    ens4:
      addresses: [192.0.2.20/24]
      routes:
        - to: default
          via: 192.0.2.1
      nameservers:
        addresses: [192.0.2.53]
    ens7: {}
  bonds:
    bond0:
      interfaces: [ens7]
      dhcp4: no
`),
				"etc/netplan/90-override.yaml": file("network:\n  ethernets:\n    ens4:\n      addresses:\n        - 2001:db8::20/64\n        - \"192.0.2.21/24\":\n            lifetime: 0\n"),
				"etc/netplan/60-shadowed.yaml": file("network:\n  ethernets:\n    ens5:\n      dhcp4: true\n"),
				"run/netplan/60-shadowed.yaml": file("network:\n  ethernets:\n    ens5:\n      addresses: [10.0.0.5/8]\n      gateway4: 10.0.0.1\n"),
				"etc/netplan/70-bad.yaml":      file("network: [\n"),
				"etc/netplan/71-badtype.yaml":  file("network:\n  ethernets:\n    ens6:\n      addresses: 10.0.0.1/8\n"),
				"etc/netplan/99-notyaml.yaml~": file("network: {ethernets: {x: {}}}\n"),
				"etc/netplan/80-id.yaml":       file("network:\n  ethernets:\n    id0:\n      match:\n        macaddress: 52:54:00:00:00:01\n      set-name: lan0\n      dhcp6: yes\n"),
			},
			want: []string{
				"ens3 netplan /etc/netplan/50-cloud-init.yaml dhcp addr= gw= dns= mac=52:54:00:aa:bb:cc onboot=-",
				"ens4 netplan /etc/netplan/90-override.yaml static addr=192.0.2.20/24,2001:db8::20/64,192.0.2.21/24 gw=192.0.2.1 dns=192.0.2.53 mac= onboot=-",
				"ens5 netplan /run/netplan/60-shadowed.yaml static addr=10.0.0.5/8 gw=10.0.0.1 dns= mac= onboot=-",
				"ens7 netplan /etc/netplan/50-cloud-init.yaml manual addr= gw= dns= mac= onboot=-",
				"eth0 netplan /lib/netplan/00-vendor.yaml dhcp addr= gw= dns= mac= onboot=-",
				"lan0 netplan /etc/netplan/80-id.yaml dhcp addr= gw= dns= mac=52:54:00:00:00:01 onboot=-",
				"bond0 netplan /etc/netplan/50-cloud-init.yaml manual addr= gw= dns= mac= onboot=-",
			},
			problems: []string{"/etc/netplan/70-bad.yaml", "/etc/netplan/71-badtype.yaml"},
		},
		{
			name: "NetworkManager keyfiles",
			fsys: fstest.MapFS{
				"etc/NetworkManager/system-connections/ens3.nmconnection": file(`[connection]
id=ens3
type=ethernet
autoconnect=false
interface-name=ens3

[ethernet]
mac-address=52:54:00:11:22:33

[ipv4]
address1=192.0.2.30/24,192.0.2.1
dns=192.0.2.53;192.0.2.54;
method=manual

[ipv6]
addr-gen-mode=eui64
method=auto
`),
				"etc/NetworkManager/system-connections/ens3.nmconnection~":              file("[connection]\nid=backup\n"),
				"etc/NetworkManager/system-connections/Wired connection 1.nmconnection": file("[connection]\nid=Wired connection 1\ntype=ethernet\n[802-3-ethernet]\nmac-address=52:54:00:44:55:66\n[ipv4]\nmethod=auto\n"),
				"etc/NetworkManager/system-connections/v6.nmconnection":                 file("[connection]\nid=v6\ninterface-name=ens9\n[ipv4]\nmethod=disabled\n[ipv6]\nmethod=manual\naddress1=2001:db8::30/64\ngateway=2001:db8::1\ndns=2001:db8::53;\n"),
			},
			want: []string{
				"Wired connection 1 networkmanager /etc/NetworkManager/system-connections/Wired connection 1.nmconnection dhcp addr= gw= dns= mac=52:54:00:44:55:66 onboot=true",
				"ens3 networkmanager /etc/NetworkManager/system-connections/ens3.nmconnection static addr=192.0.2.30/24 gw=192.0.2.1 dns=192.0.2.53,192.0.2.54 mac=52:54:00:11:22:33 onboot=false",
				"ens9 networkmanager /etc/NetworkManager/system-connections/v6.nmconnection static addr=2001:db8::30/64 gw=2001:db8::1 dns=2001:db8::53 mac= onboot=true",
			},
		},
		{
			name: "RHEL ifcfg and SUSE wicked",
			fsys: fstest.MapFS{
				"etc/sysconfig/network-scripts/ifcfg-eth0":     file("DEVICE=eth0\nBOOTPROTO=none\nIPADDR=192.0.2.40\nNETMASK=255.255.255.0\nGATEWAY=192.0.2.1\nDNS1=192.0.2.53\nDNS2=192.0.2.54\nONBOOT=yes\nHWADDR=52:54:00:77:88:99\n"),
				"etc/sysconfig/network-scripts/ifcfg-eth0.bak": file("DEVICE=eth0\nBOOTPROTO=dhcp\n"),
				"etc/sysconfig/network-scripts/ifcfg-eth1":     file("DEVICE=eth1\nBOOTPROTO=dhcp\n"),
				"etc/sysconfig/network-scripts/ifcfg-eth2":     file("BOOTPROTO=static\nIPADDR0=10.0.0.1\nPREFIX0=8\nIPADDR1=10.1.0.1\nPREFIX1=16\nONBOOT=no\nIPV6ADDR=2001:db8::40/64\nIPV6_DEFAULTGW=2001:db8::1%eth2\n"),
				"etc/sysconfig/network-scripts/ifcfg-slave":    file("DEVICE=eth3\nMASTER=bond0\nSLAVE=yes\nBOOTPROTO=none\nONBOOT=\"yes\"\n"),
				"etc/sysconfig/network-scripts/ifcfg-lo":       file("DEVICE=lo\nIPADDR=127.0.0.1\nNETMASK=255.0.0.0\nONBOOT=yes\n"),
				"etc/sysconfig/network/ifcfg-eth0":             file("BOOTPROTO='dhcp'\nSTARTMODE='auto'\n"),
				"etc/sysconfig/network/ifcfg-eth1":             file("BOOTPROTO='static'\nIPADDR='192.0.2.50/24'\n"),
			},
			want: []string{
				"eth0 ifcfg /etc/sysconfig/network-scripts/ifcfg-eth0 static addr=192.0.2.40/24 gw=192.0.2.1 dns=192.0.2.53,192.0.2.54 mac=52:54:00:77:88:99 onboot=true",
				"eth1 ifcfg /etc/sysconfig/network-scripts/ifcfg-eth1 dhcp addr= gw= dns= mac= onboot=true",
				"eth2 ifcfg /etc/sysconfig/network-scripts/ifcfg-eth2 static addr=10.0.0.1/8,10.1.0.1/16,2001:db8::40/64 gw=2001:db8::1 dns= mac= onboot=false",
				"lo ifcfg /etc/sysconfig/network-scripts/ifcfg-lo loopback addr=127.0.0.1/8 gw= dns= mac= onboot=true",
				"eth3 ifcfg /etc/sysconfig/network-scripts/ifcfg-slave manual addr= gw= dns= mac= onboot=true",
				"eth0 ifcfg /etc/sysconfig/network/ifcfg-eth0 dhcp addr= gw= dns= mac= onboot=true",
				"eth1 ifcfg /etc/sysconfig/network/ifcfg-eth1 static addr=192.0.2.50/24 gw= dns= mac= onboot=false",
			},
		},
		{
			name: "systemd-networkd, vendor examples ignored while networkd is off",
			fsys: networkdTree(),
			want: []string{
				"eth0 systemd-networkd /etc/systemd/network/10-eth0.network static addr=192.0.2.60/24 gw=192.0.2.1 dns=192.0.2.53,192.0.2.54 mac= onboot=-",
				"en* systemd-networkd /etc/systemd/network/20-dhcp.network dhcp addr= gw= dns= mac= onboot=-",
			},
		},
		{
			name: "systemd-networkd enabled: vendor files count, masks apply",
			fsys: merge(networkdTree(), fstest.MapFS{
				"usr/lib/systemd/system/systemd-networkd.service":                     file("[Install]\nWantedBy=multi-user.target\n"),
				"etc/systemd/system/multi-user.target.wants/systemd-networkd.service": link("/usr/lib/systemd/system/systemd-networkd.service"),
			}),
			want: []string{
				"eth0 systemd-networkd /etc/systemd/network/10-eth0.network static addr=192.0.2.60/24 gw=192.0.2.1 dns=192.0.2.53,192.0.2.54 mac= onboot=-",
				"en* systemd-networkd /etc/systemd/network/20-dhcp.network dhcp addr= gw= dns= mac= onboot=-",
				"host0 systemd-networkd /usr/lib/systemd/network/80-container-host0.network dhcp addr= gw= dns= mac= onboot=-",
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newReader(c.fsys)
			n := readNetwork(r, guestconf.NewSystemd(c.fsys))
			var got []string
			if n != nil {
				for _, i := range n.Interfaces {
					got = append(got, ifc(i))
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("interfaces:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(c.want, "\n     "))
			}
			var paths []string
			for _, p := range r.problems {
				paths = append(paths, p.Path)
			}
			if !slices.Equal(paths, c.problems) {
				t.Errorf("problems = %s, want paths %v", asJSON(r.problems), c.problems)
			}
		})
	}
}

func networkdTree() fstest.MapFS {
	return fstest.MapFS{
		"etc/systemd/network/10-eth0.network":                file("[Match]\nName=eth0\n\n[Network]\nAddress=192.0.2.60/24\nDNS=192.0.2.53 192.0.2.54\n\n[Route]\nDestination=10.0.0.0/8\nGateway=192.0.2.254\n\n[Route]\nGateway=192.0.2.1\n"),
		"etc/systemd/network/20-dhcp.network":                file("[Match]\nName=en*\n[Network]\nDHCP=ipv4\n"),
		"etc/systemd/network/99-masked.network":              link("/dev/null"),
		"usr/lib/systemd/network/99-masked.network":          file("[Match]\nName=masked\n"),
		"usr/lib/systemd/network/80-container-host0.network": file("[Match]\nVirtualization=container\nName=host0\n[Network]\nDHCP=yes\n"),
		"usr/lib/systemd/network/99-default.link":            file("[Link]\n"),
	}
}

func TestReadNetworkDNSAndHosts(t *testing.T) {
	many := strings.Repeat("10.0.0.1 host\n", maxHosts+10)
	cases := []struct {
		name        string
		fsys        fstest.MapFS
		nilNetwork  bool
		source      string
		nameservers []string
		search      []string
		hosts       []string
		hostsLen    int
		problem     string
	}{
		{
			name:   "resolved stub link into /run: reported, not followed to the host",
			fsys:   fstest.MapFS{"etc/resolv.conf": link("../run/systemd/resolve/stub-resolv.conf")},
			source: "/etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf",
		},
		{
			name:        "link escaping the root stays in the guest",
			fsys:        fstest.MapFS{"etc/resolv.conf": link("../../../../../etc/resolvconf/resolv.conf"), "etc/resolvconf/resolv.conf": file("nameserver 192.0.2.99\n")},
			source:      "/etc/resolv.conf -> ../../../../../etc/resolvconf/resolv.conf",
			nameservers: []string{"192.0.2.99"},
		},
		{
			name: "plain file; comments; the last search/domain wins",
			fsys: fstest.MapFS{
				"etc/resolv.conf": file("# generated\n; also a comment\nnameserver 192.0.2.53 # primary\nnameserver\t2001:db8::53\ndomain example.org\nsearch a.example b.example\noptions edns0\nnameserver\n"),
				"etc/hosts":       file("127.0.0.1\tlocalhost\n::1     localhost ip6-localhost # v6\n\n# comment\n192.0.2.5 db.example db\n"),
			},
			source:      "/etc/resolv.conf",
			nameservers: []string{"192.0.2.53", "2001:db8::53"},
			search:      []string{"a.example", "b.example"},
			hosts:       []string{"127.0.0.1 localhost", "::1 localhost ip6-localhost", "192.0.2.5 db.example db"},
		},
		{
			name:       "nothing",
			fsys:       fstest.MapFS{"etc/hostname": file("x")},
			nilNetwork: true,
		},
		{
			name:     "huge hosts file is bounded",
			fsys:     fstest.MapFS{"etc/hosts": file(many)},
			hostsLen: maxHosts,
			problem:  "/etc/hosts",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newReader(c.fsys)
			n := readNetwork(r, guestconf.NewSystemd(c.fsys))
			if c.nilNetwork {
				if n != nil {
					t.Errorf("network = %s, want nil", asJSON(n))
				}
				return
			}
			if n == nil {
				t.Fatal("network is nil")
			}
			if n.DNSSource != c.source || !slices.Equal(n.Nameservers, c.nameservers) || !slices.Equal(n.Search, c.search) {
				t.Errorf("dns = %q %v %v, want %q %v %v", n.DNSSource, n.Nameservers, n.Search, c.source, c.nameservers, c.search)
			}
			if c.hostsLen > 0 {
				if len(n.Hosts) != c.hostsLen {
					t.Errorf("%d hosts, want %d", len(n.Hosts), c.hostsLen)
				}
			} else if !slices.Equal(n.Hosts, c.hosts) {
				t.Errorf("hosts = %q, want %q", n.Hosts, c.hosts)
			}
			if c.problem == "" {
				noProblems(t, r)
			} else if len(r.problems) != 1 || r.problems[0].Path != c.problem {
				t.Errorf("problems = %s, want one for %s", asJSON(r.problems), c.problem)
			}
		})
	}
}

func TestWithPrefix(t *testing.T) {
	for _, c := range [][3]string{
		{"192.0.2.1", "255.255.255.0", "192.0.2.1/24"},
		{"192.0.2.1", "255.255.255.255", "192.0.2.1/32"},
		{"192.0.2.1", "0.0.0.0", "192.0.2.1/0"},
		{"192.0.2.1", "255.0.255.0", "192.0.2.1/255.0.255.0"},
		{"192.0.2.1/25", "255.255.255.0", "192.0.2.1/25"},
		{"2001:db8::1", "64", "2001:db8::1/64"},
		{"192.0.2.1", "", "192.0.2.1"},
	} {
		if got := withPrefix(c[0], c[1]); got != c[2] {
			t.Errorf("withPrefix(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}
