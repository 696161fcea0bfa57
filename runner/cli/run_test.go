package cli_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"guestkit.io/batch/internal/libguestfs"
	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
)

// inspectSpec is the legacy worker's inspect seed on a local image.
func inspectSpec(img string) map[string]any {
	m := loadSeed("worker-jobs--guestkit-inspect-basic.json")
	set(m, "payload.data.image.path", img)
	return m
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestRunInspect: a valid inspect spec, read from a plain path or a file://
// URI (JSON or YAML), completes and stores a full result.
func TestRunInspect(t *testing.T) {
	for _, tc := range []struct {
		name  string
		uri   func(path string) string
		yaml  bool
		extra []string
		accel string
	}{
		{name: "plain path", uri: func(p string) string { return p }, accel: "auto"},
		{name: "file URI, YAML, flags", uri: func(p string) string { return "file://" + p }, yaml: true,
			extra: []string{"--accel", "tcg", "--memory", "512"}, accel: "tcg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img := qcow2(t, dir, "web-01.qcow2")
			sum := sha256File(t, img)
			m := inspectSpec(img)
			set(m, "payload.data.image.checksum", "sha256:"+strings.ToUpper(sum))
			set(m, "execution.attempt", 2)
			set(m, "execution.max_attempts", 3)
			set(m, "execution.idempotency_key", "inspect-basic-001/2026-01-30")
			specPath := writeJSON(t, dir, "spec.json", m)
			if tc.yaml {
				b, _ := os.ReadFile(specPath)
				y, err := yaml.JSONToYAML(b)
				if err != nil {
					t.Fatal(err)
				}
				specPath = filepath.Join(dir, "spec.yaml")
				os.WriteFile(specPath, y, 0o644)
			}
			out := filepath.Join(dir, "results", "nested", "inspect-basic-001.json")
			l := newFakeLauncher()
			before := time.Now().UTC()
			args := append([]string{"run", "--spec", tc.uri(specPath), "--result", tc.uri(out)}, tc.extra...)
			o := runCLI(t, context.Background(), l, args...)
			if o.code != 0 || o.err != nil {
				t.Fatalf("exit %d (%v)\nstderr: %s", o.code, o.err, o.stderr)
			}
			res := readResult(t, out)
			if res.JobID != "inspect-basic-001" || res.Operation != "guestkit.inspect" || res.Status != result.StatusCompleted ||
				res.ExitCode != 0 || res.Error != nil || res.Attempt != 2 || res.IdempotencyKey != "inspect-basic-001/2026-01-30" {
				t.Errorf("result: job %q op %q status %q exit %d attempt %d key %q error %+v",
					res.JobID, res.Operation, res.Status, res.ExitCode, res.Attempt, res.IdempotencyKey, res.Error)
			}
			if res.StartedAt.Before(before.Add(-time.Second)) || res.FinishedAt.After(time.Now().Add(time.Second)) ||
				res.StartedAt.Location() != time.UTC || res.DurationSeconds != res.FinishedAt.Sub(res.StartedAt).Seconds() {
				t.Errorf("times: %v .. %v (%vs)", res.StartedAt, res.FinishedAt, res.DurationSeconds)
			}
			st, _ := os.Stat(img)
			want := result.Image{URI: img, Format: "qcow2", DeclaredFormat: "qcow2", VirtualSize: 64 << 20, FileSize: st.Size(), SHA256: sum, Access: result.AccessLocal}
			if res.Image == nil || res.Image.Verification == nil || *res.Image.Verification != (result.Verification{Method: result.VerifiedWholeObject, SHA256: sum}) {
				t.Fatalf("image = %+v, want a whole-object hash %s", res.Image, sum)
			}
			got := *res.Image
			got.Verification = nil
			if got != want {
				t.Errorf("image = %+v, want %+v", got, want)
			}
			if a := res.Accelerator; a == nil || a.Requested != tc.accel || a.Used != "tcg" || a.Fallback == "" {
				t.Errorf("accelerator = %+v", a)
			}
			if !slices.Contains(res.Warnings, "payload.data.output.destination: ignored: the result is written to the result URI the runner was given") {
				t.Errorf("warnings = %q", res.Warnings)
			}
			d := reportOf(t, res)
			if len(d.OperatingSystems) != 1 || d.Profiles != nil {
				t.Fatalf("data: %s", res.Data)
			}
			os0 := d.OperatingSystems[0]
			if os0.Distro != "debian" || os0.Hostname != "web-01" || os0.MajorVersion != 12 || len(os0.Applications) != 3 {
				t.Errorf("os: %+v", os0)
			}
			var alice bool
			for _, u := range os0.Users {
				alice = alice || u.Name == "alice" && u.UID == 1000 && u.CanLogin && u.Password == "set"
			}
			if !alice {
				t.Errorf("users: %+v", os0.Users)
			}
			if s := os0.Security; s == nil || s.SSH == nil || !s.SSH.Enabled || s.SSH.Settings["permitrootlogin"] != "yes" {
				t.Errorf("security: %+v", os0.Security)
			}
			if len(d.Storage.Devices) != 1 || len(d.Problems) != 0 {
				t.Errorf("storage %+v problems %+v", d.Storage, d.Problems)
			}
			calls := l.launched()
			if len(calls) != 1 || calls[0].Image != img || calls[0].Format != "qcow2" || calls[0].Accel != tc.accel {
				t.Errorf("launch: %+v", calls)
			}
			if l.app.closeCount() != 1 {
				t.Errorf("Close called %d times", l.app.closeCount())
			}
			if !strings.Contains(o.stderr, "result stored") {
				t.Errorf("stderr: %s", o.stderr)
			}
			ents, _ := os.ReadDir(filepath.Dir(out))
			if len(ents) != 1 {
				t.Errorf("result folder holds %d entries (temporary files left?)", len(ents))
			}
		})
	}
}

