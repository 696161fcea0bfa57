// Package result defines result v1: the one JSON document that every job
// ends with, whoever writes it (runner or dispatcher).
package result

import (
	"encoding/json"
	"time"

	"guestkit.io/batch/internal/exitcode"
)

// APIVersion identifies the document format.
const APIVersion = "guestkit.io/result/v1"

// Status is the outcome of a job.
type Status string

const (
	// StatusCompleted: the runner did its work; the report is in Data.
	StatusCompleted Status = "completed"
	// StatusFailed: infrastructure or an unexpected error; may be retried.
	StatusFailed Status = "failed"
	// StatusTimeout: the job's timeout_seconds or Job deadline expired.
	StatusTimeout Status = "timeout"
	// StatusRejected: the spec or the image is invalid; retrying cannot help.
	StatusRejected Status = "rejected"
)

// Phase says where a job was when it ended.
type Phase string

const (
	PhaseSpec     Phase = "spec"     // reading and validating the spec
	PhaseFetch    Phase = "fetch"    // getting the image
	PhaseProbe    Phase = "probe"    // format, backing file and checksum checks
	PhaseLaunch   Phase = "launch"   // starting the libguestfs appliance
	PhaseInspect  Phase = "inspect"  // reading the guest
	PhaseProfile  Phase = "profile"  // evaluating rules
	PhaseUpload   Phase = "upload"   // writing the result
	PhaseSchedule Phase = "schedule" // Kubernetes: the pod never ran to the end
)

// Result is result v1.
type Result struct {
	APIVersion     string      `json:"api_version"`
	JobID          string      `json:"job_id"`
	Operation      string      `json:"operation,omitempty"`
	Status         Status      `json:"status"`
	ExitCode       int         `json:"exit_code"`
	Attempt        int         `json:"attempt,omitempty"`
	IdempotencyKey string      `json:"idempotency_key,omitempty"`
	Runner         Runner      `json:"runner"`
	Kubernetes     *Kubernetes `json:"kubernetes,omitempty"`
	StartedAt      time.Time   `json:"started_at"`
	FinishedAt     time.Time   `json:"finished_at"`
	// DurationSeconds is FinishedAt-StartedAt, kept for consumers that do not
	// parse times.
	DurationSeconds float64      `json:"duration_seconds"`
	Image           *Image       `json:"image,omitempty"`
	Accelerator     *Accelerator `json:"accelerator,omitempty"`
	Backend         *Backend     `json:"backend,omitempty"`
	Error           *Error       `json:"error,omitempty"`
	Warnings        []string     `json:"warnings,omitempty"`
	// Timings are the seconds spent per phase (probe, launch, inspect_os,
	// applications, sections, profile, ...), summed over OS roots.
	Timings map[string]float64 `json:"timings,omitempty"`
	Data    json.RawMessage    `json:"data,omitempty"`
}

// Runner identifies what wrote the result.
type Runner struct {
	Name    string `json:"name"` // guestkit-runner or guestkit-dispatcher
	Version string `json:"version"`
	Host    string `json:"host,omitempty"`
}

// Kubernetes identifies the pod that ran the job, when there was one.
type Kubernetes struct {
	Namespace string `json:"namespace,omitempty"`
	Job       string `json:"job,omitempty"`
	Pod       string `json:"pod,omitempty"`
	Node      string `json:"node,omitempty"`
}

