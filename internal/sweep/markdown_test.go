package sweep

import (
	"strings"
	"testing"

	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
)

func TestMarkdown(t *testing.T) {
	prevPlanned, _, pid := sweepOf(t, "2026-03-01", "vms/a.img", "vms/b.img", "vms/gone.img")
	prev := Build(BuildInput{
		Date: "2026-03-01", Profiles: []string{"security", "hardening"}, Planned: prevPlanned,
		Results: map[string]*result.Result{
			pid["vms/a.img"]: profileResult(t, pid["vms/a.img"], true, root(sda1,
				rule("r1", profile.SeverityHigh, profile.StatusFail), rule("r3", profile.SeverityLow, profile.StatusFail))),
			pid["vms/b.img"]: profileResult(t, pid["vms/b.img"], false, root(sda1)),
		},
	})
	planned, skipped, id := sweepOf(t, "2026-03-02", "vms/a.img", "vms/b.img", "vms/x|y`z.img", "vms/a.img.sha256")
	r := Build(BuildInput{
		Date: "2026-03-02", Prefix: "vms/", Profiles: []string{"security", "hardening"}, StartedAt: start, FinishedAt: finish,
		Planned: planned, Skipped: skipped, Previous: prev,
		Results: map[string]*result.Result{
			id["vms/a.img"]: profileResult(t, id["vms/a.img"], true, root(sda1,
				rule("r1", profile.SeverityHigh, profile.StatusPass),
				rule("r2", profile.SeverityCritical, profile.StatusFail),
				rule("r3", profile.SeverityLow, profile.StatusError),
				rule("r4", profile.SeverityLow, profile.StatusNotApplicable))),
			id["vms/b.img"]: errorResult(id["vms/b.img"], result.StatusRejected, result.CodeImageCorrupt, result.PhaseProbe, "bad <b>header</b> | line\nnext"),
		},
	})
	md := string(Markdown(r))
	want := []string{
		"# Compliance sweep 2026-03-02\n",
		"Images under `vms/`, profiles security, hardening, 2026-03-02T01:30:00Z to 2026-03-02T03:10:00Z.\n",
		"| Images | Completed | Noncompliant | Failed | Timeout | Rejected | Missing | Invalid | Skipped |\n",
		"| 3 | 0 | 1 | 0 | 0 | 1 | 1 | 0 | 1 |\n",
		"Failed rules: critical 1, high 0, medium 0, low 0, info 0.\n",
		"Rules that did not apply (another OS, software not installed), counted apart: 1.\n",
		"| `vms/a.img` | noncompliant | 1 | 0 | 0 | 0 | 0 |  |\n",
		"| `vms/b.img` | rejected | 0 | 0 | 0 | 0 | 0 | image_corrupt: bad &lt;b&gt;header&lt;/b&gt; \\| line next |\n",
		"| ``vms/x\\|y`z.img`` | missing | 0 | 0 | 0 | 0 | 0 | no result at results/" + id["vms/x|y`z.img"] + ".json |\n",
		"Since 2026-03-01: new images 1, gone images 1.\n",
		"New images:\n- ``vms/x|y`z.img``\n",
		"Gone images:\n- `vms/gone.img`\n",
		"`vms/a.img`:\n- new: `r2` (critical) on `/dev/sda1`\n- resolved: `r1` (high) on `/dev/sda1`\n- undecided: `r3` (low) on `/dev/sda1`\n",
		"`vms/b.img` not comparable: 2026-03-02: rejected (image_corrupt).\n",
		"## Skipped\n\n- `vms/a.img.sha256`: sidecar file (.sha256), not a disk image\n",
	}
	for _, w := range want {
		if !strings.Contains(md, w) {
			t.Errorf("markdown lacks %q:\n%s", w, md)
		}
	}

	first := string(Markdown(Build(BuildInput{Date: "2026-03-02", Prefix: ""})))
	for _, w := range []string{"Images under (none)", "| 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 |", "No previous sweep to compare with.\n"} {
		if !strings.Contains(first, w) {
			t.Errorf("first sweep lacks %q:\n%s", w, first)
		}
	}
	if strings.Contains(first, "## Images") || strings.Contains(first, "## Skipped") || strings.Contains(first, "did not apply") {
		t.Errorf("empty sections:\n%s", first)
	}

	same := string(Markdown(Build(BuildInput{Date: "2026-03-03", Previous: &Report{APIVersion: APIVersion, Date: "2026-03-02"}})))
	if !strings.Contains(same, "No new, resolved or undecided failures.") {
		t.Errorf("quiet night:\n%s", same)
	}
}
