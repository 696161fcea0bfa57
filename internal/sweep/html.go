package sweep

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"slices"
	"strconv"
	"strings"
	"time"

	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
)

// HTMLKey is the key of date's HTML page.
func HTMLKey(date string) string { return sweepsPrefix + date + "/report.html" }

//go:embed html
var htmlFiles embed.FS

// The page's template, style and script, parsed once: they are constants
// of the binary, so a parse error is a build error that every test hits.
var (
	pageTemplate = template.Must(template.New("report.html.tmpl").ParseFS(htmlFiles, "html/report.html.tmpl"))
	pageCSS      = mustRead("html/report.css")
	pageJS       = mustRead("html/report.js")
)

func mustRead(name string) string {
	b, err := htmlFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Bounds of what the page copies from results and reports: the page of a
// fleet must still open in a browser, and the JSON report holds the rest.
const (
	// maxEvidencePerRule and maxEvidenceText bound one failed rule's
	// evidence; maxPageEvidence the page's.
	maxEvidencePerRule = 8
	maxEvidenceText    = 512
	maxPageEvidence    = 20000
	// maxPageRules bounds the failed rules listed under the images.
	maxPageRules = 50000
	// maxTitle bounds rule titles, roots and other short text from results.
	maxTitle = 300
	// maxChangeRows, maxFleetRows and maxPackageRows bound the findings
	// changes, fleet package changes and per-image package changes listed.
	maxChangeRows  = 20000
	maxFleetRows   = 2000
	maxPackageRows = 20000
	// maxKeyList bounds the new and gone image lists.
	maxKeyList = 2000
)

// HTMLInput is what HTML reads.
type HTMLInput struct {
	Report *Report
	// Results by job_id, as Build read them: the page shows the evidence
	// of each failed rule from its image's result (bounded). Images
	// without their result here show their failed rules without evidence.
	Results map[string]*result.Result
	// History holds earlier nights (History), oldest first; the report's
	// own night is added to them for the chart. Unread are the nights
	// History could not read: the page says how many the chart lacks.
	History []Night
	Unread  []UnreadNight
}

// HTML renders a self-contained page of a sweep report: summary, images
// with their findings and evidence, changes, package changes, a chart of
// the last nights, and an inline script to sort and filter the tables.
// It loads nothing: its Content-Security-Policy allows no source but its
// own style and script, by hash. All text from keys and results is
// escaped by html/template.
func HTML(in HTMLInput) ([]byte, error) {
	r := in.Report
	if r == nil {
		return nil, fmt.Errorf("render sweep report page: no report")
	}
	p := buildPage(in)
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, p); err != nil {
		return nil, fmt.Errorf("render sweep report page %s: %w", r.Date, err)
	}
	return b.Bytes(), nil
}

// CSP is the page's Content-Security-Policy: nothing may load, and only
// the page's own style and script (by their sha256) run. A meta policy
// cannot say frame-ancestors; the page has nothing to protect from
// framing.
func CSP() string {
	return fmt.Sprintf("default-src 'none'; script-src '%s'; style-src '%s'; img-src 'none'; font-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'",
		hashSource(pageJS), hashSource(pageCSS))
}

func hashSource(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(h[:])
}

type page struct {
	CSP            string
	CSS            template.CSS
	JS             template.JS
	Date           string
	Prefix         string
	Profiles       string
	RulesetVersion string
	Full           bool
	Started        string
	Finished       string
	Summary        summary
	Chart          chart
	Unread         int
	Images         []imageRow
	RulesOmitted   int
	EvidenceCut    bool
	Statuses       []Status
	Changes        changesView
	Packages       packagesView
	Skipped        []SkippedImage
}

type summary struct {
	Images, Compliant, Noncompliant, NoProfile, Skipped int
	NewFindings, ResolvedFindings                       int
	Carried, Read                                       int
	NotApplicable                                       int
	Findings                                            profile.SeverityCounts
	Failed, Timeout, Rejected, Missing, Invalid         int
}

type imageRow struct {
	Key         string
	Status      Status
	CarriedFrom string
	// NotApplicable counts the rules that do not apply to the guest (a
	// Linux rule on Windows), apart from pass and fail.
	NotApplicable int
	Note          string
	Findings      profile.SeverityCounts
	Total         int
	MaxSev        int
	Search        string
	Rules         []ruleView
	// RulesListed is false when the page's rule budget ran out.
	RulesListed bool
	// NoEvidence: the image's result was not at hand.
	NoEvidence bool
}

type ruleView struct {
	ID, Severity, Root, Title string
	New                       bool
	Evidence                  []evidenceView
	EvidenceMore              int
}

