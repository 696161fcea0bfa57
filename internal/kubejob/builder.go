package kubejob

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/policy"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runnerenv"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/templates"
)

// KVMMode says how a runner pod gets /dev/kvm.
type KVMMode string

const (
	// KVMNone: no /dev/kvm; the runner uses TCG (with Accel auto or tcg).
	KVMNone KVMMode = "none"
	// KVMDevicePlugin: request one unit of a device plugin's resource
	// (BuilderConfig.KVMResource, default devices.kubevirt.io/kvm). The
	// recommended mode: the plugin puts the device in the container's
	// device cgroup.
	KVMDevicePlugin KVMMode = "device-plugin"
	// KVMHostPath: mount the node's /dev/kvm (a hostPath CharDevice). An
	// unprivileged container may still be refused the device by its
	// runtime's device cgroup unless the runtime is configured to allow it
	// (CRI-O allowed_devices, ...); the runner's KVM self-test then falls
	// back to TCG under Accel auto.
	KVMHostPath KVMMode = "hostpath"
)

// Defaults of BuilderConfig.
const (
	DefaultKVMResource             = "devices.kubevirt.io/kvm"
	DefaultDiskAccessLabel         = "guestkit.io/disk-access"
	DefaultWorkerPoolLabel         = "guestkit.io/worker-pool"
	DefaultInstance                = "guestkit"
	DefaultTTLSecondsAfterFinished = 24 * 3600
	DefaultSchedulingGrace         = 15 * time.Minute
)

// Job controller back-off between failed pods: 10s doubling, capped (at 6
// minutes in the controller today; 10 minutes here, to stay on the safe side).
const (
	podBackoffBase = 10 * time.Second
	podBackoffMax  = 10 * time.Minute
)

// RunnerUser is the uid and gid the runner runs as (the template sets it).
const RunnerUser = 65532

const kvmVolume = "kvm"

// BuilderConfig configures the Jobs a Builder makes. Only Namespace and
// RunnerImage are required.
type BuilderConfig struct {
	// TemplatePath is an operator's Job template; empty: the built-in
	// templates/job.yaml.tmpl.
	TemplatePath string
	// Namespace of every Job (and of pvc:// claims and SecretRef).
	Namespace string
	// RunnerImage is the guestkit-runner container image; the template
	// runs the command guestkit-runner from it.
	RunnerImage string
	// ImagePullPolicy: Always, IfNotPresent (default) or Never.
	ImagePullPolicy  corev1.PullPolicy
	ImagePullSecrets []corev1.LocalObjectReference
	// ServiceAccount of the runner pods: bucket credentials by workload
	// identity (IRSA, ...). The Kubernetes API token is never mounted.
	ServiceAccount string
	// Instance is the app.kubernetes.io/instance label: which dispatcher
	// owns a Job, when several share a namespace. Default DefaultInstance.
	Instance string
	// Version is the app.kubernetes.io/version label (the runner's);
	// none when empty.
	Version string
	// NodeSelector picks the nodes that may open disk images. nil means
	// {DefaultDiskAccessLabel: "true"}; an empty map, any node.
	NodeSelector map[string]string
	// WorkerPoolLabel is the node label that routing.worker_pool selects
	// on. Default DefaultWorkerPoolLabel.
	WorkerPoolLabel string
	Tolerations     []corev1.Toleration
	// Resources of the runner container; zero: DefaultResources(). The
	// KVM device-plugin resource is added to it.
	Resources corev1.ResourceRequirements
	// TTLSecondsAfterFinished: how long finished Jobs stay for the
	// controller to read. nil: DefaultTTLSecondsAfterFinished.
	TTLSecondsAfterFinished *int32
	// KVM says how pods get /dev/kvm; empty means KVMNone.
	KVM KVMMode
	// KVMResource is the device plugin's resource name (KVMDevicePlugin).
	KVMResource corev1.ResourceName
	// KVMGroup is the gid that owns /dev/kvm on the nodes ("kvm"), added to
	// the pod's supplementalGroups so that uid 65532 may open it. Needed
	// when the nodes' /dev/kvm is not world-writable (Debian: 0660 root:kvm).
	KVMGroup *int64
	// SecretRef names a Secret whose keys become the runner's environment
	// (AWS_ACCESS_KEY_ID, MINIO_ACCESS_KEY, ...), for clusters without
	// workload identity. Optional.
	SecretRef string
	// Env is added to the runner's environment: AWS_ENDPOINT_URL_S3,
	// AWS_REGION, MINIO_ENDPOINT, GUESTKIT_MEMORY_MB, GUESTKIT_LOG_FORMAT...
	// It may not set what the template sets (GUESTKIT_SPEC, ...).
	Env []corev1.EnvVar
	// Accel is GUESTKIT_ACCEL: auto (default), kvm or tcg.
	Accel string
	// Backend is GUESTKIT_BACKEND for specs that do not choose one
	// (payload.data.options.backend): auto (default), direct or appliance.
	Backend string
	// DirectResources are the runner's resources for a Job that runs the
	// direct backend, which starts no VM; zero: DefaultDirectResources().
	// Such a Job gets no /dev/kvm either.
	DirectResources corev1.ResourceRequirements
	// NetAllow are the networks runners may dial for a spec's own http(s)
	// image although they are not public (the policy's AllowCIDRs).
	NetAllow []netip.Prefix
	// HostPathRoots are the node directories that path and file:// images
	// may be mounted from. Empty: such images are refused.
	HostPathRoots []string
	// ScratchSizeLimit bounds the /tmp emptyDir whatever the image. nil:
	// ScratchBase plus what the Job may download (see ScratchFor).
	ScratchSizeLimit *resource.Quantity
	// ImageAccess is the runner's GUESTKIT_IMAGE_ACCESS: auto (default:
	// stream; download from an http server that serves no ranges),
	// stream or download.
	ImageAccess string
	// Verify is the runner's GUESTKIT_VERIFY: auto (default), full or
	// attested.
	Verify string
	// DownloadLimit is the largest http(s) image a runner may download
	// when its server serves no ranges (default DefaultDownloadLimit;
	// negative: none). The Job's scratch emptyDir grows by it.
	DownloadLimit int64
	// SchedulingGrace is added to a Job's activeDeadlineSeconds for time
	// spent Pending. Default DefaultSchedulingGrace.
	SchedulingGrace time.Duration
}

