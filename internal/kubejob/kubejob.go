// Package kubejob runs guestkit jobs as Kubernetes Jobs: the executor of
// guestkit-dispatcher on a cluster, and the pure logic behind it.
//
//   - JobName names the Job of a spec, deterministically: creating a Job
//     that already exists means "already dispatched".
//   - Builder renders templates/job.yaml.tmpl (or an operator's copy) into
//     a batch/v1 Job and checks what the dispatcher relies on.
//   - outcomeOf reads a failed Job and its pods into the facts that
//     internal/result turns into the result of a Job without one
//     (deadline, backoff limit, podFailurePolicy, image pull errors).
//
// Launch renders the Job (Builder) with presigned URLs for the
// spec, the image and the result, and creates it; the name is
// deterministic, so AlreadyExists means another replica or an earlier
// process dispatched it. A shared informer watches the dispatcher's own
// Jobs (by label) and feeds a work queue; a worker settles every finished
// Job: it confirms the runner's result or, when there is none, writes one
// from the Job and pod status and the log tail (outcomeOf),
// then deletes the Job. Active jobs are counted from the informer's cache,
// never by listing the API.
//
// A Job deleted by hand before it finished stores no result from here: its
// spec has no result and no Job, so the next pass launches it again. To
// cancel a job, delete its spec (then the Job).
//
// # Images
//
// Where the runner finds the disk image depends on the spec's
// payload.data.image (see spec.Job.ImageSource):
//
//   - s3:// and minio:// (spec.ImageBucket): the runner streams the object:
//     range reads of the blocks the inspection needs, pinned to the ETag
//     the dispatcher saw (JobInput.Image), with no copy in its scratch
//     emptyDir (BuilderConfig.ImageAccess download copies it whole, and the
//     emptyDir grows by the object's size). With JobInput.ImageURL (a presigned GET,
//     what guestkit-dispatcher passes by default) it needs no bucket
//     credentials; without it, it uses the pod's: workload identity (IRSA,
//     ...) of BuilderConfig.ServiceAccount, or the keys of
//     BuilderConfig.SecretRef, with the endpoint from BuilderConfig.Env
//     (AWS_ENDPOINT_URL_S3, MINIO_ENDPOINT). The spec is never rewritten:
//     it keeps its digest, and the result names the image the submitter
//     wrote; the spec's checksum is verified either way (runner --verify).
//     The spec and the result are presigned URLs too (JobInput.SpecURI,
//     ResultURI, ReportURI).
//   - http:// and https:// (spec.ImageHTTP): the runner streams it too, and
//     downloads it (up to BuilderConfig.DownloadLimit, which the emptyDir
//     grows by) only from a server that serves no ranges; nothing to mount.
//   - path, or file:///path (spec.ImageHostPath): a file on the node. The
//     directory routing.affinity.disk_locality (else the HostPathRoots
//     entry that holds the path) is mounted read-only from the node at the
//     same path, and GUESTKIT_IMAGE names the file. Only directories under
//     BuilderConfig.HostPathRoots can be mounted; with none, such specs
//     are refused. routing.node_selector and routing.worker_pool say which
//     nodes have the file.
//   - pvc://CLAIM/PATH (spec.ImagePVC): the claim, in the Job's namespace, is
//     mounted read-only at /images/CLAIM and GUESTKIT_IMAGE is
//     /images/CLAIM/PATH.
//
// Mounted images must be readable by the runner's user (uid 65532, gid
// 65532): fsGroup is not set, because it would make the kubelet chown
// whole volumes.
package kubejob

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/metrics"
	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// logTailLines and logTailBytes bound the pod log read for a failed Job.
const (
	logTailLines = 200
	logTailBytes = 256 << 10
)

// Credentials says how runner pods reach the bucket.
type Credentials string

const (
	// Presigned: the pod gets presigned URLs for the spec, the image and
	// the result, and needs no credentials (default).
	Presigned Credentials = "presigned"
	// PodCredentials: the pod gets s3:// or minio:// URIs and uses its own
	// credentials (BuilderConfig.SecretRef or workload identity).
	PodCredentials Credentials = "pod"
)

// Config configures an Executor. Client, Builder, Store and Results are
// required.
type Config struct {
	Client  kubernetes.Interface
	Builder *Builder
	Store   store.Store
	// BucketURL is the bucket the specs come from (an annotation).
	BucketURL string
	// Stores opens the buckets images are in, to presign them; share it
	// with the controller. Default: a new one without Home.
	Stores      *store.Stores
	Credentials Credentials
	Results     *controller.Results
	// Cleanup deletes a Job once its result is confirmed (default in the
	// CLI). Otherwise ttlSecondsAfterFinished removes it.
	Cleanup bool
	// Resync re-examines every cached Job this often (a backstop for a
	// settle that failed on a bucket error); default 5 minutes.
	Resync time.Duration
	// Workers settle finished Jobs in parallel; default 4.
	Workers  int
	Log      logrus.FieldLogger
	Metrics  *metrics.Dispatcher
	OnFinish func()
	Now      func() time.Time
}

