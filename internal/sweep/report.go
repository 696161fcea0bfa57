package sweep

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// APIVersion identifies the report format.
const APIVersion = "guestkit.io/sweep-report/v1"

// Status is an image's outcome in a sweep.
type Status string

const (
	// StatusCompleted: the profile ran and the image is compliant.
	StatusCompleted = Status(result.StatusCompleted)
	// StatusNoncompliant: the profile ran and found failures at or above
	// the threshold (exit code 2).
	StatusNoncompliant Status = "noncompliant"
	StatusFailed              = Status(result.StatusFailed)
	StatusTimeout             = Status(result.StatusTimeout)
	StatusRejected            = Status(result.StatusRejected)
	// StatusMissing: no result object was found for the job.
	StatusMissing Status = "missing"
	// StatusInvalid: a result was found but is not a readable profile
	// result of this job; Error says why.
	StatusInvalid Status = "invalid"
)

// CodeResultInvalid is the error code of StatusInvalid images.
const CodeResultInvalid = "result_invalid"

// Report is a sweep report, guestkit.io/sweep-report/v1.
type Report struct {
	APIVersion string `json:"api_version"`
	Date       string `json:"date"`
	// Prefix is the image prefix the sweep listed.
	Prefix   string   `json:"prefix"`
	Profiles []string `json:"profiles"`
	// SeverityThreshold is the specs' severity_threshold ("" when the
	// spec default applied); a carried result must have used the same.
	SeverityThreshold string `json:"severity_threshold,omitempty"`
	// RulesetVersion is the dispatcher's profile.RulesetVersion(): the
	// rules a fresh read evaluates, which a carried result must match.
	RulesetVersion string `json:"ruleset_version"`
	// Full is true when the sweep was forced to read every image (--full).
	Full       bool           `json:"full"`
	StartedAt  time.Time      `json:"started_at"`
	FinishedAt time.Time      `json:"finished_at"`
	Totals     Totals         `json:"totals"`
	Images     []ImageReport  `json:"images"`
	Skipped    []SkippedImage `json:"skipped"`
	Changes    Changes        `json:"changes"`
}

// Totals sum the images of a report.
type Totals struct {
	// Images counts planned images, whatever their status; Skipped counts
	// skipped objects.
	Images  int `json:"images"`
	Skipped int `json:"skipped"`
	// Carried counts images whose earlier result was carried forward (not
	// read again); Read counts images given a job this sweep.
	Carried  int          `json:"carried"`
	Read     int          `json:"read"`
	ByStatus StatusCounts `json:"by_status"`
	// Findings sums the images' findings.
	Findings profile.SeverityCounts `json:"findings"`
	// NotApplicable sums the images' NotApplicable: rules that did not
	// apply (another OS, software not installed), neither passed nor failed.
	NotApplicable int `json:"not_applicable"`
}

// StatusCounts counts images by Status.
type StatusCounts struct {
	Completed    int `json:"completed"`
	Noncompliant int `json:"noncompliant"`
	Failed       int `json:"failed"`
	Timeout      int `json:"timeout"`
	Rejected     int `json:"rejected"`
	Missing      int `json:"missing"`
	Invalid      int `json:"invalid"`
}

// ImageReport is one planned image's outcome.
type ImageReport struct {
	ImageKey  string `json:"image_key"`
	JobID     string `json:"job_id"`
	ResultKey string `json:"result_key"`
	Status    Status `json:"status"`
	// ExitCode is the result's; absent when there is no result.
	ExitCode *int `json:"exit_code,omitempty"`
	// Error is set for failed, timeout, rejected and invalid images.
	Error *ImageError `json:"error,omitempty"`
	// Roots are the OS roots profiled, for completed and noncompliant
	// images.
	Roots []string `json:"roots"`
	// Findings counts FailedRules by severity.
	Findings profile.SeverityCounts `json:"findings"`
	// FailedRules are the rules with status fail, once per (id, root),
	// sorted by id then root.
	FailedRules []FailedRule `json:"failed_rules"`
	// NotApplicable counts the rules, once per (id, root), that did not
	// apply to the image (a Linux rule on a Windows guest, or the reverse;
	// software not installed): apart from Findings, never a pass or fail.
	NotApplicable int `json:"not_applicable"`
	// CarriedFrom is the date of the sweep that really read the image when
	// its result was carried forward; JobID and ResultKey are then that
	// sweep's. Empty when the image was read this sweep.
	CarriedFrom string `json:"carried_from,omitempty"`
	// Identity is the image object as planned; an unchanged identity is
	// what lets the next sweep carry the result.
	Identity *ImageIdentity `json:"identity,omitempty"`
	// RulesetVersion is the result's ruleset_version (the runner's rules).
	RulesetVersion string `json:"ruleset_version,omitempty"`
	// Packages counts the packages of all the image's OS roots.
	Packages int `json:"packages"`
}

