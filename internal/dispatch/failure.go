package dispatch

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
)

// DispatcherName is result.Runner.Name of the results the dispatcher writes.
const DispatcherName = "guestkit-dispatcher"

// MaxDetail bounds each error.details value of a synthesized result (the
// log tail keeps its last MaxDetail bytes, messages their first).
const MaxDetail = 4096

// Waiting reasons of a container whose image cannot be pulled.
var imagePullReasons = []string{
	"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
	"RegistryUnavailable", "SignatureValidationFailed",
}

// Waiting reasons that are a normal step, not a cause.
var normalWaitingReasons = []string{"", "ContainerCreating", "PodInitializing"}

// ResultFromJob writes the result of a Job that failed without a result
// from the runner: a pod killed (OOM, eviction, deadline) or never started
// (image pull, scheduling) stores nothing. It returns nil when the Job has
// not failed: no Failed (or FailureTarget) condition.
//
// The controller calls it only after finding no result at the result key:
// a runner that exited 0, 2, 3, 4, 5 or 6 stored one (exit 7 means it
// could not, and put it on stderr: RecoverResult). pods are the Job's pods
// (any order; the latest one explains the failure); logTail is the end of
// the latest pod's runner log, or "" (only its last MaxDetail bytes are
// kept, but all of it is searched for a result after exit 7).
//
//	Job reason            result
//	DeadlineExceeded      timeout, deadline_exceeded; retryable when the runner never started
//	BackoffLimitExceeded  failed, backoff_limit_exceeded; not retryable: max_attempts are spent
//	PodFailurePolicy      by the runner's exit code: 3 rejected spec_invalid; 4 rejected
//	                      pod_failed (the image error code is lost); 2 failed pod_failed,
//	                      retryable (noncompliant, but the report is lost); 64 failed
//	                      pod_failed (the Job template is wrong)
//	any, image not pulled failed, pod_failed, retryable: the runner never ran
//	(ErrImagePull, ImagePullBackOff, ...)
//
// error.phase is "schedule" (Kubernetes ended the job) and error.details
// holds the Job's reason, the pod's phase and reason, the runner's
// termination reason (OOMKilled, ...), exit code and message, and the log
// tail. exit_code is the pod's when it means the same status under the
// runner's contract, or is outside it (137: SIGKILL, OOM); otherwise the
// contract's code for the status (result.ExitCodeFor).
func ResultFromJob(job *batchv1.Job, pods []corev1.Pod, logTail string, by result.Runner, now time.Time) *result.Result {
	if job == nil {
		return nil
	}
	cond := failedCondition(job)
	if cond == nil {
		return nil
	}
	pod := lastPod(pods)
	cs := runnerStatus(pod)
	var term *corev1.ContainerStateTerminated
	var wait *corev1.ContainerStateWaiting
	started := false
	if cs != nil {
		term = cs.State.Terminated
		if term == nil {
			term = cs.LastTerminationState.Terminated
		}
		wait = cs.State.Waiting
		started = term != nil || cs.State.Running != nil || (cs.Started != nil && *cs.Started)
	}

	jobID := annotation(job, pod, AnnotationJobID)
	if term != nil && term.ExitCode == result.ExitUploadFailed {
		for _, log := range []string{logTail, term.Message} {
			if r := RecoverResult(log); r != nil && (jobID == "" || r.JobID == jobID) {
				if r.Kubernetes == nil {
					r.Kubernetes = kubernetesOf(job, pod)
				}
				r.Warnings = append(r.Warnings, fmt.Sprintf("%s recovered this result from the log of pod %s: the runner could not store it (exit 7)", DispatcherName, podName(pod)))
				return r
			}
		}
	}

	res := &result.Result{
		APIVersion:     result.APIVersion,
		JobID:          cmp.Or(jobID, "unknown"),
		IdempotencyKey: annotation(job, pod, AnnotationIdempotencyKey),
		Attempt:        max(int(job.Status.Failed), 1),
		Runner:         by,
		Kubernetes:     kubernetesOf(job, pod),
	}
	if op := job.Labels[LabelOperation]; slices.Contains(spec.SupportedOperations(), op) {
		res.Operation = op
	}
	res.FinishedAt = now
	if !cond.LastTransitionTime.IsZero() {
		res.FinishedAt = cond.LastTransitionTime.Time
	}
	res.StartedAt = res.FinishedAt
	if t := job.Status.StartTime; t != nil && t.Time.Before(res.FinishedAt) {
		res.StartedAt = t.Time
	} else if t := job.CreationTimestamp; !t.IsZero() && t.Time.Before(res.FinishedAt) {
		res.StartedAt = t.Time
	}
	res.FinishedAt, res.StartedAt = res.FinishedAt.UTC(), res.StartedAt.UTC()
	res.DurationSeconds = res.FinishedAt.Sub(res.StartedAt).Seconds()

	e := &result.Error{Phase: result.PhaseSchedule, Details: details(job, cond, pod, cs, term, wait, logTail)}
	res.Error = e
	what := summary(pod, term, wait)
	switch {
	case wait != nil && slices.Contains(imagePullReasons, wait.Reason):
		res.Status, e.Code, e.Retryable = result.StatusFailed, result.CodePodFailed, true
		e.Message = fmt.Sprintf("the runner image could not be pulled, so the runner never ran (Job %s: %s); %s", job.Name, cond.Reason, what)
	case cond.Reason == batchv1.JobReasonDeadlineExceeded:
		res.Status, e.Code, e.Retryable = result.StatusTimeout, result.CodeDeadlineExceeded, !started
		if started {
			e.Message = fmt.Sprintf("Job %s reached its activeDeadlineSeconds before the runner stored a result; %s", job.Name, what)
		} else {
			e.Message = fmt.Sprintf("Job %s reached its activeDeadlineSeconds before the runner started; %s", job.Name, what)
		}
	case cond.Reason == batchv1.JobReasonBackoffLimitExceeded:
		res.Status, e.Code = result.StatusFailed, result.CodeBackoffLimitExceeded
		e.Message = fmt.Sprintf("Job %s failed %d times (backoffLimit %d) and the runner stored no result; %s",
			job.Name, job.Status.Failed, backoffLimit(job), what)
	case cond.Reason == batchv1.JobReasonPodFailurePolicy && term != nil:
		res.Status, e.Code = result.StatusFailed, result.CodePodFailed
		switch term.ExitCode {
		case result.ExitBadSpec:
			res.Status, e.Code = result.StatusRejected, result.CodeSpecInvalid
			e.Message = "the runner rejected the spec (exit 3) but no result was stored; " + what
		case result.ExitBadImage:
			res.Status = result.StatusRejected
			e.Message = "the runner rejected the image (exit 4) but no result was stored, so its error code is lost (see the log tail); " + what
		case result.ExitNoncompliant:
			e.Retryable = true
			e.Message = "the runner found the image noncompliant (exit 2) but no result was stored, so the report is lost; a rerun makes it again; " + what
		case result.ExitUsage:
			e.Message = "the runner refused its command line (exit 64): the Job template gives it bad arguments or environment; " + what
		default:
			e.Retryable = true
			e.Message = fmt.Sprintf("Job %s failed by its podFailurePolicy; %s", job.Name, what)
		}
	default:
		res.Status, e.Code, e.Retryable = result.StatusFailed, result.CodePodFailed, true
		e.Message = fmt.Sprintf("Job %s failed (%s) and the runner stored no result; %s", job.Name, cmp.Or(cond.Reason, "no reason given"), what)
	}
	res.ExitCode = result.ExitCodeFor(res.Status, e, false)
	if term != nil && (result.StatusOfExit(int(term.ExitCode)) == res.Status || result.StatusOfExit(int(term.ExitCode)) == "") && term.ExitCode > 0 && term.ExitCode <= 255 {
		res.ExitCode = int(term.ExitCode)
	}
	return res
}

