package sweep

import (
	"fmt"
	"slices"

	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// CarryOptions are what a carried result must have been swept with.
type CarryOptions struct {
	// Profiles and SeverityThreshold are this sweep's (Options').
	Profiles          []string
	SeverityThreshold string
	// RulesetVersion is profile.RulesetVersion() of the dispatcher, which
	// is the version the runners it launches evaluate.
	RulesetVersion string
	// Full forces every image to be read (--full): nothing is carried.
	Full bool
}

// Carry decides which planned images are not read again: it returns,
// by image key, the previous sweep's report of each image whose result is
// carried forward. An image is carried when all of these hold:
//
//   - the sweep is not Full and there is a previous report;
//   - the previous sweep ran the same profiles (in any order) with the
//     same severity threshold;
//   - the image's previous status is completed or noncompliant (failed,
//     timeout, rejected, missing and invalid images are always read);
//   - its previous result has a ruleset_version, and it is
//     opts.RulesetVersion (a result written before results carried one is
//     never carried);
//   - the object's identity is unchanged (see sameObject).
//
// CarryReason says which of these fails for one image.
func Carry(planned []Planned, prev *Report, opts CarryOptions) map[string]ImageReport {
	out := map[string]ImageReport{}
	if opts.Full || prev == nil {
		return out
	}
	before := make(map[string]ImageReport, len(prev.Images))
	for _, img := range prev.Images {
		before[img.ImageKey] = img
	}
	for _, p := range planned {
		old, ok := before[p.ImageKey]
		if !ok {
			continue
		}
		if CarryReason(p, prev, &old, opts) == "" {
			out[p.ImageKey] = old
		}
	}
	return out
}

// CarryReason says why p's previous result (old, from prev; nil when the
// image was not in it) is not carried forward, or "" when it is.
func CarryReason(p Planned, prev *Report, old *ImageReport, opts CarryOptions) string {
	switch {
	case opts.Full:
		return "full sweep"
	case prev == nil:
		return "no previous sweep"
	case old == nil:
		return "new image"
	case !slices.Equal(sorted(prev.Profiles), sorted(opts.Profiles)):
		return "profiles changed"
	case threshold(prev.SeverityThreshold) != threshold(opts.SeverityThreshold):
		return "severity threshold changed"
	case !hasProfileReport(old.Status):
		return fmt.Sprintf("previous status %s", old.Status)
	case old.ResultKey == "":
		return "no previous result key"
	case old.RulesetVersion == "":
		return "the previous result has no ruleset version"
	case opts.RulesetVersion == "" || old.RulesetVersion != opts.RulesetVersion:
		return fmt.Sprintf("ruleset changed (%s, now %s)", old.RulesetVersion, opts.RulesetVersion)
	}
	if why := sameObject(old.Identity, p.Image); why != "" {
		return why
	}
	return ""
}

// threshold is a spec's severity_threshold as applied.
func threshold(s string) string {
	if s == "" {
		return spec.DefaultSeverityThreshold
	}
	return s
}

// sameObject says why the object o is not the one old names, or "": the
// size must match, the ETag and the version id must match when both sides
// have one, and at least one of the two must be known on both sides. A
// store that gives neither (the file store) never carries.
func sameObject(old *ImageIdentity, o store.Object) string {
	switch {
	case old == nil:
		return "no previous object identity"
	case old.Size != o.Size:
		return fmt.Sprintf("size changed (%d, now %d bytes)", old.Size, o.Size)
	case old.ETag != "" && o.ETag != "" && old.ETag != o.ETag:
		return "ETag changed"
	case old.VersionID != "" && o.VersionID != "" && old.VersionID != o.VersionID:
		return "version id changed"
	case (old.ETag == "" || o.ETag == "") && (old.VersionID == "" || o.VersionID == ""):
		return "the store gives no ETag or version id to compare"
	}
	return ""
}

// identityOf is the identity of a listed object.
func identityOf(o store.Object) *ImageIdentity {
	return &ImageIdentity{ETag: o.ETag, VersionID: o.VersionID, Size: o.Size}
}
