package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/util/wait"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// RunCmd runs one job spec and stores its result.
type RunCmd struct {
	Spec   string `required:"" help:"Spec URI: a path, file://, s3://BUCKET/KEY, minio://BUCKET/KEY or a presigned https:// URL." env:"GUESTKIT_SPEC"`
	Result string `required:"" help:"Result URI (same schemes)." env:"GUESTKIT_RESULT"`
	Image  string `help:"Local image path that overrides the spec's image (the dispatcher's download, hostPath or PVC mount)." env:"GUESTKIT_IMAGE"`
	JobID  string `name:"job-id" help:"Job id to report when the spec itself cannot be read." env:"GUESTKIT_JOB_ID"`
	Accel  string `help:"Accelerator: auto, kvm or tcg." default:"auto" enum:"auto,kvm,tcg" env:"GUESTKIT_ACCEL"`
	Memory int    `help:"Appliance memory in MiB (0: libguestfs default)." default:"0" env:"GUESTKIT_MEMORY_MB"`

	MaxVirtualSize int64  `name:"max-virtual-size" help:"Refuse images whose virtual size exceeds this many bytes (0: the default 8 TiB, -1: no limit)." default:"0" env:"GUESTKIT_MAX_VIRTUAL_SIZE"`
	Scratch        string `help:"Directory for downloaded images." env:"GUESTKIT_SCRATCH_DIR"`

	UploadAttempts int           `help:"Attempts to store the result." default:"6" env:"GUESTKIT_UPLOAD_ATTEMPTS"`
	UploadBackoff  time.Duration `help:"First retry delay; it doubles each time." default:"1s" env:"GUESTKIT_UPLOAD_BACKOFF"`

	PodName   string `help:"Pod name (downward API)." env:"POD_NAME"`
	Namespace string `help:"Pod namespace (downward API)." env:"POD_NAMESPACE"`
	NodeName  string `help:"Node name (downward API)." env:"NODE_NAME"`
	JobName   string `help:"Kubernetes Job name." env:"JOB_NAME"`
}

// Run reads the spec, executes it and stores the result. The exit code is
// the result's, or ExitUploadFailed when the result could not be stored, in
// which case the result is written to stderr so that it is not lost.
func (c *RunCmd) Run(ctx context.Context, deps Deps) error {
	log := deps.Log.WithFields(logrus.Fields{"spec": store.Redact(c.Spec), "result": store.Redact(c.Result)})
	res := c.execute(ctx, deps)
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	// The upload gets its own time: a job that timed out still reports.
	upCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	if err := c.upload(upCtx, log, b); err != nil {
		fmt.Fprintf(deps.Stderr, "%s\n", b)
		log.WithError(err).Error("result upload failed for good; the result is on stderr")
		return &ExitError{Code: result.ExitUploadFailed, Err: err}
	}
	log.WithFields(logrus.Fields{"job_id": res.JobID, "status": res.Status, "exit_code": res.ExitCode}).Info("result stored")
	return exitErr(res.ExitCode, nil)
}

func (c *RunCmd) execute(ctx context.Context, deps Deps) *result.Result {
	jobID := c.JobID
	if jobID == "" {
		jobID = "unknown"
	}
	data, err := store.GetURI(ctx, c.Spec, spec.MaxSize)
	if err != nil {
		res := runner.NewResult(jobID, deps.Version, time.Now())
		res.Status = result.StatusFailed
		res.Error = &result.Error{Code: result.CodeInfrastructure, Phase: result.PhaseSpec, Retryable: true, Message: err.Error()}
		if errors.Is(err, store.ErrTooLarge) || errors.Is(err, store.ErrInvalidKey) || errors.Is(err, store.ErrNotFound) {
			res.Status = result.StatusRejected
			res.Error.Code, res.Error.Retryable = result.CodeSpecInvalid, false
		}
		res.Kubernetes = c.kubernetes()
		runner.Finish(res, time.Now(), false)
		return res
	}
	job, warnings, err := spec.Load(data)
	if err != nil {
		if job != nil && job.JobID != "" && c.JobID == "" {
			jobID = job.JobID
		}
		res := runner.Reject(jobID, deps.Version, time.Now(), err)
		res.Kubernetes = c.kubernetes()
		if job != nil {
			res.Operation = job.Operation
		}
		return res
	}
	for _, w := range warnings {
		deps.Log.WithFields(logrus.Fields{"job_id": job.JobID, "field": w.Field}).Warn(w.Message)
	}
	return runner.Execute(ctx, job, warnings, runner.Config{
		Version: deps.Version, Accel: c.Accel, MemoryMB: c.Memory, ImagePath: c.Image,
		ScratchDir: c.Scratch, MaxVirtualSize: c.MaxVirtualSize, Kubernetes: c.kubernetes(), Log: deps.Log, Launch: deps.Launch,
	})
}

func (c *RunCmd) kubernetes() *result.Kubernetes {
	if c.PodName == "" && c.JobName == "" && c.NodeName == "" {
		return nil
	}
	return &result.Kubernetes{Namespace: c.Namespace, Job: c.JobName, Pod: c.PodName, Node: c.NodeName}
}

// upload stores the result with exponential backoff. Invalid keys are not
// retried: they will never become valid.
func (c *RunCmd) upload(ctx context.Context, log *logrus.Entry, b []byte) error {
	var last error
	attempt := 0
	backoff := wait.Backoff{Duration: c.UploadBackoff, Factor: 2, Jitter: 0.2, Steps: max(c.UploadAttempts, 1), Cap: time.Minute}
	err := wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		attempt++
		last = store.PutURI(ctx, c.Result, b)
		if last == nil {
			return true, nil
		}
		if errors.Is(last, store.ErrInvalidKey) {
			return false, last
		}
		log.WithFields(logrus.Fields{"attempt": attempt, "error": last}).Warn("result upload failed, retrying")
		return false, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("store result after %d attempts: %w", attempt, last)
	}
	return err
}
