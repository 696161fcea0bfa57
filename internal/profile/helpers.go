package profile

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/guestconf"
)

func pass(ev ...Evidence) Outcome { return Outcome{Status: StatusPass, Evidence: ev} }
func fail(ev ...Evidence) Outcome { return Outcome{Status: StatusFail, Evidence: ev} }

func notChecked(note string, ev ...Evidence) Outcome {
	return Outcome{Status: StatusNotChecked, Evidence: append(ev, Evidence{Note: note})}
}

// decide is pass when ok, fail otherwise.
func decide(ok bool, ev ...Evidence) Outcome {
	if ok {
		return pass(ev...)
	}
	return fail(ev...)
}

// at is evidence for a value seen at a source.
func at(src guestconf.Source, value, note string) Evidence {
	return Evidence{File: src.File, Line: src.Line, Value: value, Note: note}
}

// note is evidence without a location.
func note(format string, a ...any) Evidence { return Evidence{Note: fmt.Sprintf(format, a...)} }

// fileNote is evidence about a whole file.
func fileNote(file, format string, a ...any) Evidence {
	return Evidence{File: guestconf.Abs(file), Note: fmt.Sprintf(format, a...)}
}

// readFailure turns a read error into an outcome: a file over the read
// bound is notchecked (a bound, by design), anything else is an error.
func readFailure(err error) Outcome {
	file := ""
	var pe *fs.PathError
	if errors.As(err, &pe) {
		file = guestconf.Abs(strings.TrimPrefix(pe.Path, "/"))
	}
	if errors.Is(err, guest.ErrTooLarge) {
		return Outcome{Status: StatusNotChecked, Evidence: []Evidence{{File: file, Note: "not read: " + err.Error()}}}
	}
	return Outcome{Status: StatusError, Evidence: []Evidence{{File: file, Note: "could not read: " + err.Error()}}}
}

// modeString renders a permission mode as octal with special bits.
func modeString(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("%04o", v)
}

// ownerString renders an owner, or "owner unknown".
func ownerString(fi fs.FileInfo) string {
	if o, ok := guest.OwnerOf(fi); ok {
		return fmt.Sprintf("uid=%d gid=%d", o.UID, o.GID)
	}
	return "owner unknown"
}

// checkPerms decides a file-permission rule: the file's permission bits
// must not exceed maxPerm and, when owners are known, it must be owned by
// uid 0 and by a gid in gids (any gid when gids is nil). missing is the
// outcome for an absent file.
func checkPerms(e *Env, name string, maxPerm fs.FileMode, gids []uint32, missing func() Outcome) Outcome {
	fi, err := guestconf.Stat(e.FS(), name)
	if err != nil {
		if isNotExist(err) {
			return missing()
		}
		return readFailure(err)
	}
	mode := fi.Mode()
	val := modeString(mode) + " " + ownerString(fi)
	var problems []string
	extra := mode.Perm() &^ maxPerm
	if extra != 0 || mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		problems = append(problems, fmt.Sprintf("mode %s is more permissive than %04o", modeString(mode), uint32(maxPerm)))
	}
	o, known := guest.OwnerOf(fi)
	if known {
		if o.UID != 0 {
			problems = append(problems, fmt.Sprintf("owner uid %d is not root", o.UID))
		}
		if gids != nil && !containsU32(gids, o.GID) {
			problems = append(problems, fmt.Sprintf("group gid %d is not one of %v", o.GID, gids))
		}
	}
	if len(problems) > 0 {
		return fail(Evidence{File: guestconf.Abs(name), Value: val, Note: strings.Join(problems, "; ")})
	}
	if !known {
		return notChecked("mode is compliant but the filesystem does not report owners", Evidence{File: guestconf.Abs(name), Value: val})
	}
	return pass(Evidence{File: guestconf.Abs(name), Value: val, Note: fmt.Sprintf("mode at most %04o, owned by root", uint32(maxPerm))})
}

func containsU32(s []uint32, v uint32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// groupGID looks a group up in /etc/group.
func groupGID(e *Env, name string) (uint32, bool) {
	ents, err := guestconf.ReadAccounts(e.FS(), "etc/group")
	if err != nil {
		return 0, false
	}
	for _, a := range ents {
		if f := a.Fields; len(f) >= 3 && f[0] == name {
			var gid uint32
			if _, err := fmt.Sscanf(f[2], "%d", &gid); err == nil {
				return gid, true
			}
		}
	}
	return 0, false
}

func joinList(s []string) string { return strings.Join(s, ", ") }

func firstLines(b []byte, n int) string {
	ls := strings.SplitN(string(b), "\n", n+1)
	if len(ls) > n {
		ls = ls[:n]
	}
	return strings.Join(ls, " | ")
}

// limitList keeps evidence lists readable: the first max items and a note
// with the total.
func limitList(paths []string, max int, mk func(string) Evidence) []Evidence {
	var out []Evidence
	for i, p := range paths {
		if i == max {
			out = append(out, note("%d more not listed (%d in total)", len(paths)-max, len(paths)))
			break
		}
		out = append(out, mk(p))
	}
	return out
}

// whenInstalledOrFile applies a rule when one of pkgs is installed or one
// of files exists; with an unknown package list only the files decide.
func whenInstalledOrFile(what string, pkgs []string, files []string) func(*Env) (bool, string) {
	return func(e *Env) (bool, string) {
		if _, ok := e.Installed(pkgs...); ok {
			return true, ""
		}
		for _, f := range files {
			if guestconf.Exists(e.FS(), f) {
				return true, ""
			}
		}
		if !e.PackagesKnown() {
			return false, fmt.Sprintf("%s not found: none of %s exists and the package list is unknown", what, joinList(absAll(files)))
		}
		return false, fmt.Sprintf("%s not installed: no package %s and none of %s exists", what, joinList(pkgs), joinList(absAll(files)))
	}
}

func absAll(fs []string) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = guestconf.Abs(f)
	}
	return out
}
