package kubejob

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
)

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
// could not, and put it on stderr: result.Recover). pods are the Job's pods
// (any order; the latest one explains the failure); logTail is the end of
// the latest pod's runner log, or "" (only its last result.MaxDetail bytes are
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
	o := outcomeOf(job, pods, logTail, now)
	if o == nil {
		return nil
	}
	return o.Result(by)
}

// outcomeOf reads what a failed Job and its pods show; nil when the Job
// has not failed.
func outcomeOf(job *batchv1.Job, pods []corev1.Pod, logTail string, now time.Time) *result.Outcome {
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
	o := &result.Outcome{
		JobID:          annotation(job, pod, AnnotationJobID),
		IdempotencyKey: annotation(job, pod, AnnotationIdempotencyKey),
		Attempt:        max(int(job.Status.Failed), 1),
		Kubernetes:     kubernetesOf(job, pod),
		Subject:        "Job " + job.Name,
		Started:        started,
		What:           summary(pod, term, wait),
		Log:            logTail,
		RecoveredFrom:  "the log of pod " + podName(pod),
		Details:        details(job, cond, pod, cs, term, wait),
	}
	if op := job.Labels[LabelOperation]; slices.Contains(spec.SupportedOperations(), op) {
		o.Operation = op
	}
	o.StartedAt, o.FinishedAt = jobTimes(job, cond, now)
	if term != nil {
		o.Exited, o.ExitCode, o.Signal = true, int(term.ExitCode), int(term.Signal)
		o.Recoverable = []string{logTail, term.Message}
	}
	switch {
	case wait != nil && slices.Contains(imagePullReasons, wait.Reason):
		o.Ending, o.Why = result.EndNeverRan, "the runner image could not be pulled"
		o.Context = fmt.Sprintf("Job %s: %s", job.Name, cond.Reason)
	case cond.Reason == batchv1.JobReasonDeadlineExceeded:
		o.Ending, o.Limit = result.EndDeadline, "its activeDeadlineSeconds"
	case cond.Reason == batchv1.JobReasonBackoffLimitExceeded:
		o.Ending, o.Limit = result.EndAttempts, fmt.Sprintf("backoffLimit %d", backoffLimit(job))
	case cond.Reason == batchv1.JobReasonPodFailurePolicy && term != nil && slices.Contains(result.NonRetryableExitCodes(), term.ExitCode):
		o.Ending, o.Why = result.EndExit, "the Job template gives it bad arguments or environment"
	default:
		o.Ending, o.Reason = result.EndOther, cond.Reason
	}
	return o
}

// jobTimes are when a failed Job started and ended: its condition's time
// (else now), and its start (else creation) time when earlier.
func jobTimes(job *batchv1.Job, cond *batchv1.JobCondition, now time.Time) (started, finished time.Time) {
	finished = now
	if !cond.LastTransitionTime.IsZero() {
		finished = cond.LastTransitionTime.Time
	}
	started = finished
	if t := job.Status.StartTime; t != nil && t.Time.Before(finished) {
		started = t.Time
	} else if t := job.CreationTimestamp; !t.IsZero() && t.Time.Before(finished) {
		started = t.Time
	}
	return started, finished
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
	term *corev1.ContainerStateTerminated, wait *corev1.ContainerStateWaiting) map[string]string {
	d := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			d[k] = v
		}
	}
	set("job_reason", cond.Reason)
	set("job_message", result.Head(cond.Message, result.MaxDetail))
	set("failed_pods", strconv.Itoa(int(job.Status.Failed)))
	if pod != nil {
		set("pod", pod.Name)
		set("node", pod.Spec.NodeName)
		set("pod_phase", string(pod.Status.Phase))
		set("pod_reason", pod.Status.Reason)
		set("pod_message", result.Head(pod.Status.Message, result.MaxDetail))
		if c := unscheduled(pod); c != nil {
			msg := c.Reason
			if c.Message != "" {
				msg += ": " + c.Message
			}
			set("scheduling", result.Head(msg, result.MaxDetail))
		}
	}
	if cs != nil {
		set("restart_count", strconv.Itoa(int(cs.RestartCount)))
	}
	if term != nil {
		set("container_reason", term.Reason)
		set("container_message", result.Tail(term.Message, result.MaxDetail))
	}
	if wait != nil {
		set("waiting_reason", wait.Reason)
		set("waiting_message", result.Head(wait.Message, result.MaxDetail))
	}
	return d
}