// TestRunImageOverride: --image replaces the spec's image (the dispatcher's
// download); the result still names the image as the spec did.
func TestRunImageOverride(t *testing.T) {
	dir := t.TempDir()
	img := qcow2(t, dir, "downloaded.qcow2")
	specPath := writeJSON(t, dir, "spec.json", inspectSpec("/vms/test-vm.qcow2"))
	out := filepath.Join(dir, "result.json")
	l := newFakeLauncher()
	o := runCLI(t, context.Background(), l, "run", "--spec", specPath, "--result", out, "--image", img)
	if o.code != 0 {
		t.Fatalf("exit %d\n%s", o.code, o.stderr)
	}
	res := readResult(t, out)
	if res.Image.URI != "/vms/test-vm.qcow2" || res.Image.Format != "qcow2" {
		t.Errorf("image = %+v", res.Image)
	}
	if calls := l.launched(); len(calls) != 1 || calls[0].Image != img {
		t.Errorf("launch: %+v", calls)
	}
}

// TestRunProfile: the legacy security profile seed on a guest with
// PermitRootLogin yes.
func TestRunProfile(t *testing.T) {
	for _, tc := range []struct {
		name         string
		edit         func(m map[string]any)
		code         int
		noncompliant bool
	}{
		{"seed: medium threshold", func(map[string]any) {}, result.ExitNoncompliant, true},
		{"threshold none, fail_on_critical false", func(m map[string]any) {
			set(m, "payload.data.options.severity_threshold", "none")
			set(m, "payload.data.options.fail_on_critical", false)
		}, result.ExitCompleted, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m := loadSeed("worker-jobs--guestkit-profile-security.json")
			set(m, "payload.data.image.path", qcow2(t, dir, "prod-db-01.qcow2"))
			tc.edit(m)
			specPath := writeJSON(t, dir, "spec.json", m)
			out := filepath.Join(dir, "result.json")
			l := newFakeLauncher()
			o := runCLI(t, context.Background(), l, "run", "--spec", specPath, "--result", out)
			if o.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", o.code, tc.code, o.stderr)
			}
			res := readResult(t, out)
			if res.JobID != "profile-security-001" || res.Operation != "guestkit.profile" || res.Status != result.StatusCompleted ||
				res.ExitCode != tc.code || res.Error != nil || res.IdempotencyKey != "security-scan-db-01-2026-01-30" {
				t.Errorf("result: %+v", res)
			}
			d := reportOf(t, res)
			if len(d.OperatingSystems) != 1 || d.OperatingSystems[0].Hostname != "web-01" {
				t.Errorf("operating_systems: %+v", d.OperatingSystems)
			}
			if len(d.Profiles) != 1 || d.Profiles[0].Root != "/dev/sda1" || d.Profiles[0].Report == nil {
				t.Fatalf("profile_reports: %s", res.Data)
			}
			rep := d.Profiles[0].Report
			if d.Noncompliant != tc.noncompliant || rep.Noncompliant != tc.noncompliant || rep.OS.Family != "debian" {
				t.Errorf("noncompliant %v/%v, want %v; os %+v", d.Noncompliant, rep.Noncompliant, tc.noncompliant, rep.OS)
			}
			var names []string
			for _, p := range rep.Profiles {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, []string{"security", "compliance", "hardening"}) {
				t.Errorf("profiles = %q", names)
			}
			i := slices.IndexFunc(rep.Results, func(r profile.RuleResult) bool { return r.ID == "sshd_disable_root_login" })
			if i < 0 {
				t.Fatalf("no sshd_disable_root_login among %d results", len(rep.Results))
			}
			r := rep.Results[i]
			if r.Status != profile.StatusFail || r.Severity != profile.SeverityHigh || len(r.Evidence) == 0 ||
				r.Evidence[0].File != "/etc/ssh/sshd_config" || r.Evidence[0].Line != 2 || r.Evidence[0].Value != "PermitRootLogin yes" || r.Remediation == "" {
				t.Errorf("sshd_disable_root_login: %+v", r)
			}
			if rep.Summary.Total != len(rep.Results) || rep.Summary.ByStatus.Fail == 0 || rep.Summary.ByStatus.Pass == 0 {
				t.Errorf("summary: %+v", rep.Summary)
			}
		})
	}
}

