// Package spec reads job spec v1, the "job protocol v1" of the earlier
// guestkit worker, in JSON or YAML.
//
// Parse turns bytes into a Job and reports unknown fields as warnings;
// Validate lists every problem of a Job; Load does both. Only the operations
// in SupportedOperations run here; every other operation is recognised and
// rejected with ErrUnsupportedOperation, so old job files fail loudly instead
// of half-running.
//
// Defaults for absent fields are applied by accessor methods, never written
// into the Job, so that a Job always says what the submitter wrote.
package spec

import (
	"net/url"
	"slices"
	"strings"
	"time"

	"guestkit.io/batch/internal/profile/names"
	"guestkit.io/batch/internal/result"
)

// Operations this package accepts.
const (
	OpInspect = "guestkit.inspect"
	OpProfile = "guestkit.profile"
)

// MaxSize is the largest spec accepted, in bytes. Real specs are a few KiB;
// the bound keeps a hostile spec from costing memory.
const MaxSize = 1 << 20

// Defaults applied by the accessors when a field is absent.
const (
	DefaultTimeout     = 3600 * time.Second
	DefaultMaxAttempts = 3
	DefaultPriority    = 5
	DefaultOutput      = "json"
	// DefaultSeverityThreshold: see ProfileOptions.
	DefaultSeverityThreshold = "medium"
)

// Time added to execution.timeout_seconds; the executors allow it on top of
// the runner's own timeout.
const (
	// StartGrace covers a pod's start: the runner image pull, container
	// creation, reading the spec. (Downloading the image is inside the
	// runner's timeout.)
	StartGrace = 5 * time.Minute
	// UploadGrace is the runner's own budget for storing the result after
	// the job's time is up (runner/README.md: "The upload gets its own 5
	// minutes").
	UploadGrace = 5 * time.Minute
)

// SupportedOperations lists the operations this package accepts.
func SupportedOperations() []string { return []string{OpInspect, OpProfile} }

// The ways into a disk. BackendDirect reads it in Go with no VM;
// BackendAppliance boots the libguestfs appliance; BackendAuto uses
// direct and falls back to the appliance for what direct does not read.
const (
	BackendAuto      = "auto"
	BackendDirect    = "direct"
	BackendAppliance = "appliance"
)

// Backends lists the backend names, the default first.
func Backends() []string { return []string{BackendAuto, BackendDirect, BackendAppliance} }

// Backend is the job's backend, "" when the spec leaves it to the runner.
func (j *Job) Backend() string {
	if d := j.Payload.Data; d != nil && d.Options != nil {
		return d.Options.Backend
	}
	return ""
}

// KnownProfiles lists the profile names a guestkit.profile job may ask for.
func KnownProfiles() []string { return names.All() }

