package sweep

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
)

const hostileKey = "images/<script>alert(1)</script>.qcow2"

// htmlFixture is a night with a previous sweep: a hostile image key, a
// hostile rule title and evidence, package changes, and a failed image.
func htmlFixture(t *testing.T) HTMLInput {
	t.Helper()
	keys := []string{hostileKey, "images/web-01.qcow2", "images/db-01.qcow2", "images/broken.qcow2"}
	planned0, _, ids0 := sweepOf(t, "2026-03-01", keys...)
	hostileRule := rule("ssh_root", profile.SeverityHigh, profile.StatusFail)
	hostileRule.Title = `root <img src=x onerror=alert(2)> login`
	hostileRule.Evidence = []profile.Evidence{{File: "/etc/ssh/sshd_config", Line: 12, Value: `PermitRootLogin yes</code><script>alert(3)</script>`, Note: "root may log in"}}
	prev := Build(BuildInput{Date: "2026-03-01", Prefix: "images/", Profiles: []string{"security", "hardening"}, StartedAt: start, FinishedAt: finish, Planned: planned0,
		Results: map[string]*result.Result{
			ids0[hostileKey]:            profileResult(t, ids0[hostileKey], false, root(sda1, rule("pw_max", profile.SeverityLow, profile.StatusPass))),
			ids0["images/web-01.qcow2"]: profileResult(t, ids0["images/web-01.qcow2"], true, root(sda1, rule("pw_max", profile.SeverityLow, profile.StatusFail))),
			ids0["images/db-01.qcow2"]:  profileResult(t, ids0["images/db-01.qcow2"], false, root(sda1)),
		}})

	planned, skipped, ids := sweepOf(t, "2026-03-02", append(keys, "images/SHA256SUMS")...)
	many := rule("file_perms", profile.SeverityMedium, profile.StatusFail)
	for i := range maxEvidencePerRule + 3 {
		many.Evidence = append(many.Evidence, profile.Evidence{File: fmt.Sprintf("/etc/file-%02d", i), Value: "0666"})
	}
	results := map[string]*result.Result{
		ids[hostileKey]:            profileResult(t, ids[hostileKey], true, root(sda1, hostileRule, rule("pw_max", profile.SeverityLow, profile.StatusPass))),
		ids["images/web-01.qcow2"]: profileResult(t, ids["images/web-01.qcow2"], true, root(sda1, rule("pw_max", profile.SeverityLow, profile.StatusPass), many)),
		ids["images/db-01.qcow2"]:  profileResult(t, ids["images/db-01.qcow2"], false, root(sda1)),
		ids["images/broken.qcow2"]: errorResult(ids["images/broken.qcow2"], result.StatusFailed, result.CodeImageCorrupt, result.PhaseProbe, "qcow2 header <b>corrupt</b>"),
	}
	rep := Build(BuildInput{Date: "2026-03-02", Prefix: "images/", Profiles: []string{"security", "hardening"}, StartedAt: start, FinishedAt: finish,
		Planned: planned, Skipped: skipped, Results: results, Previous: prev})
	// Package changes as the package worker's Build fills them in.
	for i := range rep.Changes.Images {
		if rep.Changes.Images[i].ImageKey == hostileKey {
			rep.Changes.Images[i].Packages = &PackageDiff{
				Added:   []PackageRef{{Name: `"><svg onload=alert(4)>`, Version: "1.0-1", Arch: "amd64", Root: sda1}},
				Removed: []PackageRef{{Name: "telnetd", Version: "0.17-44", Arch: "amd64", Root: sda1}},
				Changed: []PackageChange{{Name: "openssl", Arch: "amd64", Root: sda1, From: "3.0.13-1~deb12u1", To: "3.0.15-1~deb12u1"}},
			}
		}
	}
	rep.Changes.Packages = []FleetPackageChange{{Name: "openssl", Arch: "amd64", Kind: "changed", From: "3.0.13-1~deb12u1", To: "3.0.15-1~deb12u1", Images: 412, ImageKeys: []string{hostileKey}}}
	return HTMLInput{Report: rep, Results: results, History: []Night{NightOf(prev)}, Unread: []UnreadNight{{Key: ReportKey("2026-02-28"), Reason: "corrupt"}}}
}

func render(t *testing.T, in HTMLInput) string {
	t.Helper()
	page, err := HTML(in)
	if err != nil {
		t.Fatal(err)
	}
	return string(page)
}