// TestRunRejectsSpec: every invalid spec is rejected with a result stored
// at --result that names each problem; the appliance never starts.
func TestRunRejectsSpec(t *testing.T) {
	dir := t.TempDir()
	img := qcow2(t, dir, "disk.qcow2")
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	noImage := inspectSpec(img)
	set(noImage, "payload.data.image", nil)
	many := inspectSpec(img)
	set(many, "job_id", "bad id with spaces")
	set(many, "payload.data.image.read_only", false)
	set(many, "payload.data.image.format", "qcow3")
	set(many, "execution.timeout_seconds", 0)
	set(many, "payload.data.output.format", "pdf")
	huge := inspectSpec(img)
	set(huge, "padding", strings.Repeat("x", 1<<20))
	badProfile := loadSeed("worker-jobs--guestkit-profile-security.json")
	set(badProfile, "payload.data.image.path", img)
	set(badProfile, "payload.data.profiles", []string{"security", "stig", "security"})

	for _, tc := range []struct {
		name     string
		spec     string // --spec
		jobID    string // result job_id; --job-id is always "dispatcher-7"
		code     result.Code
		op       string
		fields   []string
		contains []string // in the message
	}{
		{name: "malformed JSON", spec: write("malformed.json", []byte("{\n  \"version\": \"1.0\",\n  \"job_id\": \"x\",\n  \"operation\" \"guestkit.inspect\"\n}")),
			jobID: "dispatcher-7", code: result.CodeSpecInvalid, contains: []string{"line 4", "column"}},
		{name: "not an object", spec: write("list.json", []byte(`[1, 2]`)), jobID: "dispatcher-7", code: result.CodeSpecInvalid, contains: []string{"must be an object"}},
		{name: "system.echo", spec: "../../internal/spec/testdata/seed-jobs/worker-jobs--echo-test.json", jobID: "echo-test-001",
			code: result.CodeSpecUnsupported, op: "system.echo", fields: []string{"operation"}, contains: []string{`unsupported operation "system.echo"`, "guestkit.inspect, guestkit.profile"}},
		{name: "missing image", spec: writeJSON(t, dir, "noimage.json", noImage), jobID: "inspect-basic-001",
			code: result.CodeSpecInvalid, op: "guestkit.inspect", fields: []string{"payload.data.image"}, contains: []string{"payload.data.image: required"}},
		{name: "many problems and a bad job_id", spec: writeJSON(t, dir, "many.json", many), jobID: "dispatcher-7",
			code: result.CodeSpecInvalid, op: "guestkit.inspect",
			fields:   []string{"job_id", "execution.timeout_seconds", "payload.data.image.format", "payload.data.image.read_only", "payload.data.output.format"},
			contains: []string{"5 problems", "read_only", "images are never written"}},
		{name: "profiles", spec: writeJSON(t, dir, "profiles.json", badProfile), jobID: "profile-security-001",
			code: result.CodeSpecInvalid, op: "guestkit.profile", fields: []string{"payload.data.profiles[1]", "payload.data.profiles[2]"}, contains: []string{"unknown profile", "duplicate"}},
		{name: "over 1 MiB", spec: writeJSON(t, dir, "huge.json", huge), jobID: "dispatcher-7", code: result.CodeSpecInvalid, contains: []string{"1 MiB"}},
		// A spec that does not exist is rejected, not failed: see execute.
		{name: "spec does not exist", spec: filepath.Join(dir, "absent.json"), jobID: "dispatcher-7", code: result.CodeSpecInvalid, contains: []string{"absent.json", "not found"}},
		{name: "spec URI does not exist", spec: "file://" + filepath.Join(dir, "absent.json"), jobID: "dispatcher-7", code: result.CodeSpecInvalid, contains: []string{"not found"}},
		{name: "spec URI scheme", spec: "ftp://example.com/spec.json", jobID: "dispatcher-7", code: result.CodeSpecInvalid, contains: []string{`unsupported scheme "ftp"`}},
		{name: "spec key with ..", spec: "s3://specs/a/../b.json", jobID: "dispatcher-7", code: result.CodeSpecInvalid, contains: []string{"invalid object key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "result.json")
			o := runCLI(t, context.Background(), nil, "run", "--spec", tc.spec, "--result", out, "--job-id", "dispatcher-7")
			if o.code != result.ExitBadSpec {
				t.Fatalf("exit %d, want 3\n%s", o.code, o.stderr)
			}
			res := readResult(t, out)
			if res.Status != result.StatusRejected || res.ExitCode != result.ExitBadSpec || res.JobID != tc.jobID || res.Operation != tc.op || res.Data != nil {
				t.Errorf("result: status %q exit %d job_id %q (want %q) operation %q (want %q)", res.Status, res.ExitCode, res.JobID, tc.jobID, res.Operation, tc.op)
			}
			e := res.Error
			if e == nil || e.Code != tc.code || e.Phase != result.PhaseSpec || e.Retryable {
				t.Fatalf("error = %+v, want code %s", e, tc.code)
			}
			var fields []string
			for _, f := range e.Fields {
				fields = append(fields, f.Field)
				if f.Message == "" {
					t.Errorf("field %s without message", f.Field)
				}
			}
			slices.Sort(fields)
			slices.Sort(tc.fields)
			if !slices.Equal(fields, tc.fields) {
				t.Errorf("fields = %q, want %q", fields, tc.fields)
			}
			for _, s := range tc.contains {
				if !strings.Contains(e.Message, s) {
					t.Errorf("message lacks %q: %s", s, e.Message)
				}
			}
		})
	}
}