type evidenceView struct{ Where, Value, Note string }

type changesView struct {
	PreviousDate   string
	NewImages      []string
	NewImagesMore  int
	GoneImages     []string
	GoneImagesMore int
	Rows           []changeRow
	RowsMore       int
	NotComparable  []notComparable
}

type changeRow struct {
	Image, Kind, Rule, Severity, Root, Title string
	SevRank                                  int
}

type notComparable struct{ Image, Reason string }

type packagesView struct {
	Compared  bool
	Fleet     []fleetRow
	FleetMore int
	Rows      []packageRow
	RowsMore  int
}

type fleetRow struct {
	Name, Arch, Kind, From, To string
	Images                     int
	Examples                   string
}

type packageRow struct {
	Image, Kind, Name, Arch, Root, From, To string
}

func buildPage(in HTMLInput) page {
	r := in.Report
	p := page{
		CSP:            CSP(),
		CSS:            template.CSS(pageCSS),
		JS:             template.JS(pageJS),
		Date:           r.Date,
		Prefix:         r.Prefix,
		Profiles:       strings.Join(r.Profiles, ", "),
		RulesetVersion: r.RulesetVersion,
		Full:           r.Full,
		Started:        r.StartedAt.UTC().Format(time.RFC3339),
		Finished:       r.FinishedAt.UTC().Format(time.RFC3339),
		Skipped:        r.Skipped,
		Unread:         len(in.Unread),
		Statuses:       []Status{StatusCompleted, StatusNoncompliant, StatusFailed, StatusTimeout, StatusRejected, StatusMissing, StatusInvalid},
	}
	c := r.Totals.ByStatus
	p.Summary = summary{
		Images: r.Totals.Images, Compliant: c.Completed, Noncompliant: c.Noncompliant,
		NoProfile: c.Failed + c.Timeout + c.Rejected + c.Missing + c.Invalid,
		Skipped:   r.Totals.Skipped, Carried: r.Totals.Carried, Read: r.Totals.Read,
		NotApplicable: r.Totals.NotApplicable,
		Findings:      r.Totals.Findings,
		Failed:        c.Failed, Timeout: c.Timeout, Rejected: c.Rejected, Missing: c.Missing, Invalid: c.Invalid,
	}
	newRules := map[string]map[ruleRoot]bool{}
	for _, ic := range r.Changes.Images {
		p.Summary.NewFindings += len(ic.NewFailures)
		p.Summary.ResolvedFindings += len(ic.Resolved)
		for _, f := range ic.NewFailures {
			if newRules[ic.ImageKey] == nil {
				newRules[ic.ImageKey] = map[ruleRoot]bool{}
			}
			newRules[ic.ImageKey][ruleRoot{f.ID, f.Root}] = true
		}
	}
	p.Chart = buildChart(append(slices.Clone(in.History), NightOf(r)))
	p.Images, p.RulesOmitted, p.EvidenceCut = imageRows(r, in.Results, newRules)
	p.Changes = buildChanges(r.Changes)
	p.Packages = buildPackages(r.Changes)
	return p
}

func imageRows(r *Report, results map[string]*result.Result, newRules map[string]map[ruleRoot]bool) ([]imageRow, int, bool) {
	rows := make([]imageRow, 0, len(r.Images))
	rulesLeft, evidenceLeft := maxPageRules, maxPageEvidence
	omitted, cut := 0, false
	for _, img := range r.Images {
		f := img.Findings
		row := imageRow{
			Key: img.ImageKey, Status: img.Status, CarriedFrom: img.CarriedFrom, NotApplicable: img.NotApplicable,
			Findings: f, Total: f.Critical + f.High + f.Medium + f.Low + f.Info,
			RulesListed: len(img.FailedRules) <= rulesLeft,
		}
		switch {
		case img.Error != nil:
			row.Note = img.Error.Code + ": " + img.Error.Message
		case img.Status == StatusMissing:
			row.Note = "no result at " + img.ResultKey
		}
		search := []string{img.ImageKey, string(img.Status), row.Note}
		var ev map[ruleRoot][]profile.Evidence
		if row.RulesListed && len(img.FailedRules) > 0 {
			res := results[img.JobID]
			row.NoEvidence = res == nil || res.JobID != img.JobID
			// Once the page's evidence is spent, results are not decoded.
			if !row.NoEvidence && evidenceLeft > 0 {
				ev = failedEvidence(res)
			}
		}
		for _, fr := range img.FailedRules {
			row.MaxSev = max(row.MaxSev, fr.Severity.Rank())
			search = append(search, fr.ID, fr.Title)
			if !row.RulesListed {
				continue
			}
			rv := ruleView{
				ID: truncate(fr.ID, maxTitle), Severity: string(fr.Severity), Root: truncate(fr.Root, maxTitle),
				Title: truncate(fr.Title, maxTitle), New: newRules[img.ImageKey][ruleRoot{fr.ID, fr.Root}],
			}
			all := ev[ruleRoot{fr.ID, fr.Root}]
			n := min(len(all), maxEvidencePerRule, evidenceLeft)
			cut = cut || evidenceLeft == 0 || (n < len(all) && evidenceLeft < maxEvidencePerRule)
			for _, e := range all[:n] {
				rv.Evidence = append(rv.Evidence, evidenceOf(e))
			}
			rv.EvidenceMore = len(all) - n
			evidenceLeft -= n
			row.Rules = append(row.Rules, rv)
		}
		if row.RulesListed {
			rulesLeft -= len(img.FailedRules)
		} else {
			omitted += len(img.FailedRules)
		}
		slices.SortStableFunc(row.Rules, func(a, b ruleView) int {
			return cmp.Compare(profile.Severity(b.Severity).Rank(), profile.Severity(a.Severity).Rank())
		})
		row.Search = truncate(strings.ToLower(strings.Join(search, " ")), 4*maxEvidenceText)
		rows = append(rows, row)
	}
	return rows, omitted, cut
}

