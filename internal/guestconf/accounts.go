package guestconf

import (
	"io/fs"
	"strings"
)

// AccountEntry is one line of /etc/passwd, /etc/shadow or /etc/group.
type AccountEntry struct {
	// Fields are the colon-separated fields, untrimmed. Callers must not
	// show a shadow or passwd password field: it may be a hash.
	Fields []string
	Source
}

// ParseAccounts splits an account file (passwd, shadow, group) into its
// entries as glibc's files backend reads them: leading blanks skipped,
// empty and # lines ignored. NIS compat lines (+name, -name) are left out
// too, and a CRLF line end is dropped. Field counts are not checked:
// callers decide what a short line means.
func ParseAccounts(data []byte, file string) []AccountEntry {
	var out []AccountEntry
	for i, l := range strings.Split(string(data), "\n") {
		l = strings.TrimLeft(strings.TrimRight(l, "\r"), " \t\v\f\r")
		if l == "" || l[0] == '#' || l[0] == '+' || l[0] == '-' {
			continue
		}
		out = append(out, AccountEntry{Fields: strings.Split(l, ":"), Source: Source{File: file, Line: i + 1}})
	}
	return out
}

// ReadAccounts reads and splits an account file such as etc/passwd.
func ReadAccounts(fsys fs.FS, name string) ([]AccountEntry, error) {
	data, err := ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	return ParseAccounts(data, Abs(name)), nil
}
