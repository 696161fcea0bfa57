// Package browsertest opens the HTML sweep report (sweep.HTML) in a real
// headless browser, Debian's chromium driven with chromedp: what renders,
// that the filters and sorting work under the page's Content-Security-
// Policy, and that the console shows no error and no policy violation.
// It has only tests.
package browsertest
