// Package sweep is the pure logic of the nightly compliance sweep
// (guestkit-dispatcher sweep): one guestkit.profile job spec per disk image
// under a bucket prefix, and a report of the results with the changes since
// the previous sweep.
//
//   - Specs plans the jobs of one sweep date.
//   - Build turns the plan and the results into a Report; Encode, Decode
//     and Markdown write and read it.
//   - Previous finds the report of the latest earlier sweep.
//   - HTML renders the report as a self-contained page (no external
//     resources; a Content-Security-Policy that admits only its own
//     style and script, by hash) with the evidence of failed rules read
//     from the results, and a chart of the nights History reads.
//
// # Keys
//
//	sweeps/jobs/<date>/<job_id>.json   the job specs (only the dispatcher writes under sweeps/)
//	results/<job_id>.json              their results (the runner's usual place)
//	sweeps/<date>/report.json          the Report (ReportKey)
//	sweeps/<date>/report.md            its Markdown summary (MarkdownKey)
//	sweeps/<date>/report.html          its HTML page (HTMLKey)
//
// Dates are YYYY-MM-DD. A job_id is "sweep-<date>-<readable>-<hash>" (see
// Specs): a new one every night, so each night's result is kept; images are
// compared across nights by their key.
//
// # Which objects are images
//
// Images come in many extensions (.qcow2, .img, .raw, .vmdk, .vdi, .vhdx,
// .vhd) or none, and the runner detects the format from magic bytes, so
// every object is an image unless it is recognisably something else: a
// folder marker (key ending in "/"), a hidden file, a checksum list
// (SHA256SUMS, ...) or a file with a sidecar suffix (.json, .sha256, .md,
// ...; see sidecarSuffixes). A wrong guess costs one rejected job, which the
// report shows; a list of allowed suffixes would instead drop an image
// without an extension from the compliance sweep. Empty objects, ISOs and
// compressed images are not skipped: the runner's rejection says what they
// are. Skipped objects are listed with a reason, never dropped.
//
// # Statuses
//
// Each planned image gets exactly one Status: completed (compliant),
// noncompliant, failed, timeout, rejected, missing (no result object was
// found: the job did not finish, or its result was lost) or invalid (a
// result that cannot be read as this image's profile result). Missing and
// invalid images stay in the report and its totals.
//
// # Changes
//
// Findings are compared per image key and per (rule id, OS root). They are
// compared only when both sweeps have a completed or noncompliant result
// for the image, ran the same set of profiles and found the same OS roots;
// otherwise the image is "not comparable" with the reason, and no finding
// is called new or resolved. A rule that failed before is resolved when it
// now passes, does not apply or is no longer evaluated; when it is now
// notchecked or error it is undecided, not resolved.
package sweep
