package guestconf

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// SSHDConfigPath is where sshd reads its configuration.
const SSHDConfigPath = "etc/ssh/sshd_config"

// sshdMaxDepth is sshd's SERVCONF_MAX_DEPTH for nested Include.
const sshdMaxDepth = 16

// SSHDMaxFiles bounds the files one parse reads. sshd has no such bound,
// but depth alone does not stop fan-out: 20 Include lines per file over 6
// levels is 64 million reads of a hostile image.
const SSHDMaxFiles = 256

// SSHDOption is one keyword line of sshd_config.
type SSHDOption struct {
	Keyword string   `json:"keyword"` // as written
	Args    []string `json:"args"`
	Source
}

// Value is the arguments joined by single spaces.
func (o SSHDOption) Value() string { return strings.Join(o.Args, " ") }

// SSHDMatchOption is a keyword set inside a Match block.
type SSHDMatchOption struct {
	Criteria string `json:"criteria"` // "User alice", "all"
	SSHDOption
}

// SSHDConfig is sshd_config as sshd reads it: Include expanded in place,
// keywords case-insensitive, the first value of a keyword wins, and
// settings inside Match blocks kept apart from the global ones.
type SSHDConfig struct {
	// Files lists every file read, in order.
	Files []string
	// Global holds the keyword lines outside Match blocks, in order.
	Global []SSHDOption
	// Match holds the keyword lines inside Match blocks, in order.
	Match []SSHDMatchOption
}

// Effective returns the global value sshd uses for keyword: the first one.
func (c *SSHDConfig) Effective(keyword string) (SSHDOption, bool) {
	for _, o := range c.Global {
		if strings.EqualFold(o.Keyword, keyword) {
			return o, true
		}
	}
	return SSHDOption{}, false
}

// All returns every global line for keyword (for multi-valued keywords such
// as Port or HostKey, and for showing ignored later duplicates).
func (c *SSHDConfig) All(keyword string) []SSHDOption {
	var out []SSHDOption
	for _, o := range c.Global {
		if strings.EqualFold(o.Keyword, keyword) {
			out = append(out, o)
		}
	}
	return out
}

// MatchOverrides returns the lines that set keyword inside Match blocks.
func (c *SSHDConfig) MatchOverrides(keyword string) []SSHDMatchOption {
	var out []SSHDMatchOption
	for _, o := range c.Match {
		if strings.EqualFold(o.Keyword, keyword) {
			out = append(out, o)
		}
	}
	return out
}

// ParseSSHD reads /etc/ssh/sshd_config and everything it includes. A
// missing main file is an error wrapping fs.ErrNotExist (sshd then runs on
// built-in defaults); an unreadable included file is an error, since sshd
// refuses to start then too. An Include that matches nothing is ignored.
func ParseSSHD(fsys fs.FS) (*SSHDConfig, error) {
	c := &SSHDConfig{}
	if err := c.parseFile(fsys, SSHDConfigPath, "", 0); err != nil {
		return nil, err
	}
	return c, nil
}

// parseFile parses one file. match is the Match criteria in force when the
// file was included ("" when global). As in sshd's servconf.c, a Match
// inside an included file ends with that file.
func (c *SSHDConfig) parseFile(fsys fs.FS, name, match string, depth int) error {
	if depth > sshdMaxDepth {
		return fmt.Errorf("%s: Include nested more than %d deep", Abs(name), sshdMaxDepth)
	}
	if len(c.Files) >= SSHDMaxFiles {
		return fmt.Errorf("%s: more than %d files included", Abs(name), SSHDMaxFiles)
	}
	data, err := ReadFile(fsys, name)
	if err != nil {
		return err
	}
	file := Abs(name)
	c.Files = append(c.Files, file)
	for i, raw := range lines(data) {
		kw, args := splitSSHDLine(raw)
		if kw == "" {
			continue
		}
		src := Source{File: file, Line: i + 1}
		switch strings.ToLower(kw) {
		case "match":
			match = strings.Join(args, " ")
			if match == "" {
				match = "all"
			}
			continue
		case "include":
			for _, a := range args {
				pat := a
				if !strings.HasPrefix(pat, "/") {
					pat = "/etc/ssh/" + pat
				}
				names, err := Glob(fsys, pat)
				if err != nil {
					return fmt.Errorf("%s: Include %s: %w", src, a, err)
				}
				for _, n := range names {
					if err := c.parseFile(fsys, n, match, depth+1); err != nil {
						if errors.Is(err, fs.ErrNotExist) {
							continue // vanished between glob and read
						}
						return err
					}
				}
			}
			continue
		}
		o := SSHDOption{Keyword: kw, Args: args, Source: src}
		if match == "" {
			c.Global = append(c.Global, o)
		} else {
			c.Match = append(c.Match, SSHDMatchOption{Criteria: match, SSHDOption: o})
		}
	}
	return nil
}

// splitSSHDLine splits "Keyword value", "Keyword=value" or
// "Keyword = value" with double-quoted arguments; a token starting with #
// ends the line, as in OpenSSH's argv_split.
func splitSSHDLine(line string) (string, []string) {
	s := strings.TrimLeft(line, " \t\f\v")
	if s == "" || s[0] == '#' {
		return "", nil
	}
	end := strings.IndexAny(s, " \t=")
	if end < 0 {
		return s, nil
	}
	kw := s[:end]
	rest := strings.TrimLeft(s[end:], " \t")
	if strings.HasPrefix(rest, "=") {
		rest = strings.TrimLeft(rest[1:], " \t")
	}
	return kw, splitArgs(rest)
}

// splitArgs splits on blanks honouring double quotes and backslash escapes.
func splitArgs(s string) []string {
	var out []string
	var cur strings.Builder
	inTok, quoted := false, false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inTok = true
		case ch == '"':
			quoted = !quoted
			inTok = true
		case !quoted && (ch == ' ' || ch == '\t'):
			if inTok {
				out = append(out, cur.String())
				cur.Reset()
				inTok = false
			}
		case !quoted && !inTok && ch == '#':
			return out
		default:
			cur.WriteByte(ch)
			inTok = true
		}
	}
	if inTok {
		out = append(out, cur.String())
	}
	return out
}