// TestRunHTTP: specs and results through presigned http(s) URLs. A spec
// the server fails to serve is retryable; one it does not have is rejected;
// signatures never reach the logs or the result.
func TestRunHTTP(t *testing.T) {
	dir := t.TempDir()
	specBody, _ := json.Marshal(inspectSpec(qcow2(t, dir, "disk.qcow2")))
	var mu sync.Mutex
	stored := map[string][]byte{}
	putFailures := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Query().Get("X-Amz-Signature") != "s3cr3t" {
			http.Error(w, "signature", http.StatusForbidden)
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/spec.json":
			w.Write(specBody)
		case r.Method == http.MethodGet && r.URL.Path == "/flaky.json":
			http.Error(w, "slow down", http.StatusServiceUnavailable)
		case r.Method == http.MethodGet:
			http.NotFound(w, r)
		case r.Method == http.MethodPut && putFailures > 0:
			putFailures--
			http.Error(w, "internal", http.StatusInternalServerError)
		case r.Method == http.MethodPut:
			b, _ := io.ReadAll(r.Body)
			stored[r.URL.Path] = b
		}
	}))
	defer srv.Close()
	presign := func(p string) string { return srv.URL + p + "?X-Amz-Credential=AKIA&X-Amz-Signature=s3cr3t" }

	for _, tc := range []struct {
		name      string
		spec      string
		failPuts  int
		code      int
		status    result.Status
		errCode   result.Code
		retryable bool
	}{
		{"completed, upload retried", "/spec.json", 2, 0, result.StatusCompleted, "", false},
		{"spec server error", "/flaky.json", 0, result.ExitInfra, result.StatusFailed, result.CodeInfrastructure, true},
		{"spec not found", "/absent.json", 0, result.ExitBadSpec, result.StatusRejected, result.CodeSpecInvalid, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			putFailures = tc.failPuts
			clear(stored)
			mu.Unlock()
			o := runCLI(t, context.Background(), newFakeLauncher(), "run", "--spec", presign(tc.spec), "--result", presign("/result.json"),
				"--job-id", "inspect-basic-001", "--upload-backoff", "1ms")
			if o.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", o.code, tc.code, o.stderr)
			}
			mu.Lock()
			b := stored["/result.json"]
			mu.Unlock()
			var res result.Result
			if err := json.Unmarshal(b, &res); err != nil {
				t.Fatalf("stored result: %v\n%s", err, b)
			}
			if res.JobID != "inspect-basic-001" || res.Status != tc.status {
				t.Errorf("result: %+v", res)
			}
			if tc.errCode != "" && (res.Error == nil || res.Error.Code != tc.errCode || res.Error.Retryable != tc.retryable) {
				t.Errorf("error = %+v", res.Error)
			}
			if n := strings.Count(o.stderr, "result upload failed, retrying"); n != tc.failPuts {
				t.Errorf("%d retries logged, want %d", n, tc.failPuts)
			}
			if strings.Contains(o.stderr, "s3cr3t") || strings.Contains(string(b), "s3cr3t") {
				t.Errorf("the signature leaked:\n%s\n%s", o.stderr, b)
			}
		})
	}
}

