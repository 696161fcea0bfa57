package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"guestkit.io/batch/internal/result"
)

const baseInspect = `{
  "version": "1.0",
  "job_id": "job-1",
  "created_at": "2026-01-30T10:00:00Z",
  "kind": "VMOperation",
  "operation": "guestkit.inspect",
  "payload": {
    "type": "guestkit.inspect.v1",
    "data": {"image": {"path": "/vms/a.qcow2", "format": "qcow2", "read_only": true}}
  }
}`

const baseProfile = `{
  "version": "1.0",
  "job_id": "job-2",
  "operation": "guestkit.profile",
  "payload": {
    "type": "guestkit.profile.v1",
    "data": {"image": {"uri": "s3://images/db.qcow2"}, "profiles": ["security"]}
  }
}`

// doc is a spec as a tree, edited by dotted paths.
type doc map[string]any

func parseDoc(t testing.TB, s string) doc {
	t.Helper()
	var m doc
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// set sets a dotted path, creating objects on the way; a nil value
// deletes (use json.RawMessage("null") for null).
func (d doc) set(path string, v any) doc {
	m := map[string]any(d)
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	if v == nil {
		delete(m, parts[len(parts)-1])
	} else {
		m[parts[len(parts)-1]] = v
	}
	return d
}

func (d doc) bytes(t testing.TB) []byte {
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// problem is an expected FieldError: exact field and value, message
// containing msg.
type problem struct{ field, value, msg string }

type validationCase struct {
	name string
	base string
	edit func(d doc)
	want []problem // nil: valid
	// warn lists warnings (as "field: message" substrings) that must appear.
	warn []string
	// schemaAccepts marks invalid specs that the JSON Schema cannot
	// reject (cross-field rules); every other invalid case must fail it.
	schemaAccepts bool
}

func validationCases() []validationCase {
	long := func(n int) string { return strings.Repeat("a", n) }
	in, pr := baseInspect, baseProfile
	return []validationCase{
		// Valid variations.
		{name: "inspect base", base: in},
		{name: "profile base", base: pr},
		{name: "version 1.1", base: in, edit: func(d doc) { d.set("version", "1.1") }},
		{name: "job_id 128 chars", base: in, edit: func(d doc) { d.set("job_id", long(128)) }},
		{name: "job_id with dots and underscores", base: in, edit: func(d doc) { d.set("job_id", "a.b_c-D9") }},
		{name: "no format", base: in, edit: func(d doc) { d.set("payload.data.image.format", nil) }},
		{name: "no read_only", base: in, edit: func(d doc) { d.set("payload.data.image.read_only", nil) }},
		{name: "uri file", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "file:///vms/a.qcow2")
		}},
		{name: "uri https with query", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "https://images.example.com/a.qcow2?X-Amz-Signature=abc")
		}},
		{name: "uri minio", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "minio://vm-images/2026/a.qcow2")
		}},
		{name: "uri pvc", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "pvc://vm-disks/images/a.qcow2")
		}},
		{name: "placeholder checksum warns", base: in, edit: func(d doc) { d.set("payload.data.image.checksum", "sha256:abc123...") },
			warn: []string{"payload.data.image.checksum: digest is not 64 hex digits; checksum verification will fail"}},
		{name: "compression null", base: in, edit: func(d doc) { d.set("payload.data.output.compression", json.RawMessage("null")) }},
		{name: "compression none", base: in, edit: func(d doc) { d.set("payload.data.output.compression", "none") }},
		{name: "multi-line annotation", base: in, edit: func(d doc) { d.set("metadata.annotations", map[string]any{"description": "line 1\n\tline 2"}) }},
		{name: "prefixed label", base: in, edit: func(d doc) {
			d.set("metadata.labels", map[string]any{"app.kubernetes.io/name": "guestkit", "empty": ""})
		}},
		{name: "attempt equals max", base: in, edit: func(d doc) { d.set("execution.attempt", 3).set("execution.max_attempts", 3) }},
		{name: "limits", base: in, edit: func(d doc) {
			d.set("execution.timeout_seconds", 604800).set("execution.priority", 0).set("execution.max_attempts", 100)
		}},
		{name: "profile options for inspect warn", base: in, edit: func(d doc) { d.set("payload.data.options.severity_threshold", "low") },
			warn: []string{"payload.data.options.severity_threshold: applies to guestkit.profile only; ignored for guestkit.inspect"}},
		{name: "inspect options for profile warn", base: pr, edit: func(d doc) { d.set("payload.data.options.deep_scan", false) },
			warn: []string{"payload.data.options.deep_scan: applies to guestkit.inspect only; ignored for guestkit.profile"}},
		{name: "profiles for inspect warn", base: in, edit: func(d doc) { d.set("payload.data.profiles", []any{"security"}) },
			warn: []string{"payload.data.profiles: applies to guestkit.profile only; ignored for guestkit.inspect"}},
		{name: "all profiles", base: pr, edit: func(d doc) {
			var all []any
			for _, p := range KnownProfiles() {
				all = append(all, p)
			}
			d.set("payload.data.profiles", all)
		}},
		{name: "worker pool allowed", base: in, edit: func(d doc) {
			d.set("routing.worker_pool", "b").set("constraints.allowed_worker_pools", []any{"a", "b"})
		}},

		// The envelope.
		{name: "version 2.0", base: in, edit: func(d doc) { d.set("version", "2.0") },
			want: []problem{{"version", "2.0", "unsupported version; this runner reads job protocol 1.x"}}},
		{name: "version 1", base: in, edit: func(d doc) { d.set("version", "1") },
			want: []problem{{"version", "1", "unsupported version"}}},
		{name: "version 1.01", base: in, edit: func(d doc) { d.set("version", "1.01") },
			want: []problem{{"version", "1.01", "unsupported version"}}},
		{name: "version missing", base: in, edit: func(d doc) { d.set("version", nil) },
			want: []problem{{"version", "", "required"}}},
		{name: "version as number", base: in, edit: func(d doc) { d.set("version", 1.0) },
			want: []problem{{"version", "1", "must be a string, not a number (in YAML, quote it)"}}},
		{name: "job_id missing", base: in, edit: func(d doc) { d.set("job_id", nil) },
			want: []problem{{"job_id", "", "required"}}},
		{name: "job_id too long", base: in, edit: func(d doc) { d.set("job_id", long(129)) },
			want: []problem{{"job_id", long(maxValue) + "...", "must be 1 to 128 characters"}}},
		{name: "job_id leading dot", base: in, edit: func(d doc) { d.set("job_id", ".hidden") },
			want: []problem{{"job_id", ".hidden", "not starting with '.' or '-'"}}},
		{name: "job_id leading dash", base: in, edit: func(d doc) { d.set("job_id", "-rf") },
			want: []problem{{"job_id", "-rf", "not starting with '.' or '-'"}}},
		{name: "job_id slash", base: in, edit: func(d doc) { d.set("job_id", "../results/x") },
			want: []problem{{"job_id", "../results/x", "(it names the result object)"}}},
		{name: "job_id control character", base: in, edit: func(d doc) { d.set("job_id", "job\x00id") },
			want: []problem{{"job_id", "job\x00id", "value contains control character U+0000"}}},
		{name: "job_id newline", base: in, edit: func(d doc) { d.set("job_id", "job\nFAKE LOG LINE") },
			want: []problem{{"job_id", "job\nFAKE LOG LINE", "value contains control character U+000A"}}},
		{name: "created_at not RFC 3339", base: in, edit: func(d doc) { d.set("created_at", "2026-01-30 10:00") },
			want: []problem{{"created_at", "2026-01-30 10:00", "must be an RFC 3339 time"}}},
		{name: "created_at without zone", base: in, edit: func(d doc) { d.set("created_at", "2026-01-30T10:00:00") },
			want: []problem{{"created_at", "2026-01-30T10:00:00", "must be an RFC 3339 time"}}},
		{name: "kind", base: in, edit: func(d doc) { d.set("kind", "Pod") },
			want: []problem{{"kind", "Pod", `must be "VMOperation"`}}},
		{name: "operation missing", base: in, edit: func(d doc) { d.set("operation", nil) },
			want: []problem{{"operation", "", "required; one of guestkit.inspect, guestkit.profile"}}},
		{name: "unknown operation", base: in, edit: func(d doc) { d.set("operation", "guestkit.mine").set("payload.type", "guestkit.mine.v1") },
			want: []problem{{"operation", "guestkit.mine", "unsupported operation; supported: guestkit.inspect, guestkit.profile"}}},
		{name: "payload.type mismatch", base: in, edit: func(d doc) { d.set("payload.type", "guestkit.inspect.v2") },
			want: []problem{{"payload.type", "guestkit.inspect.v2", `must be "guestkit.inspect.v1"`}}, schemaAccepts: false},
		{name: "payload missing", base: in, edit: func(d doc) { d.set("payload", nil) },
			want: []problem{{"payload.type", "", `must be "guestkit.inspect.v1"`}, {"payload.data", "", "required"}}},

		// The image.
		{name: "image missing", base: in, edit: func(d doc) { d.set("payload.data.image", nil) },
			want: []problem{{"payload.data.image", "", "required"}}},
		{name: "image neither path nor uri", base: in, edit: func(d doc) { d.set("payload.data.image.path", nil) },
			want: []problem{{"payload.data.image", "", "set exactly one of path and uri"}}},
		{name: "image path and uri", base: in, edit: func(d doc) { d.set("payload.data.image.uri", "s3://images/a.qcow2") },
			want: []problem{{"payload.data.image", "", "set exactly one of path and uri, not both"}}},
		{name: "path relative", base: in, edit: func(d doc) { d.set("payload.data.image.path", "vms/a.qcow2") },
			want: []problem{{"payload.data.image.path", "vms/a.qcow2", "must be an absolute path"}}},
		{name: "path with ..", base: in, edit: func(d doc) { d.set("payload.data.image.path", "/vms/../etc/shadow") },
			want: []problem{{"payload.data.image.path", "/vms/../etc/shadow", `must not contain ".." segments`}}},
		{name: "path not clean", base: in, edit: func(d doc) { d.set("payload.data.image.path", "/vms//a.qcow2") },
			want: []problem{{"payload.data.image.path", "/vms//a.qcow2", "must be clean (no \"//\", \"/./\" or trailing \"/\"): /vms/a.qcow2"}}},
		{name: "path trailing slash", base: in, edit: func(d doc) { d.set("payload.data.image.path", "/vms/") },
			want: []problem{{"payload.data.image.path", "/vms/", "must be clean"}}},
		{name: "path root", base: in, edit: func(d doc) { d.set("payload.data.image.path", "/") },
			want: []problem{{"payload.data.image.path", "/", "must name a file"}}},
		{name: "path NUL", base: in, edit: func(d doc) { d.set("payload.data.image.path", "/vms/a\x00.qcow2") },
			want: []problem{{"payload.data.image.path", "/vms/a\x00.qcow2", "control character U+0000"}}},
		{name: "path too long", base: in, edit: func(d doc) { d.set("payload.data.image.path", "/"+long(4096)) },
			want: []problem{{"payload.data.image.path", "/" + long(maxValue-1) + "...", "longer than 4096 bytes"}}},
		{name: "uri scheme", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "ftp://host/a.qcow2")
		}, want: []problem{{"payload.data.image.uri", "ftp://host/a.qcow2", `unsupported scheme "ftp"; use one of file, minio, s3, http, https, pvc`}}},
		{name: "uri: a key in the dispatcher's bucket", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "images/web01.qcow2")
		}},
		{name: "uri: a key with a dot segment", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "images/../jobs/x.json")
		}, want: []problem{{"payload.data.image.uri", "images/../jobs/x.json", `not a valid key in the dispatcher's bucket: "images/../jobs/x.json": contains a . or .. segment`}}},
		{name: "uri: a key with a colon", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "images/a:b.qcow2")
		}, want: []problem{{"payload.data.image.uri", "images/a:b.qcow2", "must be a URI (scheme://...) or a key in the dispatcher's bucket without ':', '?' or '#'"}}},
		{name: "uri: a key that is a path", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "/vms/a.qcow2")
		}, want: []problem{{"payload.data.image.uri", "/vms/a.qcow2", "a key in the dispatcher's bucket must not start with /; name a host file with payload.data.image.path"}}},
		{name: "uri credentials", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "https://bob:secret@host/a.qcow2")
		}, want: []problem{{"payload.data.image.uri", "https://bob:secret@host/a.qcow2", "must not contain credentials"}}},
		{name: "uri s3 bucket", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "s3://Bad_Bucket/a.qcow2")
		}, want: []problem{{"payload.data.image.uri", "s3://Bad_Bucket/a.qcow2", "must be s3://<bucket>/<key>"}}},
		{name: "uri s3 no key", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "s3://images/")
		}, want: []problem{{"payload.data.image.uri", "s3://images/", "must name an object"}}},
		{name: "uri s3 dot-dot", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "s3://images/a/%2e%2e/b.qcow2")
		}, want: []problem{{"payload.data.image.uri", "s3://images/a/%2e%2e/b.qcow2", `key must not contain "." or ".." segments`}}},
		{name: "uri s3 query", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "s3://images/a.qcow2?versionId=1")
		}, want: []problem{{"payload.data.image.uri", "s3://images/a.qcow2?versionId=1", "must not have a ?query"}}},
		{name: "uri pvc dot-dot", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "pvc://disks/../a.qcow2")
		}, want: []problem{{"payload.data.image.uri", "pvc://disks/../a.qcow2", `path must not contain ".." segments`}}},
		{name: "uri pvc bad claim", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "pvc://Disks/a.qcow2")
		}, want: []problem{{"payload.data.image.uri", "pvc://Disks/a.qcow2", "must be pvc://<claim>/<path>"}}},
		{name: "uri file remote", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "file://server/vms/a.qcow2")
		}, want: []problem{{"payload.data.image.uri", "file://server/vms/a.qcow2", "file URIs must be local"}}},
		{name: "uri opaque", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "s3:images/a.qcow2")
		}, want: []problem{{"payload.data.image.uri", "s3:images/a.qcow2", "must have the form s3://..."}}},
		{name: "uri fragment", base: in, edit: func(d doc) {
			d.set("payload.data.image.path", nil).set("payload.data.image.uri", "https://host/a.qcow2#x")
		}, want: []problem{{"payload.data.image.uri", "https://host/a.qcow2#x", "must not have a #fragment"}}},
		{name: "format qcow3", base: in, edit: func(d doc) { d.set("payload.data.image.format", "qcow3") },
			want: []problem{{"payload.data.image.format", "qcow3", "must be one of qcow2, raw, vmdk, vdi, vhdx, vpc"}}},
		{name: "read_only false", base: in, edit: func(d doc) { d.set("payload.data.image.read_only", false) },
			want: []problem{{"payload.data.image.read_only", "false", "must be true or absent: images are never written"}}},
		{name: "read_only string", base: in, edit: func(d doc) { d.set("payload.data.image.read_only", "yes") },
			want: []problem{{"payload.data.image.read_only", "yes", "must be true or false, not a string"}}},
		{name: "size_bytes negative", base: in, edit: func(d doc) { d.set("payload.data.image.size_bytes", -1) },
			want: []problem{{"payload.data.image.size_bytes", "-1", "must not be negative"}}},
		{name: "size_bytes fraction", base: in, edit: func(d doc) { d.set("payload.data.image.size_bytes", 1.5) },
			want: []problem{{"payload.data.image.size_bytes", "1.5", "must be an integer"}}},
		{name: "size_bytes overflow", base: in, edit: func(d doc) { d.set("payload.data.image.size_bytes", json.Number("99999999999999999999")) },
			want: []problem{{"payload.data.image.size_bytes", "99999999999999999999", "integer out of range"}}},
		{name: "checksum md5", base: in, edit: func(d doc) { d.set("payload.data.image.checksum", "md5:d41d8cd98f00b204e9800998ecf8427e") },
			want: []problem{{"payload.data.image.checksum", "md5:d41d8cd98f00b204e9800998ecf8427e", `unsupported checksum algorithm "md5"; only sha256:<64 hex digits> is accepted`}}},
		{name: "checksum bare", base: in, edit: func(d doc) { d.set("payload.data.image.checksum", "e3b0c442") },
			want: []problem{{"payload.data.image.checksum", "e3b0c442", "must be sha256:<64 hex digits>"}}},

		// Execution.
		{name: "attempt 0", base: in, edit: func(d doc) { d.set("execution.attempt", 0) },
			want: []problem{{"execution.attempt", "0", "must be 1 to 100"}}},
		{name: "attempt over max", base: in, edit: func(d doc) { d.set("execution.attempt", 4).set("execution.max_attempts", 3) },
			want: []problem{{"execution.attempt", "4", "greater than execution.max_attempts (3)"}}, schemaAccepts: true},
		{name: "max_attempts 0", base: in, edit: func(d doc) { d.set("execution.max_attempts", 0) },
			want: []problem{{"execution.max_attempts", "0", "must be 1 to 100"}}},
		{name: "max_attempts 101", base: in, edit: func(d doc) { d.set("execution.max_attempts", 101) },
			want: []problem{{"execution.max_attempts", "101", "must be 1 to 100"}}},
		{name: "timeout 0", base: in, edit: func(d doc) { d.set("execution.timeout_seconds", 0) },
			want: []problem{{"execution.timeout_seconds", "0", "must be 1 to 604800 (7 days)"}}},
		{name: "timeout 8 days", base: in, edit: func(d doc) { d.set("execution.timeout_seconds", 691200) },
			want: []problem{{"execution.timeout_seconds", "691200", "must be 1 to 604800"}}},
		{name: "timeout string", base: in, edit: func(d doc) { d.set("execution.timeout_seconds", "600") },
			want: []problem{{"execution.timeout_seconds", "600", "must be an integer, not a string"}}},
		{name: "priority 11", base: in, edit: func(d doc) { d.set("execution.priority", 11) },
			want: []problem{{"execution.priority", "11", "must be 0 (lowest) to 10 (most urgent)"}}},
		{name: "priority -1", base: in, edit: func(d doc) { d.set("execution.priority", -1) },
			want: []problem{{"execution.priority", "-1", "must be 0 (lowest) to 10"}}},
		{name: "deadline before created_at", base: in, edit: func(d doc) { d.set("execution.deadline", "2026-01-30T09:00:00Z") },
			want: []problem{{"execution.deadline", "2026-01-30T09:00:00Z", "must be after created_at (2026-01-30T10:00:00Z)"}}, schemaAccepts: true},
		{name: "idempotency_key too long", base: in, edit: func(d doc) { d.set("execution.idempotency_key", long(254)) },
			want: []problem{{"execution.idempotency_key", long(maxValue) + "...", "must be at most 253 bytes of printable characters"}}},
		{name: "idempotency_key not printable", base: in, edit: func(d doc) { d.set("execution.idempotency_key", "a\u00a0b") },
			want: []problem{{"execution.idempotency_key", "a\u00a0b", "printable"}}},

		// Metadata.
		{name: "namespace upper case", base: in, edit: func(d doc) { d.set("metadata.namespace", "Prod") },
			want: []problem{{"metadata.namespace", "Prod", "must be a DNS-1123 label"}}},
		{name: "label value not a string", base: in, edit: func(d doc) { d.set("metadata.labels", map[string]any{"tier": 1}) },
			want: []problem{{"metadata.labels.tier", "1", "must be a string, not a number"}}},
		{name: "label key with space", base: in, edit: func(d doc) { d.set("metadata.labels", map[string]any{"bad key": "x"}) },
			want: []problem{{`metadata.labels["bad key"]`, "bad key", "key must be at most 63"}}},
		{name: "label value too long", base: in, edit: func(d doc) { d.set("metadata.labels", map[string]any{"k": long(64)}) },
			want: []problem{{"metadata.labels.k", long(64), "value must be empty or at most 63"}}},
		{name: "too many labels", base: in, edit: func(d doc) {
			m := map[string]any{}
			for i := range 65 {
				m[fmt.Sprintf("l%d", i)] = "v"
			}
			d.set("metadata.labels", m)
		}, want: []problem{{"metadata.labels", "", "more than 64 entries"}}},
		{name: "annotation escape sequence", base: in, edit: func(d doc) { d.set("metadata.annotations", map[string]any{"note": "\x1b[31mred"}) },
			want: []problem{{"metadata.annotations.note", "\x1b[31mred", "value contains control character U+001B"}}},
		{name: "annotation key control", base: in, edit: func(d doc) { d.set("metadata.annotations", map[string]any{"a\rb": "x"}) },
			want: []problem{{`metadata.annotations["a\rb"]`, "a\rb", "key contains control character U+000D"}}},
		{name: "name with bidi override", base: in, edit: func(d doc) { d.set("metadata.name", "scan-\u202egnp.exe") },
			want: []problem{{"metadata.name", "scan-\u202egnp.exe", "control character U+202E"}}},
		{name: "metadata not an object", base: in, edit: func(d doc) { d.set("metadata", "x") },
			want: []problem{{"metadata", "x", "must be an object, not a string"}}},

		// Constraints and routing.
		{name: "minimum_worker_version", base: in, edit: func(d doc) { d.set("constraints.minimum_worker_version", "latest") },
			want: []problem{{"constraints.minimum_worker_version", "latest", "must be a version MAJOR.MINOR.PATCH"}}},
		{name: "maximum_disk_size_gb 0", base: in, edit: func(d doc) { d.set("constraints.maximum_disk_size_gb", 0) },
			want: []problem{{"constraints.maximum_disk_size_gb", "0", "must be at least 1"}}},
		{name: "empty capability", base: in, edit: func(d doc) { d.set("constraints.required_capabilities", []any{"guestkit.inspect", ""}) },
			want: []problem{{"constraints.required_capabilities[1]", "", "must not be empty"}}},
		{name: "capabilities not a list", base: in, edit: func(d doc) { d.set("constraints.required_capabilities", "guestkit.inspect") },
			want: []problem{{"constraints.required_capabilities", "guestkit.inspect", "must be an array, not a string"}}},
		{name: "require_privileged false", base: in, edit: func(d doc) { d.set("constraints.require_privileged", false) }},
		{name: "worker pool not allowed", base: in, edit: func(d doc) {
			d.set("routing.worker_pool", "c").set("constraints.allowed_worker_pools", []any{"a", "b"})
		}, want: []problem{{"routing.worker_pool", "c", "not in constraints.allowed_worker_pools (a, b)"}}, schemaAccepts: true},
		{name: "disk_locality relative", base: in, edit: func(d doc) { d.set("routing.affinity.disk_locality", "mnt/vms") },
			want: []problem{{"routing.affinity.disk_locality", "mnt/vms", "must be an absolute path"}}},
		{name: "node_selector value", base: in, edit: func(d doc) { d.set("routing.node_selector", map[string]any{"kvm": "yes please"}) },
			want: []problem{{"routing.node_selector.kvm", "yes please", "value must be empty or at most 63"}}},

		// Profiles and options.
		{name: "profiles missing", base: pr, edit: func(d doc) { d.set("payload.data.profiles", nil) },
			want: []problem{{"payload.data.profiles", "", "required: at least one of " + strings.Join(KnownProfiles(), ", ")}}},
		{name: "profiles empty", base: pr, edit: func(d doc) { d.set("payload.data.profiles", []any{}) },
			want: []problem{{"payload.data.profiles", "", "required: at least one of"}}},
		{name: "profiles duplicate", base: pr, edit: func(d doc) { d.set("payload.data.profiles", []any{"security", "hardening", "security"}) },
			want: []problem{{"payload.data.profiles[2]", "security", "duplicate of profiles[0]"}}},
		{name: "profile unknown", base: pr, edit: func(d doc) { d.set("payload.data.profiles", []any{"security", "stig"}) },
			want: []problem{{"payload.data.profiles[1]", "stig", "unknown profile; known: " + strings.Join(KnownProfiles(), ", ")}}},
		{name: "severity unknown", base: pr, edit: func(d doc) { d.set("payload.data.options.severity_threshold", "urgent") },
			want: []problem{{"payload.data.options.severity_threshold", "urgent", "must be one of none, info, low, medium, high, critical"}}},
		{name: "include_remediation conflict", base: pr, edit: func(d doc) {
			d.set("payload.data.options.include_remediation", true).set("payload.data.output.include_remediation", false)
		}, want: []problem{{"payload.data.output.include_remediation", "false", "conflicts with payload.data.options.include_remediation"}}, schemaAccepts: true},
		{name: "backend unknown", base: in, edit: func(d doc) { d.set("payload.data.options.backend", "fast") },
			want: []problem{{"payload.data.options.backend", "fast", "must be one of auto, direct, appliance"}}},
		{name: "output format sbom", base: in, edit: func(d doc) { d.set("payload.data.output.format", "cyclonedx") }},
		{name: "output format spdx", base: pr, edit: func(d doc) { d.set("payload.data.output.format", "spdx") }},
		{name: "output format", base: in, edit: func(d doc) { d.set("payload.data.output.format", "xml") },
			want: []problem{{"payload.data.output.format", "xml", "must be one of json, sarif, junit, cyclonedx, spdx"}}},
		{name: "output compression", base: in, edit: func(d doc) { d.set("payload.data.output.compression", "gzip") },
			want: []problem{{"payload.data.output.compression", "gzip", `must be null or "none"`}}},
		{name: "output destination warns", base: in, edit: func(d doc) { d.set("payload.data.output.destination", "/tmp/x.json") },
			warn: []string{"payload.data.output.destination: ignored"}},

		// Many problems at once, each reported once, in a stable order.
		{name: "every problem listed", base: in, edit: func(d doc) {
			d.set("version", "2.0").set("job_id", nil).set("execution.priority", 99).
				set("payload.data.image.format", "qcow3").set("payload.data.image.read_only", false).
				set("payload.data.image.path", "/a/../b").set("metadata.labels", map[string]any{"x": []any{}})
		}, want: []problem{
			{"metadata.labels.x", "[...]", "must be a string, not an array"},
			{"version", "2.0", "unsupported version"},
			{"job_id", "", "required"},
			{"execution.priority", "99", "must be 0 (lowest) to 10"},
			{"payload.data.image.path", "/a/../b", `must not contain ".." segments`},
			{"payload.data.image.format", "qcow3", "must be one of"},
			{"payload.data.image.read_only", "false", "must be true or absent"},
		}},
	}
}

