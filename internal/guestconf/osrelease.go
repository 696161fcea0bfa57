package guestconf

import (
	"errors"
	"io/fs"
)

// ParseOSRelease reads /etc/os-release, or /usr/lib/os-release when /etc
// has none, as a map of its KEY=value pairs with quotes removed.
func ParseOSRelease(fsys fs.FS) (map[string]string, error) {
	var err error
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		var data []byte
		data, err = ReadFile(fsys, p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		out := map[string]string{}
		for _, kv := range ParseEqualKV(data, Abs(p)) {
			out[kv.Key] = kv.Value
		}
		return out, nil
	}
	return nil, err
}
