package spec

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/store"
)

// ErrUnsupportedOperation is matched (errors.Is) by the validation error of
// a job whose operation this package does not run.
var ErrUnsupportedOperation = errors.New("unsupported operation")

// ValidationError lists every problem found in a Job, at most one per
// field (a field with a wrong type is not also reported as, say, missing).
type ValidationError struct {
	Problems []result.FieldError
	// unsupported is the operation when it is the (or a) problem.
	unsupported string
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	rest := e.Problems
	if e.unsupported != "" {
		fmt.Fprintf(&b, "unsupported operation %q (supported: %s)", e.unsupported, strings.Join(SupportedOperations(), ", "))
		rest = slices.DeleteFunc(slices.Clone(rest), func(p result.FieldError) bool { return p.Field == "operation" })
		if len(rest) == 0 {
			return b.String()
		}
		b.WriteString("; also ")
	} else {
		b.WriteString("invalid job spec: ")
	}
	if len(rest) == 1 {
		b.WriteString("1 problem: ")
	} else {
		fmt.Fprintf(&b, "%d problems: ", len(rest))
	}
	for i, p := range rest {
		if i > 0 {
			b.WriteString("; ")
		}
		if p.Field != "" {
			b.WriteString(p.Field)
			if p.Value != "" {
				fmt.Fprintf(&b, " %q", p.Value)
			}
			b.WriteString(": ")
		}
		b.WriteString(p.Message)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrUnsupportedOperation) work.
func (e *ValidationError) Unwrap() error {
	if e.unsupported != "" {
		return ErrUnsupportedOperation
	}
	return nil
}

// Limits. Kubernetes' own where the value may end up on a Kubernetes object.
const (
	maxText           = 1024 // any string field not given its own bound
	maxKeyText        = 317  // map keys: a Kubernetes qualified key is 253+1+63
	maxJobID          = 128
	maxIdempotencyKey = 253
	maxName           = 253
	maxEntries        = 64 // labels, annotations, node_selector, constraint lists
	maxAnnotations    = 256 << 10
	maxTimeout        = 7 * 24 * 3600
	maxAttemptsLimit  = 100
	maxPriority       = 10
)

func imageFormats() []string  { return []string{"qcow2", "raw", "vmdk", "vdi", "vhdx", "vpc"} }
func outputFormats() []string { return result.Formats() }
func severities() []string    { return []string{"none", "info", "low", "medium", "high", "critical"} }

// uriSchemes are the image URI schemes: file, every bucket backend's, http(s)
// and pvc.
func uriSchemes() []string {
	return slices.Concat([]string{"file"}, store.BucketSchemes(), []string{"http", "https", "pvc"})
}

// Validate checks j against every rule of job spec v1 and returns a
// *ValidationError listing all problems, or nil. For an unsupported
// operation the error matches ErrUnsupportedOperation and the rest of the
// envelope is still checked; its payload data is not.
func (j *Job) Validate() error {
	c := newChecker(j.problems)
	walk(reflect.ValueOf(j).Elem(), "", specTag{}, c.text)
	c.envelope(j)
	supported := slices.Contains(SupportedOperations(), j.Operation)
	if supported {
		c.data(j)
	}
	if len(c.problems) == 0 {
		return nil
	}
	e := &ValidationError{Problems: c.problems}
	if c.dropped > 0 {
		e.Problems = append(e.Problems, result.FieldError{Message: fmt.Sprintf("and %d more problems", c.dropped)})
	}
	if !supported && j.Operation != "" {
		e.unsupported = j.Operation
	}
	return e
}

type checker struct {
	problems []result.FieldError
	fields   map[string]bool // every field with a problem, kept or not
	dropped  int             // problems beyond maxReports
}

func newChecker(initial []result.FieldError) *checker {
	c := &checker{fields: map[string]bool{}}
	for _, p := range initial {
		c.add(p.Field, p.Value, p.Message)
	}
	return c
}

func (c *checker) add(field, value, msg string) {
	if c.reported(field) {
		return
	}
	c.fields[field] = true
	if len(c.problems) == maxReports {
		c.dropped++
		return
	}
	c.problems = append(c.problems, result.FieldError{Field: field, Value: truncate(value), Message: msg})
}

// reported says whether field or a field containing it has a problem.
func (c *checker) reported(field string) bool {
	if c.fields[field] {
		return true
	}
	for i := range len(field) {
		if (field[i] == '.' || field[i] == '[') && c.fields[field[:i]] {
			return true
		}
	}
	return false
}

// text applies to every string in the Job: no control characters (they
// forge log lines and break object keys) and a bounded length.
func (c *checker) text(field string, tag specTag, v reflect.Value, key bool) {
	if v.Kind() != reflect.String {
		return
	}
	s := v.String()
	limit := tag.max
	if key {
		limit = maxKeyText
	}
	if limit == 0 {
		limit = maxText
	}
	for _, r := range s {
		if tag.multiline && !key && (r == '\n' || r == '\t') {
			continue
		}
		if unicode.IsControl(r) || isBidi(r) {
			what := "value"
			if key {
				what = "key"
			}
			c.add(field, s, fmt.Sprintf("%s contains control character %U", what, r))
			return
		}
	}
	if len(s) > limit {
		c.add(field, s, fmt.Sprintf("longer than %d bytes", limit))
	}
}

// isBidi reports the Unicode bidirectional overrides and isolates, which
// make a name display as something else.
func isBidi(r rune) bool {
	return r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069
}

func (c *checker) envelope(j *Job) {
	switch {
	case j.Version == "":
		c.add("version", "", `required; "1.0" for this protocol`)
	case !isVersion1(j.Version):
		c.add("version", j.Version, `unsupported version; this runner reads job protocol 1.x ("1.0", "1.1", ...)`)
	}

	switch {
	case j.JobID == "":
		c.add("job_id", "", "required")
	case !isJobID(j.JobID):
		c.add("job_id", j.JobID, fmt.Sprintf("must be 1 to %d characters of A-Z, a-z, 0-9, '.', '_' and '-', not starting with '.' or '-' (it names the result object)", maxJobID))
	}

	if j.Kind != "" && j.Kind != "VMOperation" {
		c.add("kind", j.Kind, `must be "VMOperation" when present`)
	}

	switch {
	case j.Operation == "":
		c.add("operation", "", "required; one of "+strings.Join(SupportedOperations(), ", "))
	case !slices.Contains(SupportedOperations(), j.Operation):
		c.add("operation", j.Operation, "unsupported operation; supported: "+strings.Join(SupportedOperations(), ", "))
	}
	if j.Operation != "" {
		if want := j.Operation + ".v1"; j.Payload.Type != want {
			c.add("payload.type", j.Payload.Type, fmt.Sprintf("must be %q (the operation and \".v1\")", want))
		}
	}

	if m := j.Metadata; m != nil {
		c.metadata(m)
	}
	if e := j.Execution; e != nil {
		c.execution(e, j.CreatedAt)
	}
	if k := j.Constraints; k != nil {
		c.constraints(k)
	}
	if r := j.Routing; r != nil {
		c.routing(r, j.Constraints)
	}
}

func (c *checker) metadata(m *Metadata) {
	if len(m.Name) > maxName {
		c.add("metadata.name", m.Name, fmt.Sprintf("longer than %d bytes", maxName))
	}
	if m.Namespace != "" && !isDNSLabel(m.Namespace) {
		c.add("metadata.namespace", m.Namespace, "must be a DNS-1123 label: at most 63 of a-z, 0-9 and '-', starting and ending with a letter or digit")
	}
	c.labels("metadata.labels", m.Labels)
	if len(m.Annotations) > maxEntries {
		c.add("metadata.annotations", "", fmt.Sprintf("more than %d entries", maxEntries))
	}
	size := 0
	for _, k := range slices.Sorted(maps.Keys(m.Annotations)) {
		size += len(k) + len(m.Annotations[k])
		if msg := qualifiedKeyProblem(k); msg != "" {
			c.add(join("metadata.annotations", k), k, "key "+msg)
		}
	}
	if size > maxAnnotations {
		c.add("metadata.annotations", "", fmt.Sprintf("%d bytes in total, over the %d-byte limit", size, maxAnnotations))
	}
}

// labels checks Kubernetes label syntax, so that labels can be copied onto
// Kubernetes objects unchanged.
func (c *checker) labels(field string, m map[string]string) {
	if len(m) > maxEntries {
		c.add(field, "", fmt.Sprintf("more than %d entries", maxEntries))
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		f := join(field, k)
		if msg := qualifiedKeyProblem(k); msg != "" {
			c.add(f, k, "key "+msg)
		} else if v := m[k]; v != "" && !isQualifiedName(v) {
			c.add(f, v, "value must be empty or at most 63 of A-Z, a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit")
		}
	}
}

func (c *checker) execution(e *Execution, created *time.Time) {
	const f = "execution."
	if k := e.IdempotencyKey; len(k) > maxIdempotencyKey || strings.ContainsFunc(k, func(r rune) bool { return !unicode.IsPrint(r) }) {
		c.add(f+"idempotency_key", k, fmt.Sprintf("must be at most %d bytes of printable characters", maxIdempotencyKey))
	}
	if n := e.MaxAttempts; n != nil && (*n < 1 || *n > maxAttemptsLimit) {
		c.add(f+"max_attempts", strconv.Itoa(*n), fmt.Sprintf("must be 1 to %d", maxAttemptsLimit))
	}
	if n := e.Attempt; n != nil {
		switch {
		case *n < 1 || *n > maxAttemptsLimit:
			c.add(f+"attempt", strconv.Itoa(*n), fmt.Sprintf("must be 1 to %d", maxAttemptsLimit))
		case e.MaxAttempts != nil && *n > *e.MaxAttempts:
			c.add(f+"attempt", strconv.Itoa(*n), fmt.Sprintf("greater than execution.max_attempts (%d)", *e.MaxAttempts))
		}
	}
	if n := e.TimeoutSeconds; n != nil && (*n < 1 || *n > maxTimeout) {
		c.add(f+"timeout_seconds", strconv.FormatInt(*n, 10), fmt.Sprintf("must be 1 to %d (7 days)", maxTimeout))
	}
	if n := e.Priority; n != nil && (*n < 0 || *n > maxPriority) {
		c.add(f+"priority", strconv.Itoa(*n), fmt.Sprintf("must be 0 (lowest) to %d (most urgent)", maxPriority))
	}
	if d := e.Deadline; d != nil && created != nil && !d.After(*created) {
		c.add(f+"deadline", d.Format(time.RFC3339Nano), "must be after created_at ("+created.Format(time.RFC3339Nano)+")")
	}
}

func (c *checker) constraints(k *Constraints) {
	const f = "constraints."
	if v := k.MinimumWorkerVersion; v != "" && !isSemver(v) {
		c.add(f+"minimum_worker_version", v, "must be a version MAJOR.MINOR.PATCH such as 0.4.0")
	}
	if n := k.MaximumDiskSizeGB; n != nil && *n < 1 {
		c.add(f+"maximum_disk_size_gb", strconv.FormatInt(*n, 10), "must be at least 1")
	}
	c.list(f+"required_capabilities", k.RequiredCapabilities)
	c.list(f+"required_features", k.RequiredFeatures)
	c.list(f+"allowed_worker_pools", k.AllowedWorkerPools)
}

// list checks a list of names: bounded, no empty names.
func (c *checker) list(field string, list []string) {
	if len(list) > maxEntries {
		c.add(field, "", fmt.Sprintf("more than %d entries", maxEntries))
	}
	for i, s := range list {
		if strings.TrimSpace(s) == "" {
			c.add(field+"["+strconv.Itoa(i)+"]", s, "must not be empty")
		}
	}
}

func (c *checker) routing(r *Routing, k *Constraints) {
	if r.WorkerPool != "" && k != nil && len(k.AllowedWorkerPools) > 0 && !slices.Contains(k.AllowedWorkerPools, r.WorkerPool) {
		c.add("routing.worker_pool", r.WorkerPool, "not in constraints.allowed_worker_pools ("+strings.Join(k.AllowedWorkerPools, ", ")+")")
	}
	if a := r.Affinity; a != nil && a.DiskLocality != "" {
		if msg := pathProblem(a.DiskLocality); msg != "" {
			c.add("routing.affinity.disk_locality", a.DiskLocality, msg)
		}
	}
	c.labels("routing.node_selector", r.NodeSelector)
}

func (c *checker) data(j *Job) {
	const f = "payload.data"
	d := j.Payload.Data
	if d == nil {
		c.add(f, "", "required")
		return
	}
	c.image(d.Image)
	if o := d.Options; o != nil && o.Backend != "" && !slices.Contains(Backends(), o.Backend) {
		c.add(f+".options.backend", o.Backend, "must be one of "+strings.Join(Backends(), ", "))
	}

	if j.Operation == OpProfile {
		switch {
		case len(d.Profiles) == 0:
			c.add(f+".profiles", "", "required: at least one of "+strings.Join(KnownProfiles(), ", "))
		case len(d.Profiles) > maxEntries:
			c.add(f+".profiles", "", fmt.Sprintf("more than %d entries", maxEntries))
		}
		seen := map[string]int{}
		for i, p := range d.Profiles {
			field := f + ".profiles[" + strconv.Itoa(i) + "]"
			if first, dup := seen[p]; dup {
				c.add(field, p, fmt.Sprintf("duplicate of profiles[%d]", first))
				continue
			}
			seen[p] = i
			if !slices.Contains(KnownProfiles(), p) {
				c.add(field, p, "unknown profile; known: "+strings.Join(KnownProfiles(), ", "))
			}
		}
		if o := d.Options; o != nil && o.SeverityThreshold != "" && !slices.Contains(severities(), o.SeverityThreshold) {
			c.add(f+".options.severity_threshold", o.SeverityThreshold, "must be one of "+strings.Join(severities(), ", "))
		}
		if d.Options != nil && d.Output != nil {
			a, b := d.Options.IncludeRemediation, d.Output.IncludeRemediation
			if a != nil && b != nil && *a != *b {
				c.add(f+".output.include_remediation", strconv.FormatBool(*b), "conflicts with payload.data.options.include_remediation")
			}
		}
	}

	if o := d.Output; o != nil {
		if o.Format != "" && !slices.Contains(outputFormats(), o.Format) {
			c.add(f+".output.format", o.Format, "must be one of "+strings.Join(outputFormats(), ", "))
		}
		if o.Compression != nil && *o.Compression != "none" {
			c.add(f+".output.compression", *o.Compression, `must be null or "none": results are stored uncompressed`)
		}
	}
}

func (c *checker) image(img *Image) {
	const f = "payload.data.image"
	switch {
	case img == nil:
		c.add(f, "", "required")
		return
	case img.Path != "" && img.URI != "":
		c.add(f, "", "set exactly one of path and uri, not both")
	case img.Path == "" && img.URI == "":
		c.add(f, "", "set exactly one of path and uri")
	case img.Path != "":
		if msg := pathProblem(img.Path); msg != "" {
			c.add(f+".path", img.Path, msg)
		}
	default:
		if msg := uriProblem(img.URI); msg != "" {
			c.add(f+".uri", img.URI, msg)
		}
	}
	if img.Format != "" && !slices.Contains(imageFormats(), img.Format) {
		c.add(f+".format", img.Format, "must be one of "+strings.Join(imageFormats(), ", ")+" (or absent: the runner probes the format)")
	}
	if img.Checksum != "" {
		algo, _, ok := strings.Cut(img.Checksum, ":")
		switch {
		case !ok:
			c.add(f+".checksum", img.Checksum, "must be sha256:<64 hex digits>")
		case algo != "sha256":
			c.add(f+".checksum", img.Checksum, fmt.Sprintf("unsupported checksum algorithm %q; only sha256:<64 hex digits> is accepted", algo))
		}
	}
	if n := img.SizeBytes; n != nil && *n < 0 {
		c.add(f+".size_bytes", strconv.FormatInt(*n, 10), "must not be negative")
	}
	if r := img.ReadOnly; r != nil && !*r {
		c.add(f+".read_only", "false", "must be true or absent: images are never written")
	}
}

// pathProblem checks an absolute path on the runner; "" means fine.
func pathProblem(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return "must be an absolute path"
	case strings.ContainsFunc(p, unicode.IsControl):
		return "must not contain control characters"
	case slices.Contains(strings.Split(p, "/"), ".."):
		return `must not contain ".." segments`
	case p == "/":
		return "must name a file, not /"
	case path.Clean(p) != p:
		return fmt.Sprintf(`must be clean (no "//", "/./" or trailing "/"): %s`, path.Clean(p))
	}
	return ""
}

