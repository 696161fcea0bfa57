package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/util/wait"

	"guestkit.io/batch/internal/netguard"
	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/remote"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// RunCmd runs one job spec and stores its result.
type RunCmd struct {
	Spec          string        `required:"" help:"Spec URI: a path, file://, s3://BUCKET/KEY, minio://BUCKET/KEY or a presigned https:// URL." env:"GUESTKIT_SPEC"`
	Result        string        `required:"" help:"Result URI (same schemes)." env:"GUESTKIT_RESULT"`
	Image         string        `help:"Local image path that overrides the spec's image (the dispatcher's download, hostPath or PVC mount)." env:"GUESTKIT_IMAGE"`
	ImageURL      string        `name:"image-url" help:"URL to download the spec's bucket or http image from instead (a presigned GET from the dispatcher); the result still names the spec's image." env:"GUESTKIT_IMAGE_URL"`
	ImageAccess   string        `name:"image-access" help:"How to read a bucket or http(s) image: auto (stream: range reads of only the blocks the inspection needs; download the whole image only from a server that does not serve ranges), stream (never download) or download (copy it whole to --scratch first, and hash that copy)." default:"auto" enum:"${accesses}" env:"GUESTKIT_IMAGE_ACCESS"`
	Verify        string        `help:"How to verify the spec's image checksum of a streamed image: auto (the bucket's own full-object sha256, else a KEY.sha256 sidecar newer than the image, else hash the whole object beside the inspection), full (always hash the whole object) or attested (never read it whole: not verified when nothing is attested)." default:"auto" enum:"${verifies}" env:"GUESTKIT_VERIFY"`
	DownloadLimit int64         `name:"download-limit" help:"Largest image, in bytes, to download to --scratch when it cannot be streamed (0: only --max-virtual-size bounds it; -1: never download)." default:"0" env:"GUESTKIT_DOWNLOAD_LIMIT"`
	ReadTimeout   time.Duration `name:"read-timeout" help:"How long a read of a streamed image waits for the server's response headers, or for its next body byte, before the request is dropped and retried." default:"30s" env:"GUESTKIT_READ_TIMEOUT"`
	ImageETag     string        `name:"image-etag" help:"The image object's ETag as the dispatcher saw it: every read is pinned to it." env:"GUESTKIT_IMAGE_ETAG"`
	ImageVersion  string        `name:"image-version" help:"The image object's version id as the dispatcher saw it, in a versioned bucket: every read is pinned to it." env:"GUESTKIT_IMAGE_VERSION"`
	ImageSize     int64         `name:"image-size" help:"The image object's size in bytes as the dispatcher saw it (0: unknown)." default:"0" env:"GUESTKIT_IMAGE_SIZE"`
	ImageAttested string        `name:"image-attested" help:"The image's sha256 as its store attests it, from the dispatcher: store_checksum:HEX or sidecar:HEX." env:"GUESTKIT_IMAGE_ATTESTED"`
	JobID         string        `name:"job-id" help:"Job id to report when the spec has no valid job_id (unreadable, malformed or invalid)." env:"GUESTKIT_JOB_ID"`
	Accel         string        `help:"Accelerator: auto, kvm or tcg." default:"auto" enum:"auto,kvm,tcg" env:"GUESTKIT_ACCEL"`
	Backend       string        `help:"How to read the disk: auto (direct, falling back to the appliance for what direct does not read), direct (in Go, no VM; never falls back) or appliance (libguestfs). A spec's payload.data.options.backend overrides it." default:"auto" enum:"${backends}" env:"GUESTKIT_BACKEND"`
	Memory        int           `help:"Appliance memory in MiB (0: libguestfs default)." default:"0" env:"GUESTKIT_MEMORY_MB"`

	MaxVirtualSize int64  `name:"max-virtual-size" help:"Refuse images whose virtual size exceeds this many bytes (0: the default 8 TiB, -1: no limit)." default:"0" env:"GUESTKIT_MAX_VIRTUAL_SIZE"`
	Scratch        string `help:"Directory for downloaded images." env:"GUESTKIT_SCRATCH_DIR"`

	// Off by default: a runner invoked by hand trusts its command line; the
	// dispatcher turns it on for strangers' specs.
	NetGuard bool   `name:"net-guard" help:"Refuse to download the spec's own http(s) image from loopback, link-local (cloud metadata), private, multicast or unspecified addresses, and refuse its redirects." env:"GUESTKIT_NET_GUARD"`
	NetAllow string `name:"net-allow" help:"Comma-separated CIDRs that --net-guard lets through (an in-cluster image server, say)." env:"GUESTKIT_NET_ALLOW"`

	UploadAttempts int           `help:"Attempts to store the result." default:"6" env:"GUESTKIT_UPLOAD_ATTEMPTS"`
	UploadBackoff  time.Duration `help:"First retry delay; it doubles each time." default:"1s" env:"GUESTKIT_UPLOAD_BACKOFF"`

	PodName   string `help:"Pod name (downward API)." env:"POD_NAME"`
	Namespace string `help:"Pod namespace (downward API)." env:"POD_NAMESPACE"`
	NodeName  string `help:"Node name (downward API)." env:"NODE_NAME"`
	JobName   string `help:"Kubernetes Job name." env:"JOB_NAME"`

	ReportFormat string `help:"Also write a report beside the result: sarif or junit (profile findings), cyclonedx or spdx (an SBOM of the packages); json writes none (default: the spec's output.format)." enum:",${report_formats}" default:"" env:"GUESTKIT_REPORT_FORMAT"`
	Report       string `help:"Report URI (default: the result URI with .sarif, .junit.xml, .cdx.json or .spdx.json instead of .json)." env:"GUESTKIT_REPORT"`
}