// DefaultResources are the runner's resources when BuilderConfig.Resources
// is empty: the libguestfs appliance takes 1.25 GiB by default, qemu and the
// runner some more; TCG wants a whole CPU.
func DefaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("1"),
			corev1.ResourceMemory: resource.MustParse("2Gi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("3Gi"),
		},
	}
}

// DefaultDirectResources are a direct-backend runner's resources when
// BuilderConfig.DirectResources is empty: it reads the disk in Go with a
// 32 MiB block cache and, for non-raw images, one qemu-storage-daemon
// (measured: under 150 MiB for the whole pod on the test images).
// ScratchBase is what a runner writes to /tmp besides a downloaded
// image: the libguestfs overlay of the read-only drive, sockets, the
// result. Measured (README, "Scratch"): well under 64 MiB.
const ScratchBase = 256 << 20

// DefaultDownloadLimit bounds the download of an http(s) image whose
// server serves no ranges.
const DefaultDownloadLimit = 4 << 30

// ScratchFor is the /tmp emptyDir size limit of a Job, and the download
// limit its runner gets (-1: none), in bytes: streamed images need only
// ScratchBase; a download needs room for the image.
func (c *BuilderConfig) ScratchFor(img spec.ImageSource, objectSize int64) (scratch, download int64) {
	download = -1
	switch {
	case img.Kind == spec.ImageBucket && c.ImageAccess == runnerenv.AccessDownload:
		download = objectSize
		if download <= 0 {
			download = c.DownloadLimit
		}
	case img.Kind == spec.ImageHTTP && c.ImageAccess != runnerenv.AccessStream:
		download = c.DownloadLimit
	}
	if download <= 0 {
		return ScratchBase, -1
	}
	return ScratchBase + download, download
}

func DefaultDirectResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("250m"),
			corev1.ResourceMemory: resource.MustParse("256Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("512Mi"),
		},
	}
}

// Builder makes Jobs from job specs. It is safe for concurrent use.
type Builder struct {
	cfg    BuilderConfig
	tmpl   *template.Template
	source string // the template, for error messages
}

// NewBuilder checks cfg, applies its defaults, parses the Job template and
// renders it once for a sample spec, so that a broken template fails here,
// at start, rather than on the first job.
func NewBuilder(cfg BuilderConfig) (*Builder, error) {
	if err := cfg.defaults(); err != nil {
		return nil, fmt.Errorf("dispatcher configuration: %w", err)
	}
	b := &Builder{cfg: cfg, source: templates.JobTemplateName}
	text := templates.JobTemplate()
	if cfg.TemplatePath != "" {
		b.source = cfg.TemplatePath
		var err error
		if text, err = os.ReadFile(cfg.TemplatePath); err != nil {
			return nil, fmt.Errorf("job template: %w", err)
		}
	}
	t, err := template.New(b.source).Option("missingkey=error").Funcs(template.FuncMap{"json": toJSON}).Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("job template %s: %w", b.source, err)
	}
	b.tmpl = t
	if _, err := b.NewJob(sampleInput()); err != nil {
		return nil, fmt.Errorf("sample job: %w", err)
	}
	return b, nil
}

// Config returns the configuration with defaults applied.
func (b *Builder) Config() BuilderConfig { return b.cfg }

// reportFunc records one problem; the checks below share one, so that their
// problems come out in the order they are checked.
type reportFunc func(format string, a ...any)

