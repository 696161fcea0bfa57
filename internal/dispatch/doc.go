// Package dispatch turns job specs into Kubernetes Jobs and failed Jobs
// into results: the pure logic of guestkit-dispatcher, with no API calls.
//
//   - JobName names the Job of a spec, deterministically: creating a Job
//     that already exists means "already dispatched".
//   - Builder renders templates/job.yaml.tmpl (or an operator's copy) into
//     a batch/v1 Job and checks what the dispatcher relies on.
//   - Order sorts pending specs: priority, then age, then job_id.
//   - ResultFromJob writes the result of a Job that failed without one
//     (deadline, backoff limit, podFailurePolicy, image pull errors).
//
// # Images
//
// Where the runner finds the disk image depends on the spec's
// payload.data.image (see ImageSourceOf):
//
//   - s3:// and minio:// (ImageBucket): the runner downloads the object
//     into its scratch emptyDir. With JobInput.ImageURL (a presigned GET,
//     what guestkit-dispatcher passes by default) it needs no bucket
//     credentials; without it, it uses the pod's: workload identity (IRSA,
//     ...) of BuilderConfig.ServiceAccount, or the keys of
//     BuilderConfig.SecretRef, with the endpoint from BuilderConfig.Env
//     (AWS_ENDPOINT_URL_S3, MINIO_ENDPOINT). The spec is never rewritten:
//     it keeps its digest, and the result names the image the submitter
//     wrote; the spec's checksum is verified on the download either way.
//     The spec and the result are presigned URLs too (JobInput.SpecURI,
//     ResultURI, ReportURI).
//   - http:// and https:// (ImageHTTP): the runner downloads it; nothing
//     to mount.
//   - path, or file:///path (ImageHostPath): a file on the node. The
//     directory routing.affinity.disk_locality (else the HostPathRoots
//     entry that holds the path) is mounted read-only from the node at the
//     same path, and GUESTKIT_IMAGE names the file. Only directories under
//     BuilderConfig.HostPathRoots can be mounted; with none, such specs
//     are refused. routing.node_selector and routing.worker_pool say which
//     nodes have the file.
//   - pvc://CLAIM/PATH (ImagePVC): the claim, in the Job's namespace, is
//     mounted read-only at /images/CLAIM and GUESTKIT_IMAGE is
//     /images/CLAIM/PATH.
//
// Mounted images must be readable by the runner's user (uid 65532, gid
// 65532): fsGroup is not set, because it would make the kubelet chown
// whole volumes.
package dispatch