// storeReports writes SARIF, JUnit or SBOM reports beside the result.
func (c *RunCmd) storeReports(ctx context.Context, log *logrus.Entry, res *result.Result, format string) error {
	docs, err := runner.RenderReports(res, format)
	if runner.NothingToRender(err) {
		// Findings of an inspect job, or anything of a failed job: the
		// result says why.
		log.WithFields(logrus.Fields{"status": res.Status, "format": format}).Info("no report to store")
		return nil
	}
	if err != nil {
		return err
	}
	base := c.Report
	if base == "" {
		base = c.Result
	}
	// A bucket URI's settings (s3://b/key.json?endpoint=...) follow the key.
	query := ""
	if i := strings.IndexByte(base, '?'); i >= 0 && strings.Contains(base, "://") {
		base, query = base[:i], base[i:]
	}
	// --report names the first report (x.sarif, x.cdx.json): its own
	// extension comes off before .json, or x.cdx.json would be x.cdx.
	if c.Report != "" {
		base = strings.TrimSuffix(strings.TrimSuffix(base, result.Extension(format)), ".sarif")
	}
	base = strings.TrimSuffix(base, ".json")
	for i, d := range docs {
		uri := result.ReportName(base, format, i) + query
		if strings.HasPrefix(base, "http://") || strings.HasPrefix(base, "https://") {
			if c.Report == "" || i > 0 {
				return fmt.Errorf("report %d of %d: a presigned result URL cannot name more reports; pass --report", i+1, len(docs))
			}
			uri = c.Report
		}
		if err := store.PutURI(ctx, uri, d); err != nil {
			return err
		}
		log.WithField("report", redact.URL(uri)).Info("report stored")
	}
	return nil
}

// Validate refuses a result URI that can never be written (unsupported
// scheme, no key, a key with ".." or control characters) before the job
// runs for nothing: the command line is wrong, so the exit code is
// ExitUsage. A bad spec URI is not refused here: a rejected result can
// still be stored for it (see execute).
func (c *RunCmd) Validate() error {
	if err := checkURI(c.Result); err != nil {
		return fmt.Errorf("--result: %w", err)
	}
	if c.UploadAttempts < 1 {
		return fmt.Errorf("--upload-attempts: %d, want at least 1", c.UploadAttempts)
	}
	if _, err := netguard.ParseCIDRs(c.NetAllow); err != nil {
		return fmt.Errorf("--net-allow: %w", err)
	}
	if _, err := store.ParseAttestation(c.ImageAttested); err != nil {
		return fmt.Errorf("--image-attested: %w", err)
	}
	if c.ImageSize < 0 {
		return fmt.Errorf("--image-size: %d, want 0 or more", c.ImageSize)
	}
	if c.ReadTimeout < time.Second {
		return fmt.Errorf("--read-timeout: %s, want at least 1s", c.ReadTimeout)
	}
	return nil
}

