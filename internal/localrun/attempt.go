package localrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
)

// pipeWait bounds the wait for the end of stderr once the runner's group
// is dead: only a process that left the group can still hold it open.
const pipeWait = 2 * time.Second

// outcome is how one attempt ended.
type outcome struct {
	attempt           int
	pid               int
	started, finished time.Time
	// limit is how long the attempt could run before it was killed.
	limit time.Duration
	// exitCode is the runner's exit status, or 128+signal when a signal
	// killed it (as a shell and Kubernetes report it); -1 when it did not
	// start.
	exitCode int
	signal   syscall.Signal
	startErr error // the process could not be started
	timedOut bool  // killed for running past limit
	stopped  bool  // killed because the executor stopped
	// deadlinePassed: not retried because execution.deadline passed.
	deadlinePassed bool
	stderr         stderrCapture
}

// ends reports whether the attempt ends the job: a success or an answer
// that retrying cannot change.
func (o *outcome) ends() bool {
	if o.startErr != nil || o.signal != 0 || o.timedOut {
		return false
	}
	return o.exitCode == result.ExitCompleted || slices.Contains(result.NonRetryableExitCodes(), int32(o.exitCode))
}

func (o *outcome) fields() logrus.Fields {
	f := logrus.Fields{"attempt": o.attempt}
	switch {
	case o.startErr != nil:
		f["error"] = o.startErr.Error()
	case o.signal != 0:
		f["signal"] = o.signal.String()
	default:
		f["exit_code"] = o.exitCode
	}
	if o.pid != 0 {
		f["pid"] = o.pid
	}
	if o.timedOut {
		f["killed_after"] = o.limit.String()
	}
	return f
}

// limit is how long an attempt may run: timeout_seconds, or less when
// execution.deadline comes first, plus Grace.
func (x *Executor) limit(e *intake.Entry) time.Duration {
	d := e.Job.Timeout()
	if dl, ok := e.Job.Deadline(); ok {
		d = max(min(d, dl.Sub(x.cfg.Now())), 0)
	}
	return d + x.cfg.Grace
}

// runnerArgs is the runner's command line for one attempt: the job's
// objects granted for the attempt's life (presigned URLs in a remote
// bucket, file URIs in a folder), never the dispatcher's credentials, and
// the image as the policy admitted it.
func (x *Executor) runnerArgs(ctx context.Context, e *intake.Entry, limit time.Duration) ([]string, error) {
	g, err := controller.Presign(ctx, x.cfg.Store, x.cfg.Stores, e, limit+time.Hour)
	if err != nil {
		return nil, err
	}
	args := []string{"run", "--spec", g.Spec, "--result", g.Result, "--job-id", e.JobID}
	if g.Report != "" {
		args = append(args, "--report", g.Report)
	}
	switch img := e.Admission.Image; {
	case img.Kind == spec.ImageHostPath:
		args = append(args, "--image", img.LocalPath)
	case g.ImageURL != "":
		args = append(args, "--image-url", g.ImageURL)
		if g.Image.ETag != "" {
			args = append(args, "--image-etag", g.Image.ETag)
		}
		if g.Image.VersionID != "" {
			args = append(args, "--image-version", g.Image.VersionID)
		}
		if g.Image.Size > 0 {
			args = append(args, "--image-size", strconv.FormatInt(g.Image.Size, 10))
		}
		if g.Image.Attested != "" {
			args = append(args, "--image-attested", g.Image.Attested)
		}
	}
	return args, nil
}