func (c *BuilderConfig) defaults() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	c.checkIdentity(bad)
	c.checkPlacement(bad)
	c.checkLimits(bad)
	c.checkKVM(bad)
	c.copyShared()
	c.checkEnv(bad)
	c.checkHostPathRoots(bad)
	if c.SchedulingGrace == 0 {
		c.SchedulingGrace = DefaultSchedulingGrace
	} else if c.SchedulingGrace < 0 {
		bad("scheduling grace %s: must not be negative", c.SchedulingGrace)
	}
	return errors.Join(errs...)
}

// checkIdentity covers where Jobs go, what they run as and how they are
// labelled.
func (c *BuilderConfig) checkIdentity(bad reportFunc) {
	if c.Namespace == "" {
		bad("namespace is required")
	} else if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
		bad("namespace %q: %s", c.Namespace, strings.Join(msgs, "; "))
	}
	if strings.TrimSpace(c.RunnerImage) == "" {
		bad("runner image is required")
	}
	switch c.ImagePullPolicy {
	case "":
		c.ImagePullPolicy = corev1.PullIfNotPresent
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		bad("image pull policy %q: want Always, IfNotPresent or Never", c.ImagePullPolicy)
	}
	if c.ServiceAccount != "" {
		if msgs := validation.IsDNS1123Subdomain(c.ServiceAccount); len(msgs) > 0 {
			bad("service account %q: %s", c.ServiceAccount, strings.Join(msgs, "; "))
		}
	}
	if c.SecretRef != "" {
		if msgs := validation.IsDNS1123Subdomain(c.SecretRef); len(msgs) > 0 {
			bad("secret %q: %s", c.SecretRef, strings.Join(msgs, "; "))
		}
	}
	if c.Instance == "" {
		c.Instance = DefaultInstance
	}
	for name, v := range map[string]string{"instance": c.Instance, "version": c.Version} {
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			bad("%s %q is not a valid label value: %s", name, v, strings.Join(msgs, "; "))
		}
	}
}

func (c *BuilderConfig) checkPlacement(bad reportFunc) {
	if c.NodeSelector == nil {
		c.NodeSelector = map[string]string{DefaultDiskAccessLabel: "true"}
	} else {
		c.NodeSelector = maps.Clone(c.NodeSelector)
	}
	for _, k := range slices.Sorted(maps.Keys(c.NodeSelector)) {
		if msgs := labelProblems(k, c.NodeSelector[k]); len(msgs) > 0 {
			bad("node selector %s=%s: %s", k, c.NodeSelector[k], strings.Join(msgs, "; "))
		}
	}
	if c.WorkerPoolLabel == "" {
		c.WorkerPoolLabel = DefaultWorkerPoolLabel
	}
	if msgs := validation.IsQualifiedName(c.WorkerPoolLabel); len(msgs) > 0 {
		bad("worker pool label %q: %s", c.WorkerPoolLabel, strings.Join(msgs, "; "))
	}
}

// checkLimits defaults (and copies) Resources and TTLSecondsAfterFinished.
func (c *BuilderConfig) checkLimits(bad reportFunc) {
	if len(c.DirectResources.Limits) == 0 && len(c.DirectResources.Requests) == 0 {
		c.DirectResources = DefaultDirectResources()
	} else {
		c.DirectResources = *c.DirectResources.DeepCopy()
	}
	if len(c.Resources.Limits) == 0 && len(c.Resources.Requests) == 0 {
		c.Resources = DefaultResources()
	} else {
		c.Resources = *c.Resources.DeepCopy()
	}
	if c.TTLSecondsAfterFinished == nil {
		ttl := int32(DefaultTTLSecondsAfterFinished)
		c.TTLSecondsAfterFinished = &ttl
	} else {
		ttl := *c.TTLSecondsAfterFinished
		c.TTLSecondsAfterFinished = &ttl
		if ttl < 0 {
			bad("ttlSecondsAfterFinished %d: must not be negative", ttl)
		}
	}
}

// checkKVM covers the KVM mode, resource and group, and Accel, which
// depends on the (defaulted) mode.
func (c *BuilderConfig) checkKVM(bad reportFunc) {
	switch c.KVM {
	case "":
		c.KVM = KVMNone
	case KVMNone, KVMDevicePlugin, KVMHostPath:
	default:
		bad("KVM mode %q: want %s, %s or %s", c.KVM, KVMNone, KVMDevicePlugin, KVMHostPath)
	}
	if c.KVMResource == "" {
		c.KVMResource = DefaultKVMResource
	}
	if msgs := validation.IsQualifiedName(string(c.KVMResource)); len(msgs) > 0 {
		bad("KVM resource %q: %s", c.KVMResource, strings.Join(msgs, "; "))
	}
	if g := c.KVMGroup; g != nil && *g < 0 {
		bad("KVM group %d: must not be negative", *g)
	}
	switch c.Accel {
	case "":
		c.Accel = "auto"
	case "auto", "tcg":
	case "kvm":
		if c.KVM == KVMNone {
			bad("accel kvm needs a KVM mode (%s or %s): without /dev/kvm every job would fail", KVMDevicePlugin, KVMHostPath)
		}
	default:
		bad("accel %q: want auto, kvm or tcg", c.Accel)
	}
	c.ImageAccess = cmp.Or(c.ImageAccess, runnerenv.AccessAuto)
	if !slices.Contains(runnerenv.ImageAccesses(), c.ImageAccess) {
		bad("image access %q: want %s", c.ImageAccess, strings.Join(runnerenv.ImageAccesses(), ", "))
	}
	c.Verify = cmp.Or(c.Verify, runnerenv.VerifyAuto)
	if !slices.Contains(runnerenv.Verifies(), c.Verify) {
		bad("verify %q: want %s", c.Verify, strings.Join(runnerenv.Verifies(), ", "))
	}
	if c.DownloadLimit == 0 {
		c.DownloadLimit = DefaultDownloadLimit
	}
	switch c.Backend {
	case "":
		c.Backend = spec.BackendAuto
	case spec.BackendAuto, spec.BackendDirect, spec.BackendAppliance:
	default:
		bad("backend %q: want %s", c.Backend, strings.Join(spec.Backends(), ", "))
	}
}

