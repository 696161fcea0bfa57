package profile

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"guestkit.io/batch/internal/guestconf"
)

// findGrubCfg lists the generated grub.cfg files that exist.
func findGrubCfg(e *Env) []string {
	var out []string
	for _, c := range guestconf.GrubConfigs() {
		if guestconf.Exists(e.FS(), c) {
			out = append(out, c)
		}
	}
	return out
}

func grubApplies() Applicability {
	return Applicability{Families: []string{FamilyLinux}, When: func(e *Env) (bool, string) {
		if len(findGrubCfg(e)) > 0 {
			return true, ""
		}
		return false, "no GRUB configuration (/boot/grub/grub.cfg, /boot/grub2/grub.cfg): another boot loader, or /boot not mounted"
	}}
}

// kernelCmdlines collects kernel command lines from everywhere a boot
// configuration keeps them: /etc/default/grub (+ grub.d), grub.cfg linux
// lines, BLS entries and /etc/kernel/cmdline. Read errors are skipped: the
// command line is supporting evidence, not the rule's main input.
func kernelCmdlines(e *Env) []guestconf.KV {
	var out []guestconf.KV
	defs := []string{"etc/default/grub"}
	if more, err := guestconf.Glob(e.FS(), "/etc/default/grub.d/*.cfg"); err == nil {
		defs = append(defs, more...)
	}
	for _, f := range defs {
		data, err := guestconf.ReadFile(e.FS(), f)
		if err != nil {
			continue
		}
		for _, kv := range guestconf.ParseEqualKV(data, guestconf.Abs(f)) {
			if kv.Key == "GRUB_CMDLINE_LINUX" || kv.Key == "GRUB_CMDLINE_LINUX_DEFAULT" {
				out = append(out, kv)
			}
		}
	}
	for _, f := range findGrubCfg(e) {
		cmds, err := guestconf.ReadGrubCommands(e.FS(), f)
		if err != nil {
			continue
		}
		for _, c := range cmds {
			if len(c.Words) > 1 && cmdlineKey(c.Words[0]) {
				out = append(out, guestconf.KV{Key: c.Words[0], Value: strings.Join(c.Words[1:], " "), Source: c.Source})
			}
		}
	}
	bls, _ := guestconf.Glob(e.FS(), "/boot/loader/entries/*.conf")
	for _, f := range bls {
		data, err := guestconf.ReadFile(e.FS(), f)
		if err != nil {
			continue
		}
		for _, kv := range guestconf.ParseBLS(data, guestconf.Abs(f)) {
			if kv.Value != "" && cmdlineKey(kv.Key) {
				out = append(out, guestconf.KV{Key: kv.Key, Value: strings.Join(strings.Fields(kv.Value), " "), Source: kv.Source})
			}
		}
	}
	if data, err := guestconf.ReadFile(e.FS(), "etc/kernel/cmdline"); err == nil {
		for i, l := range strings.Split(string(data), "\n") {
			if fl := strings.Fields(l); len(fl) > 0 {
				out = append(out, guestconf.KV{Key: "cmdline", Value: strings.Join(fl, " "), Source: guestconf.Source{File: "/etc/kernel/cmdline", Line: i + 1}})
			}
		}
	}
	return out
}

// cmdlineKey reports the grub.cfg commands and BLS keys whose arguments
// end up on the kernel command line.
func cmdlineKey(k string) bool {
	return k == "linux" || k == "linux16" || k == "linuxefi" || k == "options"
}

// cmdlineArg finds kernel arguments matching pred.
func cmdlineArgs(e *Env, pred func(arg string) bool) []Evidence {
	var out []Evidence
	for _, c := range kernelCmdlines(e) {
		for _, a := range strings.Fields(strings.Trim(c.Value, `"'`)) {
			if pred(a) {
				out = append(out, at(c.Source, a, "on the kernel command line ("+c.Key+")"))
			}
		}
	}
	return out
}

