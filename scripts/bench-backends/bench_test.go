package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestMain lets the test binary be the measuring wrapper, as the bench's
// binary is.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		wrap(os.Args[1:])
	}
	os.Exit(m.Run())
}

func TestPkgKey(t *testing.T) {
	for _, c := range []struct {
		name           string
		epoch          int
		version, rel   string
		want           string
		trivyVer, trel string // the same package as Trivy spells it
		tepoch         int
	}{
		{"bash", 0, "5.2.15", "2+b2", "bash 5.2.15-2+b2", "5.2.15", "2+b2", 0},
		// libguestfs drops apk's "r"; Trivy keeps the whole version.
		{"musl", 0, "1.2.4", "2", "musl 1.2.4-2", "1.2.4-r2", "", 0},
		{"shadow-utils", 2, "4.9", "12.el9", "shadow-utils 2:4.9-12.el9", "4.9", "12.el9", 2},
		{"base-files", 0, "12.4+deb12u5", "", "base-files 12.4+deb12u5", "12.4+deb12u5", "", 0},
	} {
		if got := pkgKey(c.name, c.epoch, c.version, c.rel); got != c.want {
			t.Errorf("pkgKey(%s): %q, want %q", c.name, got, c.want)
		}
		if got := pkgKey(c.name, c.tepoch, c.trivyVer, c.trel); got != c.want {
			t.Errorf("pkgKey(%s) as Trivy: %q, want %q", c.name, got, c.want)
		}
	}
}

func set(keys ...string) map[string]bool {
	m := map[string]bool{}
	for _, k := range keys {
		m[k] = true
	}
	return m
}

