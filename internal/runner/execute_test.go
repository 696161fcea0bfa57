package runner_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"guestkit.io/batch/internal/guest"
	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/libguestfs"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/spec"
)

// These tests run Execute with a real probe (qemu-img) and a fake
// appliance; they need neither libguestfs nor the test images. The CLI's
// tests (runner/cli) cover the same paths end to end, with exit codes.

// stubAppliance serves one Debian root from a MapFS.
type stubAppliance struct {
	roots func(ctx context.Context) ([]string, error)

	mu     sync.Mutex
	closed int
}

func (a *stubAppliance) Roots(ctx context.Context) ([]string, error) {
	if a.roots != nil {
		return a.roots(ctx)
	}
	return []string{"/dev/sda1"}, nil
}

func (a *stubAppliance) OSFacts(_ context.Context, root string) (inspect.OS, error) {
	return inspect.OS{Root: root, Type: "linux", Distro: "debian", MajorVersion: 12, Hostname: "stub", PackageFormat: "deb"}, nil
}

func (a *stubAppliance) Mount(context.Context, string) (guest.FS, []inspect.Problem, error) {
	return fstest.MapFS{
		"etc/os-release":      {Data: []byte("ID=debian\nVERSION_ID=12\n")},
		"etc/passwd":          {Data: []byte("root:x:0:0:root:/root:/bin/bash\n")},
		"etc/ssh/sshd_config": {Data: []byte("PermitRootLogin yes\n")},
	}, nil, nil
}

func (a *stubAppliance) Applications(context.Context, string) ([]inspect.Application, error) {
	return nil, nil
}
func (a *stubAppliance) Unmount(context.Context) error { return nil }
func (a *stubAppliance) Storage(context.Context, []inspect.Filesystem) (inspect.Storage, []inspect.Problem, error) {
	return inspect.Storage{Devices: []inspect.Device{{Name: "/dev/sda", Size: 64 << 20}}}, nil, nil
}
func (a *stubAppliance) Accelerator() result.Accelerator {
	return result.Accelerator{Requested: "auto", Used: "tcg"}
}
func (a *stubAppliance) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed++
	return nil
}

func (a *stubAppliance) closeCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// stubQcow2 makes an empty 64 MiB qcow2 image.
func stubQcow2(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", p, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, out)
	}
	return p
}

func stubJob(op string, img *spec.Image) *spec.Job {
	timeout := int64(60)
	j := &spec.Job{
		Version: "1.0", JobID: "stub-job", Operation: op,
		Execution: &spec.Execution{TimeoutSeconds: &timeout},
		Payload:   spec.Payload{Type: op + ".v1", Data: &spec.Data{Image: img}},
	}
	if op == spec.OpProfile {
		j.Payload.Data.Profiles = []string{"security"}
	}
	return j
}

// launchWith returns a launcher handing out app and counting its calls.
func launchWith(app runner.Appliance, calls *int) runner.Launcher {
	return func(context.Context, libguestfs.Options) (runner.Appliance, error) {
		*calls++
		return app, nil
	}
}

func TestExecuteNoOS(t *testing.T) {
	app := &stubAppliance{roots: func(context.Context) ([]string, error) { return nil, nil }}
	var calls int
	res := runner.Execute(context.Background(), stubJob(spec.OpInspect, &spec.Image{Path: stubQcow2(t)}), nil,
		runner.Config{Version: "test", Backend: "appliance", Launch: launchWith(app, &calls)})
	if res.Status != result.StatusRejected || res.ExitCode != result.ExitBadImage || res.Error == nil ||
		res.Error.Code != result.CodeImageNoOS || res.Error.Phase != result.PhaseInspect {
		t.Fatalf("result: %s exit %d error %+v", res.Status, res.ExitCode, res.Error)
	}
	// decodeReport is the image tests' helper (images_test.go).
	rep := decodeReport(t, res)
	if st, _ := rep["storage"].(map[string]any); st == nil || len(st["devices"].([]any)) != 1 {
		t.Errorf("storage facts are kept: %s", res.Data)
	}
	if calls != 1 || app.closeCount() != 1 {
		t.Errorf("launched %d, closed %d", calls, app.closeCount())
	}
}

// TestExecuteChecksumPlaceholderFirst: a placeholder checksum is rejected
// before the image is fetched or probed (the image does not even exist).
func TestExecuteChecksumPlaceholderFirst(t *testing.T) {
	for _, img := range []*spec.Image{
		{Path: "/nonexistent/disk.qcow2", Checksum: "sha256:abc123..."},
		{URI: "s3://images/disk.qcow2", Checksum: "sha256:<fill me>"},
	} {
		var calls int
		res := runner.Execute(context.Background(), stubJob(spec.OpInspect, img), nil,
			runner.Config{Version: "test", Backend: "appliance", Launch: launchWith(&stubAppliance{}, &calls)})
		e := res.Error
		if res.Status != result.StatusRejected || res.ExitCode != result.ExitBadSpec || e == nil || e.Code != result.CodeSpecInvalid ||
			e.Phase != result.PhaseSpec || len(e.Fields) != 1 || e.Fields[0].Field != "payload.data.image.checksum" || e.Fields[0].Value != img.Checksum {
			t.Errorf("%s: result %s exit %d error %+v", img.Checksum, res.Status, res.ExitCode, e)
		}
		if res.Image == nil || res.Image.URI == "" || res.Image.Format != "" || calls != 0 {
			t.Errorf("%s: image %+v, launched %d", img.Checksum, res.Image, calls)
		}
	}
}