// ImageIdentity names one version of an image object: its ETag and
// version id when the store gives them, and its size.
type ImageIdentity struct {
	ETag      string `json:"etag,omitempty"`
	VersionID string `json:"version_id,omitempty"`
	Size      int64  `json:"size"`
}

// ImageError says why an image has no profile report.
type ImageError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Phase   string `json:"phase,omitempty"`
}

// FailedRule is a rule that failed on one OS root.
type FailedRule struct {
	ID       string           `json:"id"`
	Severity profile.Severity `json:"severity"`
	Root     string           `json:"root"`
	Title    string           `json:"title,omitempty"`
}

// Changes compare a report with the previous sweep's.
type Changes struct {
	// PreviousDate is absent when there is no previous sweep; then the
	// lists are empty.
	PreviousDate string `json:"previous_date,omitempty"`
	// NewImages were not in the previous sweep; GoneImages are no longer
	// planned (deleted, renamed or now skipped).
	NewImages  []string `json:"new_images"`
	GoneImages []string `json:"gone_images"`
	// Images has one entry per image in both sweeps, sorted by key.
	Images []ImageChange `json:"images"`
	// Packages are the package changes across the fleet, sorted by images
	// (descending) then name, arch, kind, from and to.
	Packages []FleetPackageChange `json:"packages"`
}

// ImageChange compares one image's findings with the previous sweep's.
type ImageChange struct {
	ImageKey string `json:"image_key"`
	// Comparable is false when either sweep has no profile report for the
	// image, or the profiles or OS roots differ; Reason says which, and
	// the lists are empty.
	Comparable bool   `json:"comparable"`
	Reason     string `json:"reason,omitempty"`
	// NewFailures fail now and did not before.
	NewFailures []FailedRule `json:"new_failures"`
	// Resolved failed before and now pass, do not apply, or are no longer
	// evaluated.
	Resolved []FailedRule `json:"resolved"`
	// Undecided failed before and are now notchecked or error.
	Undecided []FailedRule `json:"undecided"`
	// Packages are the package changes, when both sweeps have the image's
	// packages and its OS roots are the same.
	Packages *PackageDiff `json:"packages,omitempty"`
}

// PackageDiff compares one image's packages, keyed by (root, name, arch).
// Versions are the package manager's full form ([epoch:]version[-release]).
type PackageDiff struct {
	Added   []PackageRef    `json:"added"`
	Removed []PackageRef    `json:"removed"`
	Changed []PackageChange `json:"changed"`
	// Omitted counts the entries left out of the lists (MaxPackageDiff
	// per list).
	Omitted int `json:"omitted,omitempty"`
}

// PackageRef is one installed package of an OS root.
type PackageRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
	Root    string `json:"root"`
}

// PackageChange is a package whose version changed on one OS root.
type PackageChange struct {
	Name string `json:"name"`
	Arch string `json:"arch"`
	Root string `json:"root"`
	From string `json:"from"`
	To   string `json:"to"`
}

// FleetPackageChange counts the images with one package change: for
// example openssl 3.0.13 to 3.0.15 (kind changed) on 412 images.
type FleetPackageChange struct {
	Name string `json:"name"`
	Arch string `json:"arch"`
	// Kind is added, removed or changed; From is empty when added, To
	// when removed.
	Kind   string `json:"kind"`
	From   string `json:"from"`
	To     string `json:"to"`
	Images int    `json:"images"`
	// ImageKeys are the first MaxFleetImageKeys image keys, sorted.
	ImageKeys []string `json:"image_keys"`
}

