package kubejob

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/result/resulttest"
)

var (
	tStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tEnd   = tStart.Add(90 * time.Minute)
	tNow   = tStart.Add(100 * time.Minute)
)

// failedJobOf is a dispatched Job with a Failed condition of reason.
func failedJobOf(reason, message string, failed int32) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: "gk-inspect-web-01-ae976fc145", Namespace: "guestkit",
			CreationTimestamp: metav1.NewTime(tStart.Add(-time.Second)),
			Labels:            map[string]string{LabelManagedBy: LabelManagedByValue, LabelOperation: "guestkit.inspect"},
			Annotations: map[string]string{
				AnnotationJobID: "inspect-web-01", AnnotationIdempotencyKey: "order-77",
				AnnotationResultKey: "results/inspect-web-01.json",
			},
		},
		Spec: batchv1.JobSpec{BackoffLimit: ptr(int32(2))},
		Status: batchv1.JobStatus{
			StartTime: ptr(metav1.NewTime(tStart)),
			Failed:    failed,
			Conditions: []batchv1.JobCondition{
				{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: reason, Message: message, LastTransitionTime: metav1.NewTime(tEnd.Add(-time.Second))},
				{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: reason, Message: message, LastTransitionTime: metav1.NewTime(tEnd)},
			},
		},
	}
}

// runnerPod is a pod of the Job created at minute min, on node-MIN.
func runnerPod(min int, st corev1.ContainerStatus, phase corev1.PodPhase) corev1.Pod {
	st.Name = ContainerName
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("gk-inspect-web-01-ae976fc145-p%d", min), Namespace: "guestkit",
			CreationTimestamp: metav1.NewTime(tStart.Add(time.Duration(min) * time.Minute)),
			Annotations:       map[string]string{AnnotationJobID: "inspect-web-01"},
		},
		Spec:   corev1.PodSpec{NodeName: fmt.Sprintf("node-%d", min)},
		Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{st}},
	}
}

func exited(code int32, reason string) corev1.ContainerStatus {
	return corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: reason, Message: "last words of " + reason,
	}}}
}

func waiting(reason, msg string) corev1.ContainerStatus {
	return corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}, Started: ptr(false)}
}

func running() corev1.ContainerStatus {
	return corev1.ContainerStatus{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(tStart)}}, Started: ptr(true)}
}

var testBy = result.Runner{Name: result.DispatcherName, Version: "test"}