func TestExecuteDeadline(t *testing.T) {
	j := stubJob(spec.OpInspect, &spec.Image{Path: "/nonexistent/disk.qcow2"})
	past := time.Date(2026, 1, 30, 16, 0, 0, 0, time.UTC)
	j.Execution.Deadline = &past
	var calls int
	res := runner.Execute(context.Background(), j, nil, runner.Config{Version: "test", Backend: "appliance", Launch: launchWith(&stubAppliance{}, &calls)})
	if res.Status != result.StatusTimeout || res.ExitCode != result.ExitTimeout || res.Error == nil || res.Error.Code != result.CodeTimeout ||
		res.Error.Message != "execution.deadline 2026-01-30T16:00:00Z passed before the job started" || calls != 0 {
		t.Fatalf("result: %s exit %d error %+v launched %d", res.Status, res.ExitCode, res.Error, calls)
	}

	// A deadline that passes during the job says so. (If the probe alone
	// outlasts the deadline on a loaded machine, again with a later one.)
	img := stubQcow2(t)
	for _, wait := range []time.Duration{500 * time.Millisecond, 5 * time.Second} {
		soon := time.Now().Add(wait)
		j = stubJob(spec.OpInspect, &spec.Image{Path: img})
		j.Execution.Deadline = &soon
		app := &stubAppliance{roots: func(ctx context.Context) ([]string, error) { <-ctx.Done(); return nil, ctx.Err() }}
		res = runner.Execute(context.Background(), j, nil, runner.Config{Version: "test", Backend: "appliance", Launch: launchWith(app, &calls)})
		if res.Error != nil && res.Error.Phase == result.PhaseProbe && wait < time.Second {
			continue
		}
		if res.Status != result.StatusTimeout || res.Error == nil || !strings.HasPrefix(res.Error.Message, "execution.deadline ") ||
			!strings.Contains(res.Error.Message, "passed during inspect") || app.closeCount() != 1 {
			t.Errorf("result: %s error %+v closed %d", res.Status, res.Error, app.closeCount())
		}
		return
	}
}

// TestExecutePanic: a panic becomes a failed result naming the phase; the
// appliance is closed.
func TestExecutePanic(t *testing.T) {
	img := stubQcow2(t)
	app := &stubAppliance{roots: func(context.Context) ([]string, error) { panic("roots exploded") }}
	var calls int
	res := runner.Execute(context.Background(), stubJob(spec.OpProfile, &spec.Image{Path: img}), nil,
		runner.Config{Version: "test", Backend: "appliance", Launch: launchWith(app, &calls)})
	if res.Status != result.StatusFailed || res.ExitCode != result.ExitInternal || res.Error == nil || res.Error.Code != result.CodeInternal ||
		res.Error.Phase != result.PhaseInspect || !strings.Contains(res.Error.Message, "roots exploded") || app.closeCount() != 1 {
		t.Errorf("result: %s exit %d error %+v closed %d", res.Status, res.ExitCode, res.Error, app.closeCount())
	}
	launchPanics := func(context.Context, libguestfs.Options) (runner.Appliance, error) { panic("launch exploded") }
	res = runner.Execute(context.Background(), stubJob(spec.OpInspect, &spec.Image{Path: img}), nil,
		runner.Config{Version: "test", Backend: "appliance", Launch: launchPanics})
	if res.Error == nil || res.Error.Code != result.CodeInternal || res.Error.Phase != result.PhaseLaunch || res.Image.Format != "qcow2" {
		t.Errorf("launch panic: %+v image %+v", res.Error, res.Image)
	}
}