func TestValidationRules(t *testing.T) {
	for _, tc := range validationCases() {
		t.Run(tc.name, func(t *testing.T) {
			d := parseDoc(t, tc.base)
			if tc.edit != nil {
				tc.edit(d)
			}
			j, w, err := Load(d.bytes(t))
			if j == nil {
				t.Fatalf("Parse failed: %v", err)
			}
			for _, want := range tc.warn {
				if !strings.Contains(strings.Join(warningStrings(w), "\n"), want) {
					t.Errorf("missing warning %q in %q", want, warningStrings(w))
				}
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			checkProblems(t, ve.Problems, tc.want)
			msg := err.Error()
			for _, p := range tc.want {
				if !strings.Contains(msg, p.field) {
					t.Errorf("Error() does not name %s: %s", p.field, msg)
				}
			}
		})
	}
}

func checkProblems(t *testing.T, got []result.FieldError, want []problem) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		g, w := got[i], want[i]
		ok = g.Field == w.field && g.Value == w.value && strings.Contains(g.Message, w.msg)
	}
	if !ok {
		t.Errorf("problems:\n got %s\nwant %s", fmt.Sprintf("%q", got), fmt.Sprintf("%q", want))
	}
}

func TestUnsupportedOperationStillChecksEnvelope(t *testing.T) {
	d := parseDoc(t, baseInspect).set("operation", "guestkit.fix").set("payload.type", "guestkit.fix.v1").set("job_id", ".x").
		set("payload.data", map[string]any{"anything": []any{1, 2}})
	_, w, err := Load(d.bytes(t))
	if !errors.Is(err, ErrUnsupportedOperation) {
		t.Fatalf("err = %v", err)
	}
	want := `unsupported operation "guestkit.fix" (supported: guestkit.inspect, guestkit.profile); also 1 problem: job_id ".x": must be 1 to 128`
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Error() = %s\nwant prefix %s", err, want)
	}
	if len(w) != 0 {
		t.Errorf("warnings for opaque data: %v", w)
	}
}

