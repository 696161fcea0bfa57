package kubejob

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"guestkit.io/batch/internal/spec"
)

// Labels the dispatcher puts on every Job and its pod template. The
// app.kubernetes.io ones follow the Kubernetes recommended labels; the
// controller selects its Jobs with LabelManagedBy and LabelInstance.
const (
	LabelName      = "app.kubernetes.io/name"       // LabelNameValue
	LabelComponent = "app.kubernetes.io/component"  // LabelComponentValue
	LabelManagedBy = "app.kubernetes.io/managed-by" // LabelManagedByValue
	LabelInstance  = "app.kubernetes.io/instance"   // BuilderConfig.Instance
	LabelVersion   = "app.kubernetes.io/version"    // BuilderConfig.Version, when set
	// LabelJobIDHash is JobIDHash(job_id): job_ids are up to 128 characters
	// of a larger charset than label values allow, so the label holds a
	// hash; the full job_id is AnnotationJobID.
	LabelJobIDHash = "guestkit.io/job-id-hash"
	// LabelOperation is the spec's operation (guestkit.inspect, guestkit.profile).
	LabelOperation = "guestkit.io/operation"

	LabelNameValue      = "guestkit-runner"
	LabelComponentValue = "runner"
	LabelManagedByValue = "guestkit-dispatcher"
)

// Annotations on every Job and its pod template: what the controller needs
// to write a result for a Job that failed without one, and to tell a
// resubmission from a different job.
const (
	AnnotationJobID          = "guestkit.io/job-id"          // the spec's job_id, in full
	AnnotationBucket         = "guestkit.io/bucket"          // JobInput.Bucket, the bucket URL
	AnnotationSpecKey        = "guestkit.io/spec-key"        // JobInput.SpecKey
	AnnotationResultKey      = "guestkit.io/result-key"      // JobInput.ResultKey
	AnnotationSpecDigest     = "guestkit.io/spec-digest"     // spec.Job.Digest()
	AnnotationIdempotencyKey = "guestkit.io/idempotency-key" // execution.idempotency_key, when set
)

// ContainerName is the runner's container: podFailurePolicy's onExitCodes
// rule and ResultFromJob look for it by name.
const ContainerName = "runner"

// Name layout: "gk-" + readable part + "-" + hashLen hex digits.
const (
	namePrefix  = "gk-"
	hashLen     = 10 // 40 bits: a collision needs ~1M live keys, and then one Job is reported as already dispatched
	maxLabelLen = validation.DNS1123LabelMaxLength
	maxReadable = maxLabelLen - len(namePrefix) - 1 - hashLen // 49
)

// JobName is the name of the Kubernetes Job for a job spec: "gk-", a
// readable part, "-" and 10 hex digits of the SHA-256 of the identity, a
// DNS-1123 label of at most 63 characters.
//
// The identity is execution.idempotency_key when set, else job_id; the two
// are hashed with different prefixes, so a job_id never collides with
// someone's idempotency key. The readable part is the same string, lower
// case, with every run of characters outside [a-z0-9] turned into one '-'
// and cut to 49 characters; it is for people only. Uniqueness comes from
// the hash of the exact key, so "A_B" and "a-b" get different names.
//
// The name is deterministic: the controller creates the Job under this name
// and reads AlreadyExists as "already dispatched". It is unique per
// namespace only: a dispatcher that serves several buckets needs one
// namespace per bucket, or identities that differ across buckets.
func JobName(job *spec.Job) string {
	kind, key := identity(job)
	sum := sha256.Sum256([]byte(kind + "\x00" + key))
	h := hex.EncodeToString(sum[:])[:hashLen]
	r := readable(key, maxReadable)
	if r == "" {
		return namePrefix + h
	}
	return namePrefix + r + "-" + h
}

func identity(job *spec.Job) (kind, key string) {
	if e := job.Execution; e != nil && e.IdempotencyKey != "" {
		return "idempotency_key", e.IdempotencyKey
	}
	return "job_id", job.JobID
}

// JobIDHash is the value of LabelJobIDHash: 32 hex digits (128 bits) of the
// SHA-256 of job_id, so that a controller can list the Jobs of one job_id
// with a label selector.
func JobIDHash(jobID string) string {
	sum := sha256.Sum256([]byte(jobID))
	return hex.EncodeToString(sum[:16])
}

// readable lowers s, turns every run of characters outside [a-z0-9] into
// one '-', and cuts it to max characters without a leading or trailing '-'.
func readable(s string, max int) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			dash = b.Len() > 0
			continue
		}
		n := 1
		if dash {
			n++
		}
		if b.Len()+n > max {
			break
		}
		if dash {
			b.WriteByte('-')
		}
		dash = false
		b.WriteRune(r)
	}
	return b.String()
}

// labelValue returns s when it is a valid label value; otherwise a readable
// form of it (see readable) and, when that changed anything, a hash of s,
// so that two different values never share a label value.
func labelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:])[:hashLen]
	r := readable(s, maxLabelLen-1-hashLen)
	if r == "" {
		return h
	}
	return r + "-" + h
}

// reservedKey says whether a label or annotation key from a spec must not
// be copied onto a Job: the dispatcher's own domain (guestkit.io), and the
// Kubernetes domains, whose keys (batch.kubernetes.io/job-name, ...) the
// Job controller and other components set. app.kubernetes.io keys are
// copied (part-of, ...); the dispatcher's own labels overwrite them.
func reservedKey(k string) bool {
	if k == "controller-uid" || k == "job-name" {
		return true
	}
	prefix, _, ok := strings.Cut(k, "/")
	if !ok || prefix == "app.kubernetes.io" {
		return false
	}
	for _, d := range []string{"guestkit.io", "kubernetes.io", "k8s.io"} {
		if prefix == d || strings.HasSuffix(prefix, "."+d) {
			return true
		}
	}
	return false
}
