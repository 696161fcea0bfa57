// Package exitcode is the one table of the exit codes of guestkit-runner and
// guestkit-dispatcher. The values are a public contract (podFailurePolicy,
// scripts, CI): package result and dispatcher/cli name these constants, and
// the commands' tests check the READMEs' tables against Runner and
// Dispatcher.
package exitcode

// Exit codes of guestkit-runner.
const (
	RunnerCompleted    = 0
	RunnerInternal     = 1
	RunnerNoncompliant = 2 // as OpenSCAP
	RunnerBadSpec      = 3
	RunnerBadImage     = 4
	RunnerInfra        = 5
	RunnerTimeout      = 6
	RunnerUploadFailed = 7
	RunnerUsage        = 64 // EX_USAGE of sysexits.h
)

// Exit codes of guestkit-dispatcher.
const (
	DispatcherOK           = 0
	DispatcherJobsFailed   = 1
	DispatcherNoncompliant = 2
	DispatcherFailure      = 3
	DispatcherUsage        = 64
	DispatcherInterrupted  = 130 // as a shell reports SIGINT
)

// Code is one exit code of a program.
type Code struct {
	Code int
	// Name is the constant's name without the program's prefix.
	Name string
	// Meaning is what each README's row for the code says, without its
	// Markdown.
	Meaning string
	// NonRetryable (runner only): the same input gives the same answer, so
	// a Kubernetes Job fails at once (podFailurePolicy FailJob).
	NonRetryable bool
}

// Runner returns guestkit-runner's exit codes, in order of value.
func Runner() []Code {
	return []Code{
		{RunnerCompleted, "Completed", "the job completed; for a profile, compliant", false},
		{RunnerInternal, "Internal", "a bug: a panic or unexpected error", false},
		{RunnerNoncompliant, "Noncompliant", "noncompliant: a failed rule at or above severity_threshold", true},
		{RunnerBadSpec, "BadSpec", "the spec is invalid, unsupported, over 1 MiB, absent, or its URI can never be read", true},
		{RunnerBadImage, "BadImage", "the image is unsafe, broken, not what the spec says, or has no OS", true},
		{RunnerInfra, "Infra", "infrastructure failure", false},
		{RunnerTimeout, "Timeout", "execution.timeout_seconds expired (the appliance was killed), or execution.deadline passed", false},
		{RunnerUploadFailed, "UploadFailed", "the result could not be stored", false},
		{RunnerUsage, "Usage", "bad command line (EX_USAGE)", true},
	}
}

// Dispatcher returns guestkit-dispatcher's exit codes, in order of value.
func Dispatcher() []Code {
	return []Code{
		{DispatcherOK, "OK", "success (noncompliant images are findings, not failures, unless --fail-on-noncompliant)", false},
		{DispatcherJobsFailed, "JobsFailed", "once/sweep: a result is failed, timeout or rejected (or missing in a sweep); submit: an invalid or conflicting spec", false},
		{DispatcherNoncompliant, "Noncompliant", "once/sweep with --fail-on-noncompliant: an image is noncompliant", false},
		{DispatcherFailure, "Failure", "the dispatcher could not do its work: configuration, bucket, cluster, template", false},
		{DispatcherUsage, "Usage", "bad command line", false},
		{DispatcherInterrupted, "Interrupted", "interrupted", false},
	}
}