// failedEvidence is the evidence of a result's failed rules, by (id,
// root). A result Build could not read gives none.
func failedEvidence(res *result.Result) map[ruleRoot][]profile.Evidence {
	data, msg := profileReports(res.Data)
	if msg != "" {
		return nil
	}
	out := map[ruleRoot][]profile.Evidence{}
	for _, rp := range data.Reports {
		for _, rr := range rp.Results {
			if rr.Status == profile.StatusFail {
				k := ruleRoot{rr.ID, rp.Root}
				out[k] = append(out[k], rr.Evidence...)
			}
		}
	}
	return out
}

func evidenceOf(e profile.Evidence) evidenceView {
	where := truncate(e.File, maxEvidenceText)
	if where != "" && e.Line > 0 {
		where += ":" + strconv.Itoa(e.Line)
	}
	return evidenceView{Where: where, Value: truncate(e.Value, maxEvidenceText), Note: truncate(e.Note, maxEvidenceText)}
}

func buildChanges(ch Changes) changesView {
	v := changesView{PreviousDate: ch.PreviousDate}
	v.NewImages, v.NewImagesMore = firstN(ch.NewImages, maxKeyList)
	v.GoneImages, v.GoneImagesMore = firstN(ch.GoneImages, maxKeyList)
	for _, ic := range ch.Images {
		if !ic.Comparable {
			v.NotComparable = append(v.NotComparable, notComparable{Image: ic.ImageKey, Reason: truncate(ic.Reason, 2*maxEvidenceText)})
			continue
		}
		for _, kind := range []struct {
			name  string
			rules []FailedRule
		}{{"new", ic.NewFailures}, {"resolved", ic.Resolved}, {"undecided", ic.Undecided}} {
			for _, f := range kind.rules {
				if len(v.Rows) == maxChangeRows {
					v.RowsMore++
					continue
				}
				v.Rows = append(v.Rows, changeRow{
					Image: ic.ImageKey, Kind: kind.name, Rule: truncate(f.ID, maxTitle), Severity: string(f.Severity),
					Root: truncate(f.Root, maxTitle), Title: truncate(f.Title, maxTitle), SevRank: f.Severity.Rank(),
				})
			}
		}
	}
	return v
}

