package sweep

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"

	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// Options are the settings shared by every job of a sweep.
type Options struct {
	// Profiles to run: at least one, no duplicates, each a profile of
	// package profile.
	Profiles []string
	// SeverityThreshold is the spec's severity_threshold; "" means the
	// spec's default (spec.DefaultSeverityThreshold).
	SeverityThreshold string
	// Timeout is a whole number of seconds; 0 means the spec's default.
	Timeout time.Duration
	// MaxAttempts: 0 means the spec's default.
	MaxAttempts int
	// Priority: nil means the spec's default. A pointer because 0, the
	// lowest priority, is a sensible choice for a nightly batch.
	Priority *int
	// Labels go to metadata.labels of every job (Kubernetes label syntax).
	Labels map[string]string
	// CreatedAt is the specs' created_at, required: Specs does not read
	// the clock.
	CreatedAt time.Time
}

// Planned is the job of one image.
type Planned struct {
	ImageKey string
	// Image is the image object as listed: a result must have read this
	// size (and ETag, when the runner got one) to count.
	Image     store.Object
	SpecKey   string // sweeps/jobs/<date>/<job_id>.json
	ResultKey string // results/<job_id>.json
	// Job is valid; it was parsed back from SpecJSON, so Job.Raw is
	// SpecJSON and Job.Digest is the spec's digest.
	Job      *spec.Job
	SpecJSON []byte
}

// SkippedImage is a listed object that gets no job, and why.
type SkippedImage struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// Layout of a job_id: "sweep-" date "-" readable "-" hash.
const (
	jobIDPrefix = "sweep-"
	hashLen     = 10 // hex digits of sha256(image key): 40 bits
	maxJobID    = 128
	maxReadable = maxJobID - len(jobIDPrefix) - len(time.DateOnly) - 1 - 1 - hashLen // 100
	// maxIdempotencyKey is spec's bound on execution.idempotency_key.
	maxIdempotencyKey = 253
)

// Specs plans one guestkit.profile job per image among images (a listing
// of the bucket), for the sweep of date (YYYY-MM-DD). The image URI is
// bucket.URI(key), without a format: the runner detects it.
//
// Objects that are not images (see the package documentation), whose key
// is invalid, whose key cannot be written in a valid spec, or whose job_id
// collides with another image's are returned as skipped, with the reason.
// Invalid options or a duplicate key are errors. Planned and skipped are
// sorted by key.
//
// Each job's execution.idempotency_key is "sweep/<date>/<image key>"; when
// that is longer than the spec allows (253 bytes) or holds characters that
// are not printable, it is "sweep/<date>/sha256:<hex of the image key>".
//
// Future work: an image's "<key>.sha256" sidecar could become the spec's
// image.checksum, so that the runner verifies what it read; today the
// sidecar is only skipped.
func Specs(date string, images []store.Object, bucket store.Store, opts Options) ([]Planned, []SkippedImage, error) {
	if err := checkDate(date); err != nil {
		return nil, nil, err
	}
	if err := checkOptions(opts); err != nil {
		return nil, nil, err
	}
	// Options that make every spec invalid are reported once, here, rather
	// than as one skipped image per image.
	if err := newJob(date, "sweep-probe.img", bucket, opts).Validate(); err != nil {
		return nil, nil, fmt.Errorf("sweep options: %w", err)
	}

	keys := make([]string, 0, len(images))
	listed := make(map[string]store.Object, len(images))
	for _, o := range images {
		keys = append(keys, o.Key)
		listed[o.Key] = o
	}
	slices.Sort(keys)
	var planned []Planned
	var skipped []SkippedImage
	owner := map[string]string{} // job_id -> image key
	for i, key := range keys {
		if i > 0 && keys[i-1] == key {
			return nil, nil, fmt.Errorf("image %q is listed twice", key)
		}
		if why := skipReason(key); why != "" {
			skipped = append(skipped, SkippedImage{Key: key, Reason: why})
			continue
		}
		j := newJob(date, key, bucket, opts)
		if err := j.Validate(); err != nil {
			// The options passed with the probe key: the key is the problem.
			skipped = append(skipped, SkippedImage{Key: key, Reason: "cannot be named in a job spec: " + err.Error()})
			continue
		}
		p, err := plan(date, key, j)
		if err != nil {
			return nil, nil, fmt.Errorf("image %q: %w", key, err)
		}
		id := p.Job.JobID
		if other, dup := owner[id]; dup {
			// 40 bits of hash collide: this image is reported, not run
			// under another's job_id, and the sweep goes on.
			skipped = append(skipped, SkippedImage{Key: key, Reason: fmt.Sprintf("its job_id %s collides with image %q's", id, other)})
			continue
		}
		owner[id] = key
		p.Image = listed[key]
		planned = append(planned, p)
	}
	return planned, skipped, nil
}

// plan encodes the valid job j of key.
func plan(date, key string, j *spec.Job) (Planned, error) {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return Planned{}, fmt.Errorf("encode job %s: %w", j.JobID, err)
	}
	data = append(data, '\n')
	// Parse it back, so that the Job is exactly what the runner will read.
	parsed, warnings, err := spec.Load(data)
	if err != nil {
		return Planned{}, fmt.Errorf("job %s does not read back: %w", j.JobID, err)
	}
	if len(warnings) > 0 {
		return Planned{}, fmt.Errorf("job %s reads back with warnings: %v", j.JobID, warnings)
	}
	return Planned{
		ImageKey:  key,
		SpecKey:   store.SweepSpecsPrefix + date + "/" + j.JobID + ".json",
		ResultKey: store.ResultKey(j.JobID),
		Job:       parsed,
		SpecJSON:  data,
	}, nil
}

