package inspect

import (
	"slices"
	"testing"
	"testing/fstest"
)

// debianSystemd is a merged-/usr Debian 12 with absolute links through /lib.
func debianSystemd() fstest.MapFS {
	return fstest.MapFS{
		"lib":                                     link("usr/lib"),
		"sbin":                                    link("usr/sbin"),
		"usr/sbin/init":                           link("../lib/systemd/systemd"),
		"usr/lib/systemd/systemd":                 file(""),
		"usr/lib/systemd/system/ssh.service":      file("[Install]\nWantedBy=multi-user.target\nAlias=sshd.service\n"),
		"usr/lib/systemd/system/cron.service":     file(""),
		"usr/lib/systemd/system/getty@.service":   file(""),
		"usr/lib/systemd/system/ufw.service":      file(""),
		"usr/lib/systemd/system/apparmor.service": file(""),
		"usr/lib/systemd/system/rsyslog.service":  file(""),
		"usr/lib/systemd/system/fstrim.timer":     file(""),
		"usr/lib/systemd/system/avahi.socket":     file(""),
		"usr/lib/systemd/system/avahi.service":    file(""),
		// vendor static link, found through both /lib and /usr/lib: once
		"usr/lib/systemd/system/multi-user.target.wants/systemd-logind.service": link("../systemd-logind.service"),
		"usr/lib/systemd/system/systemd-logind.service":                         file(""),
		"etc/systemd/system/multi-user.target.wants/ssh.service":                link("/lib/systemd/system/ssh.service"),
		"etc/systemd/system/multi-user.target.wants/cron.service":               link("/lib/systemd/system/cron.service"),
		"etc/systemd/system/graphical.target.wants/cron.service":                link("/lib/systemd/system/cron.service"),
		"etc/systemd/system/multi-user.target.wants/ufw.service":                link("/lib/systemd/system/ufw.service"),
		"etc/systemd/system/multi-user.target.wants/remote-fs.target":           link("/lib/systemd/system/remote-fs.target"),
		"etc/systemd/system/multi-user.target.wants/rsyslog.service":            link("/lib/systemd/system/rsyslog.service"),
		"etc/systemd/system/multi-user.target.wants/gone.service":               link("/lib/systemd/system/gone.service"),
		"etc/systemd/system/getty.target.wants/getty@tty1.service":              link("/lib/systemd/system/getty@.service"),
		"etc/systemd/system/sysinit.target.wants/apparmor.service":              link("/lib/systemd/system/apparmor.service"),
		"etc/systemd/system/timers.target.wants/fstrim.timer":                   link("/lib/systemd/system/fstrim.timer"),
		"etc/systemd/system/sockets.target.requires/avahi.socket":               link("/lib/systemd/system/avahi.socket"),
		// an alias link named in a wants dir starts the real unit
		"etc/systemd/system/multi-user.target.wants/sshd.service": link("/lib/systemd/system/ssh.service"),
		"etc/systemd/system/sshd.service":                         link("/lib/systemd/system/ssh.service"),
		// masked: ufw stays linked but does not start; masking the alias
		// syslog.service does not mask rsyslog.service
		"etc/systemd/system/ufw.service":    link("/dev/null"),
		"etc/systemd/system/syslog.service": link("/dev/null"),
		"etc/systemd/system/tmp.mount":      link("/dev/null"),
		// SysV leftovers: ssh and cron have native units, legacyd does not
		"etc/rc2.d/S01ssh":            link("../init.d/ssh"),
		"etc/rc3.d/S01legacyd":        link("../init.d/legacyd"),
		"etc/rc2.d/S01legacyd":        link("../init.d/legacyd"),
		"etc/rc2.d/K01cron":           link("../init.d/cron"),
		"etc/rc0.d/S01halt":           link("../init.d/halt"),
		"etc/rc2.d/README":            file(""),
		"etc/init.d/legacyd":          file(""),
		"etc/runlevels/default/stale": link("/etc/init.d/stale"),
	}
}

