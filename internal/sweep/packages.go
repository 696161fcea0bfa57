package sweep

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/result"
)

// MaxPackageDiff bounds each list of an image's PackageDiff; what is left
// out is counted in Omitted. The fleet counts see every change.
const MaxPackageDiff = 1000

// osPackages is the part of an inspected OS root a sweep reads.
type osPackages struct {
	Root          string                `json:"root"`
	PackageFormat string                `json:"package_format"`
	Applications  []inspect.Application `json:"applications"`
}

// packagesOf lists the packages of every root, sorted by root, name,
// arch and version, each version in its package manager's full form.
func packagesOf(oses []osPackages) []PackageRef {
	var out []PackageRef
	for _, os := range oses {
		for _, a := range os.Applications {
			out = append(out, PackageRef{Name: a.Name, Version: a.PackageVersion(os.PackageFormat), Arch: a.Arch, Root: os.Root})
		}
	}
	slices.SortFunc(out, comparePackageRefs)
	return slices.Compact(nonNil(out))
}

// ResultPackages reads the packages of img's result res: a completed
// guestkit.profile result of img's job. The dispatcher uses it on the
// previous sweep's results (BuildInput.PreviousPackages).
func ResultPackages(img ImageReport, res *result.Result) ([]PackageRef, error) {
	switch {
	case res == nil:
		return nil, errors.New("no result")
	case res.JobID != img.JobID:
		return nil, fmt.Errorf("the result is for job %q, not %q", res.JobID, img.JobID)
	case res.Status != result.StatusCompleted:
		return nil, fmt.Errorf("the result is %s", res.Status)
	}
	data, msg := profileReports(res.Data)
	if msg != "" {
		return nil, errors.New(msg)
	}
	return packagesOf(data.OperatingSystems), nil
}

func comparePackageRefs(a, b PackageRef) int {
	return cmp.Or(strings.Compare(a.Root, b.Root), strings.Compare(a.Name, b.Name),
		strings.Compare(a.Arch, b.Arch), strings.Compare(a.Version, b.Version))
}

type packageKey struct{ root, name, arch string }

// diffPackages compares two package lists keyed by (root, name, arch). A
// key with one version on each side, different, is a change. A key can
// hold several versions (rpm installs kernels side by side): then the
// versions only before are removed and those only now are added.
func diffPackages(old, cur []PackageRef) PackageDiff {
	versions := func(ps []PackageRef) map[packageKey][]string {
		m := map[packageKey][]string{}
		for _, p := range ps {
			k := packageKey{p.Root, p.Name, p.Arch}
			m[k] = append(m[k], p.Version)
		}
		return m
	}
	was, is := versions(old), versions(cur)
	keys := map[packageKey]bool{}
	for k := range was {
		keys[k] = true
	}
	for k := range is {
		keys[k] = true
	}
	d := PackageDiff{Added: []PackageRef{}, Removed: []PackageRef{}, Changed: []PackageChange{}}
	for k := range keys {
		var gone, come []string
		for _, v := range was[k] {
			if !slices.Contains(is[k], v) {
				gone = append(gone, v)
			}
		}
		for _, v := range is[k] {
			if !slices.Contains(was[k], v) {
				come = append(come, v)
			}
		}
		if len(was[k]) == 1 && len(is[k]) == 1 && len(gone) == 1 {
			d.Changed = append(d.Changed, PackageChange{Name: k.name, Arch: k.arch, Root: k.root, From: gone[0], To: come[0]})
			continue
		}
		for _, v := range gone {
			d.Removed = append(d.Removed, PackageRef{Name: k.name, Version: v, Arch: k.arch, Root: k.root})
		}
		for _, v := range come {
			d.Added = append(d.Added, PackageRef{Name: k.name, Version: v, Arch: k.arch, Root: k.root})
		}
	}
	slices.SortFunc(d.Added, comparePackageRefs)
	slices.SortFunc(d.Removed, comparePackageRefs)
	slices.SortFunc(d.Changed, func(a, b PackageChange) int {
		return cmp.Or(strings.Compare(a.Root, b.Root), strings.Compare(a.Name, b.Name),
			strings.Compare(a.Arch, b.Arch), strings.Compare(a.From, b.From))
	})
	return d
}

// bounded cuts d's lists to MaxPackageDiff entries each.
func bounded(d PackageDiff) *PackageDiff {
	cut := func(n int) int {
		if n > MaxPackageDiff {
			d.Omitted += n - MaxPackageDiff
			return MaxPackageDiff
		}
		return n
	}
	d.Added = d.Added[:cut(len(d.Added))]
	d.Removed = d.Removed[:cut(len(d.Removed))]
	d.Changed = d.Changed[:cut(len(d.Changed))]
	return &d
}

// Kinds of FleetPackageChange.
const (
	PackageAdded   = "added"
	PackageRemoved = "removed"
	PackageChanged = "changed"
)

type fleetKey struct{ name, arch, kind, from, to string }

// fleetTally counts images per package change; an image with the same
// change on two roots counts once.
type fleetTally map[fleetKey]map[string]bool

func (t fleetTally) add(image string, d PackageDiff) {
	mark := func(k fleetKey) {
		if t[k] == nil {
			t[k] = map[string]bool{}
		}
		t[k][image] = true
	}
	for _, p := range d.Added {
		mark(fleetKey{p.Name, p.Arch, PackageAdded, "", p.Version})
	}
	for _, p := range d.Removed {
		mark(fleetKey{p.Name, p.Arch, PackageRemoved, p.Version, ""})
	}
	for _, c := range d.Changed {
		mark(fleetKey{c.Name, c.Arch, PackageChanged, c.From, c.To})
	}
}

// list is the tally sorted by images (descending), then name, arch,
// kind, from and to.
func (t fleetTally) list() []FleetPackageChange {
	out := make([]FleetPackageChange, 0, len(t))
	for k, images := range t {
		keys := slices.Sorted(maps.Keys(images))
		out = append(out, FleetPackageChange{
			Name: k.name, Arch: k.arch, Kind: k.kind, From: k.from, To: k.to,
			Images: len(keys), ImageKeys: keys[:min(len(keys), MaxFleetImageKeys)],
		})
	}
	slices.SortFunc(out, func(a, b FleetPackageChange) int {
		return cmp.Or(cmp.Compare(b.Images, a.Images), strings.Compare(a.Name, b.Name), strings.Compare(a.Arch, b.Arch),
			strings.Compare(a.Kind, b.Kind), strings.Compare(a.From, b.From), strings.Compare(a.To, b.To))
	})
	return out
}