// imageClient downloads the spec's own http(s) image: nil (store's
// default) unless --net-guard.
func (c *RunCmd) imageClient() *http.Client {
	if !c.NetGuard {
		return nil
	}
	allow, _ := netguard.ParseCIDRs(c.NetAllow) // Validate checked it
	// No overall timeout: the job's own bounds the download.
	return netguard.Guard{Allow: allow}.HTTPClient(0)
}

// Run reads the spec, executes it and stores the result. The exit code is
// the result's, or ExitUploadFailed when the result could not be stored, in
// which case the result is written to stderr, as one JSON line, so that it
// is not lost: it is in the pod's log.
func (c *RunCmd) Run(ctx context.Context, deps Deps) error {
	log := deps.Log.WithFields(logrus.Fields{"spec": redact.URL(c.Spec), "result": redact.URL(c.Result)})
	res, specFormat := c.execute(ctx, deps)
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	// The upload gets its own time: a job that timed out still reports.
	upCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	if err := c.upload(upCtx, log, b); err != nil {
		log.WithError(err).Error("result upload failed for good; the result is the next line on stderr")
		line, _ := json.Marshal(res)
		fmt.Fprintf(deps.Stderr, "%s\n", line)
		return &ExitError{Code: result.ExitUploadFailed, Err: err, logged: true}
	}
	log.WithFields(logrus.Fields{"job_id": res.JobID, "status": res.Status, "exit_code": res.ExitCode}).Info("result stored")
	format := c.ReportFormat
	if format == "" {
		format = specFormat
	}
	if result.IsReport(format) {
		// The JSON result holds everything and is stored; a report that
		// cannot be written is logged, not allowed to hide the result.
		if err := c.storeReports(upCtx, log, res, format); err != nil {
			log.WithError(err).Error("report not stored; the result has the same findings")
		}
	}
	return exitErr(res.ExitCode, nil)
}

func (c *RunCmd) execute(ctx context.Context, deps Deps) (*result.Result, string) {
	jobID := c.JobID
	if jobID == "" {
		jobID = "unknown"
	}
	data, err := c.readSpec(ctx)
	if err != nil {
		res := runner.NewResult(jobID, deps.Version, time.Now())
		res.Status = result.StatusFailed
		res.Error = &result.Error{Code: result.CodeInfrastructure, Phase: result.PhaseSpec, Retryable: true, Message: err.Error()}
		// A spec that does not exist, is too large or has a URI that can
		// never be read is rejected (exit 3), not failed: the dispatcher
		// writes the spec before it creates the Job, and stores are
		// read-after-write consistent, so a missing spec will still be
		// missing on the next attempt. Any other error (network, 5xx,
		// credentials) may pass and is retryable (exit 5).
		if errors.Is(err, store.ErrTooLarge) || errors.Is(err, store.ErrInvalidKey) || errors.Is(err, store.ErrNotFound) || errors.Is(err, errBadSpecURI) {
			res.Status = result.StatusRejected
			res.Error.Code, res.Error.Retryable = result.CodeSpecInvalid, false
		}
		res.Kubernetes = c.kubernetes()
		res.Finish(time.Now(), false)
		return res, ""
	}
	job, warnings, err := spec.Load(data)
	if err != nil {
		// The spec's own job_id names the result, unless it is itself
		// one of the problems: then --job-id does.
		if job != nil && job.JobID != "" && !hasProblem(err, "job_id") {
			jobID = job.JobID
		}
		res := runner.Reject(jobID, deps.Version, time.Now(), err)
		res.Kubernetes = c.kubernetes()
		if job != nil {
			res.Operation = job.Operation
		}
		return res, ""
	}
	if c.JobID != "" && c.JobID != job.JobID {
		warnings = append(warnings, spec.Warning{Field: "job_id", Message: fmt.Sprintf("differs from --job-id %q; the spec's job_id is reported", c.JobID)})
	}
	for _, w := range warnings {
		deps.Log.WithFields(logrus.Fields{"job_id": job.JobID, "field": w.Field}).Warn(w.Message)
	}
	attested, _ := store.ParseAttestation(c.ImageAttested) // Validate checked it
	if attested.SHA256 != "" {
		attested.Source = "the dispatcher's read of the bucket"
	}
	return runner.Execute(ctx, job, warnings, runner.Config{
		Version: deps.Version, Backend: c.Backend, Accel: c.Accel, MemoryMB: c.Memory, ImagePath: c.Image, ImageURL: c.ImageURL, HTTP: c.imageClient(),
		ImageAccess: c.ImageAccess, Verify: c.Verify, DownloadLimit: c.DownloadLimit, ReadTimeout: c.ReadTimeout, Attested: attested,
		ImageIdentity: remote.Identity{ETag: c.ImageETag, VersionID: c.ImageVersion, Size: c.ImageSize},
		ScratchDir:    c.Scratch, MaxVirtualSize: c.MaxVirtualSize, Kubernetes: c.kubernetes(), Log: deps.Log, Launch: deps.Launch, OpenDirect: deps.OpenDirect,
	}), job.OutputFormat()
}

