package localrun

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/result/resulttest"
	"guestkit.io/batch/internal/runner/runnertest"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/store/storetest"
)

func TestSuccessKeepsTheRunnersResult(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Setenv("GUESTKIT_IMAGE", "/inherited/must-not-reach-the-runner.qcow2")
	f := newFixture(t, Config{Accel: "tcg", ExtraEnv: []string{"FAKE_EXTRA=yes"}})
	e := f.job("ok-1", nil, `
echo "$GUESTKIT_ACCEL|${GUESTKIT_IMAGE-unset}|$FAKE_EXTRA|$LIBGUESTFS_CACHEDIR|$TMPDIR" > "$FAKE_DIR/ok-1.env"
[ "$TMPDIR" = "$GUESTKIT_SCRATCH_DIR" ] && [ -d "$TMPDIR" ] && [ "$PWD" = "$TMPDIR" ] || exit 1
store_result completed 0
exit 0
`)
	f.launch(e)
	if got := f.x.Active(); got != 1 {
		t.Errorf("Active after Launch = %d, want 1", got)
	}
	f.wait()

	r := f.result(e)
	if r.Runner.Name != "guestkit-runner" || r.Runner.Version != "fake" || r.Status != result.StatusCompleted || r.JobID != "ok-1" {
		t.Errorf("result = %+v, want the fake runner's completed result", r)
	}
	if n := len(f.pids("ok-1")); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
	env, err := os.ReadFile(filepath.Join(f.dir, "ok-1.env"))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimSpace(string(env)), "|")
	if len(parts) != 5 || parts[0] != "tcg" || parts[1] != "unset" || parts[2] != "yes" || parts[3] == "" ||
		!strings.HasPrefix(parts[4], f.scratch+"/guestkit-run-") {
		t.Errorf("runner environment accel|image|extra|cachedir|tmpdir = %q", env)
	}
	emptyDir(t, f.scratch) // the attempt's scratch folder is gone
	if got := counter(t, f.m, "jobs_succeeded_total", "", ""); got != 1 {
		t.Errorf("jobs_succeeded_total = %v, want 1", got)
	}
	if got := counter(t, f.m, "jobs_failed_total", "", ""); got != 0 {
		t.Errorf("jobs_failed_total = %v, want 0", got)
	}
	if got := f.finished.Load(); got != 1 {
		t.Errorf("OnFinish called %d times, want 1", got)
	}
	if got := f.x.Active(); got != 0 {
		t.Errorf("Active after Wait = %d, want 0", got)
	}
	f.stop()
	noLeaks(t, before)
}

func TestNonRetryableExitWithoutResult(t *testing.T) {
	f := newFixture(t, Config{})
	e := f.job("bad-spec", map[string]any{"max_attempts": 3, "idempotency_key": "k-1"}, `
echo "level=error msg=\"spec has 2 problems\"" >&2
exit 3
`)
	f.launch(e)
	f.wait()

	if n := len(f.pids("bad-spec")); n != 1 {
		t.Errorf("%d attempts, want 1: exit 3 is not retryable", n)
	}
	r := f.result(e)
	if r.Runner.Name != result.DispatcherName || r.Runner.Version != "test" || r.Runner.Host == "" {
		t.Errorf("runner = %+v, want the dispatcher with a host", r.Runner)
	}
	if r.Status != result.StatusRejected || r.ExitCode != 3 || r.Error.Code != result.CodeSpecInvalid || r.Error.Phase != result.PhaseSchedule || r.Error.Retryable {
		t.Errorf("result %s exit %d error %+v, want rejected spec_invalid exit 3", r.Status, r.ExitCode, r.Error)
	}
	d := r.Error.Details
	if d["exit_code"] != "3" || d["attempts"] != "1" || d["max_attempts"] != "3" || d["log_tail"] != `level=error msg="spec has 2 problems"` {
		t.Errorf("details = %v", d)
	}
	if r.JobID != "bad-spec" || r.Operation != "guestkit.inspect" || r.Attempt != 1 || r.IdempotencyKey != "k-1" ||
		r.Image == nil || r.Image.URI != "/vms/bad-spec.qcow2" || r.FinishedAt.Before(r.StartedAt) {
		t.Errorf("result = %+v", r)
	}
	if got := counter(t, f.m, "jobs_failed_total", "", ""); got != 1 {
		t.Errorf("jobs_failed_total = %v, want 1", got)
	}
	if got := counter(t, f.m, "results_written_total", "status", "rejected"); got != 1 {
		t.Errorf("results_written_total{rejected} = %v, want 1", got)
	}
}