// BuildInput is what Build reads.
type BuildInput struct {
	Date     string
	Prefix   string
	Profiles []string
	// StartedAt and FinishedAt bound the sweep.
	StartedAt, FinishedAt time.Time
	Planned               []Planned
	Skipped               []SkippedImage
	// Results by job_id; a planned job without one (or with nil) is
	// missing. Results of other jobs are ignored.
	Results map[string]*result.Result
	// Previous is the previous sweep's report, or nil.
	Previous *Report
	// SeverityThreshold is the specs' ("" for the spec default),
	// RulesetVersion the dispatcher's profile.RulesetVersion(), Full the
	// --full flag: the report records them for the next sweep's Carry.
	SeverityThreshold string
	RulesetVersion    string
	Full              bool
	// Carried are the previous reports of the images not read this sweep,
	// by image key (what Carry returned); their Results are not looked at.
	Carried map[string]ImageReport
	// PreviousPackages are the packages of the previous sweep's results,
	// by result key (ResultPackages), for the images read this sweep; an
	// image without an entry gets no package diff.
	PreviousPackages map[string][]PackageRef
}

// maxMessage bounds an error message copied from a result.
const maxMessage = 1024

// Build makes the report of a sweep. It reads only its input.
func Build(in BuildInput) *Report {
	r := &Report{
		APIVersion: APIVersion,
		Date:       in.Date,
		Prefix:     in.Prefix,
		Profiles:   nonNil(slices.Clone(in.Profiles)),
		// The threshold as applied, so that "" and "medium" compare equal.
		SeverityThreshold: threshold(in.SeverityThreshold),
		RulesetVersion:    in.RulesetVersion,
		Full:              in.Full,
		StartedAt:         in.StartedAt,
		FinishedAt:        in.FinishedAt,
		Images:            []ImageReport{},
		Skipped:           nonNil(slices.Clone(in.Skipped)),
	}
	slices.SortFunc(r.Skipped, func(a, b SkippedImage) int { return strings.Compare(a.Key, b.Key) })

	planned := slices.Clone(in.Planned)
	slices.SortFunc(planned, func(a, b Planned) int { return strings.Compare(a.ImageKey, b.ImageKey) })
	// undecided holds, per image, the (id, root) pairs now notchecked or
	// error; the diff needs them and the report does not keep them.
	undecided := map[string]map[ruleRoot]bool{}
	// packages holds the packages of the images read with a profile
	// report; carried images are not in it (they are unchanged).
	packages := map[string][]PackageRef{}
	for _, p := range planned {
		var img ImageReport
		if old, ok := in.Carried[p.ImageKey]; ok && in.Previous != nil {
			img = carriedImage(p, old, in.Previous.Date)
			r.Totals.Carried++
		} else {
			var und map[ruleRoot]bool
			var pkgs []PackageRef
			img, und, pkgs = imageReport(p, in.Results[p.Job.JobID])
			undecided[img.ImageKey] = und
			if pkgs != nil {
				packages[img.ImageKey] = pkgs
			}
			r.Totals.Read++
		}
		r.Images = append(r.Images, img)
		r.Totals.count(img)
	}
	r.Totals.Images = len(r.Images)
	r.Totals.Skipped = len(r.Skipped)
	r.Changes = changes(r, in.Previous, undecided, packageSides{now: packages, before: in.PreviousPackages})
	return r
}

// carriedImage is old, the previous sweep's report of p's image, carried
// forward: the same job, result and findings, dated by the sweep that
// read it.
func carriedImage(p Planned, old ImageReport, prevDate string) ImageReport {
	img := old
	if img.CarriedFrom == "" {
		img.CarriedFrom = prevDate
	}
	img.Identity = identityOf(p.Image)
	img.Roots = nonNil(slices.Clone(old.Roots))
	img.FailedRules = nonNil(slices.Clone(old.FailedRules))
	if old.ExitCode != nil {
		code := *old.ExitCode
		img.ExitCode = &code
	}
	return img
}

