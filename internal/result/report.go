package result

import "fmt"

// Report formats besides the JSON result.
const (
	FormatJSON  = "json"
	FormatSARIF = "sarif"
	FormatJUnit = "junit"
)

// Extension is the file name suffix for a report format.
func Extension(format string) string {
	if format == FormatJUnit {
		return ".junit.xml"
	}
	return "." + format
}

// ReportName is the name of the n-th (0-based) report beside a result
// named base (without extension): base.sarif, base.2.sarif, ...
func ReportName(base, format string, n int) string {
	if n == 0 {
		return base + Extension(format)
	}
	return fmt.Sprintf("%s.%d%s", base, n+1, Extension(format))
}