// copyShared copies what the caller may reuse in its configuration.
func (c *BuilderConfig) copyShared() {
	c.Env = deepCopies(c.Env, (*corev1.EnvVar).DeepCopy)
	c.Tolerations = deepCopies(c.Tolerations, (*corev1.Toleration).DeepCopy)
	c.ImagePullSecrets = slices.Clone(c.ImagePullSecrets)
	if c.ScratchSizeLimit != nil {
		q := c.ScratchSizeLimit.DeepCopy()
		c.ScratchSizeLimit = &q
	}
	if c.KVMGroup != nil {
		g := *c.KVMGroup
		c.KVMGroup = &g
	}
}

func (c *BuilderConfig) checkEnv(bad reportFunc) {
	for _, e := range c.Env {
		switch {
		case len(validation.IsEnvVarName(e.Name)) > 0:
			bad("env %q: not a valid variable name", e.Name)
		case slices.Contains(runnerenv.Pod(), e.Name):
			bad("env %s: set by the Job template; it cannot be overridden", e.Name)
		}
	}
}

func (c *BuilderConfig) checkHostPathRoots(bad reportFunc) {
	c.HostPathRoots = slices.Clone(c.HostPathRoots)
	for _, r := range c.HostPathRoots {
		if msg := spec.HostPathRootProblem(r); msg != "" {
			bad("host path root %q: %s", r, msg)
		}
	}
}

func deepCopies[T any](in []T, deepCopy func(*T) *T) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i := range in {
		out[i] = *deepCopy(&in[i])
	}
	return out
}

func labelProblems(k, v string) []string {
	return append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...)
}

// JobInput is one spec to dispatch.
type JobInput struct {
	// Job is the parsed spec. NewJob validates it again.
	Job *spec.Job
	// Admission is what the dispatcher's policy admitted of the spec: the
	// image source, and the metadata that may reach the pod. Without one,
	// the image is resolved with this Builder's host path roots and no
	// spec metadata reaches the pod.
	Admission *policy.Admission
	// Bucket is the bucket URL the spec came from (annotation only).
	Bucket string
	// SpecKey and ResultKey are the object keys (annotations only).
	SpecKey, ResultKey string
	// SpecURI and ResultURI are what the runner reads and writes: presigned
	// https URLs (a GET and a PUT), or store URIs (s3://, minio://) that
	// the pod's credentials can reach. Presigned URLs are visible to whoever
	// may read Jobs in the namespace, and must outlive the Job's
	// activeDeadlineSeconds.
	SpecURI, ResultURI string
	// ReportURI is where SARIF, JUnit or SBOM reports go (GUESTKIT_REPORT). With
	// a presigned ResultURI it must be a presigned PUT of its own, or
	// reports are not stored; optional.
	ReportURI string
	// ImageURL is a presigned GET of a bucket image (ImageBucket), so that
	// the runner needs no bucket credentials: GUESTKIT_IMAGE_URL. The
	// result still names the spec's image URI, and the spec's checksum is
	// still verified. Optional; ignored for other sources.
	ImageURL string
	// Image is what the dispatcher saw of that image (ETag, size, the
	// digest its store attests): GUESTKIT_IMAGE_ETAG, _VERSION, _SIZE,
	// _ATTESTED.
	Image controller.ImageFacts
	// Now bounds the Job by execution.deadline; zero ignores the deadline.
	Now time.Time
}