func TestErrorMessageListsAll(t *testing.T) {
	d := parseDoc(t, baseInspect).set("version", "2.0").set("payload.data.image.format", "qcow3")
	_, _, err := Load(d.bytes(t))
	want := `invalid job spec: 2 problems: version "2.0": unsupported version; this runner reads job protocol 1.x ("1.0", "1.1", ...); ` +
		`payload.data.image.format "qcow3": must be one of qcow2, raw, vmdk, vdi, vhdx, vpc (or absent: the runner probes the format)`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	if errors.Is(err, ErrUnsupportedOperation) {
		t.Error("an invalid spec must not match ErrUnsupportedOperation")
	}
}

func TestProblemsAreCapped(t *testing.T) {
	m := map[string]any{}
	for i := range 500 {
		m[fmt.Sprintf("k%03d", i)] = 1
	}
	d := parseDoc(t, baseInspect).set("metadata.annotations", m)
	_, _, err := Load(d.bytes(t))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatal(err)
	}
	if len(ve.Problems) != maxReports+1 || ve.Problems[maxReports].Message != "and 400 more problems" {
		t.Errorf("%d problems, last %+v", len(ve.Problems), ve.Problems[len(ve.Problems)-1])
	}
	if !strings.HasSuffix(err.Error(), `metadata.annotations.k099 "1": must be a string, not a number (in YAML, quote it); and 400 more problems`) {
		t.Errorf("Error() ends %q", err.Error()[len(err.Error())-120:])
	}
}
