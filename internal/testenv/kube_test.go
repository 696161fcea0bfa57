package testenv

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// One control plane for all subtests, as a package with many Kubernetes
// tests would share it: the real Job controller acts on Jobs whose pods
// TerminatePod ends, kubectl and the server agree on the version, and the
// clients keep working across an API server restart.
func TestKube(t *testing.T) {
	start := time.Now()
	k := StartKube(t)
	t.Logf("control plane ready in %v at %s", time.Since(start).Round(time.Millisecond), k.Host)

	t.Run("Kubectl", func(t *testing.T) {
		out, err := exec.Command(k.BinDir+"/kubectl", "--kubeconfig", k.Kubeconfig, "version", "-o", "json").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl version: %v\n%s", err, out)
		}
		var v struct {
			ClientVersion, ServerVersion struct{ GitVersion string }
		}
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("kubectl version: %v\n%s", err, out)
		}
		if c, s := v.ClientVersion.GitVersion, v.ServerVersion.GitVersion; c != s || !strings.HasPrefix(c, "v1.") {
			t.Fatalf("kubectl %q, server %q: want the same v1.x version", c, s)
		}
		t.Logf("kubectl and server: %s", v.ServerVersion.GitVersion)
	})

	t.Run("PodFailurePolicyFailJob", func(t *testing.T) {
		cs, ns := k.Client(), k.Namespace(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		job := testJob("exit-3")
		job.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
			Action: batchv1.PodFailurePolicyActionFailJob,
			OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
				ContainerName: new("runner"),
				Operator:      batchv1.PodFailurePolicyOnExitCodesOpIn,
				Values:        []int32{3},
			},
		}}}
		pod := createJobPod(ctx, t, cs, ns, job)
		start := time.Now()
		if err := TerminatePod(ctx, cs, pod, "runner", 3, "", "exit status 3"); err != nil {
			t.Fatal(err)
		}
		c := waitJobCondition(ctx, t, cs, ns, job.Name, batchv1.JobFailed)
		t.Logf("Job Failed %v after the pod: %s: %s", time.Since(start).Round(time.Millisecond), c.Reason, c.Message)
		if c.Reason != batchv1.JobReasonPodFailurePolicy {
			t.Fatalf("Failed reason %q, want %q", c.Reason, batchv1.JobReasonPodFailurePolicy)
		}
		got, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase != corev1.PodFailed || len(got.Status.ContainerStatuses) != 2 {
			t.Fatalf("pod: phase %s, %d container statuses", got.Status.Phase, len(got.Status.ContainerStatuses))
		}
		for _, s := range got.Status.ContainerStatuses {
			want := map[string]int32{"runner": 3, "sidecar": 0}[s.Name]
			if s.State.Terminated == nil || s.State.Terminated.ExitCode != want {
				t.Fatalf("container %s: %+v, want terminated with %d", s.Name, s.State, want)
			}
		}
		if r := got.Status.ContainerStatuses[0].State.Terminated.Reason; r != "Error" {
			t.Fatalf("runner's reason %q, want Error", r)
		}
	})

	t.Run("Complete", func(t *testing.T) {
		cs, ns := k.Client(), k.Namespace(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		job := testJob("exit-0")
		pod := createJobPod(ctx, t, cs, ns, job)
		start := time.Now()
		if err := TerminatePod(ctx, cs, pod, "runner", 0, "", ""); err != nil {
			t.Fatal(err)
		}
		waitJobCondition(ctx, t, cs, ns, job.Name, batchv1.JobComplete)
		t.Logf("Job Complete %v after the pod", time.Since(start).Round(time.Millisecond))
		if err := TerminatePod(ctx, cs, pod, "nope", 0, "", ""); err == nil {
			t.Fatal("TerminatePod of a missing container: no error")
		}
	})

	// Last: the controller manager has to find the new API server too.
	t.Run("RestartAPIServer", func(t *testing.T) {
		cs, ns := k.Client(), k.Namespace(t)
		start := time.Now()
		k.RestartAPIServer(t)
		t.Logf("restart took %v", time.Since(start).Round(time.Millisecond))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "after-restart"},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("client after restart: %v", err)
		}
		start = time.Now()
		job := testJob("after-restart")
		pod := createJobPod(ctx, t, cs, ns, job)
		t.Logf("Job controller made a pod %v after the restart", time.Since(start).Round(time.Millisecond))
		if err := TerminatePod(ctx, cs, pod, "runner", 0, "", ""); err != nil {
			t.Fatal(err)
		}
		waitJobCondition(ctx, t, cs, ns, job.Name, batchv1.JobComplete)

		k.StopAPIServer()
		k.StopAPIServer() // idempotent
		short, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if _, err := cs.CoreV1().Namespaces().Get(short, ns, metav1.GetOptions{}); err == nil {
			t.Fatal("API server still answers after StopAPIServer")
		}
		k.StartAPIServer(t)
		k.StartAPIServer(t) // idempotent
		if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			t.Fatalf("after StartAPIServer: %v", err)
		}
	})
}

// testJob is a Job with no retries whose pods have the containers runner
// and sidecar; the images are never pulled (no kubelet).
func testJob(name string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			BackoffLimit: new(int32(0)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{
					{Name: "runner", Image: "registry.invalid/runner:test"},
					{Name: "sidecar", Image: "registry.invalid/sidecar:test"},
				},
			}},
		},
	}
}

// createJobPod creates the Job and returns the pod the Job controller
// makes for it.
func createJobPod(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string, job *batchv1.Job) *corev1.Pod {
	t.Helper()
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod *corev1.Pod
	err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + job.Name})
		if err != nil || len(pods.Items) == 0 {
			return false, nil
		}
		pod = &pods.Items[0]
		return true, nil
	})
	if err != nil {
		t.Fatalf("no pod for Job %s/%s: %v", ns, job.Name, err)
	}
	return pod
}

func waitJobCondition(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string, want batchv1.JobConditionType) batchv1.JobCondition {
	t.Helper()
	var found batchv1.JobCondition
	var last *batchv1.Job
	err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		job, err := cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = job
		for _, c := range job.Status.Conditions {
			if c.Type == want && c.Status == corev1.ConditionTrue {
				found = c
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		var status any
		if last != nil {
			status = last.Status
		}
		t.Fatalf("Job %s/%s: no condition %s: %v; status %+v", ns, name, want, err, status)
	}
	return found
}

func TestKubeNamespacePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"TestKube/PodFailurePolicyFailJob": "testkube-podfailurepolicyfailjob-",
		"Test_X#01":                        "test-x-01-",
		"":                                 "test-",
		"/__/":                             "test-",
		strings.Repeat("a", 49) + "/b":     strings.Repeat("a", 49) + "-",
	} {
		if got := namespacePrefix(in); got != want {
			t.Errorf("namespacePrefix(%q) = %q, want %q", in, got, want)
		}
	}
}
