package inventory

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"guestkit.io/batch/internal/pkgversion"
	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/sweep"
)

// APIVersion identifies the JSON answer.
const APIVersion = "guestkit.io/inventory/v1"

// Kind is what a query asks.
type Kind string

const (
	KindPackage    Kind = "package"
	KindOS         Kind = "os"
	KindFailedRule Kind = "failed-rule"
)

// Query is one question to the fleet.
type Query struct {
	Kind Kind
	// Package is the exact package name (KindPackage); Versions restricts
	// its versions.
	Package  string
	Versions Range
	// Rule is the rule id (KindFailedRule).
	Rule string
	// Prefix restricts image keys.
	Prefix string
}

// maxName bounds a package name or rule id on the command line.
const maxName = 256

// Check says what is wrong with q, or nil.
func (q Query) Check() error {
	switch q.Kind {
	case KindPackage:
		if q.Package == "" || len(q.Package) > maxName || strings.ContainsAny(q.Package, " \t\n") {
			return fmt.Errorf("package name %q: want one name of at most %d bytes", q.Package, maxName)
		}
	case KindOS:
	case KindFailedRule:
		if q.Rule == "" || len(q.Rule) > maxName || strings.ContainsAny(q.Rule, " \t\n") {
			return fmt.Errorf("rule id %q: want one id of at most %d bytes", q.Rule, maxName)
		}
	default:
		return fmt.Errorf("query kind %q: want package, os or failed-rule", q.Kind)
	}
	if !q.Versions.Any() && q.Kind != KindPackage {
		return errors.New("a version range needs a package")
	}
	return nil
}

// Answer is the answer to a query; its JSON form is documented in doc.go.
type Answer struct {
	APIVersion    string            `json:"api_version"`
	Query         QueryInfo         `json:"query"`
	Sweep         SweepInfo         `json:"sweep"`
	Images        int               `json:"images"`
	Matched       int               `json:"matched"`
	Packages      []PackageRow      `json:"packages,omitzero"`
	Distributions []DistributionRow `json:"distributions,omitzero"`
	FailedRules   []FailedRuleRow   `json:"failed_rules,omitzero"`
	Missing       []MissingImage    `json:"missing"`
	Warnings      []string          `json:"warnings"`
}

// QueryInfo echoes the query.
type QueryInfo struct {
	Kind    Kind   `json:"kind"`
	Package string `json:"package,omitempty"`
	Version string `json:"version,omitempty"`
	Rule    string `json:"rule,omitempty"`
	Prefix  string `json:"prefix"`
}

// SweepInfo names the sweep the answer comes from.
type SweepInfo struct {
	Date   string `json:"date"`
	Report string `json:"report"`
}

// PackageRow is one package of the query's name on one OS root.
type PackageRow struct {
	ImageKey      string `json:"image_key"`
	Root          string `json:"root"`
	Distro        string `json:"distro"`
	OSVersion     string `json:"os_version"`
	PackageFormat string `json:"package_format"`
	Name          string `json:"name"`
	Version       string `json:"version"`
	Arch          string `json:"arch"`
	ResultKey     string `json:"result_key"`
	CarriedFrom   string `json:"carried_from,omitempty"`
}

// DistributionRow counts the images with one distro and version (an image
// with two roots of different distros counts under both).
type DistributionRow struct {
	Distro       string   `json:"distro"`
	OSVersion    string   `json:"os_version"`
	ProductNames []string `json:"product_names"`
	Images       int      `json:"images"`
	ImageKeys    []string `json:"image_keys"`
	major, minor int
}

// FailedRuleRow is the query's rule failing on one OS root.
type FailedRuleRow struct {
	ImageKey    string           `json:"image_key"`
	Root        string           `json:"root"`
	Distro      string           `json:"distro"`
	OSVersion   string           `json:"os_version"`
	ID          string           `json:"id"`
	Severity    profile.Severity `json:"severity"`
	Title       string           `json:"title"`
	ResultKey   string           `json:"result_key"`
	CarriedFrom string           `json:"carried_from,omitempty"`
}

// MissingImage is an image of the sweep without readable data.
type MissingImage struct {
	ImageKey  string       `json:"image_key"`
	ResultKey string       `json:"result_key"`
	Status    sweep.Status `json:"status"`
	Reason    string       `json:"reason"`
}

// Ask answers q over the images of report rep (Plan, then Read). It reads
// only its input.
func Ask(q Query, rep *sweep.Report, images []Image) *Answer {
	a := &Answer{
		APIVersion: APIVersion,
		Query:      QueryInfo{Kind: q.Kind, Package: q.Package, Version: q.Versions.String(), Rule: q.Rule, Prefix: q.Prefix},
		Sweep:      SweepInfo{Date: rep.Date, Report: sweep.ReportKey(rep.Date)},
		Images:     len(images),
		Missing:    []MissingImage{},
		Warnings:   []string{},
	}
	images = slices.Clone(images)
	slices.SortFunc(images, func(x, y Image) int { return strings.Compare(x.Key, y.Key) })
	for _, img := range images {
		if img.Missing != "" || img.Roots == nil {
			reason := img.Missing
			if reason == "" {
				reason = "result not read"
			}
			a.Missing = append(a.Missing, MissingImage{ImageKey: img.Key, ResultKey: img.ResultKey, Status: img.Status, Reason: reason})
		}
	}
	switch q.Kind {
	case KindPackage:
		a.askPackage(q, images)
	case KindOS:
		a.askOS(images)
	case KindFailedRule:
		a.askRule(q, images)
	}
	return a
}