// isKey says whether an image URI is a key in the dispatcher's bucket: no
// scheme at all (s3:key, which has one, is a malformed URI instead).
func isKey(s string) bool {
	if strings.Contains(s, "://") {
		return false
	}
	u, err := url.Parse(s)
	return err != nil || u.Scheme == ""
}

// keyProblem checks a key in the dispatcher's bucket given as an image
// URI (images/web01.qcow2); "" means fine. ':' is refused so that a key is
// never read as a URI, '?' and '#' so that it is never read as a query.
func keyProblem(s string) string {
	switch {
	case strings.HasPrefix(s, "/"):
		return "a key in the dispatcher's bucket must not start with /; name a host file with payload.data.image.path"
	case strings.ContainsAny(s, ":?#"):
		return "must be a URI (scheme://...) or a key in the dispatcher's bucket without ':', '?' or '#'"
	}
	if err := store.ValidateKey(s); err != nil {
		return "not a valid key in the dispatcher's bucket: " + strings.TrimPrefix(err.Error(), store.ErrInvalidKey.Error()+" ")
	}
	return ""
}

// uriProblem checks an image URI; "" means fine.
func uriProblem(s string) string {
	if isKey(s) {
		return keyProblem(s)
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "not a valid URI: " + err.Error()
	}
	if !slices.Contains(uriSchemes(), u.Scheme) {
		return fmt.Sprintf("unsupported scheme %q; use one of %s", u.Scheme, strings.Join(uriSchemes(), ", "))
	}
	if u.Opaque != "" || !strings.HasPrefix(s[len(u.Scheme)+1:], "//") {
		return fmt.Sprintf("must have the form %s://...", u.Scheme)
	}
	if u.User != nil {
		return "must not contain credentials (user@ or user:password@); the runner has its own"
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return "must not have a #fragment"
	}
	if u.RawQuery != "" && u.Scheme != "http" && u.Scheme != "https" {
		return "must not have a ?query"
	}
	switch {
	case u.Scheme == "file":
		if u.Host != "" && u.Host != "localhost" {
			return "file URIs must be local: file:///path"
		}
		if msg := pathProblem(u.Path); msg != "" {
			return "path " + msg
		}
	case store.IsBucketScheme(u.Scheme):
		if !isBucket(u.Host) {
			return fmt.Sprintf("must be %s://<bucket>/<key> with a bucket of 3 to 63 of a-z, 0-9, '.' and '-'", u.Scheme)
		}
		key := strings.TrimPrefix(u.Path, "/")
		segs := strings.Split(key, "/")
		if key == "" || strings.HasSuffix(key, "/") {
			return "must name an object: " + u.Scheme + "://<bucket>/<key>"
		}
		if slices.Contains(segs, "..") || slices.Contains(segs, ".") {
			return `key must not contain "." or ".." segments`
		}
		if strings.ContainsFunc(key, unicode.IsControl) {
			return "key must not contain control characters"
		}
	case u.Scheme == "http" || u.Scheme == "https":
		if u.Hostname() == "" {
			return "must name a host"
		}
	case u.Scheme == "pvc":
		if u.Port() != "" || !isDNSSubdomain(u.Host) {
			return "must be pvc://<claim>/<path> with a claim name that is a DNS-1123 subdomain"
		}
		if msg := pathProblem(u.Path); msg != "" {
			return "path " + msg
		}
	}
	return ""
}