// TemplateData is what the Job template sees.
type TemplateData struct {
	Name      string // JobName
	Namespace string
	// Labels and Annotations go on the Job and on its pod template: the
	// spec's metadata.labels and annotations (minus reserved domains), then
	// the dispatcher's (which win).
	Labels, Annotations map[string]string
	JobID               string
	// BackoffLimit is execution.max_attempts - 1.
	BackoffLimit int32
	// ActiveDeadlineSeconds bounds the Job, PodActiveDeadlineSeconds one
	// pod; see Builder.Deadlines.
	ActiveDeadlineSeconds    int64
	PodActiveDeadlineSeconds int64
	TTLSecondsAfterFinished  int32
	// NonRetryableExitCodes are result.NonRetryableExitCodes(), sorted:
	// podFailurePolicy's FailJob rule.
	NonRetryableExitCodes []int32
	RunnerImage           string
	ImagePullPolicy       corev1.PullPolicy
	ImagePullSecrets      []corev1.LocalObjectReference
	ServiceAccountName    string
	// NodeSelector: BuilderConfig.NodeSelector, the worker pool label and
	// routing.node_selector.
	NodeSelector       map[string]string
	Tolerations        []corev1.Toleration
	SupplementalGroups []int64
	// SpecURI, ResultURI, ReportURI: JobInput's.
	SpecURI, ResultURI, ReportURI string
	Accel                         string
	// Backend is GUESTKIT_BACKEND: the spec's choice, else the
	// configuration's.
	Backend string
	// NetAllow is GUESTKIT_NET_ALLOW: BuilderConfig.NetAllow, comma-separated.
	NetAllow string
	// ImageURL is GUESTKIT_IMAGE_URL: JobInput.ImageURL for bucket images.
	ImageURL string
	// ImageETag, ImageVersion, ImageSize and ImageAttested are
	// JobInput.Image, for bucket images (ImageSize "" when unknown).
	ImageETag, ImageVersion, ImageSize, ImageAttested string
	// ImageAccess, Verify: the BuilderConfig's. DownloadLimit: what
	// ScratchFor gives this Job, in bytes ("-1": none).
	ImageAccess, Verify, DownloadLimit string
	// ImagePath is GUESTKIT_IMAGE: the mounted image, or "" when the
	// runner downloads it.
	ImagePath string
	// Env and EnvFrom: BuilderConfig.Env and SecretRef.
	Env     []corev1.EnvVar
	EnvFrom []corev1.EnvFromSource
	// Resources: BuilderConfig.Resources plus the KVM device, or
	// DirectResources for a direct Job.
	Resources corev1.ResourceRequirements
	// Volumes and VolumeMounts: the image and /dev/kvm, beside the
	// template's own /tmp and /var/tmp.
	Volumes      []corev1.Volume
	VolumeMounts []corev1.VolumeMount
	// ScratchVolume is the /tmp emptyDir: ScratchFor's size, or
	// BuilderConfig.ScratchSizeLimit.
	ScratchVolume corev1.EmptyDirVolumeSource
	// Job and Image are there for templates that want more.
	Job   *spec.Job
	Image spec.ImageSource
}

// NewJob makes the Job for one spec. It calls no API: the controller
// creates the Job, and AlreadyExists means the spec was dispatched before.
// A *spec.Refused means the spec cannot be dispatched.
func (b *Builder) NewJob(in JobInput) (*batchv1.Job, error) {
	data, err := b.templateData(in)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := b.tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("job template %s: %w", b.source, err)
	}
	job := &batchv1.Job{}
	if err := yaml.UnmarshalStrict(buf.Bytes(), job); err != nil {
		return nil, fmt.Errorf("job template %s: the rendered YAML is not a valid Job: %w%s", b.source, err, renderedLine(buf.Bytes(), err))
	}
	if problems := checkJob(job, data); len(problems) > 0 {
		return nil, fmt.Errorf("job template %s: the rendered Job %s", b.source, strings.Join(problems, "; "))
	}
	return job, nil
}

// Check reports what NewJob would refuse about in's spec (a *spec.Refused),
// without rendering the template: a broken template is the dispatcher's
// fault, found by NewBuilder, not the spec's.
func (b *Builder) Check(in JobInput) error {
	_, err := b.templateData(in)
	return err
}

func (b *Builder) templateData(in JobInput) (*TemplateData, error) {
	if err := b.checkInput(in); err != nil {
		return nil, err
	}
	j := in.Job
	img, err := b.imageOf(in)
	if err != nil {
		return nil, err
	}
	podDeadline, jobDeadline, err := b.Deadlines(j, in.Now)
	if err != nil {
		return nil, err
	}
	d := b.newTemplateData(in, img, podDeadline, jobDeadline)
	d.Labels, d.Annotations = b.metadata(j, in)
	if d.NodeSelector, err = b.nodeSelector(j); err != nil {
		return nil, err
	}
	d.Volumes, d.VolumeMounts = imageVolumes(img)
	b.addKVM(d)
	return d, nil
}

// checkInput refuses what no template could make a Job of.
func (b *Builder) checkInput(in JobInput) error {
	j := in.Job
	if j == nil {
		return errors.New("no job spec")
	}
	if in.SpecURI == "" || in.ResultURI == "" {
		return errors.New("the spec and result URIs are required")
	}
	if err := j.Validate(); err != nil {
		return &spec.Refused{Err: err}
	}
	if m := j.Metadata; m != nil && m.Namespace != "" && m.Namespace != b.cfg.Namespace {
		return spec.Refuse("metadata.namespace", m.Namespace, "this dispatcher runs jobs in namespace %s", b.cfg.Namespace)
	}
	return nil
}