// RecoverResult finds the result a runner wrote to stderr when it could
// not store it (exit 7): the last line holding a result v1 JSON object
// (anything before its '{', such as a timestamp, is skipped). nil if none.
func RecoverResult(log string) *result.Result {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		if !strings.Contains(line, `"api_version":"`+result.APIVersion+`"`) {
			continue
		}
		start := strings.IndexByte(line, '{')
		if start < 0 {
			continue
		}
		var r result.Result
		if json.Unmarshal([]byte(strings.TrimSpace(line[start:])), &r) == nil && r.APIVersion == result.APIVersion && r.JobID != "" && r.Status != "" {
			return &r
		}
	}
	return nil
}

// failedCondition is the Job's Failed condition, else its FailureTarget
// (set first, while the pods terminate), else nil.
func failedCondition(job *batchv1.Job) *batchv1.JobCondition {
	var target *batchv1.JobCondition
	for i := range job.Status.Conditions {
		c := &job.Status.Conditions[i]
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobFailed:
			return c
		case batchv1.JobFailureTarget:
			target = c
		}
	}
	return target
}

// lastPod is the most recently created pod (ties: the greatest name).
func lastPod(pods []corev1.Pod) *corev1.Pod {
	var last *corev1.Pod
	for i := range pods {
		p := &pods[i]
		if last == nil {
			last = p
			continue
		}
		c := p.CreationTimestamp.Time.Compare(last.CreationTimestamp.Time)
		if c > 0 || c == 0 && p.Name > last.Name {
			last = p
		}
	}
	return last
}

