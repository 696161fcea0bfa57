package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"guestkit.io/batch/dispatcher/cli"
	"guestkit.io/batch/internal/exitcode"
	"guestkit.io/batch/internal/profile/names"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner/runnertest"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/spec/spectest"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/store/storetest"
)

// TestMain clears the flags' environment variables, so that the
// developer's or the CI's environment cannot change what the tests parse.
func TestMain(m *testing.M) {
	for _, f := range flags(nil) {
		for _, env := range f.Envs {
			os.Unsetenv(env)
		}
	}
	os.Exit(m.Run())
}

func flags(t *testing.T) map[string]*kong.Flag {
	var c cli.CLI
	p, err := kong.New(&c, kong.Name("guestkit-dispatcher"), cli.Vars())
	if err != nil {
		if t != nil {
			t.Fatal(err)
		}
		panic(err)
	}
	out := map[string]*kong.Flag{}
	var walk func(n *kong.Node, path string)
	walk = func(n *kong.Node, path string) {
		for _, f := range n.Flags {
			out[strings.TrimSpace(path+" --"+f.Name)] = f
		}
		for _, child := range n.Children {
			walk(child, path+" "+child.Name)
		}
	}
	walk(p.Model.Node, "")
	return out
}

// TestEveryFlagHasADocumentedEnvVar: the Deployment and the CronJob
// configure the dispatcher through a ConfigMap, so every flag needs a
// variable, and the README lists them all with the exit codes.
func TestEveryFlagHasADocumentedEnvVar(t *testing.T) {
	all := flags(t)
	if len(all) < 40 {
		t.Fatalf("walked %d flags; the walk is broken", len(all))
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range all {
		if f.Name == "help" {
			continue
		}
		if len(f.Envs) != 1 {
			t.Errorf("flag %s has env vars %v, want one", name, f.Envs)
			continue
		}
		e := f.Envs[0]
		if e != strings.ToUpper(e) || strings.ContainsAny(e, " -") {
			t.Errorf("flag %s: env var %q is not an upper-case identifier", name, e)
		}
		if !bytes.Contains(readme, []byte("`"+e+"`")) {
			t.Errorf("dispatcher/README.md does not document %s (flag %s)", e, name)
		}
	}
	// The exit code rows, without Markdown: exactly the dispatcher's codes,
	// each with its meaning.
	rows := map[int]string{}
	for _, m := range regexp.MustCompile(`(?m)^\| (\d+) \|.*$`).FindAllSubmatch(readme, -1) {
		code, _ := strconv.Atoi(string(m[1]))
		rows[code] = strings.ReplaceAll(string(m[0]), "`", "")
	}
	for _, c := range exitcode.Dispatcher() {
		switch row, ok := rows[c.Code]; {
		case !ok:
			t.Errorf("dispatcher/README.md does not document exit code %d", c.Code)
		case !strings.Contains(row, " "+c.Meaning):
			t.Errorf("dispatcher/README.md: the row of exit code %d must say %q: %q", c.Code, c.Meaning, row)
		}
		delete(rows, c.Code)
	}
	for code := range rows {
		t.Errorf("dispatcher/README.md documents exit code %d, which is not in package exitcode", code)
	}
	var final []string
	for _, c := range result.NonRetryableExitCodes() {
		final = append(final, strconv.Itoa(int(c)))
	}
	if list := "non-retryable exit codes (" + strings.Join(final, ", ") + ")"; !bytes.Contains(readme, []byte(list)) {
		t.Errorf("dispatcher/README.md does not say the runner's %s", list)
	}
}

// TestSweepDefaultProfiles: sweep's default profiles, spelled in its tag
// and in the README, are the registry's defaults.
func TestSweepDefaultProfiles(t *testing.T) {
	want := strings.Join(names.Defaults(), ",")
	if f := flags(t)["sweep --profiles"]; f == nil || f.Default != want {
		t.Errorf("sweep --profiles: default %v, want %q", f, want)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if row := "\n| `sweep --profiles` | `GUESTKIT_SWEEP_PROFILES` | `" + want + "` |"; !bytes.Contains(readme, []byte(row)) {
		t.Errorf("dispatcher/README.md has no row %q", row[1:])
	}
}

type run struct {
	code           int
	stdout, stderr string
}

func dispatcher(t *testing.T, args ...string) run {
	t.Helper()
	var out, errb bytes.Buffer
	err := cli.Run(context.Background(), args, cli.Deps{Stdout: &out, Stderr: &errb, Version: "test", IsTerminal: func() bool { return false }})
	return run{code: cli.ExitCode(err), stdout: out.String(), stderr: errb.String()}
}

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func inspectSpec(id, image string, opts ...func(*spec.Job)) string {
	return spectest.JSON(spectest.Inspect(id, image, opts...))
}

func TestUsageErrors(t *testing.T) {
	if r := dispatcher(t, "once", "--executor", "mainframe"); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "--executor") {
		t.Errorf("bad enum: %+v", r)
	}
	if r := dispatcher(t, "frobnicate"); r.code != cli.ExitUsage {
		t.Errorf("unknown command: %+v", r)
	}
	if r := dispatcher(t, "version"); r.code != 0 || r.stdout != "guestkit-dispatcher test\n" {
		t.Errorf("version: %+v", r)
	}
	if r := dispatcher(t, "--bucket", "ftp://x", "status"); r.code != cli.ExitFailure || !strings.Contains(r.stderr, "ftp") {
		t.Errorf("bad bucket: %+v", r)
	}
}

func TestSubmitValidatesFirstAndCreatesOnce(t *testing.T) {
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	a := writeFile(t, dir, "a.json", inspectSpec("job-a", "/vms/a.qcow2"))
	b := writeFile(t, dir, "b.yaml", "version: \"1.0\"\njob_id: job-b\nkind: VMOperation\noperation: guestkit.inspect\npayload:\n  type: guestkit.inspect.v1\n  data: {image: {path: /vms/b.qcow2}}\n")
	bad := writeFile(t, dir, "bad.json", `{"version":"1.0","job_id":"bad id!","kind":"VMOperation","operation":"guestkit.inspect","payload":{"type":"guestkit.inspect.v1","data":{}}}`)

	r := dispatcher(t, "--bucket", bucket, "submit", a, b, bad)
	if r.code != cli.ExitJobsFailed || !strings.Contains(r.stderr, "bad.json") || !strings.Contains(r.stderr, "job_id") || !strings.Contains(r.stderr, "payload.data.image") {
		t.Fatalf("invalid batch: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(bucket, "jobs")); err == nil {
		t.Fatal("a batch with an invalid spec was partly uploaded")
	}
	r = dispatcher(t, "--bucket", bucket, "submit", a, b)
	if r.code != 0 || !strings.Contains(r.stdout, "submitted as file://"+bucket+"/jobs/job-a.json") || !strings.Contains(r.stdout, "jobs/job-b.yaml") {
		t.Fatalf("submit: %+v", r)
	}
	if got, _ := os.ReadFile(filepath.Join(bucket, "jobs", "job-b.yaml")); !strings.HasPrefix(string(got), "version:") {
		t.Errorf("the YAML spec was not stored as written: %q", got)
	}
	r = dispatcher(t, "--bucket", bucket, "submit", a)
	if r.code != 0 || !strings.Contains(r.stdout, "already submitted") {
		t.Errorf("resubmit: %+v", r)
	}
	other := writeFile(t, dir, "a2.json", inspectSpec("job-a", "/vms/other.qcow2"))
	r = dispatcher(t, "--bucket", bucket, "submit", other)
	if r.code != cli.ExitJobsFailed || !strings.Contains(r.stderr, "conflict") {
		t.Errorf("conflicting resubmit: %+v", r)
	}
	if got, _ := os.ReadFile(filepath.Join(bucket, "jobs", "job-a.json")); !strings.Contains(string(got), "/vms/a.qcow2") {
		t.Error("a conflicting submit replaced the spec")
	}
	big := writeFile(t, dir, "big.json", inspectSpec("big", "/vms/a.qcow2")+strings.Repeat(" ", 1<<20))
	if r := dispatcher(t, "--bucket", bucket, "submit", "--dry-run", big); r.code != cli.ExitJobsFailed || !strings.Contains(r.stderr, "1 MiB") {
		t.Errorf("oversized spec: %+v", r)
	}
}

func TestOnceLocalSummaryAndExitCode(t *testing.T) {
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	runner := runnertest.Write(t, dir)
	st, err := store.Open(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Put(t, st, "jobs/ok.json", inspectSpec("ok", "/vms/a.qcow2"))
	storetest.Put(t, st, "jobs/crash.json", inspectSpec("crash", "/vms/a.qcow2", spectest.WithAnnotations(map[string]string{"fake": "crash"}), spectest.WithAttempts(1)))
	storetest.Put(t, st, "jobs/broken.json", `{"job_id":`)

	r := dispatcher(t, "--bucket", bucket, "once", "--runner", runner, "--host-path-roots", "/vms", "--interval", "200ms", "--progress", "always")
	if !strings.Contains(r.stderr, "\r\033[K[") || !strings.Contains(r.stderr, "3/3 done, 0 running") {
		t.Errorf("no progress line on stderr:\n%q", r.stderr)
	}
	if r.code != cli.ExitJobsFailed {
		t.Fatalf("once: exit %d, want 1 (one failed, one rejected)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"3 specs: 1 completed 1 failed 1 rejected", "jobs/crash.json", "jobs/broken.json", "spec_invalid", "backoff_limit_exceeded", "exited 1"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.stdout)
		}
	}
	// Nothing pending: a second once has nothing to wait for.
	r = dispatcher(t, "--bucket", bucket, "once", "--runner", runner, "--host-path-roots", "/vms", "--interval", "200ms")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "0 specs") {
		t.Errorf("second once: %+v", r)
	}
	r = dispatcher(t, "--bucket", bucket, "status", "-o", "json")
	var rows []cli.StatusRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("status: %v %+v", err, r)
	}
	got := map[string]string{}
	for _, row := range rows {
		got[row.Spec] = row.State + "/" + row.Status
	}
	want := map[string]string{"jobs/ok.json": "done/completed", "jobs/crash.json": "done/failed", "jobs/broken.json": "done/rejected"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("status %s = %s, want %s", k, got[k], v)
		}
	}
}