func TestRunRejectsImage(t *testing.T) {
	dir := t.TempDir()
	evil := filepath.Join(dir, "evil.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b", "/etc/shadow", evil, "64M")
	good := qcow2(t, dir, "good.qcow2")
	for _, tc := range []struct {
		name, img, checksum string
		format              string // declared; "" removes it
		exit                int
		code                result.Code
		phase               result.Phase
		contains            []string
	}{
		{"backing file", evil, "", "qcow2", result.ExitBadImage, result.CodeImageBackingFile, result.PhaseProbe, []string{"backing file", `"/etc/shadow"`, evil}},
		{"backing file, format undeclared", evil, "", "", result.ExitBadImage, result.CodeImageBackingFile, result.PhaseProbe, []string{"/etc/shadow"}},
		{"checksum mismatch", good, "sha256:" + strings.Repeat("0", 64), "qcow2", result.ExitBadImage, result.CodeImageChecksum, result.PhaseProbe,
			[]string{"sha256 is " + sha256File(t, good), "spec says " + strings.Repeat("0", 64)}},
		{"format mismatch", good, "", "raw", result.ExitBadImage, result.CodeImageFormatMismatch, result.PhaseProbe, []string{`declares format "raw"`, "qcow2"}},
		{"image missing", filepath.Join(dir, "absent.qcow2"), "", "qcow2", result.ExitBadImage, result.CodeImageNotFound, result.PhaseProbe, []string{"absent.qcow2", "no such file"}},
		// A placeholder is a spec problem: rejected before the image is
		// fetched or probed, naming the field.
		{"placeholder checksum", good, "sha256:abc123...", "qcow2", result.ExitBadSpec, result.CodeSpecInvalid, result.PhaseSpec,
			[]string{"payload.data.image.checksum", `"sha256:abc123..."`, "placeholder"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := inspectSpec(tc.img)
			if tc.checksum != "" {
				set(m, "payload.data.image.checksum", tc.checksum)
			}
			if tc.format == "" {
				set(m, "payload.data.image.format", nil)
			} else {
				set(m, "payload.data.image.format", tc.format)
			}
			sdir := t.TempDir()
			specPath := writeJSON(t, sdir, "spec.json", m)
			out := filepath.Join(sdir, "result.json")
			o := runCLI(t, context.Background(), nil, "run", "--spec", specPath, "--result", out)
			if o.code != tc.exit {
				t.Fatalf("exit %d, want %d\n%s", o.code, tc.exit, o.stderr)
			}
			res := readResult(t, out)
			e := res.Error
			if res.Status != result.StatusRejected || res.ExitCode != tc.exit || e == nil || e.Code != tc.code || e.Phase != tc.phase || e.Retryable {
				t.Fatalf("result: status %s exit %d error %+v", res.Status, res.ExitCode, e)
			}
			for _, s := range tc.contains {
				if !strings.Contains(e.Message, s) {
					t.Errorf("message lacks %q: %s", s, e.Message)
				}
			}
			if res.Image == nil || res.Image.URI != tc.img || res.Image.SHA256 != "" || res.Accelerator != nil {
				t.Errorf("image %+v accelerator %+v", res.Image, res.Accelerator)
			}
			if tc.code == result.CodeSpecInvalid {
				if len(e.Fields) != 1 || e.Fields[0].Field != "payload.data.image.checksum" || e.Fields[0].Value != tc.checksum {
					t.Errorf("fields = %+v", e.Fields)
				}
				if res.Image.Format != "" {
					t.Errorf("the image was probed: %+v", res.Image)
				}
				if !slices.Contains(res.Warnings, "payload.data.image.checksum: digest is not 64 hex digits; checksum verification will fail") {
					t.Errorf("warnings = %q", res.Warnings)
				}
			}
		})
	}
}