func TestResultFromJob(t *testing.T) {
	unschedulable := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "gk-inspect-web-01-ae976fc145-pending", CreationTimestamp: metav1.NewTime(tStart)},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
			Message: "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
		}}},
	}
	evicted := runnerPod(20, exited(137, "Error"), corev1.PodFailed)
	evicted.Status.Reason, evicted.Status.Message = "Evicted", "The node was low on resource: ephemeral-storage."

	tests := []struct {
		name      string
		job       *batchv1.Job
		pods      []corev1.Pod
		log       string
		status    result.Status
		code      result.Code
		exit      int
		retryable bool
		pod       string            // kubernetes.pod
		msg       []string          // in error.message
		details   map[string]string // a subset of error.details
	}{
		{
			name:   "deadline while the runner ran",
			job:    failedJobOf(batchv1.JobReasonDeadlineExceeded, "Job was active longer than specified deadline", 0),
			pods:   []corev1.Pod{runnerPod(1, running(), corev1.PodRunning)},
			status: result.StatusTimeout, code: result.CodeDeadlineExceeded, exit: 6, retryable: false,
			pod: "gk-inspect-web-01-ae976fc145-p1",
			msg: []string{"reached its activeDeadlineSeconds before the runner stored a result", "on node node-1: Running"},
			details: map[string]string{"job_reason": "DeadlineExceeded", "job_message": "Job was active longer than specified deadline",
				"pod_phase": "Running", "node": "node-1", "failed_pods": "0"},
		},
		{
			name:   "deadline while never scheduled",
			job:    failedJobOf(batchv1.JobReasonDeadlineExceeded, "Job was active longer than specified deadline", 0),
			pods:   []corev1.Pod{unschedulable},
			status: result.StatusTimeout, code: result.CodeDeadlineExceeded, exit: 6, retryable: true,
			pod: "gk-inspect-web-01-ae976fc145-pending",
			msg: []string{"before the runner started", "not scheduled: 0/3 nodes are available"},
			details: map[string]string{"pod_phase": "Pending",
				"scheduling": "Unschedulable: 0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."},
		},
		{
			name:   "image pull back-off, then the deadline",
			job:    failedJobOf(batchv1.JobReasonDeadlineExceeded, "Job was active longer than specified deadline", 0),
			pods:   []corev1.Pod{runnerPod(0, waiting("ImagePullBackOff", `Back-off pulling image "registry.example/guestkit-runner:9"`), corev1.PodPending)},
			status: result.StatusFailed, code: result.CodePodFailed, exit: 5, retryable: true,
			msg:     []string{"runner image could not be pulled", "runner waiting, ImagePullBackOff (Back-off pulling image"},
			details: map[string]string{"waiting_reason": "ImagePullBackOff", "job_reason": "DeadlineExceeded"},
		},
		{
			name: "image pull error seen at FailureTarget, before Failed",
			job: func() *batchv1.Job {
				j := failedJobOf("PodFailurePolicy", "", 0)
				j.Status.Conditions = j.Status.Conditions[:1]
				return j
			}(),
			pods:   []corev1.Pod{runnerPod(0, waiting("ErrImagePull", "manifest unknown"), corev1.PodPending)},
			status: result.StatusFailed, code: result.CodePodFailed, exit: 5, retryable: true,
			details: map[string]string{"waiting_reason": "ErrImagePull", "waiting_message": "manifest unknown"},
		},
		{
			name: "backoff limit, last pod OOM-killed",
			job:  failedJobOf(batchv1.JobReasonBackoffLimitExceeded, "Job has reached the specified backoff limit", 3),
			// Unsorted: the newest pod explains the failure.
			pods: []corev1.Pod{
				runnerPod(30, exited(137, "OOMKilled"), corev1.PodFailed),
				runnerPod(1, exited(5, "Error"), corev1.PodFailed),
				runnerPod(12, exited(1, "Error"), corev1.PodFailed),
			},
			log:    strings.Repeat("appliance: progress line\n", 400) + "FINAL LINE before the kill\n",
			status: result.StatusFailed, code: result.CodeBackoffLimitExceeded, exit: 137, retryable: false,
			pod: "gk-inspect-web-01-ae976fc145-p30",
			msg: []string{"failed 3 times (backoffLimit 2)", "runner terminated OOMKilled (exit 137)", "higher memory limit"},
			details: map[string]string{"container_reason": "OOMKilled", "exit_code": "137", "container_message": "last words of OOMKilled",
				"failed_pods": "3", "pod_phase": "Failed", "node": "node-30"},
		},
		{
			name:   "backoff limit, last pod an infrastructure failure",
			job:    failedJobOf(batchv1.JobReasonBackoffLimitExceeded, "", 3),
			pods:   []corev1.Pod{runnerPod(1, exited(5, "Error"), corev1.PodFailed)},
			status: result.StatusFailed, code: result.CodeBackoffLimitExceeded, exit: 5,
			details: map[string]string{"exit_code": "5"},
		},
		{
			name:   "backoff limit, last pod evicted",
			job:    failedJobOf(batchv1.JobReasonBackoffLimitExceeded, "", 3),
			pods:   []corev1.Pod{evicted},
			status: result.StatusFailed, code: result.CodeBackoffLimitExceeded, exit: 137,
			details: map[string]string{"pod_reason": "Evicted", "pod_message": "The node was low on resource: ephemeral-storage."},
		},
		{
			name: "backoff limit, last pod timed out but its result is gone",
			job:  failedJobOf(batchv1.JobReasonBackoffLimitExceeded, "", 3),
			pods: []corev1.Pod{runnerPod(1, exited(6, "Error"), corev1.PodFailed)},
			// 6 means timeout; the status is failed, so the code is the contract's.
			status: result.StatusFailed, code: result.CodeBackoffLimitExceeded, exit: 5,
			details: map[string]string{"exit_code": "6"},
		},
		{
			name:   "FailJob on exit 3",
			job:    failedJobOf(batchv1.JobReasonPodFailurePolicy, "Container runner for pod guestkit/x failed with exit code 3 matching FailJob rule at index 1", 1),
			pods:   []corev1.Pod{runnerPod(1, exited(3, "Error"), corev1.PodFailed)},
			status: result.StatusRejected, code: result.CodeSpecInvalid, exit: 3,
			msg:     []string{"rejected the spec (exit 3)"},
			details: map[string]string{"job_reason": "PodFailurePolicy", "exit_code": "3"},
		},
		{
			name:   "FailJob on exit 4",
			job:    failedJobOf(batchv1.JobReasonPodFailurePolicy, "", 1),
			pods:   []corev1.Pod{runnerPod(1, exited(4, "Error"), corev1.PodFailed)},
			log:    "level=error msg=\"image_backing_file: backing file /etc/shadow\"\n",
			status: result.StatusRejected, code: result.CodePodFailed, exit: 4,
			msg:     []string{"rejected the image (exit 4)", "error code is lost"},
			details: map[string]string{"log_tail": "level=error msg=\"image_backing_file: backing file /etc/shadow\""},
		},
		{
			name:   "FailJob on exit 2: noncompliant, report lost",
			job:    failedJobOf(batchv1.JobReasonPodFailurePolicy, "", 1),
			pods:   []corev1.Pod{runnerPod(1, exited(2, "Error"), corev1.PodFailed)},
			status: result.StatusFailed, code: result.CodePodFailed, exit: 5, retryable: true,
			msg:     []string{"noncompliant (exit 2)", "report is lost"},
			details: map[string]string{"exit_code": "2"},
		},
		{
			name:   "FailJob on exit 64: the template is wrong",
			job:    failedJobOf(batchv1.JobReasonPodFailurePolicy, "", 1),
			pods:   []corev1.Pod{runnerPod(1, exited(64, "Error"), corev1.PodFailed)},
			status: result.StatusFailed, code: result.CodePodFailed, exit: 64, retryable: false,
			msg: []string{"refused its command line (exit 64)", "Job template"},
		},
		{
			name:   "an unknown reason",
			job:    failedJobOf("MaxFailedIndexesExceeded", "", 1),
			pods:   []corev1.Pod{runnerPod(1, exited(1, "Error"), corev1.PodFailed)},
			status: result.StatusFailed, code: result.CodePodFailed, exit: 1, retryable: true,
			msg: []string{"failed (MaxFailedIndexesExceeded)"},
		},
		{
			name:   "no pods left",
			job:    failedJobOf(batchv1.JobReasonBackoffLimitExceeded, "", 3),
			status: result.StatusFailed, code: result.CodeBackoffLimitExceeded, exit: 5,
			msg: []string{"no pod was found"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ResultFromJob(tt.job, tt.pods, tt.log, testBy, tNow)
			if r == nil {
				t.Fatal("nil result")
			}
			resulttest.CheckResult(t, r)
			e := r.Error
			if r.Status != tt.status || e == nil || e.Code != tt.code || r.ExitCode != tt.exit || e.Retryable != tt.retryable {
				t.Fatalf("status %s, code %v, exit %d, retryable %v; want %s, %s, %d, %v\n%+v",
					r.Status, e.Code, r.ExitCode, e.Retryable, tt.status, tt.code, tt.exit, tt.retryable, e)
			}
			if e.Phase != result.PhaseSchedule {
				t.Errorf("phase %s", e.Phase)
			}
			for _, m := range tt.msg {
				if !strings.Contains(e.Message, m) {
					t.Errorf("message %q lacks %q", e.Message, m)
				}
			}
			for k, v := range tt.details {
				if e.Details[k] != v {
					t.Errorf("details[%s] = %q, want %q", k, e.Details[k], v)
				}
			}
			if r.JobID != "inspect-web-01" || r.IdempotencyKey != "order-77" || r.Operation != "guestkit.inspect" {
				t.Errorf("job_id %q, idempotency_key %q, operation %q", r.JobID, r.IdempotencyKey, r.Operation)
			}
			if r.Runner.Name != "guestkit-dispatcher" || r.Runner.Version != testBy.Version {
				t.Errorf("runner %+v", r.Runner)
			}
			k := r.Kubernetes
			if k == nil || k.Namespace != "guestkit" || k.Job != "gk-inspect-web-01-ae976fc145" {
				t.Fatalf("kubernetes %+v", k)
			}
			if tt.pod != "" && k.Pod != tt.pod {
				t.Errorf("kubernetes.pod %q, want %q", k.Pod, tt.pod)
			}
			if want := max(int(tt.job.Status.Failed), 1); r.Attempt != want {
				t.Errorf("attempt %d, want %d", r.Attempt, want)
			}
			wantEnd := tEnd
			if len(tt.job.Status.Conditions) == 1 {
				wantEnd = tEnd.Add(-time.Second) // FailureTarget's time
			}
			if !r.StartedAt.Equal(tStart) || !r.FinishedAt.Equal(wantEnd) || r.DurationSeconds != wantEnd.Sub(tStart).Seconds() {
				t.Errorf("started %v, finished %v, duration %v", r.StartedAt, r.FinishedAt, r.DurationSeconds)
			}
			if r.Data != nil || r.Image != nil {
				t.Errorf("data or image in a synthesized result")
			}
		})
	}
}

