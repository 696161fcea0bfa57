package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
)

// testImage is one row of the MANIFEST scripts/testimages.sh writes.
type testImage struct {
	name, file, format, expected string
}

func readManifest(path string) ([]testImage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []testImage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		c := strings.Split(l, "\t")
		if len(c) != 4 {
			return nil, fmt.Errorf("%s: want 4 tab-separated columns: %q", path, l)
		}
		out = append(out, testImage{name: c[0], file: c[1], format: c[2], expected: c[3]})
	}
	return out, sc.Err()
}

// answer is what a tool said about an image: an error code, or the
// packages it found (name and full version, every OS root merged, since
// Trivy merges them) and how many OS roots.
type answer struct {
	code  string // the runner's error.code; "" when it completed
	pkgs  map[string]bool
	roots int
	fails string // a tool that produced no answer: why
	// The runner's backend block: which backend read the disk, why
	// auto fell back, and what the direct reader read of the image
	// (-1: not reported).
	used, fallback string
	imageRead      int64
}

// pkgKey is a package as every tool can spell it: name and
// [epoch:]version[-release], with apk's "-rN" release written "-N"
// (libguestfs drops the r, Trivy keeps it).
func pkgKey(name string, epoch int, version, release string) string {
	v := version
	if release != "" {
		v += "-" + release
	}
	v = apkRelease.ReplaceAllString(v, "-$1")
	if epoch > 0 {
		v = strconv.Itoa(epoch) + ":" + v
	}
	return name + " " + v
}

var apkRelease = regexp.MustCompile(`-r([0-9]+)$`)

// runnerAnswer reads a runner result (inspect or profile).
func runnerAnswer(path string) answer {
	b, err := os.ReadFile(path)
	if err != nil {
		return answer{fails: "no result: " + err.Error(), imageRead: -1}
	}
	var res result.Result
	if err := json.Unmarshal(b, &res); err != nil {
		return answer{fails: "bad result: " + err.Error(), imageRead: -1}
	}
	a := answer{imageRead: -1}
	if b := res.Backend; b != nil {
		a.used, a.fallback = b.Used, b.Fallback
		if b.Used == "direct" {
			a.imageRead = b.BytesRead
		}
	}
	if res.Error != nil {
		a.code = string(res.Error.Code)
		return a
	}
	// A profile result embeds the inspection report.
	var d runner.ProfileData
	if err := json.Unmarshal(res.Data, &d); err != nil || d.Report == nil {
		a.fails = "result without a report"
		return a
	}
	a.pkgs, a.roots = map[string]bool{}, len(d.OperatingSystems)
	for _, o := range d.OperatingSystems {
		for _, p := range o.Applications {
			a.pkgs[pkgKey(p.Name, p.Epoch, p.Version, p.Release)] = true
		}
	}
	return a
}

// expectedAnswer reads NAME.expected.json, the packages the image was
// built with.
func expectedAnswer(path, code string) (answer, bool) {
	if code != "ok" {
		return answer{code: code}, true
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return answer{}, false
	}
	var e struct {
		OperatingSystems []struct {
			Packages []struct {
				Name, Version, Release string
				Epoch                  int
			} `json:"packages"`
		} `json:"operating_systems"`
	}
	if json.Unmarshal(b, &e) != nil {
		return answer{}, false
	}
	a := answer{pkgs: map[string]bool{}, roots: len(e.OperatingSystems)}
	for _, o := range e.OperatingSystems {
		for _, p := range o.Packages {
			a.pkgs[pkgKey(p.Name, p.Epoch, p.Version, p.Release)] = true
		}
	}
	return a, true
}

// trivyAnswer reads trivy's JSON report: the os-pkgs results.
func trivyAnswer(m measure, path string) answer {
	if m.timedOut {
		return answer{fails: "timeout"}
	}
	if m.exitCode != 0 {
		return answer{fails: fmt.Sprintf("exit %d: %s", m.exitCode, m.stderr)}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return answer{fails: "no report: " + err.Error()}
	}
	var r struct {
		Results []struct {
			Class    string
			Packages []struct {
				Name, Version, Release string
				Epoch                  int
			}
		}
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return answer{fails: "bad report: " + err.Error()}
	}
	a := answer{pkgs: map[string]bool{}}
	for _, res := range r.Results {
		if res.Class != "os-pkgs" {
			continue
		}
		// One result per OS Trivy tells apart.
		a.roots++
		for _, p := range res.Packages {
			a.pkgs[pkgKey(p.Name, p.Epoch, p.Version, p.Release)] = true
		}
	}
	return a
}

// verdict compares an answer with the reference. trivy: the answer is
// Trivy's, which has no error codes and no notion of OS roots, and which
// says "fails" or "finds nothing" on the images it cannot read.
func verdict(got, ref answer, trivy bool) string {
	switch {
	case ref.fails != "":
		return "no reference (" + ref.fails + ")"
	case got.fails != "":
		return "fails (" + got.fails + ")"
	case trivy && len(got.pkgs) == 0:
		return "finds nothing"
	case trivy && ref.code != "":
		return fmt.Sprintf("finds %d packages, want %s", len(got.pkgs), ref.code)
	case ref.code != "" || got.code != "":
		if got.code == ref.code {
			return "right (" + got.code + ")"
		}
		if got.code == "" {
			return fmt.Sprintf("wrong: %d packages, want %s", len(got.pkgs), ref.code)
		}
		if ref.code == "" {
			return "fails (" + got.code + ")"
		}
		return fmt.Sprintf("wrong: %s, want %s", got.code, ref.code)
	}
	var missing, extra int
	for k := range ref.pkgs {
		if !got.pkgs[k] {
			missing++
		}
	}
	for k := range got.pkgs {
		if !ref.pkgs[k] {
			extra++
		}
	}
	var diffs []string
	if missing > 0 || extra > 0 {
		diffs = append(diffs, fmt.Sprintf("%d missing, %d extra", missing, extra))
	}
	if !trivy && got.roots != ref.roots {
		diffs = append(diffs, fmt.Sprintf("%d roots, want %d", got.roots, ref.roots))
	}
	v := fmt.Sprintf("right (%d pkgs)", len(got.pkgs))
	if len(diffs) > 0 {
		v = "wrong: " + strings.Join(diffs, ", ")
	}
	// Trivy's list may be right as a set yet put the packages of
	// several OSes under one.
	if trivy && got.roots < ref.roots {
		v += fmt.Sprintf("; %d OS roots merged into %d", ref.roots, got.roots)
	}
	return v
}

// summarize folds the verdicts of every round into one: the same verdict
// each round, or all of them.
func summarize(vs []string) string {
	if len(vs) > 0 && !slices.ContainsFunc(vs, func(v string) bool { return v != vs[0] }) {
		return vs[0]
	}
	return "varies: " + strings.Join(vs, " / ")
}