func grubPassword(_ context.Context, e *Env) Outcome {
	var ev []Evidence
	for _, c := range findGrubCfg(e) {
		cmds, err := guestconf.ReadGrubCommands(e.FS(), c)
		if err != nil {
			return readFailure(err)
		}
		su, pw := grubSuperuser(cmds)
		if su == nil || pw == nil {
			ev = append(ev, Evidence{File: guestconf.Abs(c), Note: "no `set superusers=` with a `password_pbkdf2` line: anyone at the console can edit boot entries"})
			continue
		}
		if !strings.Contains(pw.Value, "GRUB2_PASSWORD") {
			return pass(*su, *pw)
		}
		// RHEL's 01_users sources user.cfg and uses ${GRUB2_PASSWORD} from it.
		uc := strings.TrimSuffix(c, "grub.cfg") + "user.cfg"
		d, err := guestconf.ReadFile(e.FS(), uc)
		if err != nil && !isNotExist(err) {
			return readFailure(err)
		}
		if kv, ok := guestconf.Last(guestconf.ParseEqualKV(d, guestconf.Abs(uc)), "GRUB2_PASSWORD", false); ok && strings.HasPrefix(kv.Value, "grub.pbkdf2.") {
			return pass(*su, *pw, at(kv.Source, "GRUB2_PASSWORD=<hash>", "password hash in user.cfg"))
		}
		ev = append(ev, *su, *pw, Evidence{File: guestconf.Abs(uc), Note: "no GRUB2_PASSWORD=grub.pbkdf2... hash: the password is empty and not enforced (run grub2-setpassword)"})
	}
	return fail(ev...)
}

// grubSuperuser finds the first `set superusers=` and `password_pbkdf2`
// commands of a grub.cfg. The hash is never shown, only a reference to
// RHEL's ${GRUB2_PASSWORD}.
func grubSuperuser(cmds []guestconf.GrubCommand) (su, pw *Evidence) {
	for _, c := range cmds {
		w := c.Words
		if su == nil && len(w) > 1 && w[0] == "set" && strings.HasPrefix(w[1], "superusers=") {
			x := at(c.Source, strings.TrimSpace(c.Text), "superuser set")
			su = &x
		}
		if pw == nil && len(w) >= 3 && w[0] == "password_pbkdf2" {
			shown := "<hash>"
			if strings.Contains(w[2], "GRUB2_PASSWORD") {
				shown = w[2]
			}
			x := at(c.Source, "password_pbkdf2 "+w[1]+" "+shown, "PBKDF2 password set")
			pw = &x
		}
	}
	return su, pw
}