func (a *Answer) askPackage(q Query, images []Image) {
	a.Packages = []PackageRow{}
	uncompared := map[string][]string{} // format -> image keys
	for _, img := range images {
		matched := false
		for _, rt := range img.Roots {
			for _, p := range rt.Packages {
				ok, err := q.Versions.Contains(pkgversion.Format(rt.PackageFormat), p.Version)
				if err != nil {
					uncompared[rt.PackageFormat] = append(uncompared[rt.PackageFormat], fmt.Sprintf("%s (%s %s)", img.Key, p.Name, p.Version))
					continue
				}
				if !ok {
					continue
				}
				matched = true
				a.Packages = append(a.Packages, PackageRow{
					ImageKey: img.Key, Root: rt.Root, Distro: rt.Distro, OSVersion: rt.OSVersion(), PackageFormat: rt.PackageFormat,
					Name: p.Name, Version: p.Version, Arch: p.Arch, ResultKey: img.ResultKey, CarriedFrom: img.CarriedFrom,
				})
			}
		}
		if matched {
			a.Matched++
		}
	}
	slices.SortStableFunc(a.Packages, func(x, y PackageRow) int {
		return cmp.Or(strings.Compare(x.ImageKey, y.ImageKey), strings.Compare(x.Root, y.Root), strings.Compare(x.Arch, y.Arch), strings.Compare(x.Version, y.Version))
	})
	for _, f := range slices.Sorted(maps.Keys(uncompared)) {
		keys := uncompared[f]
		a.Warnings = append(a.Warnings, fmt.Sprintf("%d packages named %s have versions of package format %q, which cannot be compared with %q: %s",
			len(keys), q.Package, f, q.Versions.String(), strings.Join(firstN(keys, 10), ", ")))
	}
	if !q.Versions.Any() {
		for _, f := range []pkgversion.Format{pkgversion.Deb, pkgversion.RPM, pkgversion.APK} {
			if bad := q.Versions.invalidBounds(f); len(bad) > 0 && a.usesFormat(images, f) {
				a.Warnings = append(a.Warnings, fmt.Sprintf("not a valid %s version, compared as %s compares invalid versions: %s", f, f, strings.Join(bad, "; ")))
			}
		}
	}
}

// usesFormat says whether an image has the query's package on a root of
// format f.
func (a *Answer) usesFormat(images []Image, f pkgversion.Format) bool {
	for _, img := range images {
		for _, rt := range img.Roots {
			if pkgversion.Format(rt.PackageFormat) == f && len(rt.Packages) > 0 {
				return true
			}
		}
	}
	return false
}

func (a *Answer) askOS(images []Image) {
	type key struct {
		distro       string
		major, minor int
	}
	groups := map[key]*DistributionRow{}
	products := map[key]map[string]bool{}
	for _, img := range images {
		if len(img.Roots) > 0 {
			a.Matched++
		}
		for _, rt := range img.Roots {
			k := key{rt.Distro, rt.MajorVersion, rt.MinorVersion}
			g := groups[k]
			if g == nil {
				g = &DistributionRow{Distro: rt.Distro, OSVersion: rt.OSVersion(), ImageKeys: []string{}, major: rt.MajorVersion, minor: rt.MinorVersion}
				groups[k] = g
				products[k] = map[string]bool{}
			}
			if rt.ProductName != "" {
				products[k][rt.ProductName] = true
			}
			// Two roots of one distro in an image count once.
			if n := len(g.ImageKeys); n == 0 || g.ImageKeys[n-1] != img.Key {
				g.ImageKeys = append(g.ImageKeys, img.Key)
			}
		}
	}
	a.Distributions = []DistributionRow{}
	for k, g := range groups {
		g.Images = len(g.ImageKeys)
		g.ProductNames = slices.Sorted(maps.Keys(products[k]))
		a.Distributions = append(a.Distributions, *g)
	}
	slices.SortFunc(a.Distributions, func(x, y DistributionRow) int {
		return cmp.Or(cmp.Compare(y.Images, x.Images), strings.Compare(x.Distro, y.Distro), cmp.Compare(x.major, y.major), cmp.Compare(x.minor, y.minor))
	})
}

func (a *Answer) askRule(q Query, images []Image) {
	a.FailedRules = []FailedRuleRow{}
	evaluated := 0
	for _, img := range images {
		matched, seen := false, false
		for _, rt := range img.Roots {
			failed := false
			var sev profile.Severity
			title := ""
			for _, r := range rt.Rules {
				seen = true
				// A rule listed twice on a root counts once; a fail wins.
				if r.Status == profile.StatusFail && !failed {
					failed, sev, title = true, r.Severity, r.Title
				}
			}
			if failed {
				matched = true
				a.FailedRules = append(a.FailedRules, FailedRuleRow{
					ImageKey: img.Key, Root: rt.Root, Distro: rt.Distro, OSVersion: rt.OSVersion(),
					ID: q.Rule, Severity: sev, Title: title, ResultKey: img.ResultKey, CarriedFrom: img.CarriedFrom,
				})
			}
		}
		if matched {
			a.Matched++
		}
		if seen {
			evaluated++
		}
	}
	slices.SortStableFunc(a.FailedRules, func(x, y FailedRuleRow) int {
		return cmp.Or(strings.Compare(x.ImageKey, y.ImageKey), strings.Compare(x.Root, y.Root))
	})
	if evaluated == 0 && a.Images > len(a.Missing) {
		a.Warnings = append(a.Warnings, fmt.Sprintf("no image evaluated rule %q: is the id right, and is it in the sweep's profiles?", q.Rule))
	}
}

func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(slices.Clone(s[:n]), fmt.Sprintf("and %d more", len(s)-n))
}