// attempt runs the runner once, in its own process group and scratch
// folder, and returns when the whole group is dead.
func (x *Executor) attempt(ctx context.Context, e *intake.Entry, n int) *outcome {
	o := &outcome{attempt: n, exitCode: -1, limit: x.limit(e), started: x.cfg.Now()}
	defer func() { o.finished = x.cfg.Now() }()

	scratch, err := os.MkdirTemp(x.cfg.ScratchDir, "guestkit-run-")
	if err != nil {
		o.startErr = fmt.Errorf("scratch folder for job %s: %w", e.JobID, err)
		return o
	}
	defer func() {
		if err := os.RemoveAll(scratch); err != nil {
			x.log.WithError(err).WithField("scratch", scratch).Warn("scratch folder not removed")
		}
	}()
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		o.startErr = fmt.Errorf("stderr pipe for job %s: %w", e.JobID, err)
		return o
	}
	defer stderrR.Close()

	args, err := x.runnerArgs(ctx, e, o.limit)
	if err != nil {
		o.startErr = fmt.Errorf("grant job %s its objects: %w", e.JobID, err)
		return o
	}
	cmd := exec.Command(x.runner, args...)
	cmd.Env = x.attemptEnv(scratch)
	cmd.Dir = scratch
	// A file, not a Writer: Wait then returns when the runner exits, not
	// when the last holder of the pipe (qemu) lets go of it.
	cmd.Stderr = stderrW
	cmd.SysProcAttr = procAttr()
	err = cmd.Start()
	stderrW.Close()
	if err != nil {
		o.startErr = fmt.Errorf("start runner %s for job %s: %w", x.runner, e.JobID, err)
		return o
	}
	o.pid = cmd.Process.Pid
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(&o.stderr, stderrR)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	x.log.WithFields(logrus.Fields{"job_id": e.JobID, "attempt": n, "pid": o.pid}).Debug("runner started")

	timer := time.NewTimer(o.limit)
	var werr error
	select {
	case werr = <-exited:
	case <-timer.C:
		o.timedOut = true
		werr = x.terminate(o.pid, exited)
	case <-ctx.Done():
		o.stopped = true
		signalGroup(o.pid, syscall.SIGKILL)
		werr = <-exited
	}
	timer.Stop()
	// What the runner left behind (qemu, libguestfs' recovery process)
	// dies with it, as a container's processes do.
	signalGroup(o.pid, syscall.SIGKILL)
	wait := time.NewTimer(pipeWait)
	select {
	case <-copied:
	case <-wait.C:
		stderrR.Close() // ends the copy
		<-copied
	}
	wait.Stop()
	o.exitCode, o.signal = exitStatus(werr)
	return o
}

// terminate asks the runner's group to stop, then kills it after
// TermGrace; it returns the runner's Wait error.
func (x *Executor) terminate(pid int, exited <-chan error) error {
	signalGroup(pid, syscall.SIGTERM)
	t := time.NewTimer(x.cfg.TermGrace)
	defer t.Stop()
	select {
	case err := <-exited:
		return err
	case <-t.C:
		signalGroup(pid, syscall.SIGKILL)
		return <-exited
	}
}

// signalGroup signals the process group that pid leads. An empty group
// (ESRCH) is fine.
func signalGroup(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig)
}

// exitStatus decodes cmd.Wait's error: the exit code, or 128+signal and
// the signal.
func exitStatus(err error) (int, syscall.Signal) {
	if err == nil {
		return 0, 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return -1, 0
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), ws.Signal()
	}
	return ee.ExitCode(), 0
}

// describe says in a few words how the attempt ended.
func (o *outcome) describe() string {
	switch {
	case o.startErr != nil:
		return "the runner did not start: " + o.startErr.Error()
	case o.timedOut && o.signal != 0:
		return fmt.Sprintf("runner process %d ran past %s and was killed (signal %d)", o.pid, o.limit, int(o.signal))
	case o.timedOut:
		return fmt.Sprintf("runner process %d ran past %s, was told to stop and exited %d", o.pid, o.limit, o.exitCode)
	case o.signal != 0:
		return fmt.Sprintf("runner process %d was killed by signal %d (%s)", o.pid, int(o.signal), o.signal)
	}
	return "runner process " + strconv.Itoa(o.pid) + " exited " + strconv.Itoa(o.exitCode)
}