// TestRunTimeout: Roots blocks until the job's context ends. The budget
// covers the probe too, so on a machine too loaded to run qemu-img within
// timeout_seconds 1 the test retries with a longer timeout rather than fail.
func TestRunTimeout(t *testing.T) {
	for _, timeout := range []int{1, 5} {
		dir := t.TempDir()
		l := newFakeLauncher()
		l.app.roots = func(ctx context.Context) ([]string, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		m := inspectSpec(qcow2(t, dir, "disk.qcow2"))
		set(m, "execution.timeout_seconds", timeout)
		specPath := writeJSON(t, dir, "spec.json", m)
		out := filepath.Join(dir, "result.json")
		start := time.Now()
		o := runCLI(t, context.Background(), l, "run", "--spec", specPath, "--result", out)
		took := time.Since(start)
		if o.code != result.ExitTimeout {
			t.Fatalf("exit %d, want 6\n%s", o.code, o.stderr)
		}
		res := readResult(t, out)
		e := res.Error
		if e != nil && e.Phase == result.PhaseProbe && timeout == 1 {
			t.Logf("the probe alone took over 1s (loaded machine); again with timeout_seconds 5")
			continue
		}
		limit := time.Duration(timeout) * time.Second
		if took < limit || took > limit+20*time.Second || res.DurationSeconds < limit.Seconds() {
			t.Errorf("took %s (result: %vs) with timeout_seconds %d", took, res.DurationSeconds, timeout)
		}
		if res.Status != result.StatusTimeout || res.ExitCode != result.ExitTimeout || e == nil || e.Code != result.CodeTimeout ||
			e.Phase != result.PhaseInspect || !strings.Contains(e.Message, fmt.Sprintf("timed out after %s (execution.timeout_seconds) during inspect", limit)) {
			t.Errorf("result: status %s exit %d error %+v", res.Status, res.ExitCode, e)
		}
		if l.app.closeCount() != 1 {
			t.Errorf("Close called %d times", l.app.closeCount())
		}
		// The report so far is kept: here, no OS yet.
		if d := reportOf(t, res); d.Report == nil || d.OperatingSystems == nil || len(d.OperatingSystems) != 0 {
			t.Errorf("data: %s", res.Data)
		}
		return
	}
}

func TestRunDeadlinePassed(t *testing.T) {
	dir := t.TempDir()
	m := inspectSpec(qcow2(t, dir, "disk.qcow2"))
	set(m, "execution.deadline", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	set(m, "created_at", time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339))
	specPath := writeJSON(t, dir, "spec.json", m)
	out := filepath.Join(dir, "result.json")
	start := time.Now()
	o := runCLI(t, context.Background(), nil, "run", "--spec", specPath, "--result", out)
	if o.code != result.ExitTimeout {
		t.Fatalf("exit %d, want 6\n%s", o.code, o.stderr)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
	res := readResult(t, out)
	if e := res.Error; res.Status != result.StatusTimeout || e == nil || e.Code != result.CodeTimeout || !strings.Contains(e.Message, "execution.deadline") {
		t.Errorf("result: status %s error %+v", res.Status, e)
	}
}

func TestRunLaunchFails(t *testing.T) {
	dir := t.TempDir()
	l := newFakeLauncher()
	l.err = &libguestfs.LaunchError{Accel: "tcg", Err: errors.New("qemu exited: could not load PC BIOS")}
	specPath := writeJSON(t, dir, "spec.json", inspectSpec(qcow2(t, dir, "disk.qcow2")))
	out := filepath.Join(dir, "result.json")
	o := runCLI(t, context.Background(), l, "run", "--spec", specPath, "--result", out)
	if o.code != result.ExitInfra {
		t.Fatalf("exit %d, want 5\n%s", o.code, o.stderr)
	}
	res := readResult(t, out)
	e := res.Error
	if res.Status != result.StatusFailed || res.ExitCode != result.ExitInfra || e == nil || e.Code != result.CodeApplianceFailed ||
		!e.Retryable || e.Phase != result.PhaseLaunch || !strings.Contains(e.Message, "could not load PC BIOS") {
		t.Errorf("result: status %s exit %d error %+v", res.Status, res.ExitCode, e)
	}
	if res.Image == nil || res.Image.Format != "qcow2" || res.Accelerator != nil {
		t.Errorf("image %+v accelerator %+v", res.Image, res.Accelerator)
	}
}

// resultOnStderr finds the result among the log lines of stderr.
func resultOnStderr(t *testing.T, stderr string) *result.Result {
	t.Helper()
	var found *result.Result
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r result.Result
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.APIVersion == result.APIVersion {
			if found != nil {
				t.Errorf("two results on stderr")
			}
			found = &r
		}
	}
	if found == nil {
		t.Fatalf("no result line on stderr:\n%s", stderr)
	}
	return found
}

// TestRunUploadFails: a result that cannot be stored is on stderr, whole,
// and the exit code is 7.
func TestRunUploadFails(t *testing.T) {
	dir := t.TempDir()
	l := newFakeLauncher()
	specPath := writeJSON(t, dir, "spec.json", inspectSpec(qcow2(t, dir, "disk.qcow2")))
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			o := runCLI(t, context.Background(), l, "--log-format", format, "run", "--spec", specPath,
				"--result", "file:///proc/guestkit/inspect-basic-001.json", "--upload-attempts", "2", "--upload-backoff", "10ms")
			if o.code != result.ExitUploadFailed {
				t.Fatalf("exit %d, want 7\n%s", o.code, o.stderr)
			}
			res := resultOnStderr(t, o.stderr)
			if res.JobID != "inspect-basic-001" || res.Status != result.StatusCompleted || res.ExitCode != 0 || res.Runner.Version != testVersion {
				t.Errorf("stderr result: %+v", res)
			}
			if d := reportOf(t, res); len(d.OperatingSystems) != 1 || d.OperatingSystems[0].Hostname != "web-01" {
				t.Errorf("stderr result data: %s", res.Data)
			}
			if n := strings.Count(o.stderr, "result upload failed, retrying"); n != 1 {
				t.Errorf("%d retries logged, want 1:\n%s", n, o.stderr)
			}
			if !strings.Contains(o.stderr, "after 2 attempts") || !strings.Contains(o.stderr, "/proc/guestkit") {
				t.Errorf("stderr:\n%s", o.stderr)
			}
			if format == "json" {
				for _, line := range strings.Split(strings.TrimSpace(o.stderr), "\n") {
					if !json.Valid([]byte(line)) {
						t.Errorf("with --log-format json, stderr has a non-JSON line: %s", line)
					}
				}
			}
		})
	}
}

