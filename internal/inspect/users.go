package inspect

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/guestconf"
)

// maxKeyChecks bounds the authorized_keys lookups, one or two Stat calls
// each (a libguestfs round trip), for images with thousands of accounts.
const maxKeyChecks = 256

// isNologin reports shells that cannot start an interactive session.
// By base name, so that /usr/local/sbin/nologin counts too.
func isNologin(shell string) bool {
	switch path.Base(shell) {
	case "nologin", "false", "true", "sync", "shutdown", "halt":
		return true
	}
	return false
}

// readUsers reads /etc/passwd, /etc/shadow, /etc/group and login.defs.
//
// System: a uid outside login.defs' UID_MIN..UID_MAX (default 1000..60000),
// which makes nobody (65534) a system account. root is not "system": it is
// the superuser, and reviews look at it apart.
//
// CanLogin: an interactive shell (not nologin, false, ...) and a way in that
// the image shows: a password that is set or empty, or an SSH
// authorized_keys file that sshd would read (a locked password does not
// stop key logins under UsePAM). Password says which; it is never the hash.
func readUsers(r *reader) ([]User, []Group) {
	passwd := r.read("users", "etc/passwd")
	if passwd == nil {
		return nil, nil
	}
	shadow := readShadow(r)
	uidMin, uidMax := int64(1000), int64(60000)
	if defs, err := guestconf.ParseLoginDefs(r.fsys); err == nil {
		uidMin = loginDefsInt(defs, "UID_MIN", uidMin)
		uidMax = loginDefsInt(defs, "UID_MAX", uidMax)
	} else if !errors.Is(err, fs.ErrNotExist) {
		r.problem("users", "/etc/login.defs", err)
	}
	groups, gidName, member := readGroups(r)
	keys := newKeyChecker(r)
	var users []User
	for _, a := range guestconf.ParseAccounts(passwd, "/etc/passwd") {
		// Never quote the line: its second field may be a hash.
		f := a.Fields
		if len(f) != 7 || f[0] == "" {
			r.problem("users", a.File, fmt.Errorf("line %d: %d fields, want 7 and a name", a.Line, len(f)))
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			r.problem("users", a.File, fmt.Errorf("line %d: bad uid or gid", a.Line))
			continue
		}
		u := User{Name: f[0], UID: int64(uid), GID: int64(gid), Gecos: f[4], Home: f[5], Shell: f[6]}
		u.System = u.UID != 0 && (u.UID < uidMin || u.UID > uidMax)
		u.Password = passwordState(f[1], shadow, u.Name)
		if !isNologin(u.Shell) {
			u.CanLogin = u.Password == "set" || u.Password == "empty" || keys.has(u)
		}
		primary, ok := gidName[u.GID]
		if ok {
			u.Groups = append(u.Groups, primary)
		}
		var supp []string
		for _, g := range member[u.Name] {
			if g != primary && !slices.Contains(supp, g) {
				supp = append(supp, g)
			}
		}
		slices.Sort(supp)
		u.Groups = append(u.Groups, supp...)
		users = append(users, u)
	}
	return users, groups
}

// readShadow maps user names to their password field; the first entry of a
// name wins, as getspnam returns it.
func readShadow(r *reader) map[string]string {
	shadow := map[string]string{}
	for _, a := range guestconf.ParseAccounts(r.read("users", "etc/shadow"), "/etc/shadow") {
		if len(a.Fields) < 2 || a.Fields[0] == "" {
			r.problem("users", a.File, fmt.Errorf("line %d: no password field", a.Line))
			continue
		}
		if _, dup := shadow[a.Fields[0]]; !dup {
			shadow[a.Fields[0]] = a.Fields[1]
		}
	}
	return shadow
}