func TestReadServices(t *testing.T) {
	type svc struct{ name, source, wantedBy, path string }
	cases := []struct {
		name   string
		fsys   fstest.MapFS
		init   string
		want   []svc
		masked []string
	}{
		{
			name: "debian systemd, merged /usr",
			fsys: debianSystemd(),
			init: "systemd",
			want: []svc{
				{"apparmor.service", "systemd", "sysinit.target", "/usr/lib/systemd/system/apparmor.service"},
				{"avahi.socket", "systemd", "sockets.target", "/usr/lib/systemd/system/avahi.socket"},
				{"cron.service", "systemd", "graphical.target multi-user.target", "/usr/lib/systemd/system/cron.service"},
				{"fstrim.timer", "systemd", "timers.target", "/usr/lib/systemd/system/fstrim.timer"},
				{"getty@tty1.service", "systemd", "getty.target", "/usr/lib/systemd/system/getty@.service"},
				{"gone.service", "systemd", "multi-user.target", ""},
				{"rsyslog.service", "systemd", "multi-user.target", "/usr/lib/systemd/system/rsyslog.service"},
				{"ssh.service", "systemd", "multi-user.target", "/usr/lib/systemd/system/ssh.service"},
				{"systemd-logind.service", "systemd", "multi-user.target", "/usr/lib/systemd/system/systemd-logind.service"},
				{"legacyd", "sysv", "runlevel 2 3", "/etc/init.d/legacyd"},
			},
			masked: []string{"syslog.service", "tmp.mount", "ufw.service"},
		},
		{
			name: "alpine openrc",
			fsys: fstest.MapFS{
				"sbin/init":                       link("/bin/busybox"),
				"bin/busybox":                     file(""),
				"etc/inittab":                     file("::sysinit:/sbin/openrc sysinit\n::wait:/sbin/openrc default\n"),
				"etc/runlevels/default/sshd":      link("/etc/init.d/sshd"),
				"etc/runlevels/default/crond":     link("/etc/init.d/crond"),
				"etc/runlevels/boot/sshd":         link("/etc/init.d/sshd"),
				"etc/runlevels/sysinit/devfs":     link("/etc/init.d/devfs"),
				"etc/runlevels/shutdown/mount-ro": link("/etc/init.d/mount-ro"),
				"etc/runlevels/default/stacked/x": file(""),
				// systemd leftovers do not run under OpenRC
				"etc/systemd/system/multi-user.target.wants/x.service": link("/lib/systemd/system/x.service"),
			},
			init: "openrc",
			want: []svc{
				{"crond", "openrc", "default", "/etc/init.d/crond"},
				{"devfs", "openrc", "sysinit", "/etc/init.d/devfs"},
				{"sshd", "openrc", "boot default", "/etc/init.d/sshd"},
			},
		},
		{
			name: "sysvinit",
			fsys: fstest.MapFS{
				"sbin/init":           file("ELF"),
				"etc/inittab":         file("id:2:initdefault:\n"),
				"etc/rcS.d/S01udev":   link("../init.d/udev"),
				"etc/rc2.d/S02ssh":    link("../init.d/ssh"),
				"etc/rc3.d/S02ssh":    link("../init.d/ssh"),
				"etc/rc6.d/S01reboot": link("../init.d/reboot"),
				"etc/rc2.d/K01nfs":    link("../init.d/nfs"),
			},
			init: "sysv",
			want: []svc{
				{"ssh", "sysv", "runlevel 2 3", "/etc/init.d/ssh"},
				{"udev", "sysv", "runlevel S", "/etc/init.d/udev"},
			},
		},
		{
			name: "RHEL 6 rc.d layout",
			fsys: fstest.MapFS{
				"sbin/init":                 file("ELF"),
				"etc/inittab":               file("id:3:initdefault:\n"),
				"etc/rc.d/rc3.d/S55sshd":    link("../init.d/sshd"),
				"etc/rc.d/rc3.d/S10network": link("../init.d/network"),
			},
			init: "sysv",
			want: []svc{
				{"network", "sysv", "runlevel 3", "/etc/init.d/network"},
				{"sshd", "sysv", "runlevel 3", "/etc/init.d/sshd"},
			},
		},
		{
			name: "systemd without /sbin/init",
			fsys: fstest.MapFS{
				"lib/systemd/systemd":                                   file(""),
				"lib/systemd/system/a.service":                          file(""),
				"etc/systemd/system/multi-user.target.wants/a.service":  link("../../../../lib/systemd/system/a.service"),
				"etc/systemd/system/default.target.wants/a.service":     link("/lib/systemd/system/a.service"),
				"run/systemd/system/multi-user.target.wants/b.service":  link("/lib/systemd/system/b.service"),
				"usr/local/lib/systemd/system/c.target.wants/c.service": link("../c.service"),
				"usr/local/lib/systemd/system/c.service":                file(""),
				"etc/systemd/system/multi-user.target.wants/d.service":  link("/dev/null"),
			},
			init: "systemd",
			want: []svc{
				{"a.service", "systemd", "default.target multi-user.target", "/lib/systemd/system/a.service"},
				{"b.service", "systemd", "multi-user.target", ""},
				{"c.service", "systemd", "c.target", "/usr/local/lib/systemd/system/c.service"},
			},
		},
		{
			name: "empty tree",
			fsys: fstest.MapFS{"etc/hostname": file("x")},
			init: "",
			want: nil,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newReader(c.fsys)
			s := readServices(r)
			noProblems(t, r)
			if s.InitSystem != c.init {
				t.Errorf("init = %q, want %q", s.InitSystem, c.init)
			}
			var got []svc
			for _, e := range s.Enabled {
				got = append(got, svc{e.Name, e.Source, e.WantedBy, e.Path})
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("enabled:\n got %+v\nwant %+v", got, c.want)
			}
			if !slices.Equal(s.Masked, c.masked) {
				t.Errorf("masked = %v, want %v", s.Masked, c.masked)
			}
			if s.Enabled == nil {
				t.Error("enabled is nil; the JSON must be [] not null")
			}
		})
	}
}

