package runner_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"guestkit.io/batch/internal/libguestfs"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/spec"
)

func imageNamed(t *testing.T, name string) testImage {
	t.Helper()
	for _, img := range images(t) {
		if img.Name == name {
			return img
		}
	}
	t.Fatalf("no image %s in the manifest", name)
	return testImage{}
}

// TestTimeoutKillsAppliance: timeout_seconds expires while the appliance
// runs; the result is a timeout with exit code 6 and no qemu is left.
func TestTimeoutKillsAppliance(t *testing.T) {
	img := imageNamed(t, "debian")
	start := time.Now()
	res := runner.Execute(context.Background(), inspectJob(img, 4), nil, runner.Config{Version: "test", Accel: "tcg", Backend: spec.BackendAppliance})
	if res.Status != result.StatusTimeout || res.ExitCode != result.ExitTimeout || res.Error == nil || res.Error.Code != result.CodeTimeout {
		t.Fatalf("status %s exit %d error %+v; want timeout", res.Status, res.ExitCode, res.Error)
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("took %s after a 4 s timeout", d)
	}
	if !strings.Contains(res.Error.Message, "killed") {
		t.Errorf("message %q should say the appliance was killed", res.Error.Message)
	}
	time.Sleep(time.Second)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), "qemu-system") && strings.Contains(string(b), img.File) {
			t.Errorf("qemu still running for %s: pid %s", img.File, e.Name())
		}
	}
}

// TestAccelKVMOnBrokenHost: --accel kvm never falls back. Where KVM fails
// its self-test the job fails fast, retryably, saying why.
func TestAccelKVMOnBrokenHost(t *testing.T) {
	img := imageNamed(t, "debian")
	kvmErr := libguestfs.KVMUsable()
	if kvmErr == nil {
		t.Skip("KVM works on this host; the broken-KVM path cannot be shown here")
	}
	start := time.Now()
	res := runner.Execute(context.Background(), inspectJob(img, 600), nil, runner.Config{Version: "test", Accel: "kvm", Backend: spec.BackendAppliance})
	if res.Status != result.StatusFailed || res.Error == nil || res.Error.Code != result.CodeApplianceFailed || !res.Error.Retryable || res.ExitCode != result.ExitInfra {
		t.Fatalf("status %s exit %d error %+v; want failed appliance_failed retryable", res.Status, res.ExitCode, res.Error)
	}
	if !strings.Contains(res.Error.Message, kvmErr.Error()) {
		t.Errorf("message %q should carry the self-test's reason %q", res.Error.Message, kvmErr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s: a KVM that fails its self-test must not be launched", d)
	}
}