func (t *Totals) count(img ImageReport) {
	c := &t.ByStatus
	switch img.Status {
	case StatusCompleted:
		c.Completed++
	case StatusNoncompliant:
		c.Noncompliant++
	case StatusFailed:
		c.Failed++
	case StatusTimeout:
		c.Timeout++
	case StatusRejected:
		c.Rejected++
	case StatusMissing:
		c.Missing++
	default:
		c.Invalid++
	}
	f, g := &t.Findings, img.Findings
	f.Critical += g.Critical
	f.High += g.High
	f.Medium += g.Medium
	f.Low += g.Low
	f.Info += g.Info
	t.NotApplicable += img.NotApplicable
}

type ruleRoot struct{ id, root string }

// profileData is the part of a guestkit.profile result's data (the
// runner's ProfileData) that a sweep reads. It is declared here so that
// the dispatcher does not link the runner and libguestfs.
type profileData struct {
	OperatingSystems []osPackages `json:"operating_systems"`
	Reports          []rootReport `json:"profile_reports"`
	Noncompliant     bool         `json:"noncompliant"`
	RulesetVersion   string       `json:"ruleset_version"`
}

// rootReport is the runner's RootProfile.
type rootReport struct {
	Root string `json:"root"`
	*profile.Report
}

// imageReport reads one job's result. The map holds the rules now
// notchecked or error; the packages are those of an image with a profile
// report (nil otherwise).
func imageReport(p Planned, res *result.Result) (ImageReport, map[ruleRoot]bool, []PackageRef) {
	img := ImageReport{
		ImageKey:    p.ImageKey,
		JobID:       p.Job.JobID,
		ResultKey:   p.ResultKey,
		Status:      StatusMissing,
		Roots:       []string{},
		FailedRules: []FailedRule{},
		Identity:    identityOf(p.Image),
	}
	if res == nil {
		return img, nil, nil
	}
	code := res.ExitCode
	img.ExitCode = &code
	if msg := resultMismatch(p, res); msg != "" {
		return invalidImage(img, msg), nil, nil
	}
	switch res.Status {
	case result.StatusFailed, result.StatusTimeout, result.StatusRejected:
		img.Status = Status(res.Status)
		img.Error = &ImageError{Code: "unknown", Message: "the result has no error"}
		if e := res.Error; e != nil {
			img.Error = &ImageError{Code: string(e.Code), Message: truncate(e.Message, maxMessage), Phase: string(e.Phase)}
		}
		return img, nil, nil
	case result.StatusCompleted:
	default:
		return invalidImage(img, fmt.Sprintf("unknown status %q", res.Status)), nil, nil
	}
	data, msg := profileReports(res.Data)
	if msg != "" {
		return invalidImage(img, msg), nil, nil
	}
	img, und := completedImage(img, data, res.ExitCode)
	pkgs := packagesOf(data.OperatingSystems)
	img.Packages = len(pkgs)
	img.RulesetVersion = truncate(data.RulesetVersion, maxRulesetVersion)
	return img, und, pkgs
}

// maxRulesetVersion bounds a ruleset_version copied from a result.
const maxRulesetVersion = 64

// invalidImage marks img as having a result a sweep cannot use.
func invalidImage(img ImageReport, msg string) ImageReport {
	img.Status = StatusInvalid
	img.Error = &ImageError{Code: CodeResultInvalid, Message: msg}
	return img
}

// resultMismatch says why res is not a result of p's profile job, or "".
func resultMismatch(p Planned, res *result.Result) string {
	switch {
	case res.APIVersion != result.APIVersion:
		return fmt.Sprintf("api_version %q, want %q", res.APIVersion, result.APIVersion)
	case res.JobID != p.Job.JobID:
		return fmt.Sprintf("the result is for job %q", res.JobID)
	case res.Operation != "" && res.Operation != spec.OpProfile:
		return fmt.Sprintf("the result is of operation %q, want %s", res.Operation, spec.OpProfile)
	}
	return imageMismatch(p.Image, res.Image)
}