// lint finds what Parse warns about: fields that are accepted but do
// nothing, and values that will fail later.
func (j *Job) lint() []Warning {
	var w []Warning
	if k := j.Constraints; k != nil && k.RequirePrivileged != nil && *k.RequirePrivileged {
		w = append(w, Warning{"constraints.require_privileged", "ignored: runners never run privileged"})
	}
	d := j.Payload.Data
	if d == nil {
		return w
	}
	if img := d.Image; img != nil {
		if digest, ok := strings.CutPrefix(img.Checksum, "sha256:"); ok && !isHex64(digest) {
			w = append(w, Warning{"payload.data.image.checksum", "digest is not 64 hex digits; checksum verification will fail"})
		}
	}
	if o := d.Output; o != nil && o.Destination != "" {
		w = append(w, Warning{"payload.data.output.destination", "ignored: the result is written to the result URI the runner was given"})
	}
	walk(reflect.ValueOf(d).Elem(), "payload.data", specTag{}, func(field string, tag specTag, v reflect.Value, key bool) {
		if tag.op != "" && tag.op != j.Operation && !key {
			w = append(w, Warning{field, fmt.Sprintf("applies to %s only; ignored for %s", tag.op, j.Operation)})
		}
	})
	return w
}

// specTag is a field's `spec:"..."` tag: multiline (newlines and tabs
// allowed), max=N (length bound), op=OPERATION (used by that one only).
type specTag struct {
	multiline bool
	max       int
	op        string
}