// TestRunKubernetesIdentity: the downward API variables name the pod in the
// result, for completed and rejected jobs alike; the spec and result URIs
// come from the environment too.
func TestRunKubernetesIdentity(t *testing.T) {
	dir := t.TempDir()
	want := result.Kubernetes{Namespace: "guestkit", Job: "gk-inspect-basic-001", Pod: "gk-inspect-basic-001-x7k2p", Node: "node-3"}
	t.Setenv("POD_NAME", want.Pod)
	t.Setenv("POD_NAMESPACE", want.Namespace)
	t.Setenv("NODE_NAME", want.Node)
	t.Setenv("JOB_NAME", want.Job)
	t.Setenv("GUESTKIT_UPLOAD_ATTEMPTS", "1")
	for _, tc := range []struct {
		name string
		spec string
		code int
	}{
		{"completed", writeJSON(t, dir, "spec.json", inspectSpec(qcow2(t, dir, "disk.qcow2"))), 0},
		{"rejected", writeJSON(t, dir, "bad.json", map[string]any{"version": "1.0"}), result.ExitBadSpec},
		{"spec missing", filepath.Join(dir, "absent.json"), result.ExitBadSpec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "result.json")
			t.Setenv("GUESTKIT_SPEC", tc.spec)
			t.Setenv("GUESTKIT_RESULT", out)
			t.Setenv("GUESTKIT_JOB_ID", "inspect-basic-001")
			o := runCLI(t, context.Background(), newFakeLauncher(), "run")
			if o.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", o.code, tc.code, o.stderr)
			}
			res := readResult(t, out)
			if res.Kubernetes == nil || *res.Kubernetes != want {
				t.Errorf("kubernetes = %+v, want %+v", res.Kubernetes, want)
			}
			if res.JobID != "inspect-basic-001" {
				t.Errorf("job_id %q", res.JobID)
			}
		})
	}
}

