package profile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	readmeRulesBegin = "<!-- rules:begin -->"
	readmeRulesEnd   = "<!-- rules:end -->"
)

// readmeRuleTable renders the README's rule table from the registry.
func readmeRuleTable(rules []Rule) string {
	cell := func(s string) string {
		if s == "" {
			return "—"
		}
		return strings.ReplaceAll(s, "|", `\|`)
	}
	code := func(s string) string {
		if s == "" {
			return "none"
		}
		return "`" + s + "`"
	}
	var b strings.Builder
	b.WriteString("| rule | OS | CIS Debian 12 / Ubuntu 24.04 | CIS RHEL 9 | CIS Windows Server 2022 | CIS level | SSG (ComplianceAsCode) id | profiles | decided offline from |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rules {
		id := "`" + r.ID + "`"
		if r.Legacy {
			id += " (legacy)"
		}
		level := ""
		switch {
		case r.References.CISLevel > 0:
			level = fmt.Sprintf("L%d", r.References.CISLevel)
		case r.References.CISWindows != "":
			level = "NG" // Next Generation Windows Security only
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", id, strings.Join(r.Applies.Families, ", "),
			cell(r.References.CISDebian), cell(r.References.CISRHEL), cell(r.References.CISWindows), cell(level),
			code(r.References.ComplianceAsCode), strings.Join(r.Profiles, ", "), cell(r.Offline))
	}
	return b.String()
}

// TestReadmeRuleTable: README.md's rule table is the registry's. Run with
// GUESTKIT_UPDATE_README=1 to rewrite it.
func TestReadmeRuleTable(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(readme, []byte(readmeRulesBegin))
	j := bytes.Index(readme, []byte(readmeRulesEnd))
	if i < 0 || j < i {
		t.Fatalf("README.md has no %s ... %s block", readmeRulesBegin, readmeRulesEnd)
	}
	start := i + len(readmeRulesBegin)
	want := "\n" + readmeRuleTable(Rules())
	if string(readme[start:j]) == want {
		return
	}
	if os.Getenv("GUESTKIT_UPDATE_README") == "1" {
		out := append(append(append([]byte{}, readme[:start]...), want...), readme[j:]...)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the rule table of %s", path)
		return
	}
	t.Errorf("README.md's rule table differs from the registry: run GUESTKIT_UPDATE_README=1 go test -run TestReadmeRuleTable ./internal/profile/")
}