func parseSpecTag(s string) specTag {
	var t specTag
	for _, opt := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "multiline":
			t.multiline = true
		case "max":
			t.max, _ = strconv.Atoi(v)
		case "op":
			t.op = v
		}
	}
	return t
}

// walk calls fn for every value set in v (a pointer that is not nil, or a
// non-empty value) and for every map key, with its field path. Map values
// and slice elements inherit their field's tag, except op, which is
// reported once for the field.
func walk(v reflect.Value, field string, tag specTag, fn func(field string, tag specTag, v reflect.Value, key bool)) {
	set := v.Kind() == reflect.Pointer && !v.IsNil()
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if !set && (v.IsZero() || (v.Kind() == reflect.Map || v.Kind() == reflect.Slice) && v.Len() == 0) {
		return
	}
	fn(field, tag, v, false)
	inner := tag
	inner.op = ""
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			return
		}
		t := v.Type()
		for i := range t.NumField() {
			if name, ok := jsonName(t.Field(i)); ok {
				walk(v.Field(i), join(field, name), parseSpecTag(t.Field(i).Tag.Get("spec")), fn)
			}
		}
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			f := join(field, k.String())
			fn(f, inner, k, true)
			walk(v.MapIndex(k), f, inner, fn)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return // Raw bytes are not text
		}
		for i := range v.Len() {
			walk(v.Index(i), field+"["+strconv.Itoa(i)+"]", inner, fn)
		}
	}
}

