package names

import (
	"regexp"
	"slices"
	"testing"
)

func TestRegistry(t *testing.T) {
	all := All()
	style := regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	for i, n := range all {
		if !style.MatchString(n) {
			t.Errorf("%q: a name is lower-case words joined by '-' (it is a flag value and a report key)", n)
		}
		if slices.Contains(all[:i], n) {
			t.Errorf("%q listed twice", n)
		}
	}
	for _, n := range Defaults() {
		if !slices.Contains(all, n) {
			t.Errorf("default %q is not a profile", n)
		}
	}
}
