// Package runnerenv names the environment an executor gives each runner it
// launches: the variables that point a runner at its job. Both executors
// (the Job template and the local one) set them for every job, so no
// operator setting and no inherited variable may override them.
package runnerenv

import (
	"slices"
	"strings"
)

// Set by every executor for each job.
const (
	Spec     = "GUESTKIT_SPEC"      // the spec's URI (a presigned GET on Kubernetes)
	Result   = "GUESTKIT_RESULT"    // where the result goes
	Report   = "GUESTKIT_REPORT"    // where SARIF, JUnit or SBOM reports go
	JobID    = "GUESTKIT_JOB_ID"    // the spec's job_id
	Accel    = "GUESTKIT_ACCEL"     // auto, kvm or tcg
	Backend  = "GUESTKIT_BACKEND"   // auto, direct or appliance
	Image    = "GUESTKIT_IMAGE"     // a mounted image's path
	ImageURL = "GUESTKIT_IMAGE_URL" // a presigned GET of a bucket image
	// What the dispatcher saw of a bucket image when it admitted the spec:
	// the runner pins its reads to it and trusts the attested digest.
	ImageETag     = "GUESTKIT_IMAGE_ETAG"
	ImageVersion  = "GUESTKIT_IMAGE_VERSION"
	ImageSize     = "GUESTKIT_IMAGE_SIZE"
	ImageAttested = "GUESTKIT_IMAGE_ATTESTED" // store_checksum:HEX or sidecar:HEX
	// How the runner reads and verifies a remote image, and how much of
	// the scratch emptyDir it may fill with a download.
	ImageAccess   = "GUESTKIT_IMAGE_ACCESS"
	Verify        = "GUESTKIT_VERIFY"
	DownloadLimit = "GUESTKIT_DOWNLOAD_LIMIT"
	ScratchDir    = "GUESTKIT_SCRATCH_DIR" // downloads, sockets, overlays
	TmpDir        = "TMPDIR"               // the scratch folder too
	// The pod that runs the job, for the result's kubernetes block.
	PodName      = "POD_NAME"
	PodNamespace = "POD_NAMESPACE"
	NodeName     = "NODE_NAME"
	JobName      = "JOB_NAME"
)

// Values of ImageAccess: how a runner reaches a bucket or http(s) image.
const (
	// AccessAuto streams, and downloads (bounded by DownloadLimit) only
	// from a server that does not honour Range.
	AccessAuto = "auto"
	// AccessStream never downloads: a server without Range fails the job.
	AccessStream = "stream"
	// AccessDownload copies the whole object to scratch first and hashes
	// that copy.
	AccessDownload = "download"
)

// ImageAccesses lists the values of ImageAccess.
func ImageAccesses() []string { return []string{AccessAuto, AccessStream, AccessDownload} }

// Values of Verify: how a runner checks a spec's checksum of a streamed
// image.
const (
	// VerifyAuto takes what the store attests (its full-object sha256,
	// else a sidecar), and hashes the whole object only when nothing is.
	VerifyAuto = "auto"
	// VerifyFull always hashes every byte of the object.
	VerifyFull = "full"
	// VerifyAttested takes what the store attests and, when nothing is,
	// reports the image as not verified rather than read it whole.
	VerifyAttested = "attested"
)

// Verifies lists the values of Verify.
func Verifies() []string { return []string{VerifyAuto, VerifyFull, VerifyAttested} }

// The runner's network guard for the spec's own http(s) image URL
// (guestkit-runner run --net-guard, --net-allow); every executor turns it
// on, with the networks the operator allowed.
const (
	NetGuard = "GUESTKIT_NET_GUARD" // true: refuse non-public addresses
	NetAllow = "GUESTKIT_NET_ALLOW" // comma-separated CIDRs exempt from it
)

// Set by the Job template for the pod as a whole; a local runner keeps the
// dispatcher's (its libguestfs cache and backend are the host's).
const (
	Home              = "HOME"
	CacheDir          = "LIBGUESTFS_CACHEDIR"
	LibguestfsBackend = "LIBGUESTFS_BACKEND"
)

// PerJob lists the variables every executor sets for each job.
func PerJob() []string {
	return []string{Spec, Result, Report, JobID, Accel, Backend, Image, ImageURL,
		ImageETag, ImageVersion, ImageSize, ImageAttested, ImageAccess, Verify, DownloadLimit, ScratchDir, TmpDir,
		PodName, PodNamespace, NodeName, JobName, NetGuard, NetAllow}
}

// Settings lists the runner's own variables that an operator may set for
// the runners it launches (the rest of the runner's variables are PerJob).
func Settings() []string {
	return []string{
		"GUESTKIT_LOG_FORMAT", "GUESTKIT_LOG_LEVEL", "GUESTKIT_MEMORY_MB", "GUESTKIT_MAX_VIRTUAL_SIZE",
		"GUESTKIT_UPLOAD_ATTEMPTS", "GUESTKIT_UPLOAD_BACKOFF", "GUESTKIT_REPORT_FORMAT", "GUESTKIT_READ_TIMEOUT",
		// The inspect and profile commands' own; run reads them from the spec.
		"GUESTKIT_FORMAT", "GUESTKIT_OUTPUT", "GUESTKIT_PROFILES", "GUESTKIT_SEVERITY_THRESHOLD",
		"GUESTKIT_FAIL_ON_CRITICAL", "GUESTKIT_INCLUDE_REMEDIATION", "GUESTKIT_SUMMARY", "GUESTKIT_TIMEOUT",
	}
}

// Host says whether a variable of the dispatcher's host environment passes
// to a local runner: what a process needs to run and what libguestfs and
// qemu read, never credentials (AWS_*, MINIO_*, KUBECONFIG, tokens). The
// runner's own settings (Settings) pass too.
func Host(name string) bool {
	switch name {
	case "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", LibguestfsBackend, CacheDir:
		return true
	}
	for _, p := range []string{"LC_", "LIBGUESTFS_", "SUPERMIN_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return slices.Contains(Settings(), name)
}

// Pod lists PerJob and the variables the Job template sets for the pod.
func Pod() []string { return append(PerJob(), Home, CacheDir, LibguestfsBackend) }

// IsPerJob says whether name is one of PerJob.
func IsPerJob(name string) bool { return slices.Contains(PerJob(), name) }