// newTemplateData fills in what comes straight from the configuration and
// in; it copies what the template could modify.
func (b *Builder) newTemplateData(in JobInput, img spec.ImageSource, podDeadline, jobDeadline time.Duration) *TemplateData {
	cfg, j := &b.cfg, in.Job
	d := &TemplateData{
		Name:                     JobName(j),
		Namespace:                cfg.Namespace,
		JobID:                    j.JobID,
		BackoffLimit:             int32(j.MaxAttempts() - 1),
		ActiveDeadlineSeconds:    seconds(jobDeadline),
		PodActiveDeadlineSeconds: seconds(podDeadline),
		TTLSecondsAfterFinished:  *cfg.TTLSecondsAfterFinished,
		NonRetryableExitCodes:    slices.Sorted(slices.Values(result.NonRetryableExitCodes())),
		RunnerImage:              cfg.RunnerImage,
		ImagePullPolicy:          cfg.ImagePullPolicy,
		ImagePullSecrets:         slices.Clone(cfg.ImagePullSecrets),
		ServiceAccountName:       cfg.ServiceAccount,
		Tolerations:              deepCopies(cfg.Tolerations, (*corev1.Toleration).DeepCopy),
		SpecURI:                  in.SpecURI,
		ResultURI:                in.ResultURI,
		ReportURI:                in.ReportURI,
		Accel:                    cfg.Accel,
		Backend:                  backendOf(j, cfg.Backend),
		ImagePath:                img.LocalPath,
		ImageURL:                 imageURL(img, in.ImageURL),
		NetAllow:                 prefixes(cfg.NetAllow),
		Env:                      deepCopies(cfg.Env, (*corev1.EnvVar).DeepCopy),
		Resources:                *cfg.Resources.DeepCopy(),
		Job:                      j,
		Image:                    img,
	}
	if d.BackoffLimit < 0 {
		d.BackoffLimit = 0
	}
	if d.Backend == spec.BackendDirect {
		d.Resources = *cfg.DirectResources.DeepCopy()
	}
	if cfg.SecretRef != "" {
		d.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: cfg.SecretRef}}}}
	}
	if d.ImageURL != "" {
		d.ImageETag, d.ImageVersion, d.ImageAttested = in.Image.ETag, in.Image.VersionID, in.Image.Attested
		if in.Image.Size > 0 {
			d.ImageSize = strconv.FormatInt(in.Image.Size, 10)
		}
	}
	scratch, download := cfg.ScratchFor(img, in.Image.Size)
	d.ImageAccess, d.Verify, d.DownloadLimit = cfg.ImageAccess, cfg.Verify, strconv.FormatInt(download, 10)
	q := resource.NewQuantity(scratch, resource.BinarySI)
	if cfg.ScratchSizeLimit != nil {
		*q = cfg.ScratchSizeLimit.DeepCopy()
	}
	d.ScratchVolume.SizeLimit = q
	return d
}

// addKVM gives the runner /dev/kvm the configured way; it appends to the
// image's volumes, so it comes after imageVolumes.
func (b *Builder) addKVM(d *TemplateData) {
	cfg := &b.cfg
	if d.Backend == spec.BackendDirect {
		return // no VM, no /dev/kvm
	}
	switch cfg.KVM {
	case KVMDevicePlugin:
		one := resource.MustParse("1")
		if d.Resources.Limits == nil {
			d.Resources.Limits = corev1.ResourceList{}
		}
		if d.Resources.Requests == nil {
			d.Resources.Requests = corev1.ResourceList{}
		}
		d.Resources.Limits[cfg.KVMResource] = one
		d.Resources.Requests[cfg.KVMResource] = one
	case KVMHostPath:
		chardev := corev1.HostPathCharDev
		d.Volumes = append(d.Volumes, corev1.Volume{Name: kvmVolume, VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: "/dev/kvm", Type: &chardev}}})
		d.VolumeMounts = append(d.VolumeMounts, corev1.VolumeMount{Name: kvmVolume, MountPath: "/dev/kvm"})
	}
	if cfg.KVM != KVMNone && cfg.KVMGroup != nil {
		d.SupplementalGroups = []int64{*cfg.KVMGroup}
	}
}

// backendOf is the spec's backend, else the dispatcher's default.
func backendOf(j *spec.Job, def string) string {
	if b := j.Backend(); b != "" {
		return b
	}
	if def != "" {
		return def
	}
	return spec.BackendAuto
}

func prefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func imageURL(img spec.ImageSource, url string) string {
	if img.Kind != spec.ImageBucket {
		return ""
	}
	return url
}

// metadata returns the labels and annotations of the Job and its pods.
func (b *Builder) metadata(j *spec.Job, in JobInput) (labels, annotations map[string]string) {
	labels, annotations = map[string]string{}, map[string]string{}
	if a := in.Admission; a != nil {
		for k, v := range a.Labels {
			if !reservedKey(k) && len(labelProblems(k, v)) == 0 {
				labels[k] = v
			}
		}
		for k, v := range a.Annotations {
			if !reservedKey(k) && len(validation.IsQualifiedName(k)) == 0 {
				annotations[k] = v
			}
		}
	}
	maps.Copy(labels, b.ownLabels(j))
	maps.Copy(annotations, ownAnnotations(j, in))
	return labels, annotations
}