// imageMismatch says why a result did not read the planned image object:
// another size, or another ETag when both are known. A result that names
// no image read none (it failed before), which is no mismatch.
func imageMismatch(planned store.Object, read *result.Image) string {
	switch {
	case read == nil:
		return ""
	case planned.Size > 0 && read.FileSize > 0 && read.FileSize != planned.Size:
		return fmt.Sprintf("the result read an image of %d bytes, not the %d-byte object planned", read.FileSize, planned.Size)
	case planned.ETag != "" && read.ETag != "" && read.ETag != planned.ETag:
		return fmt.Sprintf("the result read object %s, not %s as planned", read.ETag, planned.ETag)
	}
	return ""
}

// profileReports decodes a completed result's data, or says why it has
// no usable profile report.
func profileReports(raw json.RawMessage) (profileData, string) {
	var data profileData
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return data, "completed without data"
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		return data, fmt.Sprintf("data is not a profile report: %v", err)
	}
	if len(data.Reports) == 0 {
		return data, "completed without profile_reports"
	}
	for _, rp := range data.Reports {
		if rp.Report == nil {
			return data, fmt.Sprintf("profile report of root %q is empty", rp.Root)
		}
	}
	return data, ""
}

// completedImage tallies the failed and undecided rules of every root.
func completedImage(img ImageReport, data profileData, exitCode int) (ImageReport, map[ruleRoot]bool) {
	status := map[ruleRoot]profile.Status{}
	failed := map[ruleRoot]FailedRule{}
	roots := map[string]bool{}
	for _, rp := range data.Reports {
		roots[rp.Root] = true
		for _, rr := range rp.Results {
			k := ruleRoot{rr.ID, rp.Root}
			// A rule listed twice counts once; a fail anywhere wins.
			if status[k] != profile.StatusFail {
				status[k] = rr.Status
			}
			if rr.Status == profile.StatusFail {
				failed[k] = FailedRule{ID: rr.ID, Severity: rr.Severity, Root: rp.Root, Title: rr.Title}
			}
		}
	}
	img.Status = StatusCompleted
	if data.Noncompliant || exitCode == result.ExitNoncompliant {
		img.Status = StatusNoncompliant
	}
	img.Roots = slices.Sorted(maps.Keys(roots))
	img.FailedRules = slices.SortedFunc(maps.Values(failed), compareRules)
	for _, f := range img.FailedRules {
		addSeverity(&img.Findings, f.Severity)
	}
	undecided := map[ruleRoot]bool{}
	for k, s := range status {
		switch s {
		case profile.StatusNotChecked, profile.StatusError:
			undecided[k] = true
		case profile.StatusNotApplicable:
			img.NotApplicable++
		}
	}
	return img, undecided
}

func compareRules(a, b FailedRule) int {
	if c := strings.Compare(a.ID, b.ID); c != 0 {
		return c
	}
	return strings.Compare(a.Root, b.Root)
}

// addSeverity counts unknown severities as info, as package profile does.
func addSeverity(c *profile.SeverityCounts, s profile.Severity) {
	switch s {
	case profile.SeverityCritical:
		c.Critical++
	case profile.SeverityHigh:
		c.High++
	case profile.SeverityMedium:
		c.Medium++
	case profile.SeverityLow:
		c.Low++
	default:
		c.Info++
	}
}

// hasProfileReport says whether an image's findings can be compared.
func hasProfileReport(s Status) bool { return s == StatusCompleted || s == StatusNoncompliant }

// packageSides are the packages compared: of the images read now by image
// key, and of the previous results by result key.
type packageSides struct{ now, before map[string][]PackageRef }

func changes(cur, prev *Report, undecided map[string]map[ruleRoot]bool, pkgs packageSides) Changes {
	c := Changes{NewImages: []string{}, GoneImages: []string{}, Images: []ImageChange{}, Packages: []FleetPackageChange{}}
	if prev == nil {
		return c
	}
	c.PreviousDate = prev.Date
	before := map[string]ImageReport{}
	for _, img := range prev.Images {
		before[img.ImageKey] = img
	}
	now := map[string]bool{}
	fleet := fleetTally{}
	for _, img := range cur.Images {
		now[img.ImageKey] = true
		old, ok := before[img.ImageKey]
		if !ok {
			c.NewImages = append(c.NewImages, img.ImageKey)
			continue
		}
		ch := imageChange(old, img, prev, cur, undecided[img.ImageKey])
		if d := packageDiff(old, img, pkgs); d != nil {
			fleet.add(img.ImageKey, *d)
			ch.Packages = bounded(*d)
		}
		c.Images = append(c.Images, ch)
	}
	c.Packages = fleet.list()
	for _, img := range prev.Images {
		if !now[img.ImageKey] {
			c.GoneImages = append(c.GoneImages, img.ImageKey)
		}
	}
	slices.Sort(c.GoneImages)
	return c
}