func newJob(date, key string, bucket store.Store, opts Options) *spec.Job {
	created := opts.CreatedAt.UTC()
	exec := &spec.Execution{IdempotencyKey: idempotencyKey(date, key)}
	if opts.Timeout != 0 {
		s := int64(opts.Timeout / time.Second)
		exec.TimeoutSeconds = &s
	}
	if opts.MaxAttempts != 0 {
		n := opts.MaxAttempts
		exec.MaxAttempts = &n
	}
	if opts.Priority != nil {
		n := *opts.Priority
		exec.Priority = &n
	}
	var meta *spec.Metadata
	if len(opts.Labels) > 0 {
		meta = &spec.Metadata{Labels: maps.Clone(opts.Labels)}
	}
	data := &spec.Data{
		Image:    &spec.Image{URI: bucket.URI(key)},
		Profiles: slices.Clone(opts.Profiles),
	}
	if opts.SeverityThreshold != "" {
		data.Options = &spec.Options{SeverityThreshold: opts.SeverityThreshold}
	}
	return &spec.Job{
		Version:   "1.0",
		JobID:     jobID(date, key),
		CreatedAt: &created,
		Kind:      "VMOperation",
		Operation: spec.OpProfile,
		Metadata:  meta,
		Execution: exec,
		Payload:   spec.Payload{Type: spec.OpProfile + ".v1", Data: data},
	}
}

// checkOptions checks what Validate cannot see or would report once per
// image.
func checkOptions(opts Options) error {
	if opts.CreatedAt.IsZero() {
		return errors.New("sweep options: CreatedAt is required")
	}
	if len(opts.Profiles) == 0 {
		return errors.New("sweep options: no profiles")
	}
	var known []string
	for _, p := range profile.Profiles() {
		known = append(known, p.Name)
	}
	for i, p := range opts.Profiles {
		if !slices.Contains(known, p) {
			return fmt.Errorf("sweep options: unknown profile %q (known: %s)", p, strings.Join(known, ", "))
		}
		if slices.Contains(opts.Profiles[:i], p) {
			return fmt.Errorf("sweep options: profile %q listed twice", p)
		}
	}
	if opts.Timeout < 0 || opts.Timeout%time.Second != 0 {
		return fmt.Errorf("sweep options: timeout %s is not a whole number of seconds", opts.Timeout)
	}
	return nil
}

// checkDate accepts YYYY-MM-DD only, so that dates sort as strings.
func checkDate(date string) error {
	t, err := time.Parse(time.DateOnly, date)
	if err != nil || t.Format(time.DateOnly) != date {
		return fmt.Errorf("sweep date %q: want YYYY-MM-DD", date)
	}
	return nil
}

// jobID is "sweep-<date>-<readable>-<hash>": readable is the key with
// every run of characters outside [A-Za-z0-9._-] turned into one '_',
// keeping its last 100 characters (the file name is at the end); hash is
// the first 10 hex digits of the key's SHA-256, which makes the job_id
// unique whatever sanitizing merged.
func jobID(date, key string) string {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:])[:hashLen]
	r := readableTail(key, maxReadable)
	if r == "" {
		return jobIDPrefix + date + "-" + h
	}
	return jobIDPrefix + date + "-" + r + "-" + h
}

func readableTail(key string, max int) string {
	var b strings.Builder
	under := false
	for _, r := range key {
		if isJobIDChar(r) {
			b.WriteRune(r)
			under = false
		} else if !under {
			b.WriteByte('_')
			under = true
		}
	}
	s := b.String() // ASCII only: byte slicing is safe
	if len(s) > max {
		s = s[len(s)-max:]
	}
	return strings.Trim(s, "._-")
}

func isJobIDChar(r rune) bool {
	return '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || r == '.' || r == '_' || r == '-'
}

func idempotencyKey(date, key string) string {
	k := "sweep/" + date + "/" + key
	if len(k) <= maxIdempotencyKey && !strings.ContainsFunc(k, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return k
	}
	sum := sha256.Sum256([]byte(key))
	return "sweep/" + date + "/sha256:" + hex.EncodeToString(sum[:])
}

// sidecarSuffixes are the (lower-case) suffixes of files kept beside disk
// images that are never images: metadata, notes, checksums, signatures,
// VM descriptors, partial uploads.
func sidecarSuffixes() []string {
	return []string{
		".json", ".yaml", ".yml", ".xml", ".md", ".txt", ".log", ".html", ".csv",
		".sha1", ".sha256", ".sha512", ".md5", ".sha1sum", ".sha256sum", ".sha512sum", ".md5sum",
		".sig", ".asc", ".gpg", ".pem",
		".ovf", ".mf",
		".tmp", ".part", ".partial", ".lock",
	}
}

// checksumLists are file names (upper case) of checksum lists, which have
// no suffix.
func checksumLists() []string {
	return []string{"SHA1SUMS", "SHA256SUMS", "SHA512SUMS", "MD5SUMS", "CHECKSUMS"}
}

// skipReason says why key gets no job; "" means it is an image.
func skipReason(key string) string {
	if strings.HasSuffix(key, "/") {
		return "folder marker (key ends in /)"
	}
	if err := store.ValidateKey(key); err != nil {
		return err.Error()
	}
	base := path.Base(key)
	lower := strings.ToLower(base)
	switch {
	case strings.HasPrefix(base, "."):
		return "hidden file"
	case slices.Contains(checksumLists(), strings.ToUpper(base)):
		return "checksum list, not a disk image"
	}
	for _, s := range sidecarSuffixes() {
		if strings.HasSuffix(lower, s) {
			return "sidecar file (" + s + "), not a disk image"
		}
	}
	return ""
}