// Job is one job spec v1 document.
//
// Pointer fields distinguish "absent" from a zero value; use the accessor
// methods to read them with their defaults.
type Job struct {
	Schema    string     `json:"$schema,omitempty"`
	Version   string     `json:"version"`
	JobID     string     `json:"job_id"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	// Kind is "VMOperation" when present.
	Kind      string `json:"kind,omitempty"`
	Operation string `json:"operation"`

	Metadata      *Metadata      `json:"metadata,omitempty"`
	Execution     *Execution     `json:"execution,omitempty"`
	Constraints   *Constraints   `json:"constraints,omitempty"`
	Routing       *Routing       `json:"routing,omitempty"`
	Observability *Observability `json:"observability,omitempty"`
	Audit         *Audit         `json:"audit,omitempty"`
	Payload       Payload        `json:"payload"`

	// Raw is the document as submitted, unknown fields included.
	Raw []byte `json:"-"`

	digest   string              // of Raw, set by Parse
	problems []result.FieldError // type errors found by Parse, reported by Validate
}

// Metadata describes a job for people and for Kubernetes objects.
type Metadata struct {
	Name string `json:"name,omitempty"`
	// Namespace is a DNS-1123 label.
	Namespace string `json:"namespace,omitempty"`
	// Labels follow Kubernetes label syntax so that a dispatcher can copy
	// them onto the Job and pod it creates.
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations: Kubernetes keys, free text values (newlines allowed).
	Annotations map[string]string `json:"annotations,omitempty" spec:"multiline,max=65536"`
}

// Execution controls retries and time.
type Execution struct {
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Attempt is 1-based; default 1.
	Attempt *int `json:"attempt,omitempty"`
	// MaxAttempts is 1..100; default DefaultMaxAttempts.
	MaxAttempts *int `json:"max_attempts,omitempty"`
	// TimeoutSeconds is 1..604800 (7 days); default DefaultTimeout.
	TimeoutSeconds *int64     `json:"timeout_seconds,omitempty"`
	Deadline       *time.Time `json:"deadline,omitempty"`
	// Priority is 0 (lowest) to 10 (most urgent); default DefaultPriority.
	// It is advice for the dispatcher's ordering, not a guarantee.
	Priority *int `json:"priority,omitempty"`
	// Cancellable defaults to true.
	Cancellable *bool `json:"cancellable,omitempty"`
}

// Constraints say what a worker must offer.
type Constraints struct {
	RequiredCapabilities []string `json:"required_capabilities,omitempty"`
	RequiredFeatures     []string `json:"required_features,omitempty"`
	// MinimumWorkerVersion is MAJOR.MINOR.PATCH, optionally with "v" and a
	// pre-release suffix.
	MinimumWorkerVersion string `json:"minimum_worker_version,omitempty"`
	MaximumDiskSizeGB    *int64 `json:"maximum_disk_size_gb,omitempty"`
	// RequirePrivileged is accepted for compatibility and ignored: runners
	// never run privileged.
	RequirePrivileged  *bool    `json:"require_privileged,omitempty"`
	AllowedWorkerPools []string `json:"allowed_worker_pools,omitempty"`
}

// Routing says where a job should run.
type Routing struct {
	// WorkerPool must be one of Constraints.AllowedWorkerPools when both are set.
	WorkerPool string    `json:"worker_pool,omitempty"`
	Affinity   *Affinity `json:"affinity,omitempty"`
	// NodeSelector uses Kubernetes label syntax.
	NodeSelector map[string]string `json:"node_selector,omitempty"`
}

// Affinity hints at placement.
type Affinity struct {
	// DiskLocality is an absolute host path under which the image lives.
	DiskLocality string `json:"disk_locality,omitempty" spec:"max=4096"`
}

// Observability carries tracing identifiers through to the result and logs.
type Observability struct {
	TraceID       string  `json:"trace_id,omitempty"`
	SpanID        string  `json:"span_id,omitempty"`
	ParentSpanID  *string `json:"parent_span_id,omitempty"`
	CorrelationID string  `json:"correlation_id,omitempty"`
}

// Audit records who submitted a job. It is informational: nothing here is
// trusted for authorization.
type Audit struct {
	SubmittedBy   string         `json:"submitted_by,omitempty"`
	SubmittedFrom string         `json:"submitted_from,omitempty"`
	Authorization *Authorization `json:"authorization,omitempty"`
}

// Authorization says how the submitter authenticated.
type Authorization struct {
	Method  string `json:"method,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// Payload is the operation's input. Type is Operation + ".v1".
type Payload struct {
	Type string `json:"type"`
	// Data is nil for unsupported operations: their data is not
	// interpreted and stays in Job.Raw.
	Data *Data `json:"data,omitempty"`
}

// Data is payload.data of guestkit.inspect and guestkit.profile. Fields that
// belong to one operation only are tagged; in the other they are ignored
// with a warning.
type Data struct {
	Image   *Image   `json:"image,omitempty"`
	Options *Options `json:"options,omitempty"`
	// Profiles: non-empty, no duplicates, each one of KnownProfiles.
	Profiles []string `json:"profiles,omitempty" spec:"op=guestkit.profile"`
	Output   *Output  `json:"output,omitempty"`
}

// Image names the disk image: exactly one of Path and URI.
type Image struct {
	// Path is an absolute, clean path on the runner (no "..", "." or "//").
	Path string `json:"path,omitempty" spec:"max=4096"`
	// URI schemes: file:///<path>, s3://<bucket>/<key>, minio://<bucket>/<key>
	// (endpoint from the runner's configuration), http(s)://<host>/<path>
	// (no user:password@), and pvc://<claim>/<path> (a file on a
	// PersistentVolumeClaim in the job's namespace).
	URI string `json:"uri,omitempty" spec:"max=8192"`
	// Format is the declared format (qcow2, raw, vmdk, vdi, vhdx, vpc). It is
	// optional: the runner probes the image and reports a mismatch.
	Format string `json:"format,omitempty"`
	// Checksum is "sha256:<64 hex digits>".
	Checksum  string `json:"checksum,omitempty"`
	SizeBytes *int64 `json:"size_bytes,omitempty"`
	// ReadOnly may be absent or true; false is rejected, since images are
	// never written.
	ReadOnly *bool `json:"read_only,omitempty"`
}

// Options are the switches of both operations; see InspectOptions and
// ProfileOptions for their defaults.
type Options struct {
	// Backend is how the runner reads the disk: auto (default), direct
	// or appliance; see Backends.
	Backend string `json:"backend,omitempty"`

	DeepScan         *bool `json:"deep_scan,omitempty" spec:"op=guestkit.inspect"`
	IncludePackages  *bool `json:"include_packages,omitempty" spec:"op=guestkit.inspect"`
	IncludeServices  *bool `json:"include_services,omitempty" spec:"op=guestkit.inspect"`
	IncludeUsers     *bool `json:"include_users,omitempty" spec:"op=guestkit.inspect"`
	IncludeNetwork   *bool `json:"include_network,omitempty" spec:"op=guestkit.inspect"`
	IncludeSecurity  *bool `json:"include_security,omitempty" spec:"op=guestkit.inspect"`
	IncludeStorage   *bool `json:"include_storage,omitempty" spec:"op=guestkit.inspect"`
	IncludeDatabases *bool `json:"include_databases,omitempty" spec:"op=guestkit.inspect"`

	// SeverityThreshold is none, info, low, medium, high or critical.
	SeverityThreshold  string `json:"severity_threshold,omitempty" spec:"op=guestkit.profile"`
	FailOnCritical     *bool  `json:"fail_on_critical,omitempty" spec:"op=guestkit.profile"`
	IncludeRemediation *bool  `json:"include_remediation,omitempty" spec:"op=guestkit.profile"`
}

// Output says how the report is encoded.
type Output struct {
	// Format is one of result.Formats(): json (the result alone), sarif or
	// junit (profile findings), cyclonedx or spdx (an SBOM of the
	// packages); default DefaultOutput.
	Format string `json:"format,omitempty"`
	// Destination is accepted for compatibility and ignored: the result
	// always goes to the result URI the runner was given.
	Destination string `json:"destination,omitempty" spec:"max=4096"`
	// Compression is absent, null or "none": results are stored as plain JSON.
	Compression *string `json:"compression,omitempty"`
	// IncludeRemediation is the v1 spelling of Options.IncludeRemediation.
	IncludeRemediation *bool `json:"include_remediation,omitempty" spec:"op=guestkit.profile"`
}

// InspectOptions are a guestkit.inspect job's switches with defaults applied.
type InspectOptions struct {
	DeepScan bool // default false: it reads far more of the guest
	// The sections, each included by default.
	Packages, Services, Users, Network, Security, Storage, Databases bool
}

// ProfileOptions are a guestkit.profile job's settings with defaults applied.
type ProfileOptions struct {
	Profiles []string
	// SeverityThreshold is the lowest severity that makes the job
	// noncompliant (result.ExitNoncompliant); default DefaultSeverityThreshold.
	SeverityThreshold string
	// FailOnCritical defaults to true: a critical failure makes the job
	// noncompliant whatever the threshold, including "none" (which otherwise
	// means "never noncompliant by severity").
	FailOnCritical bool
	// IncludeRemediation defaults to true: remediation text is what users act on.
	IncludeRemediation bool
}

// Timeout is execution.timeout_seconds, or DefaultTimeout.
func (j *Job) Timeout() time.Duration {
	if e := j.Execution; e != nil && e.TimeoutSeconds != nil {
		return time.Duration(*e.TimeoutSeconds) * time.Second
	}
	return DefaultTimeout
}

// MaxAttempts is execution.max_attempts, or DefaultMaxAttempts.
func (j *Job) MaxAttempts() int {
	if e := j.Execution; e != nil && e.MaxAttempts != nil {
		return *e.MaxAttempts
	}
	return DefaultMaxAttempts
}

// Attempt is execution.attempt, or 1.
func (j *Job) Attempt() int {
	if e := j.Execution; e != nil && e.Attempt != nil {
		return *e.Attempt
	}
	return 1
}

// Priority is execution.priority, or DefaultPriority.
func (j *Job) Priority() int {
	if e := j.Execution; e != nil && e.Priority != nil {
		return *e.Priority
	}
	return DefaultPriority
}

// Cancellable is execution.cancellable, or true.
func (j *Job) Cancellable() bool {
	if e := j.Execution; e != nil && e.Cancellable != nil {
		return *e.Cancellable
	}
	return true
}

// Deadline is execution.deadline, if set.
func (j *Job) Deadline() (time.Time, bool) {
	if e := j.Execution; e != nil && e.Deadline != nil {
		return *e.Deadline, true
	}
	return time.Time{}, false
}

// Image is payload.data.image, or nil.
func (j *Job) Image() *Image {
	if j.Payload.Data == nil {
		return nil
	}
	return j.Payload.Data.Image
}

// OutputFormat is payload.data.output.format, or DefaultOutput.
func (j *Job) OutputFormat() string {
	if d := j.Payload.Data; d != nil && d.Output != nil && d.Output.Format != "" {
		return d.Output.Format
	}
	return DefaultOutput
}

// InspectOptions returns the inspect switches with defaults applied.
func (j *Job) InspectOptions() InspectOptions {
	var o Options
	if d := j.Payload.Data; d != nil && d.Options != nil {
		o = *d.Options
	}
	return InspectOptions{
		DeepScan:  boolOr(o.DeepScan, false),
		Packages:  boolOr(o.IncludePackages, true),
		Services:  boolOr(o.IncludeServices, true),
		Users:     boolOr(o.IncludeUsers, true),
		Network:   boolOr(o.IncludeNetwork, true),
		Security:  boolOr(o.IncludeSecurity, true),
		Storage:   boolOr(o.IncludeStorage, true),
		Databases: boolOr(o.IncludeDatabases, true),
	}
}

// ProfileOptions returns the profile settings with defaults applied.
func (j *Job) ProfileOptions() ProfileOptions {
	p := ProfileOptions{
		SeverityThreshold:  DefaultSeverityThreshold,
		FailOnCritical:     true,
		IncludeRemediation: true,
	}
	d := j.Payload.Data
	if d == nil {
		return p
	}
	p.Profiles = slices.Clone(d.Profiles)
	if d.Output != nil && d.Output.IncludeRemediation != nil {
		p.IncludeRemediation = *d.Output.IncludeRemediation
	}
	if o := d.Options; o != nil {
		if o.SeverityThreshold != "" {
			p.SeverityThreshold = o.SeverityThreshold
		}
		p.FailOnCritical = boolOr(o.FailOnCritical, true)
		// Validate rejects a conflict, so the order only matters for
		// unvalidated Jobs.
		p.IncludeRemediation = boolOr(o.IncludeRemediation, p.IncludeRemediation)
	}
	return p
}

// Location is the image as a URI: URI itself, or Path as a file:// URI.
func (i *Image) Location() string {
	if i.URI != "" {
		return i.URI
	}
	return (&url.URL{Scheme: "file", Path: i.Path}).String()
}

// SHA256 returns the expected digest in lower case, and false when Checksum
// is absent or not a well-formed sha256 checksum.
func (i *Image) SHA256() (string, bool) {
	d, ok := strings.CutPrefix(i.Checksum, "sha256:")
	if !ok || !isHex64(d) {
		return "", false
	}
	return strings.ToLower(d), true
}

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