func imageChange(old, cur ImageReport, prev, rep *Report, undecided map[ruleRoot]bool) ImageChange {
	ch := ImageChange{ImageKey: cur.ImageKey, NewFailures: []FailedRule{}, Resolved: []FailedRule{}, Undecided: []FailedRule{}}
	var why []string
	if !hasProfileReport(old.Status) {
		why = append(why, fmt.Sprintf("%s: %s", prev.Date, describe(old)))
	}
	if !hasProfileReport(cur.Status) {
		why = append(why, fmt.Sprintf("%s: %s", rep.Date, describe(cur)))
	}
	if len(why) == 0 && !slices.Equal(sorted(prev.Profiles), sorted(rep.Profiles)) {
		why = append(why, fmt.Sprintf("profiles changed from %s to %s", strings.Join(prev.Profiles, ", "), strings.Join(rep.Profiles, ", ")))
	}
	if len(why) == 0 && !slices.Equal(sorted(old.Roots), sorted(cur.Roots)) {
		why = append(why, fmt.Sprintf("OS roots changed from %s to %s", strings.Join(old.Roots, ", "), strings.Join(cur.Roots, ", ")))
	}
	if len(why) > 0 {
		ch.Reason = "not comparable: " + strings.Join(why, "; ")
		return ch
	}
	ch.Comparable = true
	was := map[ruleRoot]bool{}
	for _, f := range old.FailedRules {
		was[ruleRoot{f.ID, f.Root}] = true
	}
	is := map[ruleRoot]bool{}
	for _, f := range cur.FailedRules {
		k := ruleRoot{f.ID, f.Root}
		is[k] = true
		if !was[k] {
			ch.NewFailures = append(ch.NewFailures, f)
		}
	}
	for _, f := range old.FailedRules {
		k := ruleRoot{f.ID, f.Root}
		switch {
		case is[k]:
		case undecided[k]:
			ch.Undecided = append(ch.Undecided, f)
		default:
			ch.Resolved = append(ch.Resolved, f)
		}
	}
	slices.SortFunc(ch.NewFailures, compareRules)
	slices.SortFunc(ch.Resolved, compareRules)
	slices.SortFunc(ch.Undecided, compareRules)
	return ch
}

// packageDiff compares an image's packages with the previous sweep's,
// or is nil when they cannot be compared: either side has no profile
// report or no package list, or the OS roots changed.
func packageDiff(old, cur ImageReport, pkgs packageSides) *PackageDiff {
	if !hasProfileReport(old.Status) || !hasProfileReport(cur.Status) || !slices.Equal(sorted(old.Roots), sorted(cur.Roots)) {
		return nil
	}
	if cur.CarriedFrom != "" && cur.ResultKey == old.ResultKey {
		// The same result as before: nothing changed.
		return &PackageDiff{Added: []PackageRef{}, Removed: []PackageRef{}, Changed: []PackageChange{}}
	}
	now, ok := pkgs.now[cur.ImageKey]
	if !ok {
		return nil
	}
	before, ok := pkgs.before[old.ResultKey]
	if !ok {
		return nil
	}
	d := diffPackages(before, now)
	return &d
}

// describe names an image's status and error for a reason.
func describe(img ImageReport) string {
	s := string(img.Status)
	if img.Status == StatusMissing {
		s += " (no result at " + img.ResultKey + ")"
	}
	if e := img.Error; e != nil {
		s += " (" + e.Code + ")"
	}
	return s
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// A rune cut in half is invalid UTF-8, which ToValidUTF8 drops.
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// MaxFleetImageKeys bounds FleetPackageChange.ImageKeys.
const MaxFleetImageKeys = 20
