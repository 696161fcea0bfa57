package kubejob

// These tests run the controller with this executor against a real
// kube-apiserver, etcd and kube-controller-manager (the Job controller,
// garbage collector) and a real MinIO. No kubelet runs: the tests play it,
// terminating pods through the API (testenv.TerminatePod), which is what
// the Job controller reacts to.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/metrics"
	"guestkit.io/batch/internal/policy"
	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/spec/spectest"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/store/storetest"
	"guestkit.io/batch/internal/testenv"
)

type env struct {
	t      *testing.T
	kube   *testenv.Kube
	minio  *testenv.MinIO
	cs     kubernetes.Interface
	ns     string
	bucket string // s3://BUCKET
	st     store.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a control plane and MinIO")
	}
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	k := testenv.StartKube(t)
	e := &env{t: t, kube: k, minio: m, cs: k.Client(), ns: k.Namespace(t)}
	e.bucket = "s3://" + m.NewBucket(t)
	st, err := store.Open(context.Background(), e.bucket)
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	return e
}

type dispatcher struct {
	ctrl    *controller.Controller
	exec    *Executor
	metrics *metrics.Dispatcher
	trigger controller.Trigger
	cancel  context.CancelFunc
}

// start builds a controller and a started executor, as guestkit-dispatcher
// does; stopped when the test ends or by cancel.
func (e *env) start(maxActive int, mutate func(*BuilderConfig)) *dispatcher {
	e.t.Helper()
	bc := BuilderConfig{Namespace: e.ns, RunnerImage: "guestkit-runner:test", NodeSelector: map[string]string{}}
	if mutate != nil {
		mutate(&bc)
	}
	b, err := NewBuilder(bc)
	if err != nil {
		e.t.Fatal(err)
	}
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	m := metrics.New()
	results := controller.NewResults(e.st, "test", log, m)
	d := &dispatcher{metrics: m, trigger: controller.NewTrigger()}
	creds := Presigned
	if bc.SecretRef != "" {
		creds = PodCredentials
	}
	d.exec, err = New(Config{Client: e.cs, Builder: b, Store: e.st, BucketURL: e.bucket, Results: results,
		Credentials: creds, Cleanup: true, Log: log, Metrics: m, OnFinish: d.trigger.Poke, Resync: 2 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	d.ctrl, err = controller.New(controller.Config{Store: e.st, Executor: d.exec, Policy: e.policy(), MaxActive: maxActive,
		Interval: 500 * time.Millisecond, Log: log, Metrics: m, Version: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	e.t.Cleanup(cancel)
	// Start's context runs the informer: it must outlive this function.
	if err := d.exec.Start(ctx); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) put(key, data string) {
	e.t.Helper()
	storetest.Put(e.t, e.st, key, data)
}

func specJSON(id string, priority, attempts int, image string, opts ...func(*spec.Job)) string {
	return spectest.JSON(spectest.Inspect(id, image, append(opts,
		spectest.WithPriority(priority), spectest.WithAttempts(attempts), spectest.WithTimeout(600))...))
}

func (e *env) pass(d *dispatcher) *controller.PassStats {
	e.t.Helper()
	st, err := d.ctrl.Pass(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) jobs() []batchv1.Job {
	e.t.Helper()
	list, err := e.cs.BatchV1().Jobs(e.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return list.Items
}

func (e *env) result(key string) *result.Result {
	e.t.Helper()
	r, err := controller.ReadResult(context.Background(), e.st, key)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// eventually polls cond for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pod waits for the Job's newest pod.
func (e *env) pod(job string, n int) *corev1.Pod {
	e.t.Helper()
	var pod *corev1.Pod
	eventually(e.t, 30*time.Second, fmt.Sprintf("pod %d of job %s", n, job), func() bool {
		list, err := e.cs.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + job})
		if err != nil || len(list.Items) < n {
			return false
		}
		slices.SortFunc(list.Items, func(a, b corev1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
		pod = &list.Items[len(list.Items)-1]
		return true
	})
	return pod
}

func env0(c corev1.Container, name string) string {
	for _, v := range c.Env {
		if v.Name == name {
			return v.Value
		}
	}
	return ""
}

func TestJobsAsTheAPIServerStoresThem(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.put("images/a.qcow2", "QFI\xfb fake image bytes")
	img := e.st.URI("images/a.qcow2")
	e.put("jobs/low.json", specJSON("low", 1, 3, img))
	e.put("jobs/high.json", strings.Replace(specJSON("high", 9, 2, img, spectest.WithLabels(map[string]string{"team": "sec", "sidecar.istio.io/inject": "false"}),
		spectest.WithAnnotations(map[string]string{"iam.amazonaws.com/role": "admin"})), "{", `{"payload_ignored":1,`, 1))
	e.put("jobs/mid.json", specJSON("mid", 5, 1, img))
	e.put("jobs/noimage.json", specJSON("noimage", 5, 1, e.st.URI("images/missing.qcow2")))
	e.put("jobs/hostpath.json", specJSON("hostpath", 5, 1, "/vms/x.qcow2"))
	e.put("jobs/other.json", specJSON("other", 5, 1, "s3://some-other-bucket/images/x.qcow2"))
	e.put("jobs/broken.yaml", "job_id: [\n")

	d := e.start(2, nil)
	st := e.pass(d)
	if st.Launched != 2 || st.Waiting != 1 {
		t.Fatalf("pass: launched %d waiting %d, want 2 and 1 (cap 2)", st.Launched, st.Waiting)
	}
	jobs := e.jobs()
	var names []string
	for _, j := range jobs {
		names = append(names, j.Annotations[AnnotationJobID])
	}
	slices.Sort(names)
	if strings.Join(names, ",") != "high,mid" {
		t.Fatalf("jobs for %v, want high and mid (priority order)", names)
	}

	// Rejected specs have their results without any Job.
	for key, code := range map[string]result.Code{
		store.ResultKey("noimage"):                 result.CodeImageNotFound,
		store.ResultKey("hostpath"):                result.CodeSpecRefused,
		store.ResultKey("other"):                   result.CodeSpecRefused,
		store.InvalidResultKey("jobs/broken.yaml"): result.CodeSpecInvalid,
	} {
		r := e.result(key)
		if r.Status != result.StatusRejected || r.Error.Code != code || r.Runner.Name != result.DispatcherName {
			t.Errorf("%s: %s %s by %s: %s", key, r.Status, r.Error.Code, r.Runner.Name, r.Error.Message)
		}
	}

	job, err := e.cs.BatchV1().Jobs(e.ns).Get(ctx, JobName(mustJob(t, e, "jobs/high.json")), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := job.Spec
	if *s.BackoffLimit != 1 || s.ActiveDeadlineSeconds == nil || *s.ActiveDeadlineSeconds < 2*600 || s.TTLSecondsAfterFinished == nil || *s.TTLSecondsAfterFinished != DefaultTTLSecondsAfterFinished {
		t.Errorf("backoffLimit %d activeDeadlineSeconds %v ttl %v", *s.BackoffLimit, s.ActiveDeadlineSeconds, s.TTLSecondsAfterFinished)
	}
	pfp := s.PodFailurePolicy
	if pfp == nil || len(pfp.Rules) != 2 || pfp.Rules[0].Action != batchv1.PodFailurePolicyActionIgnore ||
		pfp.Rules[0].OnPodConditions[0].Type != corev1.DisruptionTarget || pfp.Rules[1].Action != batchv1.PodFailurePolicyActionFailJob ||
		fmt.Sprint(pfp.Rules[1].OnExitCodes.Values) != "[2 3 4 64]" {
		t.Errorf("podFailurePolicy = %+v", pfp)
	}
	ps := s.Template.Spec
	if ps.RestartPolicy != corev1.RestartPolicyNever || *ps.SecurityContext.RunAsNonRoot != true || ps.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security: restart %s, %+v", ps.RestartPolicy, ps.SecurityContext)
	}
	c := ps.Containers[0]
	if *c.SecurityContext.ReadOnlyRootFilesystem != true || *c.SecurityContext.Privileged || fmt.Sprint(c.SecurityContext.Capabilities.Drop) != "[ALL]" {
		t.Errorf("container security: %+v", c.SecurityContext)
	}
	for k, v := range map[string]string{LabelManagedBy: LabelManagedByValue, LabelName: LabelNameValue, "team": "sec", LabelOperation: "guestkit.inspect"} {
		if job.Labels[k] != v || job.Spec.Template.Labels[k] != v {
			t.Errorf("label %s = %q / %q, want %q", k, job.Labels[k], job.Spec.Template.Labels[k], v)
		}
	}
	// Only the metadata the policy allows reaches the Job and its pods.
	for _, m := range []map[string]string{job.Labels, job.Spec.Template.Labels, job.Annotations, job.Spec.Template.Annotations} {
		if _, ok := m["sidecar.istio.io/inject"]; ok {
			t.Errorf("a label the policy does not allow reached the Job: %v", m)
		}
		if _, ok := m["iam.amazonaws.com/role"]; ok {
			t.Errorf("an annotation the policy does not allow reached the Job: %v", m)
		}
	}
	for k, v := range map[string]string{AnnotationBucket: e.bucket, AnnotationSpecKey: "jobs/high.json", AnnotationResultKey: "results/high.json"} {
		if job.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, job.Annotations[k], v)
		}
	}

	// The pod needs no credentials: the presigned URLs work on their own.
	get := func(url string) string {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", redact.URL(url), resp.Status)
		}
		return string(b)
	}
	if got := get(env0(c, "GUESTKIT_SPEC")); !strings.Contains(got, `"job_id":"high"`) {
		t.Errorf("presigned spec URL gives %q", got)
	}
	if got := get(env0(c, "GUESTKIT_IMAGE_URL")); !strings.HasPrefix(got, "QFI\xfb") {
		t.Errorf("presigned image URL gives %q", got)
	}
	req, _ := http.NewRequest(http.MethodPut, env0(c, "GUESTKIT_RESULT"), bytes.NewReader([]byte(`{"probe":1}`)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("presigned result PUT: %v %v", err, resp)
	}
	resp.Body.Close()
	if got, _ := e.st.Get(ctx, "results/high.json", 100); string(got) != `{"probe":1}` {
		t.Errorf("presigned PUT stored %q", got)
	}
	if strings.Contains(job.String(), e.minio.SecretKey) {
		t.Error("the Job carries the bucket's secret key")
	}
}

func mustJob(t *testing.T, e *env, key string) *spec.Job {
	t.Helper()
	data, err := e.st.Get(context.Background(), key, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	j, _, err := spec.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func mustEntry(t *testing.T, e *env, key string) *intake.Entry {
	j := mustJob(t, e, key)
	a, err := e.policy().Admit(key, j)
	if err != nil {
		t.Fatal(err)
	}
	return &intake.Entry{Key: key, Job: j, JobID: j.JobID, Digest: j.Digest(), ResultKey: store.ResultKey(j.JobID), Admission: a}
}

// policy is the dispatcher's default policy on the test bucket, with the
// team label allowed onto pods.
func (e *env) policy() *policy.Policy {
	e.t.Helper()
	p, err := policy.New(policy.Config{Home: e.bucket, LabelKeys: []string{"team"}})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// runnerResult writes what a runner would, through the pod's presigned URL.
func runnerResult(t *testing.T, pod *corev1.Pod, status result.Status, exit int) {
	t.Helper()
	id := pod.Annotations[AnnotationJobID]
	r := result.Result{APIVersion: result.APIVersion, JobID: id, Status: status, ExitCode: exit,
		Runner: result.Runner{Name: "guestkit-runner", Version: "fake"}, StartedAt: time.Now().UTC(), FinishedAt: time.Now().UTC()}
	b, _ := json.Marshal(r)
	req, _ := http.NewRequest(http.MethodPut, env0(pod.Spec.Containers[0], "GUESTKIT_RESULT"), bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("runner PUT: %v %v", err, resp)
	}
	resp.Body.Close()
}

func TestFinishedJobsGetExactlyOneResult(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.put("images/a.qcow2", "QFI\xfb")
	img := e.st.URI("images/a.qcow2")
	e.put("jobs/ok.json", specJSON("ok", 5, 1, img))
	e.put("jobs/oom.json", specJSON("oom", 5, 2, img))
	e.put("jobs/bad.json", specJSON("bad", 5, 3, img))
	e.put("jobs/late.json", specJSON("late", 5, 1, img))
	d := e.start(0, nil)
	if st := e.pass(d); st.Launched != 4 {
		t.Fatalf("launched %d", st.Launched)
	}
	name := func(id string) string { return JobName(mustJob(t, e, "jobs/"+id+".json")) }

	// ok: the runner stores its result and exits 0.
	pod := e.pod(name("ok"), 1)
	runnerResult(t, pod, result.StatusCompleted, 0)
	if err := testenv.TerminatePod(ctx, e.cs, pod, "runner", 0, "", ""); err != nil {
		t.Fatal(err)
	}
	// oom: killed twice (max_attempts 2) before it stores anything.
	for i := 1; i <= 2; i++ {
		pod = e.pod(name("oom"), i)
		if err := testenv.TerminatePod(ctx, e.cs, pod, "runner", 137, "OOMKilled", ""); err != nil {
			t.Fatal(err)
		}
	}
	// bad: the runner refuses the spec (exit 3) and its upload failed, so
	// the podFailurePolicy ends the Job at once, with attempts left.
	pod = e.pod(name("bad"), 1)
	if err := testenv.TerminatePod(ctx, e.cs, pod, "runner", 3, "Error", "spec rejected"); err != nil {
		t.Fatal(err)
	}
	// late: its deadline passes (shortened here; it is mutable).
	patch := []byte(`{"spec":{"activeDeadlineSeconds":1}}`)
	if _, err := e.cs.BatchV1().Jobs(e.ns).Patch(ctx, name("late"), "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}

	eventually(t, 90*time.Second, "four results and no Jobs left", func() bool {
		for _, id := range []string{"ok", "oom", "bad", "late"} {
			if _, err := e.st.Stat(ctx, store.ResultKey(id)); err != nil {
				return false
			}
		}
		return len(e.jobs()) == 0
	})
	if r := e.result("results/ok.json"); r.Runner.Name != "guestkit-runner" || r.Status != result.StatusCompleted {
		t.Errorf("ok: the runner's result was replaced: %+v", r)
	}
	r := e.result("results/oom.json")
	if r.Status != result.StatusFailed || r.Error.Code != result.CodeBackoffLimitExceeded || r.ExitCode != 137 || r.Attempt != 2 ||
		!strings.Contains(r.Error.Message, "OOMKilled") || r.Kubernetes == nil || r.Kubernetes.Job != name("oom") {
		t.Errorf("oom: %+v %+v", r, r.Error)
	}
	r = e.result("results/bad.json")
	if r.Status != result.StatusRejected || r.Error.Code != result.CodeSpecInvalid || r.ExitCode != 3 {
		t.Errorf("bad: %+v %+v", r, r.Error)
	}
	r = e.result("results/late.json")
	if r.Status != result.StatusTimeout || r.Error.Code != result.CodeDeadlineExceeded {
		t.Errorf("late: %+v %+v", r, r.Error)
	}
	// Settled specs are never launched again.
	if st := e.pass(d); st.Launched != 0 || len(st.Snapshot.Done) != 4 {
		t.Errorf("after settling: launched %d done %d", st.Launched, len(st.Snapshot.Done))
	}
	if got := testCounter(d.metrics.JobsFailed); got != 3 {
		t.Errorf("jobs_failed_total = %v, want 3", got)
	}
	if got := testCounter(d.metrics.JobsSucceeded); got != 1 {
		t.Errorf("jobs_succeeded_total = %v, want 1", got)
	}
}

func TestCapComesFromTheInformerCache(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.put("images/a.qcow2", "QFI\xfb")
	for i := range 5 {
		e.put(fmt.Sprintf("jobs/j%d.json", i), specJSON(fmt.Sprintf("j%d", i), 5, 1, e.st.URI("images/a.qcow2")))
	}
	d := e.start(2, nil)
	if st := e.pass(d); st.Launched != 2 {
		t.Fatalf("first pass launched %d", st.Launched)
	}
	eventually(t, 10*time.Second, "informer sees 2 active", func() bool { return d.exec.Active() == 2 })
	if st := e.pass(d); st.Launched != 0 || st.Waiting != 3 {
		t.Fatalf("second pass launched %d waiting %d, want 0 and 3", st.Launched, st.Waiting)
	}
	j := e.jobs()[0]
	pod := e.pod(j.Name, 1)
	runnerResult(t, pod, result.StatusCompleted, 0)
	if err := testenv.TerminatePod(ctx, e.cs, pod, "runner", 0, "", ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "a slot frees", func() bool { return d.exec.Active() == 1 })
	if st := e.pass(d); st.Launched != 1 {
		t.Fatalf("third pass launched %d, want 1", st.Launched)
	}
}

func TestReplicasAndRestartsNeverLaunchTwice(t *testing.T) {
	e := newEnv(t)
	e.put("images/a.qcow2", "QFI\xfb")
	const n = 20
	for i := range n {
		e.put(fmt.Sprintf("jobs/j%02d.json", i), specJSON(fmt.Sprintf("j%02d", i), i%10, 1, e.st.URI("images/a.qcow2")))
	}
	a, b := e.start(0, nil), e.start(0, nil)
	var wg sync.WaitGroup
	launched := make([]int, 2)
	for i, d := range []*dispatcher{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := d.ctrl.Pass(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			launched[i] = st.Launched
		}()
	}
	wg.Wait()
	if launched[0]+launched[1] != n || len(e.jobs()) != n {
		t.Fatalf("two replicas launched %v = %d, and %d Jobs exist; want %d", launched, launched[0]+launched[1], len(e.jobs()), n)
	}
	// A restarted dispatcher (new process, cold cache) launches nothing.
	a.cancel()
	c := e.start(0, nil)
	if st := e.pass(c); st.Launched != 0 || st.Errors != 0 {
		t.Fatalf("after restart: launched %d errors %d", st.Launched, st.Errors)
	}
	// A spec changed in place after dispatch keeps its Job and gets a
	// conflict result for the new content.
	e.put("jobs/j00.json", specJSON("j00", 9, 1, e.st.URI("images/a.qcow2")))
	if st := e.pass(c); st.Launched != 0 {
		t.Fatalf("changed spec relaunched")
	}
	found := false
	_ = e.st.List(context.Background(), "results/conflicts/", func(o store.Object) error {
		found = found || strings.HasPrefix(o.Key, "results/conflicts/j00-")
		return nil
	})
	if !found {
		t.Error("no conflict result for the spec changed after dispatch")
	}
}

func TestJobDeletedByHandIsLaunchedAgain(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.put("images/a.qcow2", "QFI\xfb")
	e.put("jobs/x.json", specJSON("x", 5, 1, e.st.URI("images/a.qcow2")))
	d := e.start(0, nil)
	e.pass(d)
	jobs := e.jobs()
	if len(jobs) != 1 {
		t.Fatalf("%d jobs", len(jobs))
	}
	fg := metav1.DeletePropagationForeground
	if err := e.cs.BatchV1().Jobs(e.ns).Delete(ctx, jobs[0].Name, metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the Job gone from the cache", func() bool {
		_, found := d.exec.Lookup(mustEntry(t, e, "jobs/x.json"))
		_, err := e.cs.BatchV1().Jobs(e.ns).Get(ctx, jobs[0].Name, metav1.GetOptions{})
		return !found && apierrors.IsNotFound(err)
	})
	if st := e.pass(d); st.Launched != 1 {
		t.Fatalf("launched %d after the Job was deleted by hand, want 1 (the spec has no result)", st.Launched)
	}
	if _, err := e.st.Stat(ctx, "results/x.json"); err == nil {
		t.Error("a result was written for a Job deleted by hand")
	}
}

func TestAPIServerRestartMidRun(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.put("images/a.qcow2", "QFI\xfb")
	e.put("jobs/a.json", specJSON("a", 5, 1, e.st.URI("images/a.qcow2")))
	d := e.start(0, nil)
	e.pass(d)
	job := e.jobs()[0]
	pod := e.pod(job.Name, 1)

	e.kube.StopAPIServer()
	e.put("jobs/b.json", specJSON("b", 5, 1, e.st.URI("images/a.qcow2")))
	st, err := d.ctrl.Pass(ctx)
	if err != nil || st.Launched != 0 || st.Errors != 1 {
		t.Fatalf("pass without an API server: %v launched %d errors %d, want one retried error", err, st.Launched, st.Errors)
	}
	time.Sleep(3 * time.Second)
	e.kube.StartAPIServer(t)

	// The informer reconnects by itself: a Job that finishes now is settled.
	runnerResult(t, pod, result.StatusCompleted, 0)
	if err := testenv.TerminatePod(ctx, e.cs, pod, "runner", 0, "", ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the Job settled and deleted after the restart", func() bool {
		_, err := e.cs.BatchV1().Jobs(e.ns).Get(ctx, job.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if st := e.pass(d); st.Launched != 1 {
		t.Fatalf("b launched %d times after the restart", st.Launched)
	}
}

func testCounter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

func TestBucketUnreachableForAMinute(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.put("images/a.qcow2", "QFI\xfb")
	e.put("jobs/a.json", specJSON("a", 9, 1, e.st.URI("images/a.qcow2")))
	e.put("jobs/b.json", specJSON("b", 1, 1, e.st.URI("images/a.qcow2")))
	d := e.start(1, nil)
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- d.ctrl.Run(rctx, d.trigger) }()
	eventually(t, 20*time.Second, "a launched", func() bool { return len(e.jobs()) == 1 })
	pod := e.pod(e.jobs()[0].Name, 1)

	e.minio.Stop()
	// a is killed while the bucket is down: its result can only be written
	// later.
	if err := testenv.TerminatePod(ctx, e.cs, pod, "runner", 137, "OOMKilled", ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Minute)
	select {
	case err := <-runErr:
		t.Fatalf("Run returned during the outage: %v", err)
	default:
	}
	if got := d.metrics.Totals()["errors_total"]; got == 0 {
		t.Error("no errors counted during the outage")
	}
	e.minio.Restart()

	eventually(t, 90*time.Second, "a's result and b's Job", func() bool {
		if _, err := e.st.Stat(ctx, "results/a.json"); err != nil {
			return false
		}
		for _, j := range e.jobs() {
			if j.Annotations[AnnotationJobID] == "b" {
				return true
			}
		}
		return false
	})
	r := e.result("results/a.json")
	if r.Status != result.StatusFailed || r.ExitCode != 137 {
		t.Errorf("a: %+v", r)
	}
	stop()
	if err := <-runErr; err != context.Canceled {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}

// TestPodCredentials: with a Secret reference the pods get bucket URIs and
// the Secret's keys instead of presigned URLs.
func TestPodCredentials(t *testing.T) {
	e := newEnv(t)
	e.put("images/a.qcow2", "QFI\xfb")
	e.put("jobs/a.json", specJSON("a", 5, 1, e.st.URI("images/a.qcow2")))
	d := e.start(0, func(bc *BuilderConfig) {
		bc.SecretRef = "bucket-credentials"
		bc.Env = []corev1.EnvVar{{Name: "AWS_ENDPOINT_URL_S3", Value: e.minio.Endpoint}}
	})
	if st := e.pass(d); st.Launched != 1 {
		t.Fatalf("launched %d", st.Launched)
	}
	c := e.jobs()[0].Spec.Template.Spec.Containers[0]
	if got := env0(c, "GUESTKIT_SPEC"); got != e.st.URI("jobs/a.json") {
		t.Errorf("GUESTKIT_SPEC = %q, want the bucket URI", got)
	}
	if got := env0(c, "GUESTKIT_RESULT"); got != e.st.URI("results/a.json") {
		t.Errorf("GUESTKIT_RESULT = %q", got)
	}
	if got := env0(c, "GUESTKIT_IMAGE_URL"); got != "" {
		t.Errorf("GUESTKIT_IMAGE_URL = %q, want none (the pod reads the image itself)", got)
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != "bucket-credentials" {
		t.Errorf("envFrom = %+v", c.EnvFrom)
	}
	if env0(c, "AWS_ENDPOINT_URL_S3") != e.minio.Endpoint {
		t.Errorf("runner env lacks the endpoint")
	}
}