// TestRunJobIDMismatch: the spec's job_id is reported, with a warning.
func TestRunJobIDMismatch(t *testing.T) {
	dir := t.TempDir()
	specPath := writeJSON(t, dir, "spec.json", inspectSpec(qcow2(t, dir, "disk.qcow2")))
	out := filepath.Join(dir, "result.json")
	o := runCLI(t, context.Background(), newFakeLauncher(), "run", "--spec", specPath, "--result", out, "--job-id", "other-job")
	if o.code != 0 {
		t.Fatalf("exit %d\n%s", o.code, o.stderr)
	}
	res := readResult(t, out)
	if res.JobID != "inspect-basic-001" || !slices.Contains(res.Warnings, `job_id: differs from --job-id "other-job"; the spec's job_id is reported`) {
		t.Errorf("job_id %q warnings %q", res.JobID, res.Warnings)
	}
}

// TestRunCancelled: SIGTERM (the context ends) still stores a result.
func TestRunCancelled(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	l := newFakeLauncher()
	l.app.roots = func(rctx context.Context) ([]string, error) {
		cancel()
		<-rctx.Done()
		return nil, rctx.Err()
	}
	specPath := writeJSON(t, dir, "spec.json", inspectSpec(qcow2(t, dir, "disk.qcow2")))
	out := filepath.Join(dir, "result.json")
	o := runCLI(t, ctx, l, "run", "--spec", specPath, "--result", out)
	if o.code != result.ExitInfra {
		t.Fatalf("exit %d, want 5\n%s", o.code, o.stderr)
	}
	res := readResult(t, out)
	if e := res.Error; res.Status != result.StatusFailed || e == nil || e.Code != result.CodeInfrastructure || !e.Retryable || !strings.Contains(e.Message, "cancelled") {
		t.Errorf("result: status %s error %+v", res.Status, res.Error)
	}
	if l.app.closeCount() != 1 {
		t.Errorf("Close called %d times", l.app.closeCount())
	}
}
