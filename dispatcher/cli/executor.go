package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/kubejob"
	"guestkit.io/batch/internal/localrun"
	"guestkit.io/batch/internal/metrics"
	"guestkit.io/batch/internal/netguard"
	"guestkit.io/batch/internal/policy"
	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/store"
)

// PolicyFlags are the operator's policy: what a spec, written by whoever
// may write under jobs/, can reach (internal/policy). Closed by default.
type PolicyFlags struct {
	AllowBuckets     []string      `name:"allow-bucket" help:"Bucket URI prefixes images may come from, such as s3://vm-images/prod/ (default: this bucket's images/)." env:"GUESTKIT_ALLOW_BUCKETS"`
	AllowHTTPHosts   []string      `name:"allow-http-host" help:"Hosts (host or host:port) http(s) images may come from (default: none)." env:"GUESTKIT_ALLOW_HTTP_HOSTS"`
	HostPathRoots    []string      `name:"host-path-roots" help:"Directories path images may be under: node directories mounted read-only (kubernetes), or host folders (local; default: a folder bucket's images/)." env:"GUESTKIT_HOST_PATH_ROOTS"`
	AllowPVCs        []string      `name:"allow-pvc" help:"kubernetes: claims pvc:// images may name (default: none)." env:"GUESTKIT_ALLOW_PVCS"`
	AllowCIDRs       []string      `name:"allow-cidr" help:"Private, loopback or link-local networks runners may download a spec's http(s) image from (default: none)." env:"GUESTKIT_ALLOW_CIDRS"`
	AllowLabels      []string      `name:"allow-label" help:"kubernetes: metadata.labels keys of a spec that reach its pod (default: none)." env:"GUESTKIT_ALLOW_LABELS"`
	AllowAnnotations []string      `name:"allow-annotation" help:"kubernetes: metadata.annotations keys of a spec that reach its pod (default: none)." env:"GUESTKIT_ALLOW_ANNOTATIONS"`
	MaxAttempts      int           `name:"max-spec-attempts" help:"Ceiling of execution.max_attempts; a spec over it is rejected." default:"5" env:"GUESTKIT_MAX_SPEC_ATTEMPTS"`
	MaxTimeout       time.Duration `name:"max-spec-timeout" help:"Ceiling of execution.timeout_seconds; a spec over it is rejected." default:"24h" env:"GUESTKIT_MAX_SPEC_TIMEOUT"`
	MaxPriority      int           `name:"max-spec-priority" help:"Ceiling of execution.priority (1-10); a higher priority is lowered to it." default:"10" env:"GUESTKIT_MAX_SPEC_PRIORITY"`
}