func TestResultFromJobLogTail(t *testing.T) {
	job := failedJobOf(batchv1.JobReasonBackoffLimitExceeded, "", 3)
	long := strings.Repeat("x", 3000)
	for _, tt := range []struct {
		name, log, want string
	}{
		{"short", "a\nb\n\n", "a\nb"},
		{"cut at a line start", strings.Repeat("early line\n", 1000) + long + "\nlast", ""},
		{"one huge line keeps its end", strings.Repeat("z", 10000), strings.Repeat("z", result.MaxDetail)},
		{"no split runes", "é" + strings.Repeat("日", 2000), strings.Repeat("日", result.MaxDetail/3)},
		{"invalid UTF-8 replaced", "ok \xff\xfe bytes", "ok \uFFFD bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ResultFromJob(job, []corev1.Pod{runnerPod(1, exited(1, "Error"), corev1.PodFailed)}, tt.log, testBy, tNow)
			got := r.Error.Details["log_tail"]
			if len(got) > result.MaxDetail || !utf8.ValidString(got) {
				t.Fatalf("log_tail of %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
			}
			if tt.name == "cut at a line start" {
				// The last 4 KiB start inside an "early line": the tail
				// starts at the next one.
				if !strings.HasPrefix(got, "early line\n") || !strings.HasSuffix(got, "\n"+long+"\nlast") || len(got) < result.MaxDetail-len("early line\n") {
					t.Errorf("log_tail = %.80q... (%d bytes)", got, len(got))
				}
				return
			}
			if got != tt.want {
				t.Errorf("log_tail = %.80q (%d bytes), want %.80q (%d bytes)", got, len(got), tt.want, len(tt.want))
			}
		})
	}
	// Messages keep their start, bounded.
	j := failedJobOf(batchv1.JobReasonBackoffLimitExceeded, strings.Repeat("m", 10000), 3)
	if got := ResultFromJob(j, nil, "", testBy, tNow).Error.Details["job_message"]; len(got) != result.MaxDetail {
		t.Errorf("job_message of %d bytes", len(got))
	}
	if !utf8.ValidString(result.Head("ab日", 4)) || result.Head("ab日", 4) != "ab" {
		t.Errorf("head splits a rune: %q", result.Head("ab日", 4))
	}
}

