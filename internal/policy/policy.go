// Package policy is the dispatcher's trust boundary: what a spec, written
// by whoever can put objects under jobs/, may make the dispatcher and its
// runners reach. Spec writers are strangers; the operator sets the policy.
// It is closed by default: images only from the dispatcher's own bucket
// under images/, no http(s) hosts, no host paths (on Kubernetes), no
// claims, no pod labels or annotations from specs.
//
// Admit is the one check, made when a spec is read, before anything is
// read, probed, presigned or mounted for it. A refusal is a *spec.Refused
// that names the field and the rule, and nothing about the target.
package policy

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// Defaults of Config.
const (
	// DefaultImagesPrefix is where the dispatcher's own bucket keeps images.
	DefaultImagesPrefix = "images/"
	DefaultMaxAttempts  = 5
	DefaultMaxTimeout   = 24 * time.Hour
	DefaultMaxPriority  = 10
)

// ReservedJobIDPrefix starts the job_ids of the dispatcher's own specs
// (sweeps); specs under jobs/ may not use it.
const ReservedJobIDPrefix = "sweep-"

// Config is the operator's policy. The zero value, with Home set, is the
// closed default.
type Config struct {
	// Home is the dispatcher's bucket URL (specs, results, images/).
	Home string
	// Buckets are the bucket URI prefixes images may come from
	// ("s3://vm-images/", "minio://guestkit/images/"): scheme, bucket and
	// key prefix. Empty: Home's bucket under images/.
	Buckets []string
	// HTTPHosts are the hosts (host or host:port) http(s) images may come
	// from. Empty: none.
	HTTPHosts []string
	// HostPathRoots are the directories path and file:// images may be
	// under. Empty: none, except with LocalFolder.
	HostPathRoots []string
	// LocalFolder: runners run on this machine and Home is a folder, whose
	// images/ folder is then the default host path root.
	LocalFolder bool
	// PVCs are the claims pvc:// images may name. Empty: none.
	PVCs []string
	// AllowCIDRs are the addresses the network guard lets runners dial
	// for a spec's http(s) image although they are private, loopback or
	// link-local.
	AllowCIDRs []netip.Prefix
	// LabelKeys and AnnotationKeys are the metadata.labels and
	// metadata.annotations keys of a spec that reach its pod. Empty: none.
	LabelKeys, AnnotationKeys []string
	// Ceilings. A spec over MaxAttempts or MaxTimeout is refused (it would
	// not run as its writer asked); a priority over MaxPriority is lowered
	// to it (it only orders the queue). Zero: the defaults.
	MaxAttempts int
	MaxTimeout  time.Duration
	MaxPriority int
}

// Policy is a checked Config, safe for concurrent use.
type Policy struct {
	cfg     Config
	home    bucketPrefix
	buckets []bucketPrefix
	roots   []string
}

type bucketPrefix struct{ scheme, bucket, prefix string }

// New checks cfg and applies its defaults.
func New(cfg Config) (*Policy, error) {
	p := &Policy{cfg: cfg}
	home, err := parseBucketPrefix(cfg.Home)
	if err != nil {
		return nil, fmt.Errorf("policy: home bucket: %w", err)
	}
	p.home = home
	if len(cfg.Buckets) == 0 && home.scheme != "file" {
		p.buckets = []bucketPrefix{{home.scheme, home.bucket, joinPrefix(home.prefix, DefaultImagesPrefix)}}
	}
	for _, b := range cfg.Buckets {
		bp, err := parseBucketPrefix(b)
		if err != nil {
			return nil, fmt.Errorf("policy: allowed bucket %q: %w", b, err)
		}
		if bp.scheme == "file" {
			return nil, fmt.Errorf("policy: allowed bucket %q: a folder is a host path root, not a bucket", b)
		}
		p.buckets = append(p.buckets, bp)
	}
	p.roots = slices.Clone(cfg.HostPathRoots)
	if len(p.roots) == 0 && cfg.LocalFolder && home.scheme == "file" {
		p.roots = []string{path.Join(home.bucket, DefaultImagesPrefix)}
	}
	for _, r := range p.roots {
		if !path.IsAbs(r) || path.Clean(r) != r || r == "/" {
			return nil, fmt.Errorf("policy: host path root %q: must be an absolute, clean path other than /", r)
		}
	}
	for _, h := range cfg.HTTPHosts {
		if h == "" || strings.ContainsAny(h, "/@?#") {
			return nil, fmt.Errorf("policy: http host %q: want host or host:port", h)
		}
	}
	if p.cfg.MaxAttempts == 0 {
		p.cfg.MaxAttempts = DefaultMaxAttempts
	}
	if p.cfg.MaxTimeout == 0 {
		p.cfg.MaxTimeout = DefaultMaxTimeout
	}
	if p.cfg.MaxPriority == 0 {
		p.cfg.MaxPriority = DefaultMaxPriority
	}
	if p.cfg.MaxAttempts < 1 || p.cfg.MaxTimeout < time.Second || p.cfg.MaxPriority < 0 {
		return nil, fmt.Errorf("policy: ceilings must be positive (attempts %d, timeout %s, priority %d)", p.cfg.MaxAttempts, p.cfg.MaxTimeout, p.cfg.MaxPriority)
	}
	return p, nil
}