func runnerStatus(pod *corev1.Pod) *corev1.ContainerStatus {
	if pod == nil {
		return nil
	}
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == ContainerName {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	return nil
}

func annotation(job *batchv1.Job, pod *corev1.Pod, key string) string {
	if v := job.Annotations[key]; v != "" {
		return v
	}
	if pod != nil {
		return pod.Annotations[key]
	}
	return ""
}

func kubernetesOf(job *batchv1.Job, pod *corev1.Pod) *result.Kubernetes {
	k := &result.Kubernetes{Namespace: job.Namespace, Job: job.Name}
	if pod != nil {
		k.Pod, k.Node = pod.Name, pod.Spec.NodeName
		if k.Namespace == "" {
			k.Namespace = pod.Namespace
		}
	}
	return k
}

func podName(pod *corev1.Pod) string {
	if pod == nil {
		return "(none)"
	}
	return pod.Name
}

func backoffLimit(job *batchv1.Job) int32 {
	if job.Spec.BackoffLimit != nil {
		return *job.Spec.BackoffLimit
	}
	return 6 // the API's default
}

// summary says in a few words what the latest pod shows.
func summary(pod *corev1.Pod, term *corev1.ContainerStateTerminated, wait *corev1.ContainerStateWaiting) string {
	if pod == nil {
		return "no pod was found"
	}
	s := "pod " + pod.Name
	if pod.Spec.NodeName != "" {
		s += " on node " + pod.Spec.NodeName
	}
	switch {
	case term != nil:
		s += fmt.Sprintf(": runner terminated %s (exit %d", cmp.Or(term.Reason, "without a reason"), term.ExitCode)
		if term.Signal != 0 {
			s += fmt.Sprintf(", signal %d", term.Signal)
		}
		s += ")"
		if term.Reason == "OOMKilled" {
			s += ": it needs a higher memory limit"
		}
	case wait != nil && !slices.Contains(normalWaitingReasons, wait.Reason):
		s += ": runner waiting, " + wait.Reason
		if wait.Message != "" {
			s += " (" + result.Head(wait.Message, 512) + ")"
		}
	default:
		s += ": " + cmp.Or(string(pod.Status.Phase), "no phase")
		if pod.Status.Reason != "" {
			s += ", " + pod.Status.Reason
		}
		if c := unscheduled(pod); c != nil {
			s += ", not scheduled: " + result.Head(c.Message, 512)
		}
	}
	return s
}

func unscheduled(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		c := &pod.Status.Conditions[i]
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return c
		}
	}
	return nil
}

func details(job *batchv1.Job, cond *batchv1.JobCondition, pod *corev1.Pod, cs *corev1.ContainerStatus,
	term *corev1.ContainerStateTerminated, wait *corev1.ContainerStateWaiting, logTail string) map[string]string {
	d := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			d[k] = v
		}
	}
	set("job_reason", cond.Reason)
	set("job_message", result.Head(cond.Message, MaxDetail))
	set("failed_pods", strconv.Itoa(int(job.Status.Failed)))
	if pod != nil {
		set("pod", pod.Name)
		set("node", pod.Spec.NodeName)
		set("pod_phase", string(pod.Status.Phase))
		set("pod_reason", pod.Status.Reason)
		set("pod_message", result.Head(pod.Status.Message, MaxDetail))
		if c := unscheduled(pod); c != nil {
			msg := c.Reason
			if c.Message != "" {
				msg += ": " + c.Message
			}
			set("scheduling", result.Head(msg, MaxDetail))
		}
	}
	if cs != nil {
		set("restart_count", strconv.Itoa(int(cs.RestartCount)))
	}
	if term != nil {
		set("container_reason", term.Reason)
		set("exit_code", strconv.Itoa(int(term.ExitCode)))
		if term.Signal != 0 {
			set("signal", strconv.Itoa(int(term.Signal)))
		}
		set("container_message", result.Tail(term.Message, MaxDetail))
	}
	if wait != nil {
		set("waiting_reason", wait.Reason)
		set("waiting_message", result.Head(wait.Message, MaxDetail))
	}
	set("log_tail", result.Tail(logTail, MaxDetail))
	return d
}