func TestVerdict(t *testing.T) {
	ref := answer{pkgs: set("a 1", "b 2", "c 3"), roots: 1}
	for _, c := range []struct {
		name  string
		got   answer
		ref   answer
		trivy bool
		want  string
	}{
		{"same", answer{pkgs: set("a 1", "b 2", "c 3"), roots: 1}, ref, false, "right (3 pkgs)"},
		{"diff", answer{pkgs: set("a 1", "b 9", "d 4", "e 5"), roots: 1}, ref, false, "wrong: 2 missing, 3 extra"},
		{"roots", answer{pkgs: set("a 1", "b 2", "c 3"), roots: 2}, ref, false, "wrong: 2 roots, want 1"},
		{"trivy ignores roots", answer{pkgs: set("a 1", "b 2", "c 3"), roots: 1}, ref, true, "right (3 pkgs)"},
		{"trivy merges roots", answer{pkgs: set("a 1", "b 2", "c 3"), roots: 1}, answer{pkgs: set("a 1", "b 2", "c 3"), roots: 2}, true, "right (3 pkgs); 2 OS roots merged into 1"},
		{"trivy nothing", answer{pkgs: set()}, ref, true, "finds nothing"},
		{"trivy fails", answer{fails: "exit 1: unsupported"}, ref, true, "fails (exit 1: unsupported)"},
		{"trivy on an error image", answer{pkgs: set()}, answer{code: "image_corrupt"}, true, "finds nothing"},
		{"same code", answer{code: "image_corrupt"}, answer{code: "image_corrupt"}, false, "right (image_corrupt)"},
		{"other code", answer{code: "image_no_os"}, answer{code: "image_corrupt"}, false, "wrong: image_no_os, want image_corrupt"},
		{"code, want packages", answer{code: "appliance_failed"}, ref, false, "fails (appliance_failed)"},
		{"packages, want code", answer{pkgs: set("a 1"), roots: 1}, answer{code: "image_no_os"}, false, "wrong: 1 packages, want image_no_os"},
		{"no reference", answer{pkgs: set("a 1")}, answer{fails: "timeout"}, false, "no reference (timeout)"},
	} {
		if got := verdict(c.got, c.ref, c.trivy); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if got := summarize([]string{"right", "right"}); got != "right" {
		t.Errorf("summarize: %q", got)
	}
	if got := summarize([]string{"right", "fails", "right"}); got != "varies: right / fails / right" {
		t.Errorf("summarize: %q", got)
	}
}

// TestAnswers reads a runner result and a Trivy report of the same
// packages, as the tools write them.
func TestAnswers(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(dir, "result.json")
	os.WriteFile(res, []byte(`{"api_version":"guestkit.io/result/v1","status":"completed","data":{"operating_systems":[
		{"root":"/dev/sda1","type":"linux","applications":[{"name":"bash","version":"5.2.15","release":"2+b2"},{"name":"musl","version":"1.2.4","release":"2"}]},
		{"root":"/dev/sda2","type":"linux","applications":[{"name":"bash","epoch":1,"version":"5.1.8","release":"9.el9"}]}],"storage":{}}}`), 0o644)
	got := runnerAnswer(res)
	want := answer{pkgs: set("bash 5.2.15-2+b2", "musl 1.2.4-2", "bash 1:5.1.8-9.el9"), roots: 2}
	if v := verdict(got, want, false); v != "right (3 pkgs)" {
		t.Errorf("runner result: %s (%v)", v, got)
	}
	failed := filepath.Join(dir, "failed.json")
	os.WriteFile(failed, []byte(`{"status":"rejected","exit_code":4,"error":{"code":"image_corrupt","message":"x","phase":"probe"}}`), 0o644)
	if got := runnerAnswer(failed); got.code != "image_corrupt" {
		t.Errorf("failed result: %+v", got)
	}
	if got := runnerAnswer(filepath.Join(dir, "absent.json")); got.fails == "" {
		t.Errorf("absent result: %+v", got)
	}

	rep := filepath.Join(dir, "trivy.json")
	os.WriteFile(rep, []byte(`{"SchemaVersion":2,"Results":[
		{"Target":"img (debian 12.5)","Class":"os-pkgs","Type":"debian","Packages":[{"Name":"bash","Version":"5.2.15","Release":"2+b2"}]},
		{"Target":"img (alpine 3.19)","Class":"os-pkgs","Type":"alpine","Packages":[{"Name":"musl","Version":"1.2.4-r2"}]},
		{"Target":"x","Class":"os-pkgs","Type":"redhat","Packages":[{"Name":"bash","Epoch":1,"Version":"5.1.8","Release":"9.el9"}]},
		{"Target":"app","Class":"lang-pkgs","Type":"gobinary","Packages":[{"Name":"stdlib","Version":"1.22"}]}]}`), 0o644)
	if v := verdict(trivyAnswer(measure{}, rep), want, true); v != "right (3 pkgs)" { // 3 OSes for Trivy
		t.Errorf("trivy report: %s", v)
	}
	if got := trivyAnswer(measure{exitCode: 1, stderr: "FATAL unsupported"}, rep); got.fails != "exit 1: FATAL unsupported" {
		t.Errorf("trivy exit 1: %+v", got)
	}
}

// TestRunMeasured measures a shell whose grandchild reads 3 MB and
// exits before the shell does, and which holds 40 MB itself.
func TestRunMeasured(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	script := `sh -c 'head -c 3000000 /dev/zero >/dev/null'; x=$(head -c 40000000 /dev/zero | tr '\0' a); sleep 0.2; exit 3`
	m, err := runMeasured(context.Background(), os.Environ(), []string{"sh", "-c", script}, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if m.exitCode != 3 || m.timedOut {
		t.Errorf("exit %d, timed out %v; want 3, false", m.exitCode, m.timedOut)
	}
	// 3 MB by the grandchild; 40 MB each by head from /dev/zero, by tr
	// from the pipe and by the shell from tr.
	if m.read < 123_000_000 || m.read > 130_000_000 {
		t.Errorf("read %d bytes, want about 123 MB", m.read)
	}
	if m.peakRSS < 40<<20 || m.peakRSS > 200<<20 {
		t.Errorf("peak RSS %d bytes, want at least 40 MiB", m.peakRSS)
	}
	if m.wall < 200*time.Millisecond {
		t.Errorf("wall %v, want at least the sleep", m.wall)
	}

	m, err = runMeasured(context.Background(), os.Environ(), []string{"sh", "-c", "echo oops >&2; sleep 30"}, "", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !m.timedOut || m.wall > 5*time.Second || m.stderr != "oops" {
		t.Errorf("timeout: %+v", m)
	}
}

func TestMedian(t *testing.T) {
	m := median([]measure{{wall: 3, peakRSS: 10, read: 5}, {wall: 1, peakRSS: 30, read: 4}, {wall: 2, peakRSS: 20, read: 6}})
	if m.wall != 2 || m.peakRSS != 20 || m.read != 5 {
		t.Errorf("median: %+v", m)
	}
	b, _ := json.Marshal(report{})
	if len(b) == 0 {
		t.Error("report does not marshal")
	}
}