// errBadSpecURI marks a spec URI that no retry can read.
var errBadSpecURI = errors.New("bad spec URI")

// readSpec reads the spec, refusing more than spec.MaxSize bytes.
func (c *RunCmd) readSpec(ctx context.Context) ([]byte, error) {
	if err := checkURI(c.Spec); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadSpecURI, err)
	}
	data, err := store.GetURI(ctx, c.Spec, spec.MaxSize)
	if errors.Is(err, store.ErrTooLarge) {
		return nil, fmt.Errorf("spec is over the %d-byte (1 MiB) limit: %w", spec.MaxSize, err)
	}
	return data, err
}

// checkURI refuses an object URI that no store can ever read or write: an
// unsupported scheme, no key, or a key (a file name, for paths) that
// store.ValidateKey refuses. Presigned http(s) URLs are the server's to judge.
func checkURI(uri string) error {
	if strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://") {
		return nil
	}
	_, key, err := store.SplitURI(uri)
	if err != nil {
		return err
	}
	return store.ValidateKey(key)
}

// hasProblem reports whether a validation error names field.
func hasProblem(err error, field string) bool {
	var ve *spec.ValidationError
	if !errors.As(err, &ve) {
		return false
	}
	for _, p := range ve.Problems {
		if p.Field == field {
			return true
		}
	}
	return false
}

func (c *RunCmd) kubernetes() *result.Kubernetes {
	if c.PodName == "" && c.JobName == "" && c.NodeName == "" {
		return nil
	}
	return &result.Kubernetes{Namespace: c.Namespace, Job: c.JobName, Pod: c.PodName, Node: c.NodeName}
}

// upload stores the result: up to UploadAttempts attempts, the delay
// starting at UploadBackoff and doubling, up to a minute, with 20% jitter.
// Invalid keys are not retried: they will never become valid. (wait.Backoff
// is not used: with a Cap it silently stops retrying once the delay reaches
// the cap, so --upload-backoff 45s would have meant 2 attempts.)
func (c *RunCmd) upload(ctx context.Context, log *logrus.Entry, b []byte) error {
	delay := min(c.UploadBackoff, time.Minute)
	for attempt := 1; ; attempt++ {
		err := store.PutURI(ctx, c.Result, b)
		if err == nil {
			return nil
		}
		if errors.Is(err, store.ErrInvalidKey) || attempt >= c.UploadAttempts || ctx.Err() != nil {
			n := fmt.Sprintf("%d attempts", attempt)
			if attempt == 1 {
				n = "1 attempt"
			}
			return fmt.Errorf("store result after %s: %w", n, err)
		}
		log.WithFields(logrus.Fields{"attempt": attempt, "error": err}).Warn("result upload failed, retrying")
		t := time.NewTimer(wait.Jitter(delay, 0.2))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("store result after %d attempts, then %w: %w", attempt, ctx.Err(), err)
		case <-t.C:
		}
		delay = min(2*delay, time.Minute)
	}
}