func TestExecuteLimitsAndOptions(t *testing.T) {
	img := stubQcow2(t)
	var calls int
	res := runner.Execute(context.Background(), stubJob(spec.OpInspect, &spec.Image{Path: img}), nil,
		runner.Config{Version: "test", Backend: "appliance", MaxVirtualSize: 1 << 20, Launch: launchWith(&stubAppliance{}, &calls)})
	if res.Error == nil || res.Error.Code != result.CodeImageTooLarge || res.ExitCode != result.ExitBadImage || calls != 0 {
		t.Errorf("max virtual size: %+v launched %d", res.Error, calls)
	}

	var got libguestfs.Options
	launch := func(_ context.Context, o libguestfs.Options) (runner.Appliance, error) {
		got = o
		return &stubAppliance{}, nil
	}
	j := stubJob(spec.OpInspect, &spec.Image{Path: img})
	j.Payload.Data.Output = &spec.Output{Format: "sarif"}
	res = runner.Execute(context.Background(), j, []spec.Warning{{Field: "x", Message: "unknown field"}},
		runner.Config{Version: "test", Backend: "appliance", Accel: "kvm", MemoryMB: 2048, MaxVirtualSize: -1, Launch: launch})
	if res.Status != result.StatusCompleted || got.Image != img || got.Format != "qcow2" || got.Accel != "kvm" || got.MemoryMB != 2048 {
		t.Errorf("result %s %+v; launch options %+v", res.Status, res.Error, got)
	}
	want := []string{"x: unknown field", "payload.data.output.format: sarif applies to profile results only; data is JSON"}
	if strings.Join(res.Warnings, "|") != strings.Join(want, "|") {
		t.Errorf("warnings = %q", res.Warnings)
	}
}

func TestExecuteFetch(t *testing.T) {
	var calls int
	res := runner.Execute(context.Background(), stubJob(spec.OpInspect, &spec.Image{URI: "pvc://images/disk.qcow2"}), nil,
		runner.Config{Version: "test", Backend: "appliance", Launch: launchWith(&stubAppliance{}, &calls)})
	if res.Error == nil || res.Error.Code != result.CodeImageNotFound || res.Error.Phase != result.PhaseFetch || !strings.Contains(res.Error.Message, "--image") {
		t.Errorf("pvc without --image: %+v", res.Error)
	}
	// A file:// image, with a fixed clock.
	now := time.Date(2026, 2, 1, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	img := stubQcow2(t)
	res = runner.Execute(context.Background(), stubJob(spec.OpInspect, &spec.Image{URI: "file://" + img}), nil,
		runner.Config{Version: "test", Backend: "appliance", Launch: launchWith(&stubAppliance{}, &calls), Now: func() time.Time { return now }})
	if res.Status != result.StatusCompleted || res.Image.URI != "file://"+img || res.Image.Format != "qcow2" ||
		!res.StartedAt.Equal(now) || res.StartedAt.Location() != time.UTC || res.DurationSeconds != 0 {
		t.Errorf("file URI: %s %+v image %+v started %v", res.Status, res.Error, res.Image, res.StartedAt)
	}
}

func TestExecuteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var calls int
	res := runner.Execute(ctx, stubJob(spec.OpInspect, &spec.Image{Path: stubQcow2(t)}), nil,
		runner.Config{Version: "test", Backend: "appliance", Launch: launchWith(&stubAppliance{}, &calls)})
	if res.Status != result.StatusFailed || res.ExitCode != result.ExitInfra || res.Error == nil || !res.Error.Retryable {
		t.Errorf("result: %s exit %d error %+v", res.Status, res.ExitCode, res.Error)
	}
}

func TestReject(t *testing.T) {
	_, _, err := spec.Load([]byte(`{"version": "1.0", "job_id": "j", "operation": "guestkit.repair", "payload": {"type": "guestkit.repair.v1"}}`))
	res := runner.Reject("j", "test", time.Now(), err)
	if res.Status != result.StatusRejected || res.ExitCode != result.ExitBadSpec || res.Error.Code != result.CodeSpecUnsupported || len(res.Error.Fields) == 0 {
		t.Errorf("unsupported: %+v", res.Error)
	}
	res = runner.Reject("j", "test", time.Now(), errors.New("spec: json: line 1: unexpected end"))
	if res.Error.Code != result.CodeSpecInvalid || res.Error.Fields != nil || res.Error.Phase != result.PhaseSpec {
		t.Errorf("syntax: %+v", res.Error)
	}
	if h, _ := os.Hostname(); res.Runner.Host != h || res.Runner.Name != "guestkit-runner" {
		t.Errorf("runner: %+v", res.Runner)
	}
}

// A spec that names its image by a key of the dispatcher's bucket cannot
// run by hand without --image-url: the runner must not read a file of
// that name relative to its folder.
func TestBucketKeyNeedsTheDispatcher(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "images", "x.qcow2"), []byte("QFI\xfb"), 0o644); err != nil {
		t.Fatal(err)
	}
	calls := 0
	res := runner.Execute(t.Context(), stubJob(spec.OpInspect, &spec.Image{URI: "images/x.qcow2"}), nil,
		runner.Config{Version: "test", Backend: "appliance", Launch: launchWith(&stubAppliance{}, &calls), ScratchDir: t.TempDir()})
	if res.Status != result.StatusRejected || res.Error == nil || res.Error.Code != result.CodeImageNotFound ||
		!strings.Contains(res.Error.Message, "--image-url") || calls != 0 {
		t.Errorf("result %s %+v, %d launches; want rejected image_not_found naming --image-url, no launch", res.Status, res.Error, calls)
	}
}
