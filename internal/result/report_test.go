package result

import "testing"

func TestReportNames(t *testing.T) {
	for _, c := range []struct {
		format string
		n      int
		want   string
	}{
		{FormatSARIF, 0, "results/j.sarif"},
		{FormatSARIF, 1, "results/j.2.sarif"},
		{FormatJUnit, 0, "results/j.junit.xml"},
		{FormatCycloneDX, 0, "results/j.cdx.json"},
		{FormatCycloneDX, 1, "results/j.2.cdx.json"},
		{FormatSPDX, 0, "results/j.spdx.json"},
	} {
		if got := ReportName("results/j", c.format, c.n); got != c.want {
			t.Errorf("%s %d: %q, want %q", c.format, c.n, got, c.want)
		}
	}
	for _, f := range Formats() {
		if IsReport(f) == (f == FormatJSON) {
			t.Errorf("%s: IsReport %v", f, IsReport(f))
		}
		if IsFinding(f) && IsSBOM(f) {
			t.Errorf("%s is both findings and an SBOM", f)
		}
	}
}
