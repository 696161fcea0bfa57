package profile

import (
	"regexp"
	"testing"
)

// pinnedRulesetVersion is RulesetVersion() of the registry as committed.
// When this test fails, the rule registry changed: results evaluated with
// the old rules will no longer be carried forward by sweeps, which is
// right. Update the value here (and bump RulesetRevision instead when only
// a rule's logic changed, which the hash cannot see).
const pinnedRulesetVersion = "2-4076080339d2ffc8"

func TestRulesetVersionPinned(t *testing.T) {
	got := RulesetVersion()
	if !regexp.MustCompile(`^[0-9]+-[0-9a-f]{16}$`).MatchString(got) {
		t.Fatalf("RulesetVersion() = %q, want <revision>-<16 hex digits>", got)
	}
	if got != RulesetVersion() {
		t.Fatal("RulesetVersion is not stable across calls")
	}
	if got != pinnedRulesetVersion {
		t.Errorf("RulesetVersion() = %q, pinned %q: the rule registry changed; update pinnedRulesetVersion in ruleset_test.go", got, pinnedRulesetVersion)
	}
}

// TestRulesetVersionSeesRegistryFields changes each hashed field of one
// rule and checks the hash changes.
func TestRulesetVersionSeesRegistryFields(t *testing.T) {
	base := rulesetVersion(Rules())
	for name, change := range map[string]func(r *Rule){
		"title": func(r *Rule) { r.Title += "!" },
		"severity": func(r *Rule) {
			r.Severity = map[bool]Severity{true: SeverityInfo, false: SeverityCritical}[r.Severity == SeverityCritical]
		},
		"profile": func(r *Rule) { r.Profiles = append(r.Profiles, "other") },
		"family":  func(r *Rule) { r.Applies.Families = append(r.Applies.Families, "plan9") },
		"pci":     func(r *Rule) { r.References.PCIDSS = append(r.References.PCIDSS, "99.9") },
		"when": func(r *Rule) {
			if r.Applies.When != nil {
				r.Applies.When = nil
			} else {
				r.Applies.When = func(*Env) (bool, string) { return true, "" }
			}
		},
	} {
		rules := Rules()
		change(&rules[0])
		if rulesetVersion(rules) == base {
			t.Errorf("changing the %s of a rule leaves the hash alone", name)
		}
	}
}