// ownLabels are the dispatcher's labels, which the rendered Job must carry.
func (b *Builder) ownLabels(j *spec.Job) map[string]string {
	l := map[string]string{
		LabelName:      LabelNameValue,
		LabelComponent: LabelComponentValue,
		LabelManagedBy: LabelManagedByValue,
		LabelInstance:  b.cfg.Instance,
		LabelJobIDHash: JobIDHash(j.JobID),
		LabelOperation: labelValue(j.Operation),
	}
	if b.cfg.Version != "" {
		l[LabelVersion] = b.cfg.Version
	}
	return l
}

func ownAnnotations(j *spec.Job, in JobInput) map[string]string {
	a := map[string]string{
		AnnotationJobID:      j.JobID,
		AnnotationSpecKey:    in.SpecKey,
		AnnotationResultKey:  in.ResultKey,
		AnnotationSpecDigest: j.Digest(),
	}
	if in.Bucket != "" {
		a[AnnotationBucket] = in.Bucket
	}
	if e := j.Execution; e != nil && e.IdempotencyKey != "" {
		a[AnnotationIdempotencyKey] = e.IdempotencyKey
	}
	return a
}

// nodeSelector merges the dispatcher's node selector, routing.worker_pool
// and routing.node_selector. A spec cannot override the dispatcher's keys:
// a conflict is a *spec.Refused.
func (b *Builder) nodeSelector(j *spec.Job) (map[string]string, error) {
	sel := maps.Clone(b.cfg.NodeSelector)
	r := j.Routing
	if r == nil {
		return sel, nil
	}
	add := func(field, k, v string) error {
		if msgs := labelProblems(k, v); len(msgs) > 0 {
			return spec.Refuse(field, v, "not usable as a node selector %s=%s: %s", k, v, strings.Join(msgs, "; "))
		}
		if old, ok := sel[k]; ok && old != v {
			return spec.Refuse(field, v, "conflicts with the node selector %s=%s", k, old)
		}
		sel[k] = v
		return nil
	}
	if r.WorkerPool != "" {
		if err := add("routing.worker_pool", b.cfg.WorkerPoolLabel, r.WorkerPool); err != nil {
			return nil, err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.NodeSelector)) {
		if err := add("routing.node_selector."+k, k, r.NodeSelector[k]); err != nil {
			return nil, err
		}
	}
	return sel, nil
}

// Deadlines returns the activeDeadlineSeconds of a spec's pods and of its
// Job, as durations:
//
//	pod = timeout_seconds + spec.StartGrace + spec.UploadGrace
//	job = max_attempts * pod + the Job controller's back-off between
//	      attempts (10s doubling, counted up to 10m each) + SchedulingGrace
//
// The Job's deadline covers every attempt: a Job's activeDeadlineSeconds
// counts from its start across all its pods, so timeout + grace alone
// would kill the retries that max_attempts allows. The pod's deadline is
// the backstop for a runner that overruns its own timeout.
//
// With now set and an execution.deadline, both stop at the deadline plus
// spec.UploadGrace (the runner itself stops at the deadline, then stores the
// result); a deadline already passed is a *spec.Refused.
func (b *Builder) Deadlines(j *spec.Job, now time.Time) (pod, job time.Duration, err error) {
	attempts := max(j.MaxAttempts(), 1)
	pod = j.Timeout() + spec.StartGrace + spec.UploadGrace
	job = time.Duration(attempts)*pod + b.cfg.SchedulingGrace
	for i := range attempts - 1 {
		job += min(podBackoffBase<<min(i, 16), podBackoffMax)
	}
	if dl, ok := j.Deadline(); ok && !now.IsZero() {
		left := dl.Sub(now)
		if left <= 0 {
			return 0, 0, spec.Refuse("execution.deadline", dl.Format(time.RFC3339), "passed at dispatch (%s)", now.Format(time.RFC3339))
		}
		limit := left + spec.UploadGrace
		pod, job = min(pod, limit), min(job, limit)
	}
	return pod, job, nil
}

// seconds rounds up to whole seconds.
func seconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

var yamlLineRE = regexp.MustCompile(`\bline (\d+)\b`)

