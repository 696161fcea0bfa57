package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/sweep"
)

// Image is what the inventory keeps of one image of the sweep: its OS
// roots, or why it has none (Missing).
type Image struct {
	Key         string
	ResultKey   string
	Status      sweep.Status
	CarriedFrom string
	// Missing says why the image has no readable data; Roots is then nil.
	Missing string
	Roots   []Root
}

// Root is one OS root of an image, with only the packages and rules the
// query asks about (Read filters them, so that a fleet's inventory is not
// held in memory at once).
type Root struct {
	Root          string
	Type          string
	Distro        string
	ProductName   string
	MajorVersion  int
	MinorVersion  int
	PackageFormat string
	Packages      []Package
	Rules         []Rule
}

// OSVersion is libguestfs's major.minor, or "" when it does not know it
// (it reports 0.0 for rolling releases and Debian testing).
func (r Root) OSVersion() string {
	if r.MajorVersion == 0 && r.MinorVersion == 0 {
		return ""
	}
	return fmt.Sprintf("%d.%d", r.MajorVersion, r.MinorVersion)
}

// Package is an installed package; Version is the package manager's own
// string.
type Package struct {
	Name    string
	Version string
	Arch    string
}

// Rule is a rule's result on one root.
type Rule struct {
	ID       string
	Title    string
	Severity profile.Severity
	Status   profile.Status
}

// maxReason bounds a reason copied from a result or an error.
const maxReason = 512

// Plan lists the images of report r whose key starts with prefix, in the
// report's order (sorted by key). Images whose sweep status has no data
// (failed, timeout, rejected, missing, invalid) come back with Missing
// set; the caller reads the ResultKey of the others and calls Read.
func Plan(r *sweep.Report, prefix string) []Image {
	var out []Image
	for _, ir := range r.Images {
		if !strings.HasPrefix(ir.ImageKey, prefix) {
			continue
		}
		img := Image{Key: ir.ImageKey, ResultKey: ir.ResultKey, Status: ir.Status, CarriedFrom: ir.CarriedFrom}
		switch ir.Status {
		case sweep.StatusCompleted, sweep.StatusNoncompliant:
		default:
			img.Missing = "sweep status " + string(ir.Status)
			if e := ir.Error; e != nil {
				img.Missing += ": " + e.Code + ": " + e.Message
			} else if ir.Status == sweep.StatusMissing {
				img.Missing += ": no result"
			}
		}
		img.Missing = clip(img.Missing, maxReason)
		out = append(out, img)
	}
	return out
}

// NeedsRead says whether img's result is to be read.
func (img *Image) NeedsRead() bool { return img.Missing == "" && img.Roots == nil }

// SetReadError marks img missing because its result could not be read.
func (img *Image) SetReadError(err error) {
	if errors.Is(err, store.ErrNotFound) {
		// The key is in the answer already; say what happened.
		img.Missing = "result not found: deleted since the sweep?"
		return
	}
	img.Missing = clip("result unreadable: "+err.Error(), maxReason)
}

// resultData is the part of a guestkit.profile result's data (the
// runner's ProfileData: the inspect.Report and profile_reports) that the
// inventory reads. Declared here, as package sweep does, so that the
// dispatcher does not link the runner.
type resultData struct {
	OperatingSystems []struct {
		Root          string                `json:"root"`
		Type          string                `json:"type"`
		Distro        string                `json:"distro"`
		ProductName   string                `json:"product_name"`
		MajorVersion  int                   `json:"major_version"`
		MinorVersion  int                   `json:"minor_version"`
		PackageFormat string                `json:"package_format"`
		Applications  []inspect.Application `json:"applications"`
	} `json:"operating_systems"`
	ProfileReports []struct {
		Root    string `json:"root"`
		Results []struct {
			ID       string           `json:"id"`
			Title    string           `json:"title"`
			Severity profile.Severity `json:"severity"`
			Status   profile.Status   `json:"status"`
		} `json:"results"`
	} `json:"profile_reports"`
}

// Read fills img from its result res, keeping only what q asks about (the
// packages named q.Package, the results of rule q.Rule). A result that is
// not img's completed profile result leaves img missing with the reason.
func Read(img *Image, res *result.Result, q Query) {
	if msg := resultProblem(img, res); msg != "" {
		img.Missing = clip(msg, maxReason)
		return
	}
	var data resultData
	if err := json.Unmarshal(res.Data, &data); err != nil {
		img.Missing = clip(fmt.Sprintf("result data is not a profile result: %v", err), maxReason)
		return
	}
	if len(data.OperatingSystems) == 0 {
		img.Missing = "the result lists no operating system"
		return
	}
	roots := make([]Root, 0, len(data.OperatingSystems))
	index := map[string]int{}
	for _, o := range data.OperatingSystems {
		rt := Root{
			Root: o.Root, Type: o.Type, Distro: o.Distro, ProductName: o.ProductName,
			MajorVersion: o.MajorVersion, MinorVersion: o.MinorVersion, PackageFormat: o.PackageFormat,
		}
		if q.Kind == KindPackage {
			for _, a := range o.Applications {
				if a.Name == q.Package {
					rt.Packages = append(rt.Packages, Package{Name: a.Name, Version: a.PackageVersion(o.PackageFormat), Arch: a.Arch})
				}
			}
		}
		index[o.Root] = len(roots)
		roots = append(roots, rt)
	}
	if q.Kind == KindFailedRule {
		for _, pr := range data.ProfileReports {
			i, ok := index[pr.Root]
			if !ok {
				// A profile of a root the inspection does not list: keep
				// it rather than lose its findings.
				i = len(roots)
				index[pr.Root] = i
				roots = append(roots, Root{Root: pr.Root})
			}
			for _, rr := range pr.Results {
				if rr.ID == q.Rule {
					roots[i].Rules = append(roots[i].Rules, Rule{ID: rr.ID, Title: rr.Title, Severity: rr.Severity, Status: rr.Status})
				}
			}
		}
	}
	img.Roots = roots
}

// resultProblem says why res is not img's completed profile result, or "".
// The key check holds for carried results too: a result's key is always
// results/<its job_id>.json.
func resultProblem(img *Image, res *result.Result) string {
	switch {
	case res == nil:
		return "no result"
	case res.APIVersion != result.APIVersion:
		return fmt.Sprintf("result api_version %q, want %q", res.APIVersion, result.APIVersion)
	case store.ResultKey(res.JobID) != img.ResultKey:
		return fmt.Sprintf("the result at %s is for job %q", img.ResultKey, res.JobID)
	case res.Operation != "" && res.Operation != spec.OpProfile:
		return fmt.Sprintf("the result is of operation %q, want %s", res.Operation, spec.OpProfile)
	case res.Status != result.StatusCompleted:
		return fmt.Sprintf("the result is %s now, the sweep saw it completed", res.Status)
	case len(res.Data) == 0 || bytes.Equal(res.Data, []byte("null")):
		return "the result has no data"
	}
	return ""
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
