package profile

import (
	"regexp"
	"slices"
	"testing"

	"guestkit.io/batch/internal/profile/names"
)

// frameworkOnly: non-legacy rules kept out of the seed profiles, and why.
var frameworkOnly = map[string]string{
	"accounts_password_max_age_90_days": "PCI-DSS 8.3.9's 90 days contradicts CIS 5.4.1.1's 365: a default run must not fail a CIS-hardened image",
}

// knownFamilies are the families a rule may name.
var knownFamilies = []string{FamilyLinux, "debian", "rhel", "suse", "alpine", "arch", FamilyWindows}

func TestRegistryIntegrity(t *testing.T) {
	rules := Rules()
	if len(rules) < 40 {
		t.Fatalf("%d rules, want at least 40", len(rules))
	}
	seen := map[string]bool{}
	idRe := regexp.MustCompile(`^([a-z0-9_-]+|CIS-[A-Z0-9.-]+)$`)
	for _, r := range rules {
		if seen[r.ID] {
			t.Errorf("duplicate rule id %s", r.ID)
		}
		seen[r.ID] = true
		if !idRe.MatchString(r.ID) {
			t.Errorf("%s: id style", r.ID)
		}
		if r.Offline == "" {
			t.Errorf("%s: no Offline text (how it is decided from files on disk)", r.ID)
		}
		if r.Title == "" || r.Remediation == "" || r.Eval == nil || r.Severity.Rank() == 0 || r.Severity == SeverityNone {
			t.Errorf("%s: incomplete rule", r.ID)
		}
		if len(r.Profiles) == 0 {
			t.Errorf("%s: in no profile", r.ID)
		}
		if len(r.Applies.Families) == 0 {
			t.Errorf("%s: names no OS family (Applies.Families)", r.ID)
		}
		for _, f := range r.Applies.Families {
			if !slices.Contains(knownFamilies, f) {
				t.Errorf("%s: unknown OS family %q", r.ID, f)
			}
		}
		if slices.Contains(r.Applies.Families, FamilyWindows) && len(r.Applies.Families) > 1 {
			t.Errorf("%s: a rule is for Windows or for Linux, not both: %v", r.ID, r.Applies.Families)
		}
		if !r.Legacy && !slices.ContainsFunc(names.Defaults(), func(p string) bool { return slices.Contains(r.Profiles, p) }) && frameworkOnly[r.ID] == "" {
			t.Errorf("%s: in no seed profile", r.ID)
		}
	}
	for _, id := range []string{"CIS-SSH-001", "CIS-SSH-002", "CIS-FW-001", "CIS-1.6.1.1", "CIS-5.4.1.1", "CIS-2.2.1", "CIS-1.1.3"} {
		if !seen[id] {
			t.Errorf("legacy id %s missing", id)
		}
	}
	for _, p := range Profiles() {
		if len(p.Rules) == 0 {
			t.Errorf("profile %s is empty", p.Name)
		}
		for _, id := range p.Rules {
			if !seen[id] {
				t.Errorf("profile %s names unknown rule %s", p.Name, id)
			}
		}
	}
}

// TestProfilesAreTheNames: the engine has a profile for every registered
// name and no other, in the registry's order, and rules name only those.
func TestProfilesAreTheNames(t *testing.T) {
	var got []string
	for _, p := range Profiles() {
		got = append(got, p.Name)
	}
	if !slices.Equal(got, names.All()) {
		t.Errorf("profiles %v, names.All() %v", got, names.All())
	}
	for _, r := range Rules() {
		for _, p := range r.Profiles {
			if !slices.Contains(names.All(), p) {
				t.Errorf("%s: unknown profile %q", r.ID, p)
			}
		}
	}
}