// Executor is a controller.Executor on Kubernetes.
type Executor struct {
	cfg       Config
	namespace string
	selector  labels.Selector
	factory   informers.SharedInformerFactory
	informer  cache.SharedIndexInformer
	lister    batchlisters.JobLister
	queue     workqueue.TypedRateLimitingInterface[string]
	synced    atomic.Bool

	mu      sync.Mutex
	settled map[string]bool // Job UIDs settled, so metrics count each once
	stores  *store.Stores   // of image buckets
}

var _ controller.Executor = (*Executor)(nil)

// New returns an Executor; Start runs it.
func New(cfg Config) (*Executor, error) {
	if cfg.Client == nil || cfg.Builder == nil || cfg.Store == nil || cfg.Results == nil {
		return nil, errors.New("kubejob: client, builder, store and results are required")
	}
	cfg.Credentials = cmp.Or(cfg.Credentials, Presigned)
	if cfg.Credentials != Presigned && cfg.Credentials != PodCredentials {
		return nil, fmt.Errorf("kubejob: credentials %q: want %s or %s", cfg.Credentials, Presigned, PodCredentials)
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 5 * time.Minute
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Log == nil {
		cfg.Log = logrus.New()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Stores == nil {
		cfg.Stores = &store.Stores{}
	}
	bc := cfg.Builder.Config()
	sel := labels.SelectorFromSet(labels.Set{
		LabelManagedBy: LabelManagedByValue,
		LabelInstance:  bc.Instance,
	})
	x := &Executor{
		cfg:       cfg,
		stores:    cfg.Stores,
		namespace: bc.Namespace,
		selector:  sel,
		settled:   map[string]bool{},
		// Retries back off to 30 s at most, not the default 1000 s: a
		// bucket outage must not leave results unwritten long after it.
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.NewTypedItemExponentialFailureRateLimiter[string](500*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "guestkit-jobs"}),
	}
	x.factory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, cfg.Resync,
		informers.WithNamespace(bc.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel.String() }))
	jobs := x.factory.Batch().V1().Jobs()
	x.informer, x.lister = jobs.Informer(), jobs.Lister()
	if err := x.informer.SetTransform(slim); err != nil {
		return nil, err
	}
	_, err := x.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    x.enqueue,
		UpdateFunc: func(_, obj any) { x.enqueue(obj) },
		DeleteFunc: x.forget,
	})
	if err != nil {
		return nil, err
	}
	return x, nil
}

// Start runs the informer and the workers until ctx ends, and returns once
// the cache has synced (or ctx ended).
func (x *Executor) Start(ctx context.Context) error {
	x.factory.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		x.queue.ShutDown()
		x.factory.Shutdown()
	}()
	if !cache.WaitForCacheSync(ctx.Done(), x.informer.HasSynced) {
		return fmt.Errorf("jobs informer in namespace %s: cache not synced: %w", x.namespace, cmp.Or(ctx.Err(), errors.New("stopped")))
	}
	x.synced.Store(true)
	for range x.cfg.Workers {
		go wait.UntilWithContext(ctx, x.work, time.Second)
	}
	return nil
}

// Synced reports whether the cache has synced (readiness).
func (x *Executor) Synced() bool { return x.synced.Load() }

// Active counts the cached Jobs that have not finished.
func (x *Executor) Active() int { return len(x.ActiveSpecs()) }

// ActiveSpecs are the spec keys of the Jobs that have not finished, from
// the informer's cache.
func (x *Executor) ActiveSpecs() []string {
	jobs, err := x.lister.Jobs(x.namespace).List(x.selector)
	if err != nil { // a cache lister only fails on a bad selector
		x.cfg.Log.WithError(err).Error("list cached jobs")
		return nil
	}
	var keys []string
	for _, j := range jobs {
		if !finished(j) {
			keys = append(keys, j.Annotations[AnnotationSpecKey])
		}
	}
	return keys
}

// Lookup finds e's Job in the cache.
func (x *Executor) Lookup(e *intake.Entry) (string, bool) {
	if e.Job == nil {
		return "", false
	}
	j, err := x.lister.Jobs(x.namespace).Get(JobName(e.Job))
	if err != nil {
		return "", false
	}
	return j.Annotations[AnnotationSpecDigest], true
}

// Busy reports whether e's Job is cached and not finished.
func (x *Executor) Busy(e *intake.Entry) bool {
	if e.Job == nil {
		return false
	}
	j, err := x.lister.Jobs(x.namespace).Get(JobName(e.Job))
	return err == nil && !finished(j)
}

