package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"guestkit.io/batch/internal/prereq"
	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/store/storetest"
	"guestkit.io/batch/internal/sweep"
)

const hostileKey = "images/<script>alert(1)</script>.qcow2"

var (
	keys   = []string{hostileKey, "images/web-01.qcow2", "images/web-02.qcow2", "images/db-01.qcow2", "images/broken.qcow2"}
	nights = []string{"2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"}
)

// failing lists, per night index, the rules each image fails; an image
// absent from the map failed to open.
func failing(night int) map[string][]profile.RuleResult {
	ssh := rule("sshd_disable_root_login", profile.SeverityHigh,
		profile.Evidence{File: "/etc/ssh/sshd_config", Line: 12, Value: "PermitRootLogin yes</code><script>alert(2)</script>"})
	perms := rule("file_permissions_etc_shadow", profile.SeverityCritical, profile.Evidence{File: "/etc/shadow", Value: "0644"})
	umask := rule("accounts_umask_etc_login_defs", profile.SeverityMedium, profile.Evidence{File: "/etc/login.defs", Line: 3, Value: "UMASK 022"})
	m := map[string][]profile.RuleResult{
		hostileKey:            {ssh},
		"images/web-01.qcow2": {umask},
		"images/web-02.qcow2": {},
		"images/db-01.qcow2":  {perms, umask},
	}
	// Night by night the fleet gets better: web-01 is fixed on night 3;
	// on the last night db-01's umask is fixed and the hostile key fails
	// one more rule.
	if night >= 2 {
		m["images/web-01.qcow2"] = nil
	}
	if night == len(nights)-1 {
		m["images/db-01.qcow2"] = []profile.RuleResult{perms}
		m[hostileKey] = []profile.RuleResult{ssh, rule("sshd_set_max_auth_tries", profile.SeverityLow, profile.Evidence{Note: "MaxAuthTries 6 by default"})}
	}
	return m
}

func rule(id string, sev profile.Severity, ev profile.Evidence) profile.RuleResult {
	return profile.RuleResult{ID: id, Title: "title of " + id, Severity: sev, Status: profile.StatusFail, Profiles: []string{"security"}, Evidence: []profile.Evidence{ev}}
}