// Image holds facts about the disk image, as probed, not as claimed.
type Image struct {
	URI string `json:"uri"`
	// Format is the detected format (qcow2, raw, vmdk, vdi, vhdx, ...).
	Format string `json:"format,omitempty"`
	// DeclaredFormat is what the spec said, when it said something.
	DeclaredFormat string `json:"declared_format,omitempty"`
	VirtualSize    int64  `json:"virtual_size,omitempty"`
	FileSize       int64  `json:"file_size,omitempty"`
	// SHA256 is set only when the checksum was computed and verified.
	SHA256 string `json:"sha256,omitempty"`
	// ETag is the object's, when its server gave one: which version of
	// the image was read (a sweep checks it against its plan). Every range
	// read of a streamed image was pinned to it.
	ETag string `json:"etag,omitempty"`
	// VersionID is the bucket's version id of the object, when it has one.
	VersionID string `json:"version_id,omitempty"`
	// Access is how the runner read the image: AccessLocal, AccessStream or
	// AccessDownload.
	Access string `json:"access,omitempty"`
	// AccessReason says why a remote image was downloaded, not streamed.
	AccessReason string `json:"access_reason,omitempty"`
	// Fetch counts what was fetched of a remote image.
	Fetch *Fetch `json:"fetch,omitempty"`
	// Verification says how the spec's checksum was checked, if it was.
	Verification *Verification `json:"verification,omitempty"`
}

// How a runner reads an image (Image.Access).
const (
	AccessLocal    = "local"    // a file on the node or a mounted volume
	AccessStream   = "stream"   // range reads of the remote object, as needed
	AccessDownload = "download" // the whole object, copied to scratch first
)

// Fetch counts the network reads of a remote image.
type Fetch struct {
	// Bytes is every body byte received, retries and checksum reads
	// included.
	Bytes int64 `json:"bytes"`
	// Requests is every HTTP request made, retries included.
	Requests int64 `json:"requests"`
	Retries  int64 `json:"retries,omitempty"`
	// Fraction is Bytes over the object's size.
	Fraction float64 `json:"fraction"`
}

// How a checksum was verified (Verification.Method).
const (
	// VerifiedWholeObject: the runner hashed every byte of the object.
	VerifiedWholeObject = "whole_object_hash"
	// VerifiedStoreChecksum: the bucket attests a full-object sha256 of
	// the very object version read (S3 additional checksums).
	VerifiedStoreChecksum = "store_checksum"
	// VerifiedSidecar: a KEY.sha256 object written beside the image,
	// newer than it, gives the digest.
	VerifiedSidecar = "sidecar"
	// NotVerified: nothing could be checked without a whole read, and the
	// operator did not ask for one.
	NotVerified = "not_verified"
)

// Verification records how the spec's checksum was checked.
type Verification struct {
	Method string `json:"method"`
	// SHA256 is the digest the method produced or the store attested.
	SHA256 string `json:"sha256,omitempty"`
	// Source names what attested it (the sidecar's key), or why nothing
	// did.
	Source string `json:"source,omitempty"`
}

// Accelerator records how the appliance ran.
type Accelerator struct {
	Requested string `json:"requested"` // auto, kvm or tcg
	Used      string `json:"used"`      // kvm or tcg
	// Fallback explains why auto did not use KVM.
	Fallback string `json:"fallback,omitempty"`
}

// Backend records how the disk was read.
type Backend struct {
	Requested string `json:"requested"` // auto, direct or appliance
	Used      string `json:"used"`      // direct or appliance
	// Fallback says why auto used the appliance.
	Fallback string `json:"fallback,omitempty"`
	// BytesRead is what the direct reader read of the image.
	BytesRead int64 `json:"bytes_read,omitempty"`
}

// Error describes why a job did not complete.
type Error struct {
	Code      Code   `json:"code"`
	Message   string `json:"message"`
	Phase     Phase  `json:"phase"`
	Retryable bool   `json:"retryable"`
	// Fields lists every validation problem, for rejected specs.
	Fields []FieldError `json:"fields,omitempty"`
	// Details carries facts such as a pod's termination reason or log tail.
	Details map[string]string `json:"details,omitempty"`
}

// FieldError is one validation problem: the field path and the bad value.
type FieldError struct {
	Field   string `json:"field"`
	Value   string `json:"value,omitempty"`
	Message string `json:"message"`
}

// Code is a stable machine-readable error code.
type Code string

