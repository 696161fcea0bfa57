package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
)

// TestProfileSummarySaysWhenNoRuleApplies: the --summary line of a
// profile without a rule for the guest's OS carries the score's note.
func TestProfileSummarySaysWhenNoRuleApplies(t *testing.T) {
	rep := &profile.Report{Threshold: profile.SeverityMedium, Profiles: []profile.ProfileScore{
		{Name: "compliance", Rules: 20, Counts: profile.StatusCounts{NotApplicable: 20}, Note: "no rule of profile compliance applies to windows"},
		{Name: "security", Rules: 54, Applicable: 16, Counts: profile.StatusCounts{Pass: 16, NotApplicable: 38}},
	}}
	data, err := json.Marshal(&runner.ProfileData{Profiles: []runner.RootProfile{{Root: "/dev/sda2", Report: rep}}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeProfileSummary(&b, &result.Result{Data: data})
	out := b.String()
	if !strings.Contains(out, "  compliance         pass   0  fail   0  n/a  20  notchecked 0  pass rate n/a\n                     no rule of profile compliance applies to windows\n") {
		t.Errorf("summary:\n%s", out)
	}
	if strings.Count(out, "applies to") != 1 {
		t.Errorf("a note for a profile with applicable rules:\n%s", out)
	}
}