// AllowCIDRs are the networks the runners' network guard lets through.
func (p *Policy) AllowCIDRs() []netip.Prefix { return slices.Clone(p.cfg.AllowCIDRs) }

// Admission is an admitted spec: what it may reach, as checked.
type Admission struct {
	// Image is where the runner finds the image. A bucket image has its
	// bucket URL set (Home's for a key of the dispatcher's bucket); in a
	// folder bucket with LocalFolder, a key is a host path.
	Image spec.ImageSource
	// Tenant is the top-level folder under jobs/ the spec is in ("" for
	// specs directly under jobs/): the unit of fair share.
	Tenant string
	// Priority is execution.priority, lowered to the ceiling.
	Priority int
	// Labels and Annotations are the spec's allowed metadata.
	Labels, Annotations map[string]string
	// Warnings say what was lowered.
	Warnings []string
}

// Admit checks a valid spec read from key against the policy.
func (p *Policy) Admit(key string, j *spec.Job) (*Admission, error) {
	a := &Admission{Tenant: TenantOf(key), Priority: j.Priority()}
	if strings.HasPrefix(j.JobID, ReservedJobIDPrefix) && !strings.HasPrefix(key, store.SweepSpecsPrefix) {
		return nil, refuse("job_id", j.JobID, "reserved job_id", "job_ids starting with %q are the dispatcher's own (sweeps)", ReservedJobIDPrefix)
	}
	if n := j.MaxAttempts(); n > p.cfg.MaxAttempts {
		return nil, refuse("execution.max_attempts", fmt.Sprint(n), "max attempts ceiling", "over this dispatcher's ceiling of %d", p.cfg.MaxAttempts)
	}
	if t := j.Timeout(); t > p.cfg.MaxTimeout {
		return nil, refuse("execution.timeout_seconds", fmt.Sprint(int64(t/time.Second)), "timeout ceiling", "over this dispatcher's ceiling of %d", int64(p.cfg.MaxTimeout/time.Second))
	}
	if a.Priority > p.cfg.MaxPriority {
		a.Warnings = append(a.Warnings, fmt.Sprintf("execution.priority %d lowered to this dispatcher's ceiling of %d", a.Priority, p.cfg.MaxPriority))
		a.Priority = p.cfg.MaxPriority
	}
	img, err := p.image(j)
	if err != nil {
		return nil, err
	}
	a.Image = img
	if m := j.Metadata; m != nil {
		a.Labels = allowed(m.Labels, p.cfg.LabelKeys)
		a.Annotations = allowed(m.Annotations, p.cfg.AnnotationKeys)
	}
	return a, nil
}

// image checks the image source: the kind's allow-list, before anything
// touches the target.
func (p *Policy) image(j *spec.Job) (spec.ImageSource, error) {
	img := j.Image()
	field := "payload.data.image.uri"
	if img != nil && img.Path != "" {
		field = "payload.data.image.path"
	}
	// Every host path must be under a root here; a Kubernetes executor
	// checks the roots again when it mounts them.
	src, err := j.ImageSource(p.roots)
	if err != nil {
		return spec.ImageSource{}, err
	}
	switch src.Kind {
	case spec.ImageBucket:
		if src.Bucket == "" {
			if p.home.scheme == "file" {
				return p.folderKey(j, src)
			}
			src.Bucket = p.home.url()
			src.Key = joinPrefix(p.home.prefix, src.Key)
		}
		b, err := parseBucketPrefix(src.Bucket)
		if err != nil {
			return spec.ImageSource{}, refuse(field, src.URI, "allowed buckets", "%v", err)
		}
		if !slices.ContainsFunc(p.buckets, func(a bucketPrefix) bool { return a.allows(b.scheme, b.bucket, src.Key) }) {
			return spec.ImageSource{}, refuse(field, src.URI, "allowed buckets", "not under an allowed bucket prefix")
		}
	case spec.ImageHTTP:
		host := ""
		if u, err := parseHost(src.URI); err == nil {
			host = u
		}
		if !p.httpAllowed(host) {
			return spec.ImageSource{}, refuse(field, src.URI, "allowed http hosts", "not an allowed http(s) host")
		}
	case spec.ImagePVC:
		if !slices.Contains(p.cfg.PVCs, src.Claim) {
			return spec.ImageSource{}, refuse(field, src.URI, "allowed claims", "not an allowed claim")
		}
	}
	return src, nil
}