// Policy is the policy of the flags, for the bucket home and an executor.
func (f *PolicyFlags) Policy(home, executor string) (*policy.Policy, error) {
	cidrs, err := netguard.ParseCIDRs(strings.Join(f.AllowCIDRs, ","))
	if err != nil {
		return nil, fmt.Errorf("--allow-cidr: %w", err)
	}
	if f.MaxPriority < 1 || f.MaxPriority > 10 {
		return nil, fmt.Errorf("--max-spec-priority %d: want 1 to 10", f.MaxPriority)
	}
	p, err := policy.New(policy.Config{
		Home: home, Buckets: f.AllowBuckets, HTTPHosts: f.AllowHTTPHosts, HostPathRoots: f.HostPathRoots,
		LocalFolder: executor == "local", PVCs: f.AllowPVCs, AllowCIDRs: cidrs,
		LabelKeys: f.AllowLabels, AnnotationKeys: f.AllowAnnotations,
		MaxAttempts: f.MaxAttempts, MaxTimeout: f.MaxTimeout, MaxPriority: f.MaxPriority,
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// ExecutorFlags choose and configure where runners run; watch, once and
// sweep share them.
type ExecutorFlags struct {
	PolicyFlags

	Executor  string        `help:"Where runners run: local (processes on this machine) or kubernetes (one Job per spec)." enum:"local,kubernetes" default:"local" env:"GUESTKIT_EXECUTOR"`
	MaxActive int           `name:"max-active" help:"Most jobs running at once (0: --parallel for local, 100 for kubernetes)." default:"0" env:"GUESTKIT_MAX_ACTIVE"`
	Interval  time.Duration `help:"Polling period of the bucket (the backstop when notifications are on)." default:"10s" env:"GUESTKIT_POLL_INTERVAL"`
	Accel     string        `help:"Runner accelerator: auto, kvm or tcg." enum:"auto,kvm,tcg" default:"auto" env:"GUESTKIT_RUNNER_ACCEL"`
	Backend   string        `help:"How runners read disks when a spec's options.backend does not say: auto (direct, the appliance for what direct does not read), direct (no VM: kubernetes Jobs get --direct-requests/--direct-limits and no /dev/kvm) or appliance." enum:"${backends}" default:"auto" env:"GUESTKIT_RUNNER_BACKEND"`

	ImageAccess   string `name:"image-access" help:"How runners read bucket and http(s) images: auto (stream: range reads of only the blocks an inspection needs; download only from an http server that serves no ranges), stream (never download) or download (copy the whole image to the runner's scratch first; kubernetes Jobs get a scratch emptyDir that holds it)." enum:"${accesses}" default:"auto" env:"GUESTKIT_RUNNER_IMAGE_ACCESS"`
	Verify        string `help:"How runners verify a spec's image checksum of a streamed image: auto (the bucket's own full-object sha256, else a KEY.sha256 sidecar newer than the image, else hash the whole object), full (always hash the whole object) or attested (never read it whole; not verified when nothing is attested)." enum:"${verifies}" default:"auto" env:"GUESTKIT_RUNNER_VERIFY"`
	DownloadLimit string `name:"download-limit" help:"Largest http(s) image a runner downloads when its server serves no ranges (a quantity: 4Gi; 0: none); kubernetes Jobs of http(s) images get that much more scratch." default:"4Gi" env:"GUESTKIT_RUNNER_DOWNLOAD_LIMIT"`

	Runner   string `help:"local: the guestkit-runner binary (default: beside this binary, else on PATH)." env:"GUESTKIT_RUNNER"`
	Parallel int    `help:"local: runners at once." default:"2" env:"GUESTKIT_PARALLEL"`

	Kubeconfig       string            `help:"kubernetes: kubeconfig file (default: in-cluster, else ~/.kube/config)." env:"KUBECONFIG"`
	Namespace        string            `help:"kubernetes: namespace of the Jobs." default:"guestkit" env:"GUESTKIT_NAMESPACE"`
	QPS              float32           `name:"qps" help:"kubernetes: API client queries per second." default:"20" env:"GUESTKIT_KUBE_QPS"`
	Burst            int               `help:"kubernetes: API client burst." default:"40" env:"GUESTKIT_KUBE_BURST"`
	RunnerImage      string            `name:"runner-image" help:"kubernetes: the guestkit-runner container image." default:"guestkit-runner:latest" env:"GUESTKIT_RUNNER_IMAGE"`
	ImagePullPolicy  string            `name:"image-pull-policy" help:"kubernetes: Always, IfNotPresent or Never." enum:"Always,IfNotPresent,Never" default:"IfNotPresent" env:"GUESTKIT_IMAGE_PULL_POLICY"`
	JobTemplate      string            `name:"job-template" help:"kubernetes: your own Job template (default: the built-in templates/job.yaml.tmpl)." env:"GUESTKIT_JOB_TEMPLATE"`
	Instance         string            `help:"kubernetes: app.kubernetes.io/instance of the Jobs: which dispatcher owns them." default:"guestkit" env:"GUESTKIT_INSTANCE"`
	NodeSelector     map[string]string `name:"node-selector" help:"kubernetes: labels of the nodes that may open disks (KEY=VALUE;...)." default:"guestkit.io/disk-access=true" env:"GUESTKIT_NODE_SELECTOR"`
	Tolerations      string            `help:"kubernetes: runner pod tolerations, as a JSON list." env:"GUESTKIT_TOLERATIONS"`
	KVM              string            `name:"kvm" help:"kubernetes: how pods get /dev/kvm: none, device-plugin or hostpath." enum:"none,device-plugin,hostpath" default:"none" env:"GUESTKIT_KVM"`
	KVMResource      string            `name:"kvm-resource" help:"kubernetes: the device plugin's resource." default:"devices.kubevirt.io/kvm" env:"GUESTKIT_KVM_RESOURCE"`
	KVMGroup         int64             `name:"kvm-group" help:"kubernetes: gid owning /dev/kvm on the nodes, added to the pods' groups (-1: none)." default:"-1" env:"GUESTKIT_KVM_GROUP"`
	Credentials      string            `help:"kubernetes: presigned (pods get presigned URLs, no credentials) or pod (pods use --secret-ref or workload identity)." enum:"presigned,pod" default:"presigned" env:"GUESTKIT_CREDENTIALS"`
	SecretRef        string            `name:"secret-ref" help:"kubernetes: Secret whose keys become the runner's environment (bucket credentials)." env:"GUESTKIT_SECRET_REF"`
	ServiceAccount   string            `name:"runner-service-account" help:"kubernetes: service account of the runner pods (workload identity)." env:"GUESTKIT_RUNNER_SERVICE_ACCOUNT"`
	RunnerEnv        map[string]string `name:"runner-env" help:"Extra runner environment (KEY=VALUE;...), e.g. GUESTKIT_MEMORY_MB=2048; local runners get nothing else of this process's environment but what they need to run." env:"GUESTKIT_RUNNER_ENV"`
	RunnerRequests   map[string]string `name:"runner-requests" help:"kubernetes: runner resource requests (cpu=1;memory=2Gi)." env:"GUESTKIT_RUNNER_REQUESTS"`
	RunnerLimits     map[string]string `name:"runner-limits" help:"kubernetes: runner resource limits (memory=3Gi)." env:"GUESTKIT_RUNNER_LIMITS"`
	DirectRequests   map[string]string `name:"direct-requests" help:"kubernetes: resource requests of runners that use the direct backend (default cpu=250m;memory=256Mi)." env:"GUESTKIT_DIRECT_REQUESTS"`
	DirectLimits     map[string]string `name:"direct-limits" help:"kubernetes: resource limits of runners that use the direct backend (default memory=512Mi)." env:"GUESTKIT_DIRECT_LIMITS"`
	ScratchSize      string            `name:"scratch-size" help:"kubernetes: size limit of the runner's /tmp emptyDir, whatever the image (default: 256Mi, plus the image's size when it is downloaded)." env:"GUESTKIT_SCRATCH_SIZE"`
	TTLAfterFinished time.Duration     `name:"ttl-after-finished" help:"kubernetes: ttlSecondsAfterFinished of the Jobs (the backstop of --cleanup)." default:"24h" env:"GUESTKIT_TTL_AFTER_FINISHED"`
	Cleanup          bool              `help:"kubernetes: delete a Job once its result is confirmed." default:"true" negatable:"" env:"GUESTKIT_CLEANUP"`
}

// engine is a controller with its executor, ready to start.
type engine struct {
	store      store.Store
	controller *controller.Controller
	trigger    controller.Trigger
	metrics    *metrics.Dispatcher
	// start starts the executor's watch (informer, workers); nil for none.
	start func(ctx context.Context) error
	// wait waits for the executor's running jobs (local) before exit.
	wait func(ctx context.Context) error
	// ready reports readiness (caches synced).
	ready func() error
	kube  kubernetes.Interface
	kcfg  *rest.Config
}

// newEngine opens the bucket and builds the executor and the controller.
func newEngine(ctx context.Context, g *Globals, f *ExecutorFlags, deps Deps, log logrus.FieldLogger) (*engine, error) {
	st, err := store.Open(ctx, g.Bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", redact.URL(g.Bucket), err)
	}
	pol, err := f.Policy(g.Bucket, f.Executor)
	if err != nil {
		return nil, err
	}
	en := &engine{store: st, trigger: controller.NewTrigger(), metrics: metrics.New(), ready: func() error { return nil }}
	results := controller.NewResults(st, deps.Version, log, en.metrics)
	// Image URIs in this bucket use its endpoint and settings.
	stores := &store.Stores{Home: g.Bucket}
	var exec controller.Executor
	maxActive := f.MaxActive
	switch f.Executor {
	case "local":
		bin, err := runnerPath(f.Runner)
		if err != nil {
			return nil, err
		}
		limit, err := f.downloadLimit()
		if err != nil {
			return nil, err
		}
		x, err := localrun.New(ctx, localrun.Config{
			Runner: bin, Store: st, Stores: stores, Results: results, Parallel: f.Parallel, Accel: f.Accel, Backend: f.Backend,
			ImageAccess: f.ImageAccess, Verify: f.Verify, DownloadLimit: limit,
			ExtraEnv: f.runnerEnv(), NetAllow: pol.AllowCIDRs(),
			Log: log, Metrics: en.metrics, OnFinish: en.trigger.Poke,
		})
		if err != nil {
			return nil, err
		}
		exec, en.wait = x, x.Wait
		if maxActive <= 0 {
			maxActive = f.Parallel
		}
	case "kubernetes":
		x, err := en.kubeExecutor(ctx, g, f, pol, st, stores, results, log)
		if err != nil {
			return nil, err
		}
		exec, en.start = x, x.Start
		en.ready = func() error {
			if !x.Synced() {
				return errors.New("jobs informer not synced")
			}
			return nil
		}
		if maxActive <= 0 {
			maxActive = 100
		}
	}
	en.controller, err = controller.New(controller.Config{
		Store: st, Stores: stores, Executor: exec, Policy: pol, MaxActive: maxActive, Interval: f.Interval,
		Log: log, Metrics: en.metrics, Version: deps.Version,
	})
	if err != nil {
		return nil, err
	}
	return en, nil
}

func (en *engine) kubeExecutor(ctx context.Context, g *Globals, f *ExecutorFlags, pol *policy.Policy, st store.Store, stores *store.Stores, results *controller.Results, log logrus.FieldLogger) (*kubejob.Executor, error) {
	cfg, err := kubeConfig(f.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = f.QPS, f.Burst
	cfg.UserAgent = "guestkit-dispatcher"
	cfg.Wrap(en.metrics.RoundTripper)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	en.kube, en.kcfg = cs, cfg
	bc, err := f.BuilderConfig()
	if err != nil {
		return nil, err
	}
	bc.NetAllow = pol.AllowCIDRs()
	b, err := kubejob.NewBuilder(bc)
	if err != nil {
		return nil, err
	}
	return kubejob.New(kubejob.Config{
		Client: cs, Builder: b, Store: st, Stores: stores, BucketURL: redact.URL(g.Bucket),
		Credentials: kubejob.Credentials(f.Credentials), Results: results, Cleanup: f.Cleanup,
		Log: log, Metrics: en.metrics, OnFinish: en.trigger.Poke,
	})
}

// runnerEnv is --runner-env as NAME=value, in name order.
func (f *ExecutorFlags) runnerEnv() []string {
	var env []string
	for _, k := range slices.Sorted(maps.Keys(f.RunnerEnv)) {
		env = append(env, k+"="+f.RunnerEnv[k])
	}
	return env
}

// BuilderConfig maps the flags to the Job builder's configuration (the
// manifests test renders runner Jobs with it).
func (f *ExecutorFlags) BuilderConfig() (kubejob.BuilderConfig, error) {
	ttl := int32(f.TTLAfterFinished / time.Second)
	bc := kubejob.BuilderConfig{
		TemplatePath: f.JobTemplate, Namespace: f.Namespace, RunnerImage: f.RunnerImage,
		ImagePullPolicy: corev1.PullPolicy(f.ImagePullPolicy), ServiceAccount: f.ServiceAccount,
		Instance: f.Instance, NodeSelector: f.NodeSelector, TTLSecondsAfterFinished: &ttl,
		KVM: kubejob.KVMMode(f.KVM), KVMResource: corev1.ResourceName(f.KVMResource),
		SecretRef: f.SecretRef, Accel: f.Accel, Backend: f.Backend, HostPathRoots: f.HostPathRoots,
		ImageAccess: f.ImageAccess, Verify: f.Verify,
	}
	var err error
	if bc.DownloadLimit, err = f.downloadLimit(); err != nil {
		return bc, err
	}
	if bc.DownloadLimit == 0 {
		bc.DownloadLimit = -1
	}
	if bc.NodeSelector == nil {
		bc.NodeSelector = map[string]string{}
	}
	if f.KVMGroup >= 0 {
		bc.KVMGroup = &f.KVMGroup
	}
	if f.Tolerations != "" {
		if err := json.Unmarshal([]byte(f.Tolerations), &bc.Tolerations); err != nil {
			return bc, fmt.Errorf("--tolerations: %w", err)
		}
	}
	for k, v := range f.RunnerEnv {
		bc.Env = append(bc.Env, corev1.EnvVar{Name: k, Value: v})
	}
	if bc.Resources.Requests, err = resources("--runner-requests", f.RunnerRequests); err != nil {
		return bc, err
	}
	if bc.Resources.Limits, err = resources("--runner-limits", f.RunnerLimits); err != nil {
		return bc, err
	}
	if bc.DirectResources.Requests, err = resources("--direct-requests", f.DirectRequests); err != nil {
		return bc, err
	}
	if bc.DirectResources.Limits, err = resources("--direct-limits", f.DirectLimits); err != nil {
		return bc, err
	}
	if f.ScratchSize != "" {
		q, err := resource.ParseQuantity(f.ScratchSize)
		if err != nil {
			return bc, fmt.Errorf("--scratch-size %q: %w", f.ScratchSize, err)
		}
		bc.ScratchSizeLimit = &q
	}
	return bc, nil
}

// downloadLimit is --download-limit in bytes (0: no downloads).
func (f *ExecutorFlags) downloadLimit() (int64, error) {
	q, err := resource.ParseQuantity(f.DownloadLimit)
	if err != nil || q.Sign() < 0 {
		return 0, fmt.Errorf("--download-limit %q: want a size such as 4Gi, or 0", f.DownloadLimit)
	}
	return q.Value(), nil
}

func resources(flag string, m map[string]string) (corev1.ResourceList, error) {
	if len(m) == 0 {
		return nil, nil
	}
	l := corev1.ResourceList{}
	for k, v := range m {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("%s %s=%q: %w", flag, k, v, err)
		}
		l[corev1.ResourceName(k)] = q
	}
	return l, nil
}

// kubeConfig loads a kubeconfig file, else the in-cluster config, else
// the default loading rules.
func kubeConfig(path string) (*rest.Config, error) {
	if path == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

// runnerPath finds guestkit-runner: the flag, else beside this binary,
// else on PATH.
func runnerPath(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "guestkit-runner")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "guestkit-runner", nil
}