// TestFairShareBetweenWriters: one writer floods jobs/a/ before another
// writes two specs to jobs/b/; with one runner at a time, the second
// writer's jobs start second and fourth, not after the flood.
func TestFairShareBetweenWriters(t *testing.T) {
	dir := t.TempDir()
	bucket, fake := filepath.Join(dir, "bucket"), filepath.Join(dir, "fake")
	if err := os.MkdirAll(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	runner := runnertest.Write(t, dir)
	st, err := store.Open(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		storetest.Put(t, st, fmt.Sprintf("jobs/a/a%d.json", i), inspectSpec(fmt.Sprintf("a%d", i), "/vms/a.qcow2"))
	}
	time.Sleep(20 * time.Millisecond) // b's objects are younger
	for i := range 2 {
		storetest.Put(t, st, fmt.Sprintf("jobs/b/b%d.json", i), inspectSpec(fmt.Sprintf("b%d", i), "/vms/b.qcow2"))
	}
	r := dispatcher(t, "--bucket", bucket, "once", "--runner", runner, "--host-path-roots", "/vms",
		"--parallel", "1", "--max-active", "1", "--interval", "100ms", "--runner-env", "FAKE_DIR="+fake)
	if r.code != cli.ExitOK {
		t.Fatalf("once: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	data, err := os.ReadFile(filepath.Join(fake, "starts"))
	if err != nil {
		t.Fatal(err)
	}
	order := strings.Fields(string(data))
	if len(order) != 8 {
		t.Fatalf("%d runs, want 8: %v", len(order), order)
	}
	if got := order[:4]; !slices.Equal(got, []string{"a0", "b0", "a1", "b1"}) {
		t.Errorf("first four starts %v, want a0 b0 a1 b1 (all starts: %v)", got, order)
	}
}
