// Package runnerenv names the environment an executor gives each runner it
// launches: the variables that point a runner at its job. Both executors
// (the Job template and the local one) set them for every job, so no
// operator setting and no inherited variable may override them.
package runnerenv

import "slices"

// Set by every executor for each job.
const (
	Spec       = "GUESTKIT_SPEC"        // the spec's URI (a presigned GET on Kubernetes)
	Result     = "GUESTKIT_RESULT"      // where the result goes
	Report     = "GUESTKIT_REPORT"      // where SARIF or JUnit reports go
	JobID      = "GUESTKIT_JOB_ID"      // the spec's job_id
	Accel      = "GUESTKIT_ACCEL"       // auto, kvm or tcg
	Image      = "GUESTKIT_IMAGE"       // a mounted image's path
	ImageURL   = "GUESTKIT_IMAGE_URL"   // a presigned GET of a bucket image
	ScratchDir = "GUESTKIT_SCRATCH_DIR" // downloads, sockets, overlays
	TmpDir     = "TMPDIR"               // the scratch folder too
	// The pod that runs the job, for the result's kubernetes block.
	PodName      = "POD_NAME"
	PodNamespace = "POD_NAMESPACE"
	NodeName     = "NODE_NAME"
	JobName      = "JOB_NAME"
)

// The runner's network guard for the spec's own http(s) image URL
// (guestkit-runner run --net-guard, --net-allow).
const (
	NetGuard = "GUESTKIT_NET_GUARD" // true: refuse non-public addresses
	NetAllow = "GUESTKIT_NET_ALLOW" // comma-separated CIDRs exempt from it
)

// Set by the Job template for the pod as a whole; a local runner keeps the
// dispatcher's (its libguestfs cache and backend are the host's).
const (
	Home     = "HOME"
	CacheDir = "LIBGUESTFS_CACHEDIR"
	Backend  = "LIBGUESTFS_BACKEND"
)

// PerJob lists the variables every executor sets for each job.
func PerJob() []string {
	return []string{Spec, Result, Report, JobID, Accel, Image, ImageURL, ScratchDir, TmpDir,
		PodName, PodNamespace, NodeName, JobName}
}

// Pod lists PerJob and the variables the Job template sets for the pod.
func Pod() []string { return append(PerJob(), Home, CacheDir, Backend) }

// IsPerJob says whether name is one of PerJob.
func IsPerJob(name string) bool { return slices.Contains(PerJob(), name) }