// Check asks the Builder, with placeholder URLs, whatever it would refuse
// for this spec.
func (x *Executor) Check(e *intake.Entry) error {
	if e.Admission == nil {
		return errNotAdmitted(e)
	}
	return x.cfg.Builder.Check(JobInput{Job: e.Job, Admission: e.Admission, Bucket: x.cfg.BucketURL, SpecKey: e.Key, ResultKey: e.ResultKey,
		SpecURI: "https://check.invalid/spec", ResultURI: "https://check.invalid/result", Now: x.cfg.Now()})
}

// Launch creates e's Job.
func (x *Executor) Launch(ctx context.Context, e *intake.Entry) error {
	if e.Admission == nil {
		return errNotAdmitted(e)
	}
	now := x.cfg.Now()
	in := JobInput{Job: e.Job, Admission: e.Admission, Bucket: x.cfg.BucketURL, SpecKey: e.Key, ResultKey: e.ResultKey, Now: now}
	if err := x.uris(ctx, e, &in, now); err != nil {
		return err
	}
	job, err := x.cfg.Builder.NewJob(in)
	if err != nil {
		return err
	}
	_, err = x.cfg.Client.BatchV1().Jobs(x.namespace).Create(ctx, job, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// The cache may lag; ask the API which spec the Job runs.
		got, gerr := x.cfg.Client.BatchV1().Jobs(x.namespace).Get(ctx, job.Name, metav1.GetOptions{})
		if gerr != nil {
			return fmt.Errorf("job %s/%s exists but cannot be read: %w", x.namespace, job.Name, gerr)
		}
		return &controller.AlreadyLaunched{Name: got.Name, Digest: got.Annotations[AnnotationSpecDigest]}
	}
	if err != nil {
		return fmt.Errorf("create job %s/%s for spec %s: %w", x.namespace, job.Name, e.Key, err)
	}
	return nil
}

// uris fills in what the runner reads and writes.
func (x *Executor) uris(ctx context.Context, e *intake.Entry, in *JobInput, now time.Time) error {
	var g controller.Grant
	var err error
	if x.cfg.Credentials == PodCredentials {
		g, err = controller.StoreURIs(ctx, x.cfg.Store, x.stores, e)
	} else {
		var jobDeadline time.Duration
		if _, jobDeadline, err = x.cfg.Builder.Deadlines(e.Job, now); err != nil {
			return err
		}
		// The URLs must outlive every attempt; S3 caps them at 7 days, and
		// a runner with an expired URL fails with exit 7, which the Job's
		// result then records.
		g, err = controller.Presign(ctx, x.cfg.Store, x.stores, e, jobDeadline+time.Hour)
	}
	if err != nil {
		return err
	}
	in.SpecURI, in.ResultURI, in.ReportURI, in.ImageURL, in.Image = g.Spec, g.Result, g.Report, g.ImageURL, g.Image
	return nil
}

// errNotAdmitted: only specs the dispatcher's policy admitted run.
func errNotAdmitted(e *intake.Entry) error {
	return fmt.Errorf("spec %s was not admitted by the dispatcher's policy", redact.URL(e.Key))
}