// sweepNight plans, "runs" and reports one night in st, as the
// dispatcher's sweep does, and returns its page input.
func sweepNight(t *testing.T, ctx context.Context, st store.Store, night int) sweep.HTMLInput {
	t.Helper()
	date := nights[night]
	var objs []store.Object
	for _, k := range keys {
		objs = append(objs, store.Object{Key: k, Size: 1 << 20})
	}
	at, _ := time.Parse(time.DateOnly, date)
	planned, skipped, err := sweep.Specs(date, objs, st, sweep.Options{Profiles: []string{"security"}, CreatedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]*result.Result{}
	fail := failing(night)
	for _, p := range planned {
		id := p.Job.JobID
		rules, ok := fail[p.ImageKey]
		if !ok {
			e := &result.Error{Code: result.CodeImageCorrupt, Message: "qcow2 header <b>corrupt</b>", Phase: result.PhaseProbe}
			results[id] = &result.Result{APIVersion: result.APIVersion, JobID: id, Operation: "guestkit.profile",
				Status: result.StatusFailed, ExitCode: result.ExitCodeFor(result.StatusFailed, e, false), Error: e}
			continue
		}
		noncompliant := len(rules) > 0
		rules = append(slices.Clone(rules), profile.RuleResult{ID: "accounts_no_uid_except_zero", Severity: profile.SeverityHigh, Status: profile.StatusPass})
		data, err := json.Marshal(&runner.ProfileData{
			Profiles:     []runner.RootProfile{{Root: "/dev/sda1", Report: &profile.Report{Schema: profile.ReportSchema, Results: rules}}},
			Noncompliant: noncompliant,
		})
		if err != nil {
			t.Fatal(err)
		}
		code := result.ExitCompleted
		if noncompliant {
			code = result.ExitNoncompliant
		}
		results[id] = &result.Result{APIVersion: result.APIVersion, JobID: id, Operation: "guestkit.profile",
			Status: result.StatusCompleted, ExitCode: code, Data: data}
	}
	prev, err := sweep.Previous(ctx, st, date)
	if err != nil {
		t.Fatal(err)
	}
	rep := sweep.Build(sweep.BuildInput{Date: date, Prefix: "images/", Profiles: []string{"security"},
		StartedAt: at, FinishedAt: at.Add(time.Hour), Planned: planned, Skipped: skipped, Results: results, Previous: prev})
	for i := range rep.Changes.Images {
		if rep.Changes.Images[i].ImageKey == hostileKey {
			rep.Changes.Images[i].Packages = &sweep.PackageDiff{
				Added:   []sweep.PackageRef{{Name: `"><svg onload=alert(3)>`, Version: "1.0-1", Arch: "amd64", Root: "/dev/sda1"}},
				Changed: []sweep.PackageChange{{Name: "openssl", Arch: "amd64", Root: "/dev/sda1", From: "3.0.13-1~deb12u1", To: "3.0.15-1~deb12u1"}},
			}
		}
	}
	if prev != nil {
		rep.Changes.Packages = []sweep.FleetPackageChange{{Name: "openssl", Arch: "amd64", Kind: "changed", From: "3.0.13-1~deb12u1", To: "3.0.15-1~deb12u1", Images: 1, ImageKeys: []string{hostileKey}}}
	}
	data, err := sweep.Encode(rep)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Put(t, st, sweep.ReportKey(date), data)
	hist, unread, err := sweep.History(ctx, st, date, sweep.MaxHistory-1)
	if err != nil || len(unread) > 0 {
		t.Fatal(err, unread)
	}
	return sweep.HTMLInput{Report: rep, Results: results, History: hist}
}

// writePage renders the last night's page into a file.
func writePage(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	st, _ := storetest.Folder(t)
	var in sweep.HTMLInput
	for i := range nights {
		in = sweepNight(t, ctx, st, i)
	}
	html, err := sweep.HTML(in)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(path, html, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// browser starts a headless chromium and records what its console
// (console calls, uncaught exceptions, the browser log, where policy
// violations go) and dialogs say. Flags: --no-sandbox because chromium
// refuses to run as root with its sandbox (CI runs as root); headless and
// --disable-dev-shm-usage (a small /dev/shm in containers) come with
// chromedp's defaults; --disable-gpu since there is none.
func browser(t *testing.T) (context.Context, *messages) {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	if err != nil {
		prereq.Missing(t, "chromium is not installed (bash scripts/setup.sh installs it from scripts/packages-test.txt): %v", err)
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelBrowser)
	// The listener runs before the page's own script and, being added by
	// the DevTools protocol, is not subject to the page's policy.
	if err := chromedp.Do(bctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `window.__violations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI);
});`})
		return err
	})); err != nil {
		t.Fatalf("start chromium %s: %v", exe, err)
	}
	m := &messages{}
	console := chromedp.Console(bctx)
	dialogs := chromedp.Events(bctx, page.JavascriptDialogOpening)
	go func() {
		for msg, err := range console {
			if err != nil {
				return
			}
			bad := msg.Type == chromedp.ConsoleError || msg.Type == chromedp.ConsoleWarning || msg.IsException() || msg.Source == "security"
			m.add(msg.String()+" ("+msg.Source+")", bad)
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			m.add("dialog: "+ev.Message, true)
		}
	}()
	return bctx, m
}

// messages collects a page's console; bad holds errors, warnings,
// exceptions, security messages and dialogs.
type messages struct {
	mu  sync.Mutex
	all []string
	bad []string
}

func (m *messages) add(s string, bad bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.all = append(m.all, s)
	if bad {
		m.bad = append(m.bad, s)
	}
}