// folderKey turns a key of a folder bucket into the file it names, which
// must be under a host path root.
func (p *Policy) folderKey(j *spec.Job, src spec.ImageSource) (spec.ImageSource, error) {
	const field = "payload.data.image.uri"
	file := path.Join(p.home.bucket, src.Key)
	if !slices.ContainsFunc(p.roots, func(r string) bool { return strings.HasPrefix(file, r+"/") }) {
		return spec.ImageSource{}, refuse(field, src.URI, "host path roots", "not under an allowed folder")
	}
	src.Kind, src.Bucket, src.Key = spec.ImageHostPath, "", ""
	src.LocalPath, src.HostDir, src.MountPath = file, path.Dir(file), path.Dir(file)
	return src, nil
}

func (p *Policy) httpAllowed(hostport string) bool {
	if hostport == "" {
		return false
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	for _, a := range p.cfg.HTTPHosts {
		if strings.EqualFold(a, hostport) || strings.EqualFold(a, host) {
			return true
		}
	}
	return false
}

// TenantOf is the top-level folder of a spec key under jobs/: "team-a" for
// jobs/team-a/x.json, "" for jobs/x.json. The dispatcher's own specs are
// the tenant "sweeps".
func TenantOf(key string) string {
	if strings.HasPrefix(key, store.SweepSpecsPrefix) {
		return "sweeps"
	}
	rest := strings.TrimPrefix(key, store.SpecsPrefix)
	if i := strings.IndexByte(rest, '/'); i > 0 {
		return rest[:i]
	}
	return ""
}

// allowed keeps the entries of m whose key is in keys.
func allowed(m map[string]string, keys []string) map[string]string {
	var out map[string]string
	for k, v := range m {
		if slices.Contains(keys, k) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// refuse says which rule refused field, and nothing about its target.
func refuse(field, value, rule, format string, a ...any) *spec.Refused {
	r := spec.Refuse(field, value, "refused by this dispatcher's policy (%s): "+format, append([]any{rule}, a...)...)
	r.Rule = rule
	return r
}

// parseBucketPrefix reads a bucket URL or URI prefix: scheme://BUCKET[/PREFIX]
// (settings in a query are the store's business, not the policy's), or a
// folder (file:///path or a plain path), whose "bucket" is the path.
func parseBucketPrefix(s string) (bucketPrefix, error) {
	if s == "" {
		return bucketPrefix{}, fmt.Errorf("empty")
	}
	if !strings.Contains(s, "://") || strings.HasPrefix(s, "file://") {
		dir := strings.TrimPrefix(strings.TrimPrefix(s, "file://"), "localhost")
		if strings.HasPrefix(s, "file://") && !path.IsAbs(dir) {
			return bucketPrefix{}, fmt.Errorf("%q: want file:///ABS/PATH", s)
		}
		// A plain path is relative to the working folder, as the store
		// takes it.
		abs, err := filepath.Abs(dir)
		if err != nil {
			return bucketPrefix{}, fmt.Errorf("%q: %w", s, err)
		}
		return bucketPrefix{scheme: "file", bucket: abs}, nil
	}
	scheme, rest, _ := strings.Cut(s, "://")
	if !store.IsBucketScheme(scheme) {
		return bucketPrefix{}, fmt.Errorf("%q: scheme %q is not a bucket (%s)", s, scheme, strings.Join(store.BucketSchemes(), ", "))
	}
	rest, _, _ = strings.Cut(rest, "?")
	bucket, prefix, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return bucketPrefix{}, fmt.Errorf("%q: no bucket", s)
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if prefix != "" && store.ValidateKey(strings.TrimSuffix(prefix, "/")) != nil {
		return bucketPrefix{}, fmt.Errorf("%q: the prefix is not a clean key", s)
	}
	return bucketPrefix{scheme: scheme, bucket: bucket, prefix: prefix}, nil
}

func (b bucketPrefix) allows(scheme, bucket, key string) bool {
	return b.scheme == scheme && b.bucket == bucket && strings.HasPrefix(key, b.prefix)
}

// url is the bucket's URL, without a prefix.
func (b bucketPrefix) url() string {
	if b.scheme == "file" {
		return "file://" + b.bucket
	}
	return b.scheme + "://" + b.bucket
}

// joinPrefix puts key under prefix ("" or ending in /).
func joinPrefix(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return strings.TrimSuffix(prefix, "/") + "/" + key
}

func parseHost(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", err
	}
	return strings.ToLower(u.Host), nil
}
