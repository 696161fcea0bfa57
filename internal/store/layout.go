package store

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// The bucket layout that guestkit-dispatcher and guestkit-runner share. All
// keys are relative to the bucket URL's prefix, so several deployments can
// share one bucket under different prefixes.
//
//	jobs/...                    incoming specs (JSON or YAML, any depth), written by strangers
//	sweeps/jobs/<date>/...      specs made by a nightly sweep: only the dispatcher writes here
//	results/<job_id>.json       the one result of a job (runner or dispatcher)
//	results/<job_id>.sarif      reports beside it (output.format sarif/junit)
//	results/invalid/<h>-<name>.json    rejected specs that have no usable job_id
//	results/conflicts/<job_id>-<h>.json a second spec that reuses a job_id
//	images/...                  disk images (any layout)
//	sweeps/<date>/report.json   sweep reports (and report.md)
//
// job_id cannot contain '/', so results/invalid/ and results/conflicts/
// never collide with a job's own result.
const (
	SpecsPrefix   = "jobs/"
	ResultsPrefix = "results/"
	ImagesPrefix  = "images/"
	SweepsPrefix  = "sweeps/"
	// SweepSpecsPrefix holds the dispatcher's own specs, outside jobs/, so
	// that whoever may write specs cannot forge them.
	SweepSpecsPrefix = SweepsPrefix + "jobs/"

	invalidPrefix   = ResultsPrefix + "invalid/"
	conflictsPrefix = ResultsPrefix + "conflicts/"
)

// ResultKey is where the result of job jobID goes. jobID must be a valid
// job_id (spec validation guarantees it).
func ResultKey(jobID string) string { return ResultsPrefix + jobID + ".json" }

// InvalidResultKey is where the rejected result of a spec object that has
// no usable job_id goes: deterministic in the spec's key, so it is written
// once.
func InvalidResultKey(specKey string) string {
	return invalidPrefix + shortHash(specKey) + "-" + readableName(specKey) + ".json"
}

// ConflictResultKey is where the result of specKey goes when another spec
// owns its job_id.
func ConflictResultKey(jobID, specKey string) string {
	return conflictsPrefix + jobID + "-" + shortHash(specKey) + ".json"
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:5])
}

// readableName is the last segment of key, reduced to [A-Za-z0-9._-] and
// 64 bytes, for people listing the bucket; the hash makes the key unique.
func readableName(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		key = key[i+1:]
	}
	var b strings.Builder
	for _, r := range key {
		if b.Len() >= 64 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == '.' && b.Len() > 0:
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "spec"
	}
	return b.String()
}