func TestResultFromJobNotFailed(t *testing.T) {
	running := failedJobOf("", "", 0)
	running.Status.Conditions = nil
	complete := failedJobOf("", "", 0)
	complete.Status.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue},
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue},
	}
	notYet := failedJobOf(batchv1.JobReasonBackoffLimitExceeded, "", 1)
	for i := range notYet.Status.Conditions {
		notYet.Status.Conditions[i].Status = corev1.ConditionFalse
	}
	for name, job := range map[string]*batchv1.Job{"nil": nil, "running": running, "complete": complete, "conditions false": notYet} {
		if r := ResultFromJob(job, nil, "", testBy, tNow); r != nil {
			t.Errorf("%s: result %+v, want nil", name, r)
		}
	}
}

func TestResultFromJobIdentity(t *testing.T) {
	// No annotation on the Job (a Job made by an older template): the pod's.
	job := failedJobOf(batchv1.JobReasonBackoffLimitExceeded, "", 1)
	job.Annotations = nil
	job.Labels[LabelOperation] = "forged.operation"
	job.Status.StartTime = nil
	r := ResultFromJob(job, []corev1.Pod{runnerPod(1, exited(5, "Error"), corev1.PodFailed)}, "", testBy, tNow)
	if r.JobID != "inspect-web-01" || r.Operation != "" || r.IdempotencyKey != "" {
		t.Errorf("job_id %q, operation %q, idempotency_key %q", r.JobID, r.Operation, r.IdempotencyKey)
	}
	if !r.StartedAt.Equal(tStart.Add(-time.Second)) {
		t.Errorf("started_at %v, want the Job's creation", r.StartedAt)
	}
	// Nothing at all.
	r = ResultFromJob(job, nil, "", testBy, tNow)
	if r.JobID != "unknown" || r.Kubernetes.Pod != "" || r.Kubernetes.Job != job.Name {
		t.Errorf("job_id %q, kubernetes %+v", r.JobID, r.Kubernetes)
	}
	// A condition without a time: now.
	job.Status.Conditions[1].LastTransitionTime = metav1.Time{}
	job.CreationTimestamp = metav1.Time{}
	r = ResultFromJob(job, nil, "", testBy, tNow)
	if !r.FinishedAt.Equal(tNow) || !r.StartedAt.Equal(tNow) || r.DurationSeconds != 0 {
		t.Errorf("started %v, finished %v", r.StartedAt, r.FinishedAt)
	}
}

