package profile

import (
	"strings"
	"testing"
	"testing/fstest"
)

// Fixtures for issue 14's findings 1-3: small in-memory guests, each with
// a pass tree and a fail tree that would have caught the bug.

// debGuest is a bare Debian 12 guest with files added and a known package
// list (pkgs nil means the list is unknown).
func debGuest(files fstest.MapFS, pkgs ...string) Target {
	m := overlay(fstest.MapFS{"etc/os-release": txt("ID=debian\nVERSION_ID=\"12\"\n")}, files)
	var list []Package
	if pkgs != nil {
		list = []Package{}
		for _, p := range pkgs {
			list = append(list, Package{Name: p, Version: "1.0-1"})
		}
	}
	return Target{FS: m, Packages: list}
}

func expect(t *testing.T, id string, tg Target, want Status, evidence ...string) {
	t.Helper()
	out := runRule(t, id, tg)
	text := evidenceText(out.Evidence)
	if out.Status != want {
		t.Errorf("%s: %s, want %s\n%s", id, out.Status, want, text)
		return
	}
	for _, e := range evidence {
		if !strings.Contains(text, e) {
			t.Errorf("%s: evidence lacks %q:\n%s", id, e, text)
		}
	}
}

// Finding 1: an unset sysctl key passed when the kernel default happened
// to be the wanted value (ip_forward, accept_source_route, syncookies,
// randomize_va_space, suid_dumpable).
func TestSysctlUnsetKeyFails(t *testing.T) {
	for _, sp := range sysctlSpecs() {
		bad := "1"
		if sp.want != "0" {
			bad = "0"
		}
		t.Run(sp.id, func(t *testing.T) {
			// No sysctl file at all.
			expect(t, sp.id, debGuest(nil), StatusFail,
				sp.key+" is not set in any sysctl file", "read: none, no sysctl file exists",
				"/etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d, /lib/sysctl.d",
				"kernel default "+sp.kernelDefault+" is not a persistent setting")
			// Files exist but none sets the key: they are named.
			expect(t, sp.id, debGuest(fstest.MapFS{
				"usr/lib/sysctl.d/50-default.conf": txt("kernel.sysrq = 0x01b6\n"),
				"etc/sysctl.conf":                  txt("# nothing\n"),
			}), StatusFail, "read: /usr/lib/sysctl.d/50-default.conf, /etc/sysctl.conf")
			// Set right, in any directory of the search path: pass, file:line.
			for _, dir := range []string{"etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d", "lib/sysctl.d"} {
				expect(t, sp.id, debGuest(fstest.MapFS{dir + "/60-cis.conf": txt("# cis\n" + sp.key + " = " + sp.want + "\n")}),
					StatusPass, "/"+dir+"/60-cis.conf:2 | "+sp.key+" = "+sp.want)
			}
			expect(t, sp.id, debGuest(fstest.MapFS{"etc/sysctl.conf": txt(sp.key + "=" + sp.want + "\n")}),
				StatusPass, "/etc/sysctl.conf:1 | "+sp.key+" = "+sp.want)
			// Set wrong: fail, file:line.
			expect(t, sp.id, debGuest(fstest.MapFS{"etc/sysctl.d/60-cis.conf": txt(sp.key + " = " + bad + "\n")}),
				StatusFail, "/etc/sysctl.d/60-cis.conf:1 | "+sp.key+" = "+bad)
			// systemd's order: files sorted by name across directories, so
			// /usr/lib/sysctl.d/70-x.conf is read after /etc/sysctl.d/60-cis.conf.
			expect(t, sp.id, debGuest(fstest.MapFS{
				"etc/sysctl.d/60-cis.conf":   txt(sp.key + " = " + sp.want + "\n"),
				"usr/lib/sysctl.d/70-x.conf": txt(sp.key + " = " + bad + "\n"),
			}), StatusFail, "/usr/lib/sysctl.d/70-x.conf:1 | "+sp.key+" = "+bad, "overridden by /usr/lib/sysctl.d/70-x.conf:1")
			// A file in /etc replaces the vendor file of the same name.
			expect(t, sp.id, debGuest(fstest.MapFS{
				"etc/sysctl.d/70-x.conf":     txt(sp.key + " = " + sp.want + "\n"),
				"usr/lib/sysctl.d/70-x.conf": txt(sp.key + " = " + bad + "\n"),
			}), StatusPass, "/etc/sysctl.d/70-x.conf:1")
			// /etc/sysctl.conf is read last and wins.
			expect(t, sp.id, debGuest(fstest.MapFS{
				"etc/sysctl.d/99-z.conf": txt(sp.key + " = " + sp.want + "\n"),
				"etc/sysctl.conf":        txt(sp.key + " = " + bad + "\n"),
			}), StatusFail, "/etc/sysctl.conf:1 | "+sp.key+" = "+bad)
		})
	}
}
