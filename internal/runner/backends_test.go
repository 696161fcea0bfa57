package runner_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
)

// allowedDifferences are the only ways the direct backend's data may
// differ from the appliance's, each with its reason. A path is the JSON
// path of a value (".operating_systems[0].applications[3].version").
var allowedDifferences = []struct {
	path, reason string
}{
	// None yet: add one only with the reason it cannot be the same.
}

// compareBackends requires the direct backend's result data to equal the
// appliance's, field by field, but for allowedDifferences; and the
// results to say which backend ran.
func compareBackends(t *testing.T, appliance, direct *result.Result) {
	t.Helper()
	if appliance.Backend == nil || appliance.Backend.Used != spec.BackendAppliance {
		t.Errorf("appliance run: backend %+v", appliance.Backend)
	}
	if direct.Backend == nil || direct.Backend.Used != spec.BackendDirect || direct.Backend.Fallback != "" || direct.Accelerator != nil {
		t.Errorf("direct run: backend %+v, accelerator %+v", direct.Backend, direct.Accelerator)
	}
	if direct.Status != appliance.Status || direct.ExitCode != appliance.ExitCode || codeOf(direct) != codeOf(appliance) {
		t.Errorf("direct: %s exit %d %s; appliance: %s exit %d %s", direct.Status, direct.ExitCode, codeOf(direct),
			appliance.Status, appliance.ExitCode, codeOf(appliance))
	}
	var a, d any
	if len(appliance.Data) > 0 {
		if err := json.Unmarshal(appliance.Data, &a); err != nil {
			t.Fatal(err)
		}
	}
	if len(direct.Data) > 0 {
		if err := json.Unmarshal(direct.Data, &d); err != nil {
			t.Fatal(err)
		}
	}
	var diffs []string
	diff("", a, d, &diffs)
	for _, p := range diffs {
		t.Errorf("direct differs from the appliance: %s", p)
	}
}

func codeOf(r *result.Result) string {
	if r.Error == nil {
		return ""
	}
	return string(r.Error.Code)
}

func allowed(path string) bool {
	for _, a := range allowedDifferences {
		if regexp.MustCompile("^" + a.path + "$").MatchString(path) {
			return true
		}
	}
	return false
}

// diff appends one line per differing leaf (or missing key) under path.
func diff(path string, a, b any, out *[]string) {
	if allowed(path) {
		return
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: appliance %s, direct %s", path, short(a), short(b)))
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
			diff(path+"."+k, av[k], bv[k], out)
		}
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			*out = append(*out, fmt.Sprintf("%s: appliance %s, direct %s", path, short(a), short(b)))
			return
		}
		for i := range av {
			diff(fmt.Sprintf("%s[%d]", path, i), av[i], bv[i], out)
		}
	default:
		if !reflect.DeepEqual(a, b) {
			*out = append(*out, fmt.Sprintf("%s: appliance %s, direct %s", path, short(a), short(b)))
		}
	}
}

func short(v any) string {
	b, _ := json.Marshal(v)
	s := string(b)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return strings.TrimSpace(s)
}
