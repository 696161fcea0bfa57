//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"guestkit.io/batch/internal/kubejob"
)

// recorder remembers every Job and pod that appears in the namespace for
// the whole run, by UID: the dispatcher deletes Jobs once settled, so the
// API server alone cannot tell how many Jobs a spec ever had.
type recorder struct {
	mu      sync.Mutex
	jobs    map[string]map[types.UID]string // job_id → Job UID → Job name
	jobIDOf map[string]string               // Job name → job_id
	pods    map[types.UID]*corev1.Pod       // the latest state seen
}

func record(t testing.TB, cs kubernetes.Interface) *recorder {
	t.Helper()
	r := &recorder{jobs: map[string]map[types.UID]string{}, jobIDOf: map[string]string{}, pods: map[types.UID]*corev1.Pod{}}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(namespace))
	onJob := func(obj any) {
		j, ok := obj.(*batchv1.Job)
		if !ok {
			return
		}
		id := j.Annotations[kubejob.AnnotationJobID]
		if id == "" {
			return // the sweep's own Job
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.jobs[id] == nil {
			r.jobs[id] = map[types.UID]string{}
		}
		r.jobs[id][j.UID] = j.Name
		r.jobIDOf[j.Name] = id
	}
	onPod := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		r.mu.Lock()
		r.pods[p.UID] = p.DeepCopy()
		r.mu.Unlock()
	}
	_, err := f.Batch().V1().Jobs().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onJob, UpdateFunc: func(_, obj any) { onJob(obj) },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onPod, UpdateFunc: func(_, obj any) { onPod(obj) },
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	f.Start(stop)
	t.Cleanup(func() { close(stop); f.Shutdown() })
	for typ, ok := range f.WaitForCacheSync(stop) {
		if !ok {
			t.Fatalf("informer %v did not sync", typ)
		}
	}
	return r
}

// jobsFor counts the Jobs ever created for a job_id.
func (r *recorder) jobsFor(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.jobs[id])
}

// podsFor counts the pods ever created for a job_id's Jobs.
func (r *recorder) podsFor(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.pods {
		if r.jobIDOf[p.Labels[batchv1.JobNameLabel]] == id {
			n++
		}
	}
	return n
}

// waitJobs waits until every job_id has a Job.
func (r *recorder) waitJobs(t testing.TB, ids []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n := 0
		for _, id := range ids {
			if r.jobsFor(id) > 0 {
				n++
			}
		}
		if n == len(ids) {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no Job for every one of %v after %v", ids, timeout)
}

// waitRunningPod waits for a running pod of a job_id's Job and returns its
// name.
func (r *recorder) waitRunningPod(t testing.TB, id string, timeout time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for ctx.Err() == nil {
		r.mu.Lock()
		for _, p := range r.pods {
			if r.jobIDOf[p.Labels[batchv1.JobNameLabel]] == id && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				r.mu.Unlock()
				return p.Name
			}
		}
		r.mu.Unlock()
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no running pod for %s after %v", id, timeout)
	return ""
}

// checkPods asserts that no pod of the run was privileged or could become
// so, and that runner pods kept the restricted settings the Job template
// promises.
func (r *recorder) checkPods(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	runners := 0
	for _, p := range r.pods {
		for _, problem := range podProblems(p) {
			t.Errorf("pod %s: %s", p.Name, problem)
		}
		if p.Labels[kubejob.LabelName] == kubejob.LabelNameValue {
			runners++
		}
	}
	if runners < 8 {
		t.Errorf("saw %d runner pods in the whole run, want at least 8: the recorder missed pods", runners)
	}
	t.Logf("checked %d pods (%d runners): none privileged", len(r.pods), runners)
}

func podProblems(p *corev1.Pod) []string {
	var out []string
	s := p.Spec
	if s.HostNetwork || s.HostPID || s.HostIPC {
		out = append(out, "shares a host namespace")
	}
	for _, v := range s.Volumes {
		if v.HostPath != nil {
			out = append(out, fmt.Sprintf("mounts host path %s", v.HostPath.Path))
		}
	}
	if s.SecurityContext == nil || s.SecurityContext.RunAsNonRoot == nil || !*s.SecurityContext.RunAsNonRoot {
		out = append(out, "may run as root (runAsNonRoot not set)")
	}
	if s.SecurityContext == nil || s.SecurityContext.SeccompProfile == nil ||
		s.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		out = append(out, "no RuntimeDefault seccomp profile")
	}
	for _, c := range append(append([]corev1.Container{}, s.InitContainers...), s.Containers...) {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			out = append(out, fmt.Sprintf("container %s has no security context", c.Name))
			continue
		case sc.Privileged != nil && *sc.Privileged:
			out = append(out, fmt.Sprintf("container %s is privileged", c.Name))
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			out = append(out, fmt.Sprintf("container %s allows privilege escalation", c.Name))
		}
		if sc.Capabilities == nil || len(sc.Capabilities.Add) > 0 || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			out = append(out, fmt.Sprintf("container %s does not drop exactly ALL capabilities, adding none: %+v", c.Name, sc.Capabilities))
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			out = append(out, fmt.Sprintf("container %s has a writable root filesystem", c.Name))
		}
	}
	return out
}