func TestRetryableExitUsesEveryAttempt(t *testing.T) {
	f := newFixture(t, Config{RetryBackoff: 50 * time.Millisecond})
	e := f.job("flaky", map[string]any{"max_attempts": 3}, `
echo "appliance failed to start" >&2
exit 5
`)
	start := time.Now()
	f.launch(e)
	f.wait()

	if n := len(f.pids("flaky")); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	// Back-off 50ms then 100ms.
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Errorf("3 attempts took %s, want at least the 150ms of back-off", el)
	}
	r := f.result(e)
	if r.Status != result.StatusFailed || r.ExitCode != 5 || r.Error.Code != result.CodeBackoffLimitExceeded || r.Attempt != 3 {
		t.Errorf("result %s exit %d attempt %d error %+v, want failed backoff_limit_exceeded exit 5 attempt 3", r.Status, r.ExitCode, r.Attempt, r.Error)
	}
	if d := r.Error.Details; d["attempts"] != "3" || d["exit_code"] != "5" || d["log_tail"] != "appliance failed to start" {
		t.Errorf("details = %v", d)
	}
	if !strings.Contains(r.Error.Message, "failed 3 times (max_attempts 3)") {
		t.Errorf("message = %q", r.Error.Message)
	}
}

func TestRetryStopsAtTheFirstStoredSuccess(t *testing.T) {
	f := newFixture(t, Config{})
	e := f.job("second-time", map[string]any{"max_attempts": 5}, `
if [ "$(wc -l < "$FAKE_DIR/second-time.pids")" -lt 2 ]; then exit 1; fi
store_result completed 0
`)
	f.launch(e)
	f.wait()
	if n := len(f.pids("second-time")); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
	if r := f.result(e); r.Runner.Name != "guestkit-runner" || r.Status != result.StatusCompleted {
		t.Errorf("result = %+v, want the runner's completed one", r)
	}
	if got := counter(t, f.m, "jobs_succeeded_total", "", ""); got != 1 {
		t.Errorf("jobs_succeeded_total = %v, want 1", got)
	}
}

func TestTimeoutKillsTheProcessGroup(t *testing.T) {
	f := newFixture(t, Config{})
	// The runner and its child ignore SIGTERM: only SIGKILL ends them.
	e := f.job("stuck", map[string]any{"max_attempts": 1, "timeout_seconds": 1}, `
trap '' TERM
echo "launching appliance" >&2
sleep 60 &
echo $! > "$FAKE_DIR/stuck.child"
wait
`)
	start := time.Now()
	f.launch(e)
	child := f.readInt("stuck.child")
	f.wait()
	el := time.Since(start)

	if el < 1400*time.Millisecond || el > 10*time.Second {
		t.Errorf("took %s, want timeout 1s + grace 100ms + SIGTERM grace 300ms", el)
	}
	if err := gone(child); err != nil {
		t.Errorf("the runner's child survived: %v", err)
	}
	if err := gone(f.pids("stuck")[0]); err != nil {
		t.Error(err)
	}
	r := f.result(e)
	if r.Status != result.StatusTimeout || r.Error.Code != result.CodeDeadlineExceeded || r.ExitCode != 137 {
		t.Errorf("result %s exit %d error %+v, want timeout deadline_exceeded exit 137", r.Status, r.ExitCode, r.Error)
	}
	if d := r.Error.Details; d["signal"] != "9" || d["killed_after"] != "1.1s" || d["log_tail"] != "launching appliance" {
		t.Errorf("details = %v", d)
	}
	emptyDir(t, f.scratch)
}

