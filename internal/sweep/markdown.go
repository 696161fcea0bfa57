package sweep

import (
	"bytes"
	"fmt"
	"strings"
	"time"
	"unicode"

	"guestkit.io/batch/internal/profile"
)

// Markdown is a short summary of r for people: totals, one row per image,
// the changes since the previous sweep and the skipped objects. Text from
// keys and results is escaped, so that a key cannot break the tables.
func Markdown(r *Report) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Compliance sweep %s\n\n", cell(r.Date))
	fmt.Fprintf(&b, "Images under %s, profiles %s, %s to %s.\n\n",
		code(r.Prefix), cell(strings.Join(r.Profiles, ", ")),
		r.StartedAt.UTC().Format(time.RFC3339), r.FinishedAt.UTC().Format(time.RFC3339))

	t := r.Totals
	c := t.ByStatus
	b.WriteString("| Images | Completed | Noncompliant | Failed | Timeout | Rejected | Missing | Invalid | Skipped |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| %d | %d | %d | %d | %d | %d | %d | %d | %d |\n\n",
		t.Images, c.Completed, c.Noncompliant, c.Failed, c.Timeout, c.Rejected, c.Missing, c.Invalid, t.Skipped)
	fmt.Fprintf(&b, "Failed rules: %s.\n", severities(t.Findings))
	if t.NotApplicable > 0 {
		fmt.Fprintf(&b, "Rules that did not apply (another OS, software not installed), counted apart: %d.\n", t.NotApplicable)
	}
	switch {
	case r.Full:
		fmt.Fprintf(&b, "\nFull sweep: all %d images read.\n", t.Read)
	case t.Carried > 0:
		fmt.Fprintf(&b, "\nRead %d images; %d unchanged since their last read (same object, profiles, threshold and ruleset %s) kept their results.\n", t.Read, t.Carried, code(r.RulesetVersion))
	}

	if len(r.Images) > 0 {
		b.WriteString("\n## Images\n\n")
		b.WriteString("| Image | Status | Critical | High | Medium | Low | Info | Error |\n")
		b.WriteString("|---|---|---:|---:|---:|---:|---:|---|\n")
		for _, img := range r.Images {
			f := img.Findings
			note := ""
			switch {
			case img.Error != nil:
				note = img.Error.Code + ": " + img.Error.Message
			case img.Status == StatusMissing:
				note = "no result at " + img.ResultKey
			case img.CarriedFrom != "":
				note = "carried from " + img.CarriedFrom
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %s |\n",
				tableCode(img.ImageKey), img.Status, f.Critical, f.High, f.Medium, f.Low, f.Info, cell(note))
		}
	}

	ch := r.Changes
	b.WriteString("\n## Changes\n\n")
	if ch.PreviousDate == "" {
		b.WriteString("No previous sweep to compare with.\n")
	} else {
		fmt.Fprintf(&b, "Since %s: new images %d, gone images %d.\n", cell(ch.PreviousDate), len(ch.NewImages), len(ch.GoneImages))
		list(&b, "New images", ch.NewImages)
		list(&b, "Gone images", ch.GoneImages)
		quiet := true
		for _, ic := range ch.Images {
			if !ic.Comparable {
				quiet = false
				fmt.Fprintf(&b, "\n%s %s.\n", code(ic.ImageKey), cell(ic.Reason))
				continue
			}
			if len(ic.NewFailures)+len(ic.Resolved)+len(ic.Undecided) == 0 {
				continue
			}
			quiet = false
			fmt.Fprintf(&b, "\n%s:\n", code(ic.ImageKey))
			rules(&b, "new", ic.NewFailures)
			rules(&b, "resolved", ic.Resolved)
			rules(&b, "undecided", ic.Undecided)
		}
		if quiet {
			b.WriteString("\nNo new, resolved or undecided failures.\n")
		}
	}

	packageChanges(&b, ch)

	if len(r.Skipped) > 0 {
		b.WriteString("\n## Skipped\n\n")
		for _, s := range r.Skipped {
			fmt.Fprintf(&b, "- %s: %s\n", code(s.Key), cell(s.Reason))
		}
	}
	return b.Bytes()
}

