package inventory

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
)

// WriteJSON writes a as indented JSON (doc.go describes it).
func WriteJSON(w io.Writer, a *Answer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// Ranges hold < and >; the answer is not embedded in HTML.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(a); err != nil {
		return fmt.Errorf("write inventory JSON: %w", err)
	}
	return nil
}

// csvHeader is the header of each kind's CSV: the JSON row's fields, then
// missing, which is set (with image_key and result_key) on the rows of
// images without readable data.
var csvHeader = map[Kind][]string{
	KindPackage:    {"image_key", "root", "distro", "os_version", "package_format", "name", "version", "arch", "result_key", "carried_from", "missing"},
	KindOS:         {"distro", "os_version", "product_names", "images", "image_keys", "missing"},
	KindFailedRule: {"image_key", "root", "distro", "os_version", "id", "severity", "title", "result_key", "carried_from", "missing"},
}

// WriteCSV writes a's rows with a header line (RFC 4180, encoding/csv),
// each cell spreadsheetSafe.
// Lists (product_names, image_keys) are space-separated. The rows of
// images without readable data follow, with their reason in missing; the
// rows of distributions name such an image in image_keys.
func WriteCSV(w io.Writer, a *Answer) error {
	cw := csv.NewWriter(w)
	header := csvHeader[a.Query.Kind]
	_ = cw.Write(header)
	write := func(row []string) {
		for i, c := range row {
			row[i] = spreadsheetSafe(c)
		}
		_ = cw.Write(row)
	}
	switch a.Query.Kind {
	case KindPackage:
		for _, r := range a.Packages {
			write([]string{r.ImageKey, r.Root, r.Distro, r.OSVersion, r.PackageFormat, r.Name, r.Version, r.Arch, r.ResultKey, r.CarriedFrom, ""})
		}
	case KindOS:
		for _, r := range a.Distributions {
			write([]string{r.Distro, r.OSVersion, strings.Join(r.ProductNames, " "), strconv.Itoa(r.Images), strings.Join(r.ImageKeys, " "), ""})
		}
	case KindFailedRule:
		for _, r := range a.FailedRules {
			write([]string{r.ImageKey, r.Root, r.Distro, r.OSVersion, r.ID, string(r.Severity), r.Title, r.ResultKey, r.CarriedFrom, ""})
		}
	}
	for _, m := range a.Missing {
		row := make([]string, len(header))
		row[len(row)-1] = m.Reason
		if a.Query.Kind == KindOS {
			row[4] = m.ImageKey
		} else {
			row[0] = m.ImageKey
			row[slices.Index(header, "result_key")] = m.ResultKey
		}
		write(row)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write inventory CSV: %w", err)
	}
	return nil
}

// spreadsheetSafe keeps a cell from a stranger (an image key, a package
// name or version, a rule title) from being read as a formula by a
// spreadsheet (CSV injection, OWASP): a cell that starts with = + - @ or a
// tab or carriage return gets a leading apostrophe, which spreadsheets
// hide and which no value of ours starts with.
func spreadsheetSafe(c string) string {
	if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
		return "'" + c
	}
	return c
}

// tableKeys is how many image keys a distribution row of the table shows.
const tableKeys = 5

// maxCell bounds a table cell: names and versions come from results,
// which are untrusted.
const maxCell = 160

// WriteTable writes a for a person: the rows (text/tabwriter), the images
// without readable data and why, the warnings, and a summary line. Cells
// are one line of printable text.
func WriteTable(w io.Writer, a *Answer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(cells ...string) {
		for i, c := range cells {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, cell(c))
		}
		fmt.Fprint(tw, "\n")
	}
	what := ""
	switch a.Query.Kind {
	case KindPackage:
		row("IMAGE", "ROOT", "OS", "PACKAGE", "VERSION", "ARCH")
		for _, r := range a.Packages {
			row(r.ImageKey, r.Root, osName(r.Distro, r.OSVersion), r.Name, r.Version, r.Arch)
		}
		what = "have " + a.Query.Package
		if a.Query.Version != "" {
			what += " " + a.Query.Version
		}
	case KindOS:
		row("DISTRO", "VERSION", "PRODUCT", "IMAGES", "IMAGE KEYS")
		for _, r := range a.Distributions {
			keys := strings.Join(firstN(r.ImageKeys, tableKeys), ", ")
			row(r.Distro, r.OSVersion, strings.Join(r.ProductNames, "; "), strconv.Itoa(r.Images), keys)
		}
		what = "have an OS root"
	case KindFailedRule:
		row("IMAGE", "ROOT", "OS", "RULE", "SEVERITY", "TITLE")
		for _, r := range a.FailedRules {
			row(r.ImageKey, r.Root, osName(r.Distro, r.OSVersion), r.ID, string(r.Severity), r.Title)
		}
		what = "failed " + a.Query.Rule
	}
	if len(a.Missing) > 0 {
		row()
		row("NO READABLE RESULT", "STATUS", "REASON")
		for _, m := range a.Missing {
			row(m.ImageKey, string(m.Status), m.Reason)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write inventory table: %w", err)
	}
	var b strings.Builder
	b.WriteString("\n")
	for _, warn := range a.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", cell(warn))
	}
	fmt.Fprintf(&b, "%d of %d images %s (sweep %s", a.Matched, a.Images, cell(what), a.Sweep.Date)
	if a.Query.Prefix != "" {
		fmt.Fprintf(&b, ", prefix %s", cell(a.Query.Prefix))
	}
	b.WriteString(")")
	if n := len(a.Missing); n > 0 {
		fmt.Fprintf(&b, "; %d without a readable result", n)
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write inventory table: %w", err)
	}
	return nil
}

func osName(distro, version string) string {
	return strings.TrimSpace(distro + " " + version)
}

// cell makes s one line of printable text for a terminal: a string with a
// control character (a tab would break the columns, an escape sequence
// would drive the terminal) is quoted with Go escapes, and long strings
// are cut. Empty is "-".
func cell(s string) string {
	if s == "" {
		return "-"
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) || r == '\t' }) >= 0 {
		s = strconv.QuoteToGraphic(s)
	}
	return clip(s, maxCell)
}