func selinuxApplies() Applicability {
	return Applicability{Families: []string{FamilyLinux}, When: func(e *Env) (bool, string) {
		if e.OS().Family == "rhel" || guestconf.Exists(e.FS(), "etc/selinux/config") {
			return true, ""
		}
		return false, fmt.Sprintf("SELinux is not configured (no /etc/selinux/config) on a %s-family guest", orUnknown(e.OS().Family))
	}}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// selinuxConfig reads a key of /etc/selinux/config.
func selinuxConfig(e *Env, key string) (guestconf.KV, bool, error) {
	data, err := guestconf.ReadFile(e.FS(), "etc/selinux/config")
	if err != nil {
		return guestconf.KV{}, false, err
	}
	kv, ok := guestconf.Last(guestconf.ParseEqualKV(data, "/etc/selinux/config"), key, false)
	return kv, ok, nil
}

// selinuxMode decides whether SELinux enforces at boot; allowPermissive
// relaxes it to "not disabled".
func selinuxMode(e *Env, allowPermissive bool) Outcome {
	kv, ok, err := selinuxConfig(e, "SELINUX")
	if err != nil {
		if isNotExist(err) {
			return fail(Evidence{File: "/etc/selinux/config", Note: "does not exist: SELinux is disabled"})
		}
		return readFailure(err)
	}
	if !ok {
		return fail(Evidence{File: "/etc/selinux/config", Note: "no SELINUX= line: SELinux is disabled"})
	}
	v := strings.ToLower(kv.Value)
	good := v == "enforcing" || (allowPermissive && v == "permissive")
	ev := []Evidence{at(kv.Source, "SELINUX="+kv.Value, "")}
	if good {
		ev[0].Note = "SELinux mode at boot"
	} else {
		ev[0].Note = "SELinux is not enforcing"
	}
	off := cmdlineArgs(e, func(a string) bool {
		return a == "selinux=0" || (!allowPermissive && a == "enforcing=0")
	})
	if len(off) > 0 {
		good = false
		ev = append(ev, off...)
	}
	return decide(good, ev...)
}

// apparmorConfigured follows CIS Debian 12 v1.1.0 1.3.1.2 ("Ensure
// AppArmor is enabled in the bootloader configuration"), whose audit greps
// every grub.cfg "linux" line for "apparmor=1" and for "security=apparmor"
// and wants none without them; SSG's grub2_enable_apparmor checks the same
// two arguments in GRUB_CMDLINE_LINUX. The kernel's compiled-in default
// (AppArmor on in Debian's kernels) is not accepted by either, so a boot
// entry without both arguments fails. Without grub.cfg or BLS entries,
// /etc/default/grub decides (SSG's check); without either, notchecked.
func apparmorConfigured(_ context.Context, e *Env) Outcome {
	var ev []Evidence
	good := true
	if e.PackagesKnown() {
		if p, ok := e.Installed("apparmor"); ok {
			ev = append(ev, Evidence{Value: p.Name + " " + p.Version, Note: "package installed"})
		} else {
			good = false
			ev = append(ev, note("package apparmor is not installed"))
		}
	} else if guestconf.Exists(e.FS(), "etc/apparmor.d") {
		ev = append(ev, fileNote("etc/apparmor.d", "AppArmor profiles present (package list unknown)"))
	} else {
		return notChecked("package list unknown and /etc/apparmor.d does not exist")
	}
	off := cmdlineArgs(e, func(a string) bool {
		return a == "apparmor=0" || (strings.HasPrefix(a, "security=") && a != "security=apparmor")
	})
	if len(off) > 0 {
		good = false
		for i := range off {
			off[i].Note = "disables AppArmor " + off[i].Note
		}
		ev = append(ev, off...)
	}
	lines, from := apparmorBootLines(e)
	if len(lines) == 0 {
		return notChecked("no kernel command line found (no grub.cfg linux line, BLS entry or GRUB_CMDLINE_LINUX in /etc/default/grub): cannot see apparmor=1 security=apparmor", ev...)
	}
	for _, l := range lines {
		args := strings.Fields(strings.Trim(l.Value, `"'`))
		var lacks []string
		for _, want := range []string{"apparmor=1", "security=apparmor"} {
			if !slices.Contains(args, want) {
				lacks = append(lacks, want)
			}
		}
		if len(lacks) > 0 {
			good = false
			ev = append(ev, at(l.Source, l.Key+" "+l.Value, "lacks "+strings.Join(lacks, " and ")+" ("+from+"); the kernel's built-in default does not count for CIS 1.3.1.2"))
		}
	}
	if good {
		ev = append(ev, note("apparmor=1 security=apparmor on every kernel command line of %s, no apparmor=0 or other security= module", from))
	}
	return decide(good, ev...)
}

// apparmorBootLines returns the boot entries' kernel command lines
// (grub.cfg linux lines and BLS options), or else GRUB_CMDLINE_LINUX as
// /etc/default/grub and grub.d/*.cfg leave it (a reference to
// $GRUB_CMDLINE_LINUX appends to the previous value).
func apparmorBootLines(e *Env) ([]guestconf.KV, string) {
	var boot, defs []guestconf.KV
	for _, kv := range kernelCmdlines(e) {
		switch kv.Key {
		case "linux", "linux16", "linuxefi", "options":
			boot = append(boot, kv)
		case "GRUB_CMDLINE_LINUX":
			v := strings.Trim(kv.Value, `"'`)
			for _, ref := range []string{"${GRUB_CMDLINE_LINUX}", "$GRUB_CMDLINE_LINUX"} {
				if strings.Contains(v, ref) && len(defs) > 0 {
					v = strings.Replace(v, ref, strings.Trim(defs[0].Value, `"'`), 1)
				}
			}
			kv.Value = v
			defs = []guestconf.KV{kv}
		}
	}
	if len(boot) > 0 {
		return boot, "the boot entries"
	}
	return defs, "GRUB_CMDLINE_LINUX"
}

// modprobeDirs are the modprobe.d directories, highest priority first.
func modprobeDirs() []string {
	return []string{"etc/modprobe.d", "run/modprobe.d", "usr/local/lib/modprobe.d", "usr/lib/modprobe.d", "lib/modprobe.d"}
}

func moduleDisabled(mod string) func(context.Context, *Env) Outcome {
	norm := func(s string) string { return strings.ReplaceAll(s, "-", "_") }
	return func(_ context.Context, e *Env) Outcome {
		files, err := guestconf.Fragments(e.FS(), modprobeDirs(), ".conf")
		if err != nil {
			return readFailure(err)
		}
		var inst, bl *Evidence
		for _, f := range files {
			data, err := guestconf.ReadFile(e.FS(), f)
			if err != nil {
				return readFailure(err)
			}
			for i, l := range strings.Split(string(data), "\n") {
				fl := strings.Fields(l)
				if len(fl) < 2 || norm(fl[1]) != norm(mod) {
					continue
				}
				src := guestconf.Source{File: guestconf.Abs(f), Line: i + 1}
				switch fl[0] {
				case "install":
					if inst == nil && len(fl) >= 3 {
						cmd := strings.Join(fl[2:], " ")
						ok := cmd == "/bin/false" || cmd == "/bin/true" || cmd == "/usr/bin/false" || cmd == "/usr/bin/true"
						x := at(src, strings.Join(fl, " "), "")
						if ok {
							x.Note = "loading runs a no-op instead"
						} else {
							x.Note = "install command does not prevent loading"
						}
						inst = &x
					}
				case "blacklist":
					if bl == nil {
						x := at(src, strings.Join(fl, " "), "not loaded automatically")
						bl = &x
					}
				}
			}
		}
		var ev []Evidence
		good := true
		if inst == nil || !strings.HasPrefix(inst.Note, "loading runs") {
			good = false
		}
		if inst != nil {
			ev = append(ev, *inst)
		} else {
			ev = append(ev, note("no `install %s /bin/false` in %s", mod, joinList(absAll(modprobeDirs()))))
		}
		if bl != nil {
			ev = append(ev, *bl)
		} else {
			good = false
			ev = append(ev, note("no `blacklist %s` in modprobe.d", mod))
		}
		return decide(good, ev...)
	}
}

func bootRules() []Rule {
	hard, comp := []string{"hardening"}, []string{"compliance"}
	return []Rule{
		{
			ID: "grub2_password", Title: "GRUB requires a password to edit boot entries", Severity: SeverityHigh,
			References:  References{CISDebian: "1.4.1", CISRHEL: "1.4.1", CISLevel: 1, ComplianceAsCode: "grub2_password", PCIDSS: []string{"2.2.6"}},
			Offline:     "grub.cfg (or user.cfg) sets superusers and a password_pbkdf2 for one of them; notapplicable without GRUB.",
			Remediation: "Debian: add `set superusers=\"root\"` and `password_pbkdf2 root <grub-mkpasswd-pbkdf2 hash>` to /etc/grub.d/40_custom and run update-grub. RHEL: grub2-setpassword.",
			Profiles:    hard,
			Applies:     grubApplies(),
			Eval:        grubPassword,
		},
		{
			ID: "file_permissions_grub2_cfg", Title: "grub.cfg is mode 0600 and owned by root", Severity: SeverityMedium,
			References:  References{CISDebian: "1.4.2", CISRHEL: "1.4.2", CISLevel: 1, ComplianceAsCode: "file_permissions_grub2_cfg", PCIDSS: []string{"2.2.6"}},
			Offline:     "The inode of every generated grub.cfg: mode 0600 or stricter, owner root; notapplicable without GRUB.",
			Remediation: "chown root:root grub.cfg && chmod 0600 grub.cfg (/boot/grub/grub.cfg or /boot/grub2/grub.cfg); update-grub on Debian writes 0444 again unless fixed after each run.",
			Profiles:    hard,
			Applies:     grubApplies(),
			Eval: func(_ context.Context, e *Env) Outcome {
				var ev []Evidence
				status := StatusPass
				for _, c := range findGrubCfg(e) {
					// findGrubCfg lists existing files and grubApplies needs one, so
					// a file vanishing here is a read error, never a pass.
					o := checkPerms(e, c, 0o600, []uint32{0}, func() Outcome {
						return readFailure(&fs.PathError{Op: "stat", Path: guestconf.Abs(c), Err: fs.ErrNotExist})
					})
					ev = append(ev, o.Evidence...)
					if statusRank(o.Status) > statusRank(status) {
						status = o.Status
					}
				}
				return Outcome{Status: status, Evidence: ev}
			},
		},
		{
			// CIS RHEL 9 1.3.1.5 "Ensure the SELinux mode is enforcing" is
			// Level 2; 1.3.1.3 "Ensure SELinux policy is configured" Level 1.
			// The Debian 12 benchmark has no SELinux item (its 1.3.1.x are
			// AppArmor's), so no CISDebian is cited.
			ID: "selinux_state", Title: "SELinux is enforcing", Severity: SeverityHigh,
			References:  References{CISRHEL: "1.3.1.5", CISLevel: 2, ComplianceAsCode: "selinux_state", PCIDSS: []string{"2.2.1"}},
			Offline:     "SELINUX=enforcing in /etc/selinux/config, and no boot entry's kernel command line has selinux=0 or enforcing=0.",
			Remediation: "Set `SELINUX=enforcing` in /etc/selinux/config, remove selinux=0/enforcing=0 from the kernel command line, and relabel (touch /.autorelabel).",
			Profiles:    comp,
			Applies:     selinuxApplies(),
			Eval:        func(_ context.Context, e *Env) Outcome { return selinuxMode(e, false) },
		},
		{
			ID: "selinux_policytype", Title: "SELinux uses the targeted (or mls) policy", Severity: SeverityMedium,
			References:  References{CISRHEL: "1.3.1.3", CISLevel: 1, ComplianceAsCode: "selinux_policytype", PCIDSS: []string{"2.2.1"}},
			Offline:     "SELINUXTYPE in /etc/selinux/config is targeted or mls.",
			Remediation: "Set `SELINUXTYPE=targeted` in /etc/selinux/config.",
			Profiles:    comp,
			Applies:     selinuxApplies(),
			Eval: func(_ context.Context, e *Env) Outcome {
				kv, ok, err := selinuxConfig(e, "SELINUXTYPE")
				if err != nil {
					if isNotExist(err) {
						return fail(Evidence{File: "/etc/selinux/config", Note: "does not exist: no SELinux policy"})
					}
					return readFailure(err)
				}
				if !ok {
					return fail(Evidence{File: "/etc/selinux/config", Note: "no SELINUXTYPE= line"})
				}
				v := strings.ToLower(kv.Value)
				return decide(v == "targeted" || v == "mls", at(kv.Source, "SELINUXTYPE="+kv.Value, "want targeted or mls"))
			},
		},
		{
			ID: "apparmor_configured", Title: "AppArmor is installed and enabled on the kernel command line (apparmor=1 security=apparmor)", Severity: SeverityHigh,
			References:  References{CISDebian: "1.3.1.2", CISLevel: 1, ComplianceAsCode: "grub2_enable_apparmor", PCIDSS: []string{"2.2.1"}},
			Offline:     "AppArmor is installed and every linux line of grub.cfg (or BLS entry) has apparmor=1 and security=apparmor; without them /etc/default/grub's GRUB_CMDLINE_LINUX decides.",
			Remediation: "Install apparmor (apt install apparmor apparmor-utils), add `apparmor=1 security=apparmor` to GRUB_CMDLINE_LINUX in /etc/default/grub (removing apparmor=0 or another security=), then update-grub.",
			Profiles:    comp,
			Applies:     Applicability{Families: []string{"debian", "suse"}},
			Eval:        apparmorConfigured,
		},
		{
			ID: "kernel_module_cramfs_disabled", Title: "The cramfs module cannot be loaded", Severity: SeverityLow,
			Applies:     onLinux(),
			References:  References{CISDebian: "1.1.1.1", CISRHEL: "1.1.1.1", CISLevel: 1, ComplianceAsCode: "kernel_module_cramfs_disabled"},
			Offline:     "modprobe.d (/etc, /run, /usr/lib, /lib) has `install cramfs /bin/false` (or /bin/true) and `blacklist cramfs`.",
			Remediation: "Create /etc/modprobe.d/cramfs.conf with `install cramfs /bin/false` and `blacklist cramfs`.",
			Profiles:    hard,
			Eval:        moduleDisabled("cramfs"),
		},
	}
}

// statusRank orders statuses for combining: pass < notchecked < error < fail.
func statusRank(s Status) int {
	switch s {
	case StatusPass:
		return 0
	case StatusNotChecked:
		return 1
	case StatusError:
		return 2
	case StatusFail:
		return 3
	}
	return 0
}