func severities(c profile.SeverityCounts) string {
	return fmt.Sprintf("critical %d, high %d, medium %d, low %d, info %d", c.Critical, c.High, c.Medium, c.Low, c.Info)
}

func list(b *bytes.Buffer, title string, keys []string) {
	if len(keys) == 0 {
		return
	}
	fmt.Fprintf(b, "\n%s:\n", title)
	for _, k := range keys {
		fmt.Fprintf(b, "- %s\n", code(k))
	}
}

func rules(b *bytes.Buffer, what string, rs []FailedRule) {
	for _, f := range rs {
		fmt.Fprintf(b, "- %s: %s (%s) on %s\n", what, code(f.ID), f.Severity, code(f.Root))
	}
}

// cell makes text safe in a table cell or list item: one line, no table
// separator, no HTML.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(s)
}

// code is s as a code span, with a fence longer than any run of backticks
// in s.
func code(s string) string {
	// Keys cannot hold line breaks, but roots and rule ids come from results.
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if s == "" {
		return "(none)"
	}
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}

// tableCode is code for a table cell: GFM splits cells on | even inside
// code spans, and drops the backslash of \| there.
func tableCode(s string) string { return strings.ReplaceAll(code(s), "|", `\|`) }

// Bounds of the Markdown package changes; the JSON report has the rest.
const (
	mdFleetChanges = 30
	mdImageChanges = 20
)

// packageChanges writes the fleet counts, then each image's changes.
func packageChanges(b *bytes.Buffer, ch Changes) {
	if ch.PreviousDate == "" {
		return
	}
	b.WriteString("\n## Package changes\n\n")
	if len(ch.Packages) == 0 {
		b.WriteString("No package changes.\n")
		return
	}
	for i, p := range ch.Packages {
		if i == mdFleetChanges {
			fmt.Fprintf(b, "- and %d more\n", len(ch.Packages)-i)
			break
		}
		fmt.Fprintf(b, "- %s on %s\n", fleetChange(p), plural(p.Images, "image"))
	}
	for _, ic := range ch.Images {
		d := ic.Packages
		if d == nil || len(d.Added)+len(d.Removed)+len(d.Changed) == 0 {
			continue
		}
		fmt.Fprintf(b, "\n%s: %d changed, %d added, %d removed\n", code(ic.ImageKey), len(d.Changed), len(d.Added), len(d.Removed))
		var lines []string
		for _, c := range d.Changed {
			lines = append(lines, fmt.Sprintf("- %s %s → %s%s", code(c.Name+archSuffix(c.Arch)), code(c.From), code(c.To), onRoot(c.Root)))
		}
		for _, p := range d.Added {
			lines = append(lines, fmt.Sprintf("- added %s %s%s", code(p.Name+archSuffix(p.Arch)), code(p.Version), onRoot(p.Root)))
		}
		for _, p := range d.Removed {
			lines = append(lines, fmt.Sprintf("- removed %s %s%s", code(p.Name+archSuffix(p.Arch)), code(p.Version), onRoot(p.Root)))
		}
		for i, l := range lines {
			if i == mdImageChanges {
				fmt.Fprintf(b, "- and %d more\n", len(lines)-i+d.Omitted)
				break
			}
			b.WriteString(l + "\n")
		}
		if len(lines) <= mdImageChanges && d.Omitted > 0 {
			fmt.Fprintf(b, "- and %d more\n", d.Omitted)
		}
	}
}

// fleetChange reads as "openssl 3.0.13 → 3.0.15", "gained telnetd 0.17"
// or "lost telnetd 0.17".
func fleetChange(p FleetPackageChange) string {
	name := code(p.Name + archSuffix(p.Arch))
	switch p.Kind {
	case PackageAdded:
		return "gained " + name + " " + code(p.To)
	case PackageRemoved:
		return "lost " + name + " " + code(p.From)
	}
	return name + " " + code(p.From) + " → " + code(p.To)
}

func archSuffix(arch string) string {
	if arch == "" {
		return ""
	}
	return ":" + arch
}

// onRoot names the OS root of a change.
func onRoot(root string) string { return " on " + code(root) }

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