// readGroups parses /etc/group; it also returns gid → name (first entry
// wins) and user → groups listing it as a member.
func readGroups(r *reader) ([]Group, map[int64]string, map[string][]string) {
	var groups []Group
	gidName := map[int64]string{}
	member := map[string][]string{}
	for _, a := range guestconf.ParseAccounts(r.read("users", "etc/group"), "/etc/group") {
		f := a.Fields
		if len(f) < 3 || len(f) > 4 || f[0] == "" {
			r.problem("users", a.File, fmt.Errorf("line %d: %d fields, want 4 and a name", a.Line, len(f)))
			continue
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			r.problem("users", a.File, fmt.Errorf("line %d: bad gid", a.Line))
			continue
		}
		g := Group{Name: f[0], GID: int64(gid)}
		if len(f) == 4 {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" && !slices.Contains(g.Members, m) {
					g.Members = append(g.Members, m)
					member[m] = append(member[m], g.Name)
				}
			}
		}
		if _, dup := gidName[g.GID]; !dup {
			gidName[g.GID] = g.Name
		}
		groups = append(groups, g)
	}
	return groups, gidName, member
}

// passwordState classifies a password without ever reporting the hash:
// set, locked (! or * prefix: no password login), empty, or none (passwd
// says x and shadow has no entry, so pam_unix refuses every password).
func passwordState(passwdField string, shadow map[string]string, name string) string {
	p := passwdField
	if p == "x" {
		s, ok := shadow[name]
		if !ok {
			return "none"
		}
		p = s
	}
	switch {
	case p == "":
		return "empty"
	case strings.HasPrefix(p, "!") || strings.HasPrefix(p, "*"):
		return "locked"
	default:
		return "set"
	}
}

// loginDefsInt returns key's value as shadow-utils reads it (the last
// definition), or def.
func loginDefsInt(defs *guestconf.LoginDefs, key string, def int64) int64 {
	if kv, ok := defs.Get(key); ok {
		if v, err := strconv.ParseInt(kv.Value, 10, 64); err == nil && v >= 0 {
			return v
		}
	}
	return def
}

// keyChecker finds the authorized_keys files sshd would read for a user.
type keyChecker struct {
	r       *reader
	files   []string // AuthorizedKeysFile patterns; nil when sshd is absent or keys are off
	rootOK  bool     // PermitRootLogin lets root in with a key
	checked int
}

func newKeyChecker(r *reader) *keyChecker {
	k := &keyChecker{r: r}
	if !r.exists(guestconf.SSHDConfigPath) && !r.exists("usr/sbin/sshd") {
		return k
	}
	k.files = []string{".ssh/authorized_keys", ".ssh/authorized_keys2"}
	k.rootOK = true // prohibit-password, sshd's default since 7.0
	cfg, err := guestconf.ParseSSHD(r.fsys)
	if err != nil {
		return k // readSSH reports it
	}
	if o, ok := cfg.Effective("pubkeyauthentication"); ok && strings.EqualFold(o.Value(), "no") {
		k.files = nil
	}
	if o, ok := cfg.Effective("authorizedkeysfile"); ok && k.files != nil {
		k.files = o.Args
		if len(o.Args) == 1 && strings.EqualFold(o.Args[0], "none") {
			k.files = nil
		}
	}
	if o, ok := cfg.Effective("permitrootlogin"); ok {
		v := strings.ToLower(o.Value())
		k.rootOK = v != "no" && v != "forced-commands-only"
	}
	return k
}

// has reports whether u has a non-empty authorized_keys file. Match
// blocks, AllowUsers and AuthorizedKeysCommand are not considered.
func (k *keyChecker) has(u User) bool {
	if len(k.files) == 0 || (u.UID == 0 && !k.rootOK) || k.checked >= maxKeyChecks {
		return false
	}
	k.checked++
	for _, pat := range k.files {
		p := expandSSHTokens(pat, u)
		if !strings.HasPrefix(p, "/") {
			p = path.Join(u.Home, p)
		}
		name, ok := guest.Clean(p)
		if !ok {
			continue
		}
		if fi, err := guestconf.Stat(k.r.fsys, name); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
			return true
		}
	}
	return false
}

// expandSSHTokens expands the %h, %u, %U and %% tokens of sshd_config.
func expandSSHTokens(s string, u User) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'h':
			b.WriteString(u.Home)
		case 'u':
			b.WriteString(u.Name)
		case 'U':
			b.WriteString(strconv.FormatInt(u.UID, 10))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