func TestHTMLEscapesStrangersText(t *testing.T) {
	page := render(t, htmlFixture(t))
	for _, bad := range []string{"<script>alert", "<img src=x", "<svg onload", "<b>corrupt", "onerror=alert(2)>"} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q unescaped", bad)
		}
	}
	if n := strings.Count(page, "<script"); n != 1 {
		t.Errorf("page has %d <script elements, want only its own", n)
	}
	for _, want := range []string{
		`<td class="key">images/&lt;script&gt;alert(1)&lt;/script&gt;.qcow2</td>`,
		`root &lt;img src=x onerror=alert(2)&gt; login`,
		`<code>PermitRootLogin yes&lt;/code&gt;&lt;script&gt;alert(3)&lt;/script&gt;</code>`,
		`<code>&#34;&gt;&lt;svg onload=alert(4)&gt;</code>`,
		`qcow2 header &lt;b&gt;corrupt&lt;/b&gt;`,
		// An attribute value cannot be left either.
		`data-search="images/&lt;script&gt;alert(1)&lt;/script&gt;.qcow2 noncompliant`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

func TestHTMLSections(t *testing.T) {
	in := htmlFixture(t)
	// A Windows guest's Linux rules: counted apart.
	in.Report.Images[0].NotApplicable = 40
	in.Report.Totals.NotApplicable = 40
	page := render(t, in)
	for _, want := range []string{
		`<section id="summary">`, `<section id="history">`, `<section id="images">`,
		`<section id="changes">`, `<section id="packages">`, `<section id="skipped">`,
		// Summary: 4 images, 1 compliant, 2 noncompliant, 1 failed; on
		// web-01 pw_max resolved and file_perms new, on the hostile key
		// ssh_root new.
		`id="stat-images"><span class="n">4</span>`,
		`id="stat-compliant"><span class="n">1</span>`,
		`id="stat-noncompliant"><span class="n">2</span>`,
		`id="stat-noprofile"><span class="n">1</span>`,
		`id="stat-new"><span class="n">2</span>`,
		`id="stat-resolved"><span class="n">1</span>`,
		// Findings by severity with evidence, and the rest of a long list.
		`<span class="sev sev-high">high</span> <code>ssh_root</code> on <code>/dev/sda1</code><span class="badge new">new</span>`,
		`<code>/etc/ssh/sshd_config:12</code>`,
		`<li class="note">3 more in the result</li>`,
		// Changes, package changes.
		`<td class="kind-resolved">resolved</td>`,
		`<td class="kind-changed">changed</td><td><code>3.0.13-1~deb12u1</code></td><td><code>3.0.15-1~deb12u1</code></td><td class="num">412</td>`,
		`<td class="kind-removed">removed</td><td><code>telnetd</code>`,
		`<code>images/SHA256SUMS</code>`,
		// Not-applicable rules, apart from pass and fail.
		`40 rule results did not apply to their guest (counted apart from pass and fail)`,
		`<br><span class="note">40 rules not applicable</span>`,
		// The chart: two nights, and one unreadable.
		`(2 nights)`, `1 earlier reports could not be read`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if n := strings.Count(page, `<tr class="image-row"`); n != 4 {
		t.Errorf("%d image rows, want 4", n)
	}
	if n := strings.Count(page, `<circle class="point"`); n != 3*2 {
		t.Errorf("%d chart points, want 3 series of 2 nights", n)
	}
	if n := strings.Count(page, `/etc/file-`); n != maxEvidencePerRule {
		t.Errorf("%d evidence lines of file_perms, want %d", n, maxEvidencePerRule)
	}
	// Nothing is fetched: no source attribute, no URL but the SVG
	// namespace.
	for _, a := range tagAttributes(page) {
		if regexp.MustCompile(`(?i)^(src|href|srcset|action|formaction|data|poster)=`).MatchString(a) {
			t.Errorf("page has attribute %s", a)
		}
	}
	for _, m := range regexp.MustCompile(`(?i)url\(|https?://[^"]*`).FindAllString(page, -1) {
		if m != "http://www.w3.org/2000/svg" {
			t.Errorf("page refers to %q", m)
		}
	}
}

// TestHTMLPolicy checks that the meta policy admits exactly the page's
// own style and script, by hash.
func TestHTMLPolicy(t *testing.T) {
	page := render(t, htmlFixture(t))
	hash := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return "&#39;sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "&#39;"
	}
	script := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindStringSubmatch(page)
	style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(page)
	if script == nil || style == nil {
		t.Fatal("no inline script or style")
	}
	meta := regexp.MustCompile(`<meta http-equiv="Content-Security-Policy" content="([^"]*)">`).FindStringSubmatch(page)
	if meta == nil {
		t.Fatal("no policy")
	}
	want := "default-src &#39;none&#39;; script-src " + hash(script[1]) + "; style-src " + hash(style[1]) + ";"
	if !strings.HasPrefix(meta[1], want) {
		t.Errorf("policy %s\nwant prefix %s", meta[1], want)
	}
	if strings.Index(page, "Content-Security-Policy") > strings.Index(page, "<style>") {
		t.Error("the policy comes after the style it governs")
	}
	attrs := tagAttributes(page)
	if !slices.Contains(attrs, `data-table="images-table"`) || !slices.Contains(attrs, `data-status="noncompliant"`) {
		t.Fatalf("the attribute scan missed the page's own attributes: %q", attrs[:min(len(attrs), 20)])
	}
	for _, a := range attrs {
		if regexp.MustCompile(`(?i)^(style|on[a-z]+)=`).MatchString(a) {
			t.Errorf("page has attribute %s, which the policy blocks", a)
		}
	}
}

func TestHTMLWithoutPreviousOrResults(t *testing.T) {
	planned, _, ids := sweepOf(t, "2026-03-02", "images/a.qcow2")
	in := HTMLInput{Report: Build(BuildInput{Date: "2026-03-02", Prefix: "images/", Planned: planned, Results: map[string]*result.Result{
		ids["images/a.qcow2"]: profileResult(t, ids["images/a.qcow2"], true, root(sda1, rule("x", profile.SeverityCritical, profile.StatusFail))),
	}})}
	page := render(t, in)
	for _, want := range []string{
		"No previous sweep to compare with.", "No package lists to compare with a previous sweep.",
		"(1 nights)", "Evidence is in the image's result, which this sweep did not read.",
		`data-maxsev="5"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if _, err := HTML(HTMLInput{}); err == nil {
		t.Error("HTML without a report: no error")
	}
}

func TestChartNights(t *testing.T) {
	var nights []Night
	for d := 1; d <= 40; d++ {
		nights = append(nights, Night{Date: fmt.Sprintf("2026-01-%02d", d%31+1), Images: 10, Compliant: d % 10, Noncompliant: 10 - d%10})
	}
	c := buildChart(nights)
	if len(c.Nights) != MaxHistory {
		t.Fatalf("%d nights, want %d", len(c.Nights), MaxHistory)
	}
	for _, s := range c.Series {
		if len(s.Dots) != MaxHistory || strings.Count(s.Points, ",") != MaxHistory {
			t.Errorf("series %s: %d dots, points %q", s.Class, len(s.Dots), s.Points)
		}
	}
	if c.Nights[0].Date >= c.Nights[len(c.Nights)-1].Date {
		t.Error("nights not oldest first")
	}
	if first, last := c.Labels[0].Label, c.Labels[len(c.Labels)-1].Label; first != c.Nights[0].Date || last != c.Nights[len(c.Nights)-1].Date {
		t.Errorf("date labels from %s to %s", first, last)
	}
}

// tagAttributes lists the attributes of every tag of page, as name=value.
// html/template writes every dynamic attribute value in double quotes with
// any quote inside escaped, so a quoted value ends at the next quote.
func tagAttributes(page string) []string {
	var out []string
	attr := regexp.MustCompile(`\s([^\s=>/]+)(="[^"]*")?`)
	for _, tag := range regexp.MustCompile(`<[a-zA-Z][^\s>]*((?:\s+[^\s=>]+(?:="[^"]*")?)*)\s*/?>`).FindAllStringSubmatch(page, -1) {
		for _, a := range attr.FindAllStringSubmatch(tag[1], -1) {
			out = append(out, a[1]+a[2])
		}
	}
	return out
}

// TestHTMLLargeFleet: the page of a big fleet with long rule lists stays
// bounded; what it leaves out, it says is in report.json or the results.
func TestHTMLLargeFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("renders a large page")
	}
	rep := &Report{APIVersion: APIVersion, Date: "2026-03-02", Prefix: "images/"}
	results := map[string]*result.Result{}
	const images, rules = 1500, 40
	for i := range images {
		img := ImageReport{ImageKey: fmt.Sprintf("images/vm-%05d.qcow2", i), JobID: fmt.Sprintf("job-%05d", i), Status: StatusNoncompliant}
		var rr []profile.RuleResult
		for j := range rules {
			rl := rule(fmt.Sprintf("rule_%02d", j), profile.SeverityMedium, profile.StatusFail)
			// Long evidence on the first images uses up the page's budget.
			for k := range 1 + 9*min(1, 100/(i+1)) {
				rl.Evidence = append(rl.Evidence, profile.Evidence{File: fmt.Sprintf("/etc/f%d", k), Value: strings.Repeat("v", maxEvidenceText+100)})
			}
			rr = append(rr, rl)
			img.FailedRules = append(img.FailedRules, FailedRule{ID: rl.ID, Severity: rl.Severity, Root: sda1, Title: rl.Title})
			img.Findings.Medium++
		}
		rep.Images = append(rep.Images, img)
		results[img.JobID] = profileResult(t, img.JobID, true, root(sda1, rr...))
	}
	rep.Totals.Images, rep.Totals.ByStatus.Noncompliant = images, images
	started := time.Now()
	page := render(t, HTMLInput{Report: rep, Results: results})
	t.Logf("%d images, %d failed rules: %d bytes in %s", images, images*rules, len(page), time.Since(started).Round(time.Millisecond))
	if len(page) > 32<<20 {
		t.Errorf("page of %d bytes", len(page))
	}
	if n := strings.Count(page, `<li class="rule">`); n != maxPageRules {
		t.Errorf("%d rules listed, want %d", n, maxPageRules)
	}
	if n := strings.Count(page, "<li><code>/etc/f"); n != maxPageEvidence {
		t.Errorf("%d evidence lines, want %d", n, maxPageEvidence)
	}
	for _, want := range []string{
		fmt.Sprintf("%d failed rules are not listed on this page", images*rules-maxPageRules),
		"The page's evidence is bounded", strings.Repeat("v", maxEvidenceText) + "…</code>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %.80s", want)
		}
	}
}