// settle logs a marker and waits until the console reader has it: every
// message before it has then been read.
func (m *messages) settle(t *testing.T, ctx context.Context) (all, bad []string) {
	t.Helper()
	marker := fmt.Sprintf("settle-%d", time.Now().UnixNano())
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`console.log("`+marker+`")`)); err != nil {
		t.Fatalf("console marker: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		m.mu.Lock()
		seen := slices.ContainsFunc(m.all, func(s string) bool { return strings.Contains(s, marker) })
		all, bad = slices.Clone(m.all), slices.Clone(m.bad)
		m.mu.Unlock()
		if seen {
			return all, bad
		}
	}
	t.Fatalf("the console marker never arrived; console: %q", all)
	return nil, nil
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func fileURL(path string) string { return (&url.URL{Scheme: "file", Path: path}).String() }

// visibleKeys lists the image keys of the rows the filters show, in
// table order.
const visibleKeys = `Array.from(document.querySelectorAll("#images-table tbody tr")).filter(r => !r.hidden).map(r => r.cells[0].textContent)`

func TestReportInBrowser(t *testing.T) {
	path := writePage(t)
	ctx, console := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(fileURL(path)), chromedp.WaitReady(chromedp.CSS("#images-table"))); err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	if ready := eval[string](t, ctx, `document.documentElement.getAttribute("data-script") || ""`); ready != "ready" {
		all, _ := console.settle(t, ctx)
		t.Fatalf("the page's script did not run under its policy (data-script %q); console: %q", ready, all)
	}

	// Summary of the last night: web-01 and web-02 compliant, the hostile
	// key and db-01 noncompliant, broken failed; the hostile key's new
	// rule, db-01's umask resolved.
	stats := eval[map[string]string](t, ctx, `Object.fromEntries(Array.from(document.querySelectorAll("#summary .stats li")).map(li => [li.id, li.querySelector(".n").textContent]))`)
	want := map[string]string{"stat-images": "5", "stat-compliant": "2", "stat-noncompliant": "2", "stat-noprofile": "1", "stat-new": "1", "stat-resolved": "1"}
	if fmt.Sprint(stats) != fmt.Sprint(want) {
		t.Errorf("summary %v, want %v", stats, want)
	}

	// A row per image, the hostile key as text, and no element made of it.
	rows := eval[[]string](t, ctx, visibleKeys)
	if len(rows) != len(keys) || !slices.Contains(rows, hostileKey) {
		t.Errorf("rows %q, want one per image %q", rows, keys)
	}
	if n := eval[int](t, ctx, `document.scripts.length`); n != 1 {
		t.Errorf("%d script elements, want the page's own", n)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("svg").length`); n != 1 {
		t.Errorf("%d svg elements, want the chart", n)
	}
	evidence := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("ul.evidence li")).map(li => li.textContent)`)
	if !slices.Contains(evidence, "/etc/ssh/sshd_config:12 PermitRootLogin yes</code><script>alert(2)</script> ") {
		t.Errorf("evidence %q", evidence)
	}

	// The chart: one point per night in each series.
	points := eval[map[string]int](t, ctx, `Object.fromEntries(Array.from(document.querySelectorAll("#history-chart g.series")).map(g => [g.dataset.series, g.querySelectorAll("circle").length]))`)
	if fmt.Sprint(points) != fmt.Sprint(map[string]int{"compliant": 5, "noncompliant": 5, "noprofile": 5}) {
		t.Errorf("chart points %v, want 5 per series", points)
	}
	titles := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("#history-chart g.compliant circle title")).map(e => e.textContent)`)
	if len(titles) != 5 || titles[0] != "2026-03-01: 1 compliant of 5 images" || titles[4] != "2026-03-05: 2 compliant of 5 images" {
		t.Errorf("compliant points %q", titles)
	}

	// Filters: by text (image key or rule id), status and severity.
	var count string
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) []string {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		count = eval[string](t, ctx, `document.getElementById("images-count").textContent`)
		return eval[[]string](t, ctx, visibleKeys)
	}
	filter := chromedp.ID("images-filter")
	// Clearing is typing backspaces: SetValue would fire no input event.
	clear := chromedp.SendKeys(filter, strings.Repeat(kb.Backspace, 40))
	if got := step("type web", chromedp.SendKeys(filter, "web")); fmt.Sprint(got) != "[images/web-01.qcow2 images/web-02.qcow2]" || count != "2 of 5 shown" {
		t.Errorf("filter web: %q, %q", got, count)
	}
	if got := step("type a rule id", clear, chromedp.SendKeys(filter, "SSHD_DISABLE_ROOT")); fmt.Sprint(got) != fmt.Sprint([]string{hostileKey}) {
		t.Errorf("filter by rule id: %q", got)
	}
	if got := step("status noncompliant", clear, chromedp.SendKeys(filter, "images/"),
		chromedp.SendKeys(chromedp.ID("images-status"), "noncompliant")); fmt.Sprint(got) != fmt.Sprint([]string{hostileKey, "images/db-01.qcow2"}) || count != "2 of 5 shown" {
		t.Errorf("status noncompliant: %q, %q", got, count)
	}
	if got := step("severity critical", chromedp.SendKeys(chromedp.ID("images-severity"), "critical")); fmt.Sprint(got) != "[images/db-01.qcow2]" {
		t.Errorf("noncompliant with a critical finding: %q", got)
	}
	if got := step("any status", chromedp.SendKeys(chromedp.ID("images-status"), "any"), chromedp.SendKeys(chromedp.ID("images-severity"), "any")); len(got) != 5 || count != "5 of 5 shown" {
		t.Errorf("no filter: %q, %q", got, count)
	}
	// Enter in the filter must not submit the form (the policy forbids
	// form actions; a submit would be a violation).
	step("enter", chromedp.SendKeys(filter, "\r"))

	// Sorting: Critical ascending, then descending; Image ascending.
	header := func(n int) chromedp.CSS {
		return chromedp.CSS(fmt.Sprintf("#images-table thead th:nth-child(%d) button", n))
	}
	if got := step("sort critical", chromedp.Click(header(3))); got[len(got)-1] != "images/db-01.qcow2" {
		t.Errorf("critical ascending: %q", got)
	}
	if got := step("sort critical again", chromedp.Click(header(3))); got[0] != "images/db-01.qcow2" {
		t.Errorf("critical descending: %q", got)
	}
	got := step("sort image", chromedp.Click(header(1)))
	if !slices.IsSorted(lower(got)) || len(got) != 5 {
		t.Errorf("image ascending: %q", got)
	}
	if s := eval[string](t, ctx, `document.querySelector("#images-table thead th:nth-child(1)").getAttribute("aria-sort")`); s != "ascending" {
		t.Errorf("aria-sort %q", s)
	}

	// The package tables filter too.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("packages-filter"), "openssl")); err != nil {
		t.Fatal(err)
	}
	if n := eval[int](t, ctx, `Array.from(document.querySelectorAll("#image-packages tbody tr")).filter(r => !r.hidden).length`); n != 1 {
		t.Errorf("package rows with openssl: %d, want 1", n)
	}

	if v := eval[[]string](t, ctx, `window.__violations`); len(v) > 0 {
		t.Errorf("policy violations: %q", v)
	}
	all, bad := console.settle(t, ctx)
	if len(bad) > 0 {
		t.Errorf("console errors: %q", bad)
	}
	t.Logf("console: %q", all)
}

// TestTamperedScriptIsBlocked is the control of TestReportInBrowser's
// console checks: a page whose script no longer matches the policy's hash
// must not run it, and the violation must be seen.
func TestTamperedScriptIsBlocked(t *testing.T) {
	path := writePage(t)
	html, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(string(html), `"use strict";`, `"use strict"; `, 1)
	if tampered == string(html) {
		t.Fatal("no script to tamper with")
	}
	if err := os.WriteFile(path, []byte(tampered), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, console := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(fileURL(path)), chromedp.WaitReady(chromedp.CSS("#images-table"))); err != nil {
		t.Fatal(err)
	}
	if ready := eval[string](t, ctx, `document.documentElement.getAttribute("data-script") || ""`); ready != "" {
		t.Error("a script off its hash ran")
	}
	if v := eval[[]string](t, ctx, `window.__violations`); len(v) == 0 || !strings.HasPrefix(v[0], "script-src") {
		t.Errorf("violations %q, want script-src", v)
	}
	all, bad := console.settle(t, ctx)
	if !slices.ContainsFunc(bad, func(s string) bool { return strings.Contains(s, "Content Security Policy") }) {
		t.Errorf("the console did not report the violation: %q", all)
	}
	t.Logf("console: %q", all)
}

func lower(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strings.ToLower(v)
	}
	return out
}