func TestTimeoutLetsTheRunnerStoreItsResult(t *testing.T) {
	f := newFixture(t, Config{TermGrace: 5 * time.Second})
	e := f.job("slow", map[string]any{"max_attempts": 1, "timeout_seconds": 1}, `
trap 'store_result failed 5; exit 5' TERM
sleep 60 &
wait
`)
	f.launch(e)
	f.wait()
	r := f.result(e)
	if r.Runner.Name != "guestkit-runner" || r.Status != result.StatusFailed || r.ExitCode != 5 {
		t.Errorf("result = %+v, want the runner's own, stored on SIGTERM", r)
	}
	if got := counter(t, f.m, "jobs_failed_total", "", ""); got != 1 {
		t.Errorf("jobs_failed_total = %v, want 1", got)
	}
}

func TestUploadFailedResultRecoveredFromStderr(t *testing.T) {
	f := newFixture(t, Config{})
	// Larger than the stderr tail: only the result line capture keeps it.
	big := strings.Repeat("x", 3*TailSize)
	line := func(jobID string) string {
		b, err := json.Marshal(&result.Result{
			APIVersion: result.APIVersion, JobID: jobID, Status: result.StatusCompleted,
			Runner: result.Runner{Name: "guestkit-runner", Version: "fake"}, Data: json.RawMessage(`{"blob":"` + big + `"}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for id, jobID := range map[string]string{"lost-upload": "lost-upload", "foreign": "someone-else"} {
		if err := os.WriteFile(filepath.Join(f.dir, id+".line"), []byte(line(jobID)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := func(id string) string {
		return `echo "level=info msg=inspecting" >&2
cat "$FAKE_DIR/` + id + `.line" >&2
echo "level=error msg=\"result upload failed for good\"" >&2
exit 7
`
	}
	ok := f.job("lost-upload", map[string]any{"max_attempts": 2}, script("lost-upload"))
	foreign := f.job("foreign", map[string]any{"max_attempts": 1}, script("foreign"))
	f.launch(ok)
	f.launch(foreign)
	f.wait()

	if n := len(f.pids("lost-upload")); n != 2 {
		t.Errorf("%d attempts, want 2: exit 7 is retried", n)
	}
	r := f.result(ok)
	var data struct{ Blob string }
	if err := json.Unmarshal(r.Data, &data); err != nil {
		t.Fatal(err)
	}
	if r.Runner.Name != "guestkit-runner" || r.Status != result.StatusCompleted || r.JobID != "lost-upload" || data.Blob != big {
		t.Errorf("result %s by %s, %d data bytes: want the runner's completed result from stderr", r.Status, r.Runner.Name, len(data.Blob))
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "recovered this result from the stderr of runner process") {
		t.Errorf("warnings = %q", r.Warnings)
	}

	// Another job's result on stderr is not this job's.
	r = f.result(foreign)
	if r.Runner.Name != result.DispatcherName || r.Status != result.StatusFailed || r.ExitCode != 7 || r.Error.Code != result.CodeBackoffLimitExceeded {
		t.Errorf("result %s by %s exit %d error %+v, want the dispatcher's failed exit 7", r.Status, r.Runner.Name, r.ExitCode, r.Error)
	}
	if tail := r.Error.Details["log_tail"]; len(tail) > result.MaxDetail || !strings.HasSuffix(tail, `msg="result upload failed for good"`) {
		t.Errorf("log_tail is %d bytes ending %q", len(tail), tail[max(len(tail)-60, 0):])
	}
}

func TestParallelCapsProcesses(t *testing.T) {
	f := newFixture(t, Config{Parallel: 2})
	var ids []string
	for i := range 5 {
		id := "par-" + string(rune('a'+i))
		ids = append(ids, id)
		f.launch(f.job(id, nil, "sleep 0.3\nstore_result completed 0\n"))
	}
	if got := f.x.Active(); got != 5 {
		t.Errorf("Active = %d after 5 launches, want 5 (queued ones count)", got)
	}
	f.wait()
	data, err := os.ReadFile(filepath.Join(f.dir, "concurrency"))
	if err != nil {
		t.Fatal(err)
	}
	most := 0
	counts := strings.Fields(string(data))
	for _, c := range counts {
		n, err := strconv.Atoi(c)
		if err != nil {
			t.Fatal(err)
		}
		most = max(most, n)
	}
	if len(counts) != 5 || most != 2 {
		t.Errorf("runners running at each start %q: want 5 starts, at most 2 at a time and sometimes 2", counts)
	}
	for _, id := range ids {
		if r := resulttest.Read(t, f.st, store.ResultKey(id)); r.Status != result.StatusCompleted {
			t.Errorf("%s: %s", id, r.Status)
		}
	}
	if got := f.finished.Load(); got != 5 {
		t.Errorf("OnFinish called %d times, want 5", got)
	}
}

func TestQueuedJobsStartInLaunchOrder(t *testing.T) {
	f := newFixture(t, Config{Parallel: 1})
	var want []string
	for i := range 6 {
		id := "order-" + strconv.Itoa(i)
		want = append(want, id)
		f.launch(f.job(id, nil, "echo "+id+" >> \"$FAKE_DIR/order\"\nstore_result completed 0\n"))
	}
	f.wait()
	data, err := os.ReadFile(filepath.Join(f.dir, "order"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(data)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("started %q, want launch order %q", got, want)
	}
}

func TestLaunchLookupAlreadyLaunched(t *testing.T) {
	f := newFixture(t, Config{})
	e := f.job("once", nil, "store_result completed 0\n")
	if _, found := f.x.Lookup(e); found {
		t.Fatal("found before launch")
	}
	f.launch(e)
	digest, found := f.x.Lookup(e)
	if !found || digest != e.Digest {
		t.Errorf("Lookup = %q %v, want %q true", digest, found, e.Digest)
	}
	var already *controller.AlreadyLaunched
	if err := f.x.Launch(t.Context(), e); !errors.As(err, &already) || already.Digest != e.Digest {
		t.Errorf("second Launch = %v, want AlreadyLaunched with the digest", err)
	}
	f.wait()
	// Settled jobs are forgotten: the controller finds their result, and a
	// result deleted on purpose reruns the job.
	if _, found := f.x.Lookup(e); found || f.x.Busy(e) {
		t.Error("a settled job is still looked up as launched")
	}
	if n := len(f.pids("once")); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}

	pvc := putSpec(t, f.st, "jobs/pvc.json", map[string]any{
		"version": "1.0", "job_id": "pvc", "kind": "VMOperation", "operation": "guestkit.inspect",
		"payload": map[string]any{"type": "guestkit.inspect.v1", "data": map[string]any{
			"image": map[string]any{"uri": "pvc://vm-disks/web.qcow2"}}},
	})
	var specErr *spec.Refused
	if err := f.x.Check(pvc); !errors.As(err, &specErr) || specErr.Field != "payload.data.image.uri" {
		t.Errorf("Check of a pvc spec = %v, want a SpecError on payload.data.image.uri", err)
	}
	if err := f.x.Check(e); err != nil {
		t.Errorf("Check of a runnable spec = %v", err)
	}
	if err := f.x.Launch(t.Context(), pvc); !errors.As(err, &specErr) || specErr.Field != "payload.data.image.uri" || specErr.Value != "pvc://vm-disks/web.qcow2" {
		t.Errorf("pvc Launch = %v, want a SpecError on payload.data.image.uri", err)
	}
	late := f.job("late", map[string]any{"deadline": "2020-01-01T00:00:00Z"}, "exit 0\n")
	if err := f.x.Launch(t.Context(), late); !errors.As(err, &specErr) || specErr.Field != "execution.deadline" {
		t.Errorf("passed deadline Launch = %v, want a SpecError on execution.deadline", err)
	}
	for _, e := range []*intake.Entry{pvc, late} {
		if _, found := f.x.Lookup(e); found {
			t.Errorf("refused spec %s is looked up as launched", e.Key)
		}
	}
	if got := f.x.Active(); got != 0 {
		t.Errorf("Active = %d, want 0", got)
	}
}

func TestResultStoreFailingThenRecovering(t *testing.T) {
	folder, _ := storetest.Folder(t)
	flaky := &flakyStore{Store: folder, fails: 3}
	f := newFixture(t, Config{Store: flaky})
	e := f.job("down", map[string]any{"max_attempts": 1}, "exit 3\n")
	f.launch(e)
	f.wait()
	if got := flaky.creates.Load(); got != 4 {
		t.Errorf("%d Creates, want 3 failed then 1", got)
	}
	if got := counter(t, f.m, "errors_total", "stage", "settle"); got != 3 {
		t.Errorf("errors_total{settle} = %v, want 3", got)
	}
	if r := f.result(e); r.Status != result.StatusRejected || r.Runner.Name != result.DispatcherName {
		t.Errorf("result = %+v", r)
	}
	if got := f.finished.Load(); got != 1 {
		t.Errorf("OnFinish called %d times, want 1, after the result was stored", got)
	}
}

func TestStopKillsRunnersAndWaitReturns(t *testing.T) {
	before := runtime.NumGoroutine()
	f := newFixture(t, Config{Parallel: 1})
	running := f.job("running", nil, "sleep 60 &\necho $! > \"$FAKE_DIR/running.child\"\nwait\n")
	queued := f.job("queued", nil, "store_result completed 0\n")
	f.launch(running)
	f.launch(queued)
	child := f.readInt("running.child")

	f.stop()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err := f.x.Wait(ctx)
	if err == nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "2 jobs were interrupted") {
		t.Errorf("Wait = %v, want 2 interrupted jobs", err)
	}
	for _, pid := range []int{child, f.pids("running")[0]} {
		if err := gone(pid); err != nil {
			t.Error(err)
		}
	}
	for _, e := range []string{running.ResultKey, queued.ResultKey} {
		if _, err := f.st.Stat(t.Context(), e); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want no result: the job runs again at the next start", e, err)
		}
	}
	if f.pids("queued") != nil {
		t.Error("the queued job ran after the stop")
	}
	if err := f.x.Launch(t.Context(), f.job("after", nil, "exit 0\n")); err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("Launch after stop = %v, want the stop's error", err)
	}
	if got := f.finished.Load(); got != 0 {
		t.Errorf("OnFinish called %d times, want 0", got)
	}
	emptyDir(t, f.scratch)
	noLeaks(t, before)
}

func TestNewRefusesBadConfig(t *testing.T) {
	st, _ := storetest.Folder(t)
	res := controller.NewResults(st, "test", nil, nil)
	for name, cfg := range map[string]Config{
		"no store":       {Results: res, Runner: "/bin/true"},
		"missing runner": {Store: st, Results: res, Runner: filepath.Join(t.TempDir(), "nope")},
		"bad accel":      {Store: st, Results: res, Runner: "/bin/true", Accel: "fast"},
		"reserved env":   {Store: st, Results: res, Runner: "/bin/true", ExtraEnv: []string{"GUESTKIT_IMAGE=/x"}},
		"malformed env":  {Store: st, Results: res, Runner: "/bin/true", ExtraEnv: []string{"NOVALUE"}},
	} {
		if _, err := New(t.Context(), cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}

	// A relative runner is made absolute: attempts run in their own folder.
	dir := t.TempDir()
	runnertest.Write(t, dir)
	t.Chdir(dir)
	x, err := New(t.Context(), Config{Store: st, Results: res, Runner: "./guestkit-runner"})
	if err != nil {
		t.Fatalf("runner ./guestkit-runner: %v", err)
	}
	if x.runner != filepath.Join(dir, "guestkit-runner") {
		t.Errorf("runner ./guestkit-runner resolved to %q", x.runner)
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, w := range want {
		if got := backoff(DefaultRetryBackoff, i+1); got != w {
			t.Errorf("backoff after failure %d = %s, want %s", i+1, got, w)
		}
	}
	if got := backoff(DefaultRetryBackoff, 1000); got != MaxRetryBackoff {
		t.Errorf("backoff after 1000 failures = %s", got)
	}
}
