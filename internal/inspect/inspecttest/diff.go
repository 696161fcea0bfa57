// Package inspecttest compares inspection reports in tests: the direct
// backend's against the appliance's.
package inspecttest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
)

// Allowed is a difference the comparison accepts: a regular expression
// over JSON paths (".operating_systems[0].applications[3].version"), and
// why the two backends cannot agree there.
type Allowed struct {
	Path, Reason string
}

// Diff compares two JSON documents value by value and returns one line
// per difference that no allowed entry covers.
func Diff(a, b []byte, allowed []Allowed) ([]string, error) {
	var av, bv any
	if len(a) > 0 {
		if err := json.Unmarshal(a, &av); err != nil {
			return nil, fmt.Errorf("first document: %w", err)
		}
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &bv); err != nil {
			return nil, fmt.Errorf("second document: %w", err)
		}
	}
	res := make([]*regexp.Regexp, len(allowed))
	for i, al := range allowed {
		res[i] = regexp.MustCompile("^" + al.Path + "$")
	}
	d := differ{allowed: res}
	d.walk("", av, bv)
	return d.out, nil
}

type differ struct {
	allowed []*regexp.Regexp
	out     []string
}

func (d *differ) ok(path string) bool {
	for _, re := range d.allowed {
		if re.MatchString(path) {
			return true
		}
	}
	return false
}

func (d *differ) report(path string, a, b any) {
	d.out = append(d.out, fmt.Sprintf("%s: %s | %s", path, short(a), short(b)))
}

func (d *differ) walk(path string, a, b any) {
	if d.ok(path) {
		return
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			d.report(path, a, b)
			return
		}
		keys := map[string]bool{}
		for k := range av {
			keys[k] = true
		}
		for k := range bv {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			d.walk(path+"."+k, av[k], bv[k])
		}
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			d.report(path, a, b)
			return
		}
		for i := range av {
			d.walk(fmt.Sprintf("%s[%d]", path, i), av[i], bv[i])
		}
	default:
		if !reflect.DeepEqual(a, b) {
			d.report(path, a, b)
		}
	}
}

func short(v any) string {
	if v == nil {
		return "(absent)"
	}
	b, _ := json.Marshal(v)
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
