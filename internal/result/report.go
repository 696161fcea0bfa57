package result

import "fmt"

// Report formats: the JSON result itself, and the documents written beside
// it. This is the one list: the runner's --report-format, a spec's
// output.format and the dispatcher's report grant all read it.
const (
	FormatJSON  = "json"
	FormatSARIF = "sarif"
	FormatJUnit = "junit"
	// FormatCycloneDX and FormatSPDX are SBOMs of the inspection's
	// packages (CycloneDX 1.6 JSON, SPDX 2.3 JSON).
	FormatCycloneDX = "cyclonedx"
	FormatSPDX      = "spdx"
)

// Formats lists every report format, json (the default) first.
func Formats() []string {
	return []string{FormatJSON, FormatSARIF, FormatJUnit, FormatCycloneDX, FormatSPDX}
}

// IsFinding says whether format renders profile findings (a profile job's
// only), as opposed to the inventory every inspection has.
func IsFinding(format string) bool { return format == FormatSARIF || format == FormatJUnit }

// IsSBOM says whether format is a software bill of materials.
func IsSBOM(format string) bool { return format == FormatCycloneDX || format == FormatSPDX }

// IsReport says whether format is written beside the result, as its own
// object.
func IsReport(format string) bool { return IsFinding(format) || IsSBOM(format) }

// Extension is the file name suffix for a report format.
func Extension(format string) string {
	switch format {
	case FormatJUnit:
		return ".junit.xml"
	case FormatCycloneDX:
		return ".cdx.json"
	case FormatSPDX:
		return ".spdx.json"
	}
	return "." + format
}

// ReportName is the name of the n-th (0-based) report beside a result
// named base (without extension): base.sarif, base.2.sarif, base.cdx.json,
// base.2.cdx.json, ...
func ReportName(base, format string, n int) string {
	if n == 0 {
		return base + Extension(format)
	}
	return fmt.Sprintf("%s.%d%s", base, n+1, Extension(format))
}