// Exit 7: the runner could not store its result and wrote it to stderr.
func TestResultFromJobRecoversUploadFailure(t *testing.T) {
	stored := result.Result{
		APIVersion: result.APIVersion, JobID: "inspect-web-01", Operation: "guestkit.inspect",
		Status: result.StatusCompleted, ExitCode: 0, Attempt: 1,
		Runner:    result.Runner{Name: "guestkit-runner", Version: "1.2.3"},
		StartedAt: tStart, FinishedAt: tEnd, DurationSeconds: 5400,
		Data: json.RawMessage(`{"roots":[{"distro":"debian"}]}`),
	}
	line, _ := json.Marshal(stored)
	log := "time=... level=error msg=\"result upload failed for good; the result is the next line on stderr\"\n" + string(line) + "\n"
	other := stored
	other.JobID = "someone-else"
	otherLine, _ := json.Marshal(other)

	tests := []struct {
		name      string
		log       string
		message   string // the container's termination message
		recovered bool
	}{
		{"from the log", log, "", true},
		{"from the log with timestamps", "2026-03-01T13:30:00.000000001Z " + string(line) + "\n", "", true},
		{"from the termination message", "", string(line), true},
		{"another job's result", string(otherLine), "", false},
		{"truncated line", string(line[:len(line)/2]), "", false},
		{"nothing", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := exited(7, "Error")
			st.State.Terminated.Message = tt.message
			job := failedJobOf(batchv1.JobReasonBackoffLimitExceeded, "", 3)
			r := ResultFromJob(job, []corev1.Pod{runnerPod(4, st, corev1.PodFailed)}, tt.log, testBy, tNow)
			resulttest.CheckResult(t, r)
			if !tt.recovered {
				if r.Status != result.StatusFailed || r.Error.Code != result.CodeBackoffLimitExceeded || r.ExitCode != 7 {
					t.Errorf("status %s, code %s, exit %d", r.Status, r.Error.Code, r.ExitCode)
				}
				return
			}
			if r.Status != result.StatusCompleted || r.Runner.Name != "guestkit-runner" || string(r.Data) != string(stored.Data) || r.Error != nil {
				t.Errorf("recovered %+v", r)
			}
			if r.Kubernetes == nil || r.Kubernetes.Pod != "gk-inspect-web-01-ae976fc145-p4" || r.Kubernetes.Node != "node-4" {
				t.Errorf("kubernetes %+v", r.Kubernetes)
			}
			if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "recovered this result from the log of pod gk-inspect-web-01-ae976fc145-p4") {
				t.Errorf("warnings %q", r.Warnings)
			}
		})
	}
}

func TestRecoverResultLastLineWins(t *testing.T) {
	mk := func(status result.Status) string {
		b, _ := json.Marshal(result.Result{APIVersion: result.APIVersion, JobID: "j", Status: status})
		return string(b)
	}
	r := result.Recover(mk(result.StatusFailed) + "\n" + mk(result.StatusCompleted) + "\nnoise")
	if r == nil || r.Status != result.StatusCompleted {
		t.Errorf("RecoverResult = %+v", r)
	}
	if result.Recover(`{"api_version":"guestkit.io/result/v1","job_id":""}`) != nil {
		t.Errorf("a result without job_id recovered")
	}
}

func TestStatusOfExitMatchesContract(t *testing.T) {
	// statusOfExit must agree with result.ExitCodeFor.
	for _, s := range []result.Status{result.StatusCompleted, result.StatusFailed, result.StatusTimeout, result.StatusRejected} {
		for _, c := range []result.Code{result.CodeSpecInvalid, result.CodeImageCorrupt, result.CodeInternal, result.CodeUploadFailed, result.CodeInfrastructure} {
			code := result.ExitCodeFor(s, &result.Error{Code: c}, false)
			if got := result.StatusOfExit(code); got != s {
				t.Errorf("ExitCodeFor(%s, %s) = %d, statusOfExit = %s", s, c, code, got)
			}
		}
	}
	if result.StatusOfExit(137) != "" || result.StatusOfExit(64) != result.StatusFailed {
		t.Errorf("statusOfExit outside the contract")
	}
}