func (x *Executor) enqueue(obj any) {
	j, ok := obj.(*batchv1.Job)
	if !ok || !finished(j) {
		return
	}
	key, err := cache.MetaNamespaceKeyFunc(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	x.queue.Add(key)
}

func (x *Executor) forget(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if j, ok := obj.(*batchv1.Job); ok {
		x.mu.Lock()
		delete(x.settled, string(j.UID))
		x.mu.Unlock()
	}
	if x.cfg.OnFinish != nil {
		x.cfg.OnFinish()
	}
}

func (x *Executor) work(ctx context.Context) {
	for {
		key, quit := x.queue.Get()
		if quit {
			return
		}
		err := x.settle(ctx, key)
		if err != nil && ctx.Err() == nil {
			x.cfg.Metrics.Error("settle")
			x.cfg.Log.WithError(err).WithField("job", key).Warn("settle failed; retrying")
			x.queue.AddRateLimited(key)
		} else {
			x.queue.Forget(key)
		}
		x.queue.Done(key)
	}
}

// settle makes sure a finished Job's spec has its result, then deletes the
// Job.
func (x *Executor) settle(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	job, err := x.lister.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !finished(job) || job.DeletionTimestamp != nil {
		return nil
	}
	resultKey := job.Annotations[AnnotationResultKey]
	log := x.cfg.Log.WithFields(logrus.Fields{"job": key, "result": resultKey})
	if store.ValidateKey(resultKey) != nil || !strings.HasPrefix(resultKey, store.ResultsPrefix) {
		log.Error("job has no valid result-key annotation; leaving it alone")
		return nil
	}
	failed := failedJob(job)
	created, err := x.cfg.Results.Ensure(ctx, resultKey, func(ctx context.Context) (*result.Result, error) {
		if !failed {
			return missingResult(job, x.cfg.Results.By, x.cfg.Now()), nil
		}
		pods, tail, err := x.podsAndLog(ctx, job)
		if err != nil {
			return nil, err
		}
		r := ResultFromJob(job, pods, tail, x.cfg.Results.By, x.cfg.Now())
		if r == nil {
			return nil, fmt.Errorf("job %s: no result from a failed job", key)
		}
		return r, nil
	})
	if err != nil {
		return err
	}
	x.mu.Lock()
	first := !x.settled[string(job.UID)]
	x.settled[string(job.UID)] = true
	x.mu.Unlock()
	if first {
		if failed || created {
			x.cfg.Metrics.JobsFailed.Inc()
		} else {
			x.cfg.Metrics.JobsSucceeded.Inc()
		}
		log.WithFields(logrus.Fields{"failed": failed, "dispatcher_result": created}).Info("job settled")
	}
	if x.cfg.Cleanup {
		bg := metav1.DeletePropagationBackground
		uid := job.UID
		err := x.cfg.Client.BatchV1().Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{
			PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete job %s: %w", key, err)
		}
	}
	if x.cfg.OnFinish != nil {
		x.cfg.OnFinish()
	}
	return nil
}

// podsAndLog lists the Job's pods and reads the end of the latest one's
// runner log. A log that cannot be read (node gone, pod never started) is
// not an error: the result says so without it.
func (x *Executor) podsAndLog(ctx context.Context, job *batchv1.Job) ([]corev1.Pod, string, error) {
	sel := labels.SelectorFromSet(labels.Set{batchv1.ControllerUidLabel: string(job.UID)})
	list, err := x.cfg.Client.CoreV1().Pods(job.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, "", fmt.Errorf("list pods of job %s/%s: %w", job.Namespace, job.Name, err)
	}
	pods := list.Items
	var latest *corev1.Pod
	for i := range pods {
		if latest == nil || pods[i].CreationTimestamp.After(latest.CreationTimestamp.Time) {
			latest = &pods[i]
		}
	}
	if latest == nil || latest.Spec.NodeName == "" {
		return pods, "", nil
	}
	lines, limit := int64(logTailLines), int64(logTailBytes)
	req := x.cfg.Client.CoreV1().Pods(job.Namespace).GetLogs(latest.Name, &corev1.PodLogOptions{
		Container: ContainerName, TailLines: &lines, LimitBytes: &limit})
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	r, err := req.Stream(lctx)
	if err != nil {
		x.cfg.Log.WithError(err).WithField("pod", latest.Name).Debug("no log tail")
		return pods, "", nil
	}
	defer r.Close()
	b, _ := io.ReadAll(io.LimitReader(r, logTailBytes))
	return pods, string(b), nil
}

// slim drops what the dispatcher never reads from cached Jobs: the pod
// template with its presigned URLs, managed fields, and the labels and
// annotations copied from specs (strangers' data, up to 256 KiB a Job).
// At thousands of Jobs it is most of the cache's memory.
func slim(obj any) (any, error) {
	if j, ok := obj.(*batchv1.Job); ok {
		j.ManagedFields = nil
		j.Spec.Template = corev1.PodTemplateSpec{}
		j.Spec.PodFailurePolicy = nil
		j.Labels, j.Annotations = ours(j.Labels), ours(j.Annotations)
	}
	return obj, nil
}

// ours keeps the keys the dispatcher sets (the informer's selector is
// matched against the cached labels too).
func ours(m map[string]string) map[string]string {
	for k := range m {
		if !strings.HasPrefix(k, "guestkit.io/") && !strings.HasPrefix(k, "app.kubernetes.io/") {
			delete(m, k)
		}
	}
	return m
}

func finished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func failedJob(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// missingResult is the result of a Job that succeeded but whose runner
// stored nothing (the object was deleted, or the bucket lost it): the run
// happened, its output is gone.
func missingResult(job *batchv1.Job, by result.Runner, now time.Time) *result.Result {
	o := &result.Outcome{
		JobID:      job.Annotations[AnnotationJobID],
		Kubernetes: &result.Kubernetes{Namespace: job.Namespace, Job: job.Name},
		StartedAt:  now,
		FinishedAt: now,
		Ending:     result.EndResultLost,
		Subject:    fmt.Sprintf("Job %s/%s", job.Namespace, job.Name),
		ResultURI:  job.Annotations[AnnotationResultKey],
	}
	if op := job.Labels[LabelOperation]; slices.Contains(spec.SupportedOperations(), op) {
		o.Operation = op
	}
	return o.Result(by)
}
