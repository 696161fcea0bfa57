package profile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
)

// RulesetRevision is bumped by hand whenever the logic of a rule changes
// (what Eval or Applies.When decide, what evidence they give) without a
// change to the registry fields RulesetVersion hashes. Code cannot be
// hashed, so this number is what invalidates the results a sweep would
// otherwise carry forward from a night that ran the old logic.
const RulesetRevision = 2

// rulesetEntry is what RulesetVersion hashes of one rule.
type rulesetEntry struct {
	ID         string     `json:"id"`
	Title      string     `json:"title"`
	Severity   Severity   `json:"severity"`
	References References `json:"references"`
	Profiles   []string   `json:"profiles"`
	Families   []string   `json:"families"`
	// When says whether the rule has an extra applicability condition; the
	// condition itself is code (RulesetRevision covers it).
	When bool `json:"when"`
}

// RulesetVersion names the rule registry a profile result was evaluated
// with: "<RulesetRevision>-<hash>", the hash being the first 16 hex digits
// of the SHA-256 of every rule's id, title, severity, references,
// profiles and applicability, in registry order. Two runners with the
// same RulesetVersion decide every rule alike, so a sweep carries a result
// forward only when its ruleset_version is the dispatcher's; a rule added,
// removed, retitled, re-rated or re-mapped changes the hash, and a change
// of logic alone needs RulesetRevision bumped.
func RulesetVersion() string { return rulesetVersion(Rules()) }

func rulesetVersion(rules []Rule) string {
	entries := make([]rulesetEntry, 0, len(rules))
	for _, r := range rules {
		entries = append(entries, rulesetEntry{
			ID: r.ID, Title: r.Title, Severity: r.Severity, References: r.References,
			Profiles: slices.Clone(r.Profiles), Families: slices.Clone(r.Applies.Families),
			When: r.Applies.When != nil,
		})
	}
	data, err := json.Marshal(entries)
	if err != nil {
		// Strings, ints and slices of them always encode.
		panic(fmt.Sprintf("encode the rule registry: %v", err))
	}
	sum := sha256.Sum256(data)
	return fmt.Sprintf("%d-%s", RulesetRevision, hex.EncodeToString(sum[:])[:16])
}