func buildPackages(ch Changes) packagesView {
	var v packagesView
	for _, f := range ch.Packages {
		if len(v.Fleet) == maxFleetRows {
			v.FleetMore++
			continue
		}
		ex, more := firstN(f.ImageKeys, 5)
		examples := strings.Join(ex, ", ")
		if more > 0 || f.Images > len(ex) {
			examples += fmt.Sprintf(", … (%d images)", f.Images)
		}
		v.Fleet = append(v.Fleet, fleetRow{
			Name: truncate(f.Name, maxTitle), Arch: truncate(f.Arch, maxTitle), Kind: f.Kind,
			From: truncate(f.From, maxTitle), To: truncate(f.To, maxTitle), Images: f.Images, Examples: examples,
		})
	}
	add := func(row packageRow) {
		if len(v.Rows) == maxPackageRows {
			v.RowsMore++
			return
		}
		v.Rows = append(v.Rows, row)
	}
	for _, ic := range ch.Images {
		d := ic.Packages
		if d == nil {
			continue
		}
		v.Compared = true
		for _, a := range d.Added {
			add(packageRow{Image: ic.ImageKey, Kind: "added", Name: truncate(a.Name, maxTitle), Arch: truncate(a.Arch, maxTitle), Root: truncate(a.Root, maxTitle), To: truncate(a.Version, maxTitle)})
		}
		for _, a := range d.Removed {
			add(packageRow{Image: ic.ImageKey, Kind: "removed", Name: truncate(a.Name, maxTitle), Arch: truncate(a.Arch, maxTitle), Root: truncate(a.Root, maxTitle), From: truncate(a.Version, maxTitle)})
		}
		for _, c := range d.Changed {
			add(packageRow{Image: ic.ImageKey, Kind: "changed", Name: truncate(c.Name, maxTitle), Arch: truncate(c.Arch, maxTitle), Root: truncate(c.Root, maxTitle), From: truncate(c.From, maxTitle), To: truncate(c.To, maxTitle)})
		}
	}
	v.Compared = v.Compared || len(ch.Packages) > 0
	return v
}

// chart is the compliance chart's geometry, computed here so that the
// page needs no script to draw it.
type chart struct {
	Width, Height          int
	Left, Right, Top, Base int
	Max                    int
	Nights                 []Night
	Series                 []series
	Ticks                  []tick
	Labels                 []tick
}

type series struct {
	Name, Class string
	Points      string
	Dots        []dot
}

type dot struct {
	X, Y  string
	Title string
}

type tick struct {
	X, Y  string
	Label string
}

func buildChart(nights []Night) chart {
	// Keep the last night of each date (the report's own comes last).
	byDate := map[string]Night{}
	for _, n := range nights {
		byDate[n.Date] = n
	}
	nights = slices.SortedFunc(func(yield func(Night) bool) {
		for _, n := range byDate {
			if !yield(n) {
				return
			}
		}
	}, func(a, b Night) int { return strings.Compare(a.Date, b.Date) })
	nights = nights[max(len(nights)-MaxHistory, 0):]
	// The margins leave half a date label (about 70 px at 11 px) each side.
	c := chart{Width: 720, Height: 240, Left: 48, Right: 672, Top: 16, Base: 200, Nights: nights}
	for _, n := range nights {
		c.Max = max(c.Max, n.Compliant, n.Noncompliant, n.NoProfile)
	}
	c.Max = max(c.Max, 1)
	x := func(i int) float64 {
		if len(nights) == 1 {
			return float64(c.Left+c.Right) / 2
		}
		return float64(c.Left) + float64(i)*float64(c.Right-c.Left)/float64(len(nights)-1)
	}
	y := func(v int) float64 {
		return float64(c.Base) - float64(v)*float64(c.Base-c.Top)/float64(c.Max)
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	for _, s := range []struct {
		name, class string
		val         func(Night) int
	}{
		{"compliant", "compliant", func(n Night) int { return n.Compliant }},
		{"noncompliant", "noncompliant", func(n Night) int { return n.Noncompliant }},
		{"no profile (failed, timeout, rejected, missing, invalid)", "noprofile", func(n Night) int { return n.NoProfile }},
	} {
		se := series{Name: s.name, Class: s.class}
		var pts []string
		for i, n := range nights {
			px, py := f(x(i)), f(y(s.val(n)))
			pts = append(pts, px+","+py)
			se.Dots = append(se.Dots, dot{X: px, Y: py, Title: fmt.Sprintf("%s: %d %s of %d images", n.Date, s.val(n), s.name, n.Images)})
		}
		se.Points = strings.Join(pts, " ")
		c.Series = append(c.Series, se)
	}
	for _, v := range []int{0, c.Max / 2, c.Max} {
		c.Ticks = append(c.Ticks, tick{X: f(float64(c.Left - 6)), Y: f(y(v) + 4), Label: strconv.Itoa(v)})
	}
	// Date labels: the first, the last, and a few between.
	step := max(1, (len(nights)+5)/6)
	last := len(nights) - 1
	for i, n := range nights {
		if i%step != 0 && i != last {
			continue
		}
		// The last date replaces a label too close to it to read.
		if i == last && i%step != 0 && 2*(i%step) < step {
			c.Labels = c.Labels[:len(c.Labels)-1]
		}
		c.Labels = append(c.Labels, tick{X: f(x(i)), Y: f(float64(c.Base + 18)), Label: n.Date})
	}
	return c
}

func firstN(s []string, n int) ([]string, int) {
	if len(s) <= n {
		return s, 0
	}
	return s[:n], len(s) - n
}
