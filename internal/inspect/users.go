package inspect

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// isNologin reports shells that cannot start an interactive session.
func isNologin(shell string) bool {
	switch shell {
	case "/usr/sbin/nologin", "/sbin/nologin", "/usr/bin/nologin", "/bin/false", "/usr/bin/false",
		"/bin/sync", "/sbin/shutdown", "/sbin/halt":
		return true
	}
	return false
}

func readUsers(r *reader) ([]User, []Group) {
	passwd := r.read("users", "etc/passwd")
	if passwd == nil {
		return nil, nil
	}
	shadow := map[string]string{}
	for _, l := range strings.Split(string(r.read("users", "etc/shadow")), "\n") {
		f := strings.Split(l, ":")
		if len(f) >= 2 && f[0] != "" {
			shadow[f[0]] = f[1]
		}
	}
	uidMin := loginDefsInt(r, "UID_MIN", 1000)
	var groups []Group
	gidName := map[int64]string{}
	member := map[string][]string{}
	for _, l := range strings.Split(string(r.read("users", "etc/group")), "\n") {
		f := strings.Split(strings.TrimSpace(l), ":")
		if len(f) < 3 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		gid, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		g := Group{Name: f[0], GID: gid}
		if len(f) >= 4 && f[3] != "" {
			g.Members = strings.Split(f[3], ",")
			for _, m := range g.Members {
				member[m] = append(member[m], g.Name)
			}
		}
		gidName[gid] = g.Name
		groups = append(groups, g)
	}
	var users []User
	for n, l := range strings.Split(string(passwd), "\n") {
		l = strings.TrimRight(l, "\r")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Split(l, ":")
		if len(f) != 7 {
			r.problem("users", "/etc/passwd", fmt.Errorf("line %d: %d fields, want 7", n+1, len(f)))
			continue
		}
		uid, err1 := strconv.ParseInt(f[2], 10, 64)
		gid, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil {
			r.problem("users", "/etc/passwd", fmt.Errorf("line %d: bad uid or gid", n+1))
			continue
		}
		u := User{Name: f[0], UID: uid, GID: gid, Gecos: f[4], Home: f[5], Shell: f[6]}
		u.System = uid != 0 && uid < int64(uidMin) || uid == 65534
		u.Password = passwordState(f[1], shadow, u.Name)
		interactive := !isNologin(u.Shell)
		u.CanLogin = interactive && u.Password != "locked"
		if g, ok := gidName[gid]; ok {
			u.Groups = append(u.Groups, g)
		}
		for _, g := range member[u.Name] {
			if len(u.Groups) == 0 || u.Groups[0] != g {
				u.Groups = append(u.Groups, g)
			}
		}
		sort.Strings(u.Groups[min(1, len(u.Groups)):])
		users = append(users, u)
	}
	return users, groups
}

// passwordState classifies a password without ever reporting the hash.
// "locked" means no password login (keys may still work through sshd).
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

func loginDefsInt(r *reader, key string, def int) int {
	for _, l := range strings.Split(string(r.read("users", "etc/login.defs")), "\n") {
		f := fields(uncomment(l))
		if len(f) >= 2 && f[0] == key {
			if v, err := strconv.Atoi(f[1]); err == nil {
				return v
			}
		}
	}
	return def
}
