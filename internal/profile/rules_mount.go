package profile

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"guestkit.io/batch/internal/guestconf"
)

// tmpMount is how /tmp is mounted at boot.
type tmpMount struct {
	separate bool
	options  []string
	ev       Evidence
}

// findTmpMount looks at /etc/fstab first (systemd-fstab-generator's unit
// overrides tmp.mount), then at an enabled tmp.mount unit and its drop-ins.
func findTmpMount(e *Env) (tmpMount, error) {
	fst, err := e.Fstab()
	if err != nil && !isNotExist(err) {
		return tmpMount{}, err
	}
	if m, ok := guestconf.FindMount(fst, "/tmp"); ok {
		line := fmt.Sprintf("%s %s %s %s", m.Spec, m.MountPoint, m.Type, strings.Join(m.Options, ","))
		return tmpMount{separate: true, options: m.Options, ev: at(m.Source, line, "/tmp entry in fstab")}, nil
	}
	st, err := e.Systemd().Unit("tmp.mount")
	if err != nil {
		return tmpMount{}, err
	}
	if st.Enabled && !st.Masked {
		vals, err := guestconf.UnitValues(e.FS(), "tmp.mount", "Mount", "Options")
		if err != nil {
			return tmpMount{}, err
		}
		tm := tmpMount{separate: true, ev: Evidence{File: st.UnitFile, Note: "tmp.mount is enabled by " + st.Evidence[0].File}}
		if len(vals) > 0 {
			v := vals[len(vals)-1]
			tm.options = strings.Split(v.Value, ",")
			tm.ev = at(v.Source, "Options="+v.Value, "tmp.mount is enabled by "+st.Evidence[0].File)
		}
		return tm, nil
	}
	why := "no /tmp entry in /etc/fstab and tmp.mount is not enabled"
	if st.Masked {
		why = "no /tmp entry in /etc/fstab and tmp.mount is masked"
	}
	return tmpMount{ev: Evidence{File: "/etc/fstab", Note: why}}, nil
}

func tmpOption(opt string) func(context.Context, *Env) Outcome {
	return func(_ context.Context, e *Env) Outcome {
		tm, err := findTmpMount(e)
		if err != nil {
			return readFailure(err)
		}
		ev := tm.ev
		if slices.Contains(tm.options, opt) {
			ev.Note += "; has " + opt
			return pass(ev)
		}
		ev.Note += "; lacks " + opt
		return fail(ev)
	}
}

// tmpSeparate makes the /tmp option rules notapplicable when /tmp is not
// a separate mount: CIS 1.1.2.1.2-4 ("If a separate partition exists for
// /tmp, verify that the nodev option is set") and SSG's platform
// mount[tmp] accept that; partition_for_tmp fails it once.
func tmpSeparate() Applicability {
	return Applicability{Families: []string{FamilyLinux}, When: func(e *Env) (bool, string) {
		tm, err := findTmpMount(e)
		if err != nil {
			return true, "" // let Eval report the error
		}
		if !tm.separate {
			return false, "/tmp is not a separate mount (" + tm.ev.Note + "); see partition_for_tmp"
		}
		return true, ""
	}}
}

func mountRules() []Rule {
	hard := []string{"hardening"}
	out := []Rule{{
		ID: "partition_for_tmp", Title: "/tmp is a separate mount", Severity: SeverityLow,
		Applies:     onLinux(),
		References:  References{CISDebian: "1.1.2.1.1", CISRHEL: "1.1.2.1.1", CISLevel: 1, ComplianceAsCode: "partition_for_tmp"},
		Remediation: "Mount /tmp separately: a tmpfs line in /etc/fstab, or `systemctl enable tmp.mount`.",
		Offline:     "/etc/fstab has a /tmp line, or tmp.mount is enabled (systemd wants links) with its drop-ins.",
		Profiles:    hard,
		Eval: func(_ context.Context, e *Env) Outcome {
			tm, err := findTmpMount(e)
			if err != nil {
				return readFailure(err)
			}
			return decide(tm.separate, tm.ev)
		},
	}}
	for _, o := range []struct{ opt, cis, why string }{
		{"nodev", "1.1.2.1.2", "no device files on /tmp"},
		{"nosuid", "1.1.2.1.3", "no SUID programs run from /tmp"},
		{"noexec", "1.1.2.1.4", "no programs run from /tmp"},
	} {
		out = append(out, Rule{
			ID: "mount_option_tmp_" + o.opt, Title: "/tmp is mounted " + o.opt + " (" + o.why + ")", Severity: SeverityMedium,
			References:  References{CISDebian: o.cis, CISRHEL: o.cis, CISLevel: 1, ComplianceAsCode: "mount_option_tmp_" + o.opt},
			Remediation: fmt.Sprintf("Add %s to the options of /tmp in /etc/fstab (or to Options= of tmp.mount via a drop-in in /etc/systemd/system/tmp.mount.d/).", o.opt),
			Offline:     "The options of /tmp in /etc/fstab, else of an enabled tmp.mount and its drop-ins, include " + o.opt + "; notapplicable when /tmp is not separate.",
			Profiles:    hard,
			Applies:     tmpSeparate(),
			Eval:        tmpOption(o.opt),
		})
	}
	return out
}