// renderedLine quotes the rendered line a YAML error points at: its line
// numbers count rendered lines, not template lines.
func renderedLine(doc []byte, err error) string {
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	n, _ := strconv.Atoi(m[1])
	lines := strings.Split(string(doc), "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	return fmt.Sprintf(" (rendered line %d: %q)", n, result.Head(lines[n-1], 200))
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// checkJob checks what the dispatcher relies on in a rendered Job; each
// problem completes "the rendered Job ...".
func checkJob(job *batchv1.Job, d *TemplateData) []string {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	checkMeta(job, d, bad)
	ps := &job.Spec.Template.Spec
	checkPodSecurity(ps, bad)
	runner := runnerContainer(ps)
	if runner == nil {
		bad("has no container named %q (podFailurePolicy and failed-Job results look for it)", ContainerName)
		return problems
	}
	if runner.Image == "" {
		bad("has no image for container %q", ContainerName)
	}
	checkRunnerEnv(runner, d, bad)
	return problems
}

// checkMeta checks the Job's identity, and the labels and annotations of
// the Job and of its pod template.
func checkMeta(job *batchv1.Job, d *TemplateData, bad reportFunc) {
	if job.APIVersion != "batch/v1" || job.Kind != "Job" {
		bad("is %s %s, not a batch/v1 Job", job.APIVersion, job.Kind)
	}
	if job.Name != d.Name {
		bad("is named %q, not %q: the name must be {{ json .Name }}, which makes dispatching idempotent", job.Name, d.Name)
	}
	if job.Namespace != d.Namespace {
		bad("is in namespace %q, not %q", job.Namespace, d.Namespace)
	}
	pod := &job.Spec.Template
	checkObjectMeta("Job", job.Labels, job.Annotations, d, bad)
	checkObjectMeta("pod template", pod.Labels, pod.Annotations, d, bad)
}

func checkObjectMeta(what string, labels, annotations map[string]string, d *TemplateData, bad reportFunc) {
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if msgs := labelProblems(k, labels[k]); len(msgs) > 0 {
			bad("has an invalid %s label %s=%s: %s", what, k, labels[k], strings.Join(msgs, "; "))
		}
	}
	for _, k := range []string{LabelName, LabelComponent, LabelManagedBy, LabelInstance, LabelJobIDHash} {
		if labels[k] != d.Labels[k] {
			bad("lacks the %s label %s=%s", what, k, d.Labels[k])
		}
	}
	for _, k := range []string{AnnotationJobID, AnnotationSpecKey, AnnotationResultKey, AnnotationSpecDigest} {
		if annotations[k] != d.Annotations[k] {
			bad("lacks the %s annotation %s=%q", what, k, d.Annotations[k])
		}
	}
}

func checkPodSecurity(ps *corev1.PodSpec, bad reportFunc) {
	if ps.RestartPolicy != corev1.RestartPolicyNever {
		bad("has restartPolicy %q: it must be Never (podFailurePolicy and the Job's retries need it)", ps.RestartPolicy)
	}
	if ps.HostNetwork || ps.HostPID || ps.HostIPC {
		bad("uses a host namespace (hostNetwork, hostPID or hostIPC)")
	}
	for _, cs := range [][]corev1.Container{ps.InitContainers, ps.Containers} {
		for i := range cs {
			c := &cs[i]
			if sc := c.SecurityContext; sc != nil {
				if sc.Privileged != nil && *sc.Privileged {
					bad("has a privileged container %q: runners never run privileged", c.Name)
				}
				if sc.AllowPrivilegeEscalation != nil && *sc.AllowPrivilegeEscalation {
					bad("lets container %q escalate privileges", c.Name)
				}
			}
		}
	}
}

// runnerContainer returns the container named ContainerName: the last one,
// should there be several.
func runnerContainer(ps *corev1.PodSpec) *corev1.Container {
	var runner *corev1.Container
	for i := range ps.Containers {
		if ps.Containers[i].Name == ContainerName {
			runner = &ps.Containers[i]
		}
	}
	return runner
}

// checkRunnerEnv checks the variables the runner needs from the dispatcher.
func checkRunnerEnv(runner *corev1.Container, d *TemplateData, bad reportFunc) {
	want := map[string]string{
		runnerenv.Spec:   d.SpecURI,
		runnerenv.Result: d.ResultURI,
		runnerenv.JobID:  d.JobID,
	}
	if d.ImagePath != "" {
		want[runnerenv.Image] = d.ImagePath
	}
	if d.ImageURL != "" {
		want[runnerenv.ImageURL] = d.ImageURL
	}
	got := map[string]string{}
	for _, e := range runner.Env {
		got[e.Name] = e.Value // the last one wins, as in the kubelet
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			bad("does not set %s of container %q to the dispatcher's value", k, ContainerName)
		}
	}
}

// sampleInput is the spec NewBuilder renders to check the template.
func sampleInput() JobInput {
	j := &spec.Job{
		Version:   "1.0",
		JobID:     "template-check",
		Operation: spec.OpInspect,
		Payload: spec.Payload{Type: spec.OpInspect + ".v1", Data: &spec.Data{
			Image: &spec.Image{URI: "https://template-check.invalid/disk.qcow2"},
		}},
	}
	return JobInput{
		Job: j, Bucket: "file:///template-check", SpecKey: "jobs/template-check.json", ResultKey: "results/template-check.json",
		SpecURI: "https://template-check.invalid/jobs/template-check.json", ResultURI: "https://template-check.invalid/results/template-check.json",
	}
}
