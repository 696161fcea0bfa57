package inspect

import (
	"context"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// TestReadSectionsOnProfileTrees reads the guest trees the profile rules
// are tested on (real directories and symlinks, through os.DirFS) and
// checks the facts their README promises.
func TestReadSectionsOnProfileTrees(t *testing.T) {
	const trees = "../profile/testdata/trees/"
	if _, err := os.Stat(trees); err != nil {
		t.Skip("profile trees not present:", err)
	}
	cases := []struct {
		tree  string
		check func(t *testing.T, o *OS)
	}{
		{"debian-hardened", func(t *testing.T, o *OS) {
			if o.Services == nil || o.Services.InitSystem != "systemd" || !slices.Contains(o.Services.Masked, "systemd-timesyncd.service") {
				t.Errorf("services = %s", asJSON(o.Services))
			}
			if o.Kernels == nil || o.Kernels.Default != "6.1.0-25-amd64" || !strings.Contains(o.Kernels.Cmdline, "security=apparmor") {
				t.Errorf("kernels = %s", asJSON(o.Kernels))
			}
			s := o.Security
			if s == nil || s.Firewall.Kind != "ufw" || !s.Firewall.Enabled || s.SSH == nil || !s.SSH.Enabled || s.SSH.Settings["permitrootlogin"] != "no" {
				t.Errorf("security = %s", asJSON(s))
			}
		}},
		{"debian-misconfigured", func(t *testing.T, o *OS) {
			if s := o.Security; s == nil || s.SSH == nil || s.SSH.Settings["permitrootlogin"] != "yes" {
				t.Errorf("PermitRootLogin from the drop-in: %s", asJSON(o.Security))
			}
			var toor, backdoor *User
			for i, u := range o.Users {
				switch u.Name {
				case "toor":
					toor = &o.Users[i]
				case "backdoor":
					backdoor = &o.Users[i]
				}
			}
			if toor == nil || toor.UID != 0 || toor.System || backdoor == nil || backdoor.Password != "empty" {
				t.Errorf("planted accounts: toor %+v backdoor %+v", toor, backdoor)
			}
		}},
		{"rhel-hardened", func(t *testing.T, o *OS) {
			s := o.Security
			if s == nil || s.SELinux == nil || s.SELinux.Mode != "enforcing" || s.Firewall.Kind != "firewalld" || !s.Firewall.Enabled || s.SSH == nil || !s.SSH.Enabled {
				t.Errorf("security = %s", asJSON(s))
			}
			if o.Kernels == nil || !strings.HasPrefix(o.Kernels.DefaultSource, "/boot/loader/entries/") {
				t.Errorf("kernels = %s", asJSON(o.Kernels))
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.tree, func(t *testing.T) {
			fsys := os.DirFS(trees + c.tree + "/root")
			r := newReader(fsys)
			o := OS{Type: "linux"}
			readSections(context.Background(), r, &o, Options{})
			noProblems(t, r)
			if len(o.Users) == 0 || o.Users[0].Name != "root" || o.Users[0].System {
				t.Errorf("users = %s", asJSON(o.Users))
			}
			c.check(t, &o)
		})
	}
}

func TestReadSectionsCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := newReader(fstest.MapFS{"etc/passwd": file("root:x:0:0::/root:/bin/sh\n")})
	o := OS{Type: "linux"}
	readSections(ctx, r, &o, Options{})
	if o.Users != nil {
		t.Errorf("read after cancel: %s", asJSON(o))
	}
}

// fuzzPaths are the files the sections parse; the fuzzer's input is cut
// into one piece per path.
func fuzzPaths() []string {
	return []string{
		"etc/passwd", "etc/shadow", "etc/group", "etc/login.defs", "etc/ssh/sshd_config",
		"boot/grub/grub.cfg", "boot/grub/grubenv", "boot/loader/entries/a.conf", "boot/extlinux.conf",
		"etc/network/interfaces", "etc/netplan/50.yaml", "etc/netplan/60.yaml",
		"etc/NetworkManager/system-connections/a.nmconnection", "etc/sysconfig/network-scripts/ifcfg-eth0",
		"etc/systemd/network/10.network", "etc/resolv.conf", "etc/hosts",
		"etc/cloud/cloud.cfg", "etc/machine-id", "etc/selinux/config", "etc/ufw/ufw.conf", "etc/default/ufw",
		"etc/firewalld/firewalld.conf", "etc/nftables.conf", "etc/fstab", "etc/inittab",
		"usr/lib/systemd/system/qemu-guest-agent.service",
	}
}

// FuzzReadSections feeds arbitrary file contents to every section: no
// panic, no hang, whatever the guest holds.
func FuzzReadSections(f *testing.F) {
	f.Add([]byte("root:x:0:0::/root:/bin/sh\x00root:!:1::\x00root:x:0:\x00UID_MIN 10"))
	f.Add([]byte(strings.Repeat("\x00", 5) + debianGrubCfg + "\x00saved_entry=1>2>3\x00options $kernelopts\x00LABEL x\nDEFAULT x\nLINUX vmlinuz-x"))
	f.Add([]byte(strings.Repeat("\x00", 9) + "source /etc/network/interfaces\niface a inet static\n netmask 1\x00network: {ethernets: {a: {addresses: [{x: 1}], routes: [{to: 1}]}}}\x00network: [1]"))
	f.Add([]byte(strings.Repeat("\x00", 5) + "submenu 'a' {\n}\n}\n}\nmenuentry\nlinux\nset\nset default=0>0>0>0\x00${\x00\x00"))
	f.Add([]byte(strings.Repeat("}\n{\n", 100)))
	paths := fuzzPaths()
	f.Fuzz(func(t *testing.T, data []byte) {
		parts := strings.Split(string(data), "\x00")
		fsys := fstest.MapFS{
			"sbin/init":                  link("../lib/systemd/systemd"),
			"lib/systemd/systemd":        file(""),
			"boot/vmlinuz-6.1.0-1-amd64": file(""),
			"etc/systemd/system/multi-user.target.wants/qemu-guest-agent.service": link("/usr/lib/systemd/system/qemu-guest-agent.service"),
		}
		for i, p := range paths {
			if i < len(parts) {
				fsys[p] = file(parts[i])
			}
		}
		if len(parts) > len(paths) {
			// The rest is a symlink target, to stress resolution.
			fsys["etc/resolv.conf"] = &fstest.MapFile{Data: []byte(parts[len(paths)]), Mode: fs.ModeSymlink | 0o777}
		}
		r := newReader(fsys)
		o := OS{Type: "linux", Applications: []Application{{Name: "openssh-server"}, {Name: "cloud-init"}, {Name: "apparmor"}}}
		start := time.Now()
		readSections(context.Background(), r, &o, Options{})
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("sections took %s", d)
		}
	})
}