const (
	CodeSpecInvalid         Code = "spec_invalid"
	CodeSpecUnsupported     Code = "spec_unsupported_operation"
	CodeSpecConflict        Code = "spec_conflict"
	CodeSpecRefused         Code = "spec_refused" // valid, but this dispatcher's policy does not allow it
	CodeImageNotFound       Code = "image_not_found"
	CodeImageUnreadable     Code = "image_unreadable"
	CodeImageEmpty          Code = "image_empty"
	CodeImageFormat         Code = "image_format_unsupported"
	CodeImageFormatMismatch Code = "image_format_mismatch"
	CodeImageBackingFile    Code = "image_backing_file"
	CodeImageCorrupt        Code = "image_corrupt"
	CodeImageChecksum       Code = "image_checksum_mismatch"
	CodeImageTooLarge       Code = "image_too_large"
	CodeImageNoOS           Code = "image_no_os"
	// CodeImageChanged: the object changed while it was read (its ETag or
	// size moved); nothing read is reported. Retrying reads the new one.
	CodeImageChanged Code = "image_changed"
	// CodeImageURLExpired: the presigned URL expired during the run and
	// the runner has no credentials to sign a new one.
	CodeImageURLExpired Code = "image_url_expired"
	// CodeBackendUnsupported: --backend direct met what only the
	// appliance reads (an encrypted volume, a thin pool, NTFS...).
	CodeBackendUnsupported   Code = "backend_unsupported"
	CodeTimeout              Code = "timeout"
	CodeApplianceFailed      Code = "appliance_failed"
	CodeInfrastructure       Code = "infrastructure"
	CodeUploadFailed         Code = "upload_failed"
	CodeInternal             Code = "internal"
	CodePodFailed            Code = "pod_failed"
	CodeDeadlineExceeded     Code = "deadline_exceeded"
	CodeBackoffLimitExceeded Code = "backoff_limit_exceeded"
)

// Exit codes of guestkit-runner; their meanings are in package exitcode.
const (
	ExitCompleted    = exitcode.RunnerCompleted
	ExitInternal     = exitcode.RunnerInternal
	ExitNoncompliant = exitcode.RunnerNoncompliant
	ExitBadSpec      = exitcode.RunnerBadSpec
	ExitBadImage     = exitcode.RunnerBadImage
	ExitInfra        = exitcode.RunnerInfra
	ExitTimeout      = exitcode.RunnerTimeout
	ExitUploadFailed = exitcode.RunnerUploadFailed
	ExitUsage        = exitcode.RunnerUsage
)

// NonRetryableExitCodes are the exit codes for which retrying is useless:
// the same input gives the same answer. The dispatcher's podFailurePolicy
// fails a Job at once on them.
func NonRetryableExitCodes() []int32 {
	var out []int32
	for _, c := range exitcode.Runner() {
		if c.NonRetryable {
			out = append(out, int32(c.Code))
		}
	}
	return out
}

// ExitCodeFor maps a final status and error to the runner's exit code.
func ExitCodeFor(s Status, e *Error, noncompliant bool) int {
	switch s {
	case StatusCompleted:
		if noncompliant {
			return ExitNoncompliant
		}
		return ExitCompleted
	case StatusTimeout:
		return ExitTimeout
	case StatusRejected:
		if e != nil && isSpecCode(e.Code) {
			return ExitBadSpec
		}
		return ExitBadImage
	}
	if e != nil {
		switch e.Code {
		case CodeUploadFailed:
			return ExitUploadFailed
		case CodeInternal:
			return ExitInternal
		}
	}
	return ExitInfra
}

func isSpecCode(c Code) bool {
	return c == CodeSpecInvalid || c == CodeSpecUnsupported || c == CodeSpecConflict || c == CodeSpecRefused
}

// Begin starts the result of a job that runs now.
func Begin(jobID string, by Runner, now time.Time) *Result {
	return &Result{APIVersion: APIVersion, JobID: jobID, Runner: by, StartedAt: now.UTC()}
}

// Finish stamps the end time, the duration and the exit code.
func (r *Result) Finish(now time.Time, noncompliant bool) {
	r.FinishedAt = now.UTC()
	r.DurationSeconds = r.FinishedAt.Sub(r.StartedAt).Seconds()
	r.ExitCode = ExitCodeFor(r.Status, r.Error, noncompliant)
}