func isVersion1(v string) bool {
	major, minor, ok := strings.Cut(v, ".")
	return ok && major == "1" && isNumber(minor, 4)
}

// isNumber: 1 to n decimal digits without a leading zero.
func isNumber(s string, n int) bool {
	if s == "" || len(s) > n || len(s) > 1 && s[0] == '0' {
		return false
	}
	return strings.Trim(s, "0123456789") == ""
}

func isSemver(v string) bool {
	v = strings.TrimPrefix(v, "v")
	v, _, _ = strings.Cut(v, "+")
	core, pre, hasPre := strings.Cut(v, "-")
	if hasPre && (pre == "" || strings.Trim(pre, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "") {
		return false
	}
	parts := strings.Split(core, ".")
	return len(parts) == 3 && isNumber(parts[0], 9) && isNumber(parts[1], 9) && isNumber(parts[2], 9)
}

// ValidJobID reports whether s is a valid job_id: it names the result
// object, so a dispatcher checks it before trusting a spec that failed
// validation elsewhere.
func ValidJobID(s string) bool { return isJobID(s) }

func isJobID(s string) bool {
	if len(s) > maxJobID || s == "" || s[0] == '.' || s[0] == '-' {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return !isAlnum(r) && r != '.' && r != '_' && r != '-' })
}

func isAlnum(r rune) bool {
	return '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
}

// isDNSLabel is Kubernetes' RFC 1123 label: namespaces.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || r == '-') })
}

// isDNSSubdomain is Kubernetes' RFC 1123 subdomain: most object names.
func isDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

func isBucket(s string) bool {
	return len(s) >= 3 && len(s) <= 63 && isDNSSubdomain(s)
}

// isQualifiedName is the name part of a Kubernetes label key, and a label value.
func isQualifiedName(s string) bool {
	if len(s) == 0 || len(s) > 63 || !isAlnum(rune(s[0])) || !isAlnum(rune(s[len(s)-1])) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return !isAlnum(r) && r != '-' && r != '_' && r != '.' })
}

// qualifiedKeyProblem checks a Kubernetes label or annotation key: an
// optional DNS subdomain prefix and '/', then a qualified name.
func qualifiedKeyProblem(k string) string {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name = prefix
	} else if !isDNSSubdomain(prefix) {
		return "prefix must be a DNS subdomain (example.com/name)"
	}
	if !isQualifiedName(name) {
		return "must be at most 63 of A-Z, a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit, with an optional DNS prefix and '/'"
	}
	return ""
}