func TestInitSystem(t *testing.T) {
	for _, c := range []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"rhel symlink", fstest.MapFS{"sbin/init": link("../lib/systemd/systemd"), "lib/systemd/systemd": file("")}, "systemd"},
		{"openrc-init", fstest.MapFS{"sbin/init": link("openrc-init"), "sbin/openrc-init": file("")}, "openrc"},
		{"gentoo sysvinit+openrc", fstest.MapFS{"sbin/init": file(""), "etc/inittab": file("si::sysinit:/sbin/openrc sysinit\n")}, "openrc"},
		{"busybox", fstest.MapFS{"sbin/init": link("/bin/busybox"), "bin/busybox": file(""), "etc/init.d/rcS": file("")}, "sysv"},
		{"dangling init, openrc installed", fstest.MapFS{"sbin/init": link("/nowhere"), "sbin/openrc": file("")}, "openrc"},
		{"no binaries, systemd links beside Debian's rc2.d", fstest.MapFS{
			"etc/systemd/system/multi-user.target.wants/ssh.service": link("/lib/systemd/system/ssh.service"),
			"etc/rc2.d/S01foo": link("../init.d/foo"), "etc/init.d/foo": file(""),
		}, "systemd"},
		{"no binaries, rc2.d only", fstest.MapFS{"etc/rc2.d/S01foo": link("../init.d/foo"), "etc/init.d/foo": file("")}, "sysv"},
		{"nothing", fstest.MapFS{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := initSystem(newReader(c.fsys)); got != c.want {
				t.Errorf("initSystem = %q, want %q", got, c.want)
			}
		})
	}
}
