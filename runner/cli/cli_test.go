package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"guestkit.io/batch/internal/exitcode"
	"guestkit.io/batch/internal/profile/names"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runnerenv"
	"guestkit.io/batch/runner/cli"
)

// TestMain clears the flags' environment variables, so that the developer's
// or the CI's environment cannot change what the tests parse.
func TestMain(m *testing.M) {
	for _, f := range flags(nil) {
		for _, env := range f.Envs {
			os.Unsetenv(env)
		}
	}
	os.Exit(m.Run())
}

// flags lists every flag of the command line, with the command it belongs
// to ("" for globals).
func flags(t *testing.T) map[string]*kong.Flag {
	var c cli.CLI
	p, err := kong.New(&c, kong.Name("guestkit-runner"), cli.Vars())
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

// TestEveryFlagHasAnEnvVar: a Kubernetes Job configures the runner through
// its environment, so every flag needs a variable.
func TestEveryFlagHasAnEnvVar(t *testing.T) {
	all := flags(t)
	if len(all) < 20 {
		t.Fatalf("walked %d flags; the walk is broken", len(all))
	}
	for name, f := range all {
		if f.Name == "help" {
			continue
		}
		if len(f.Envs) == 0 {
			t.Errorf("flag %s has no env var", name)
		}
		for _, e := range f.Envs {
			if e != strings.ToUpper(e) || strings.ContainsAny(e, " -") {
				t.Errorf("flag %s: env var %q is not an upper-case identifier", name, e)
			}
		}
	}
	// The Kubernetes downward API names are a contract with the pod template.
	for flag, env := range map[string]string{
		"run --spec": "GUESTKIT_SPEC", "run --result": "GUESTKIT_RESULT", "run --pod-name": "POD_NAME",
		"run --namespace": "POD_NAMESPACE", "run --node-name": "NODE_NAME", "run --job-name": "JOB_NAME",
		// The dispatcher sets these by runnerenv's names.
		"run --net-guard": runnerenv.NetGuard, "run --net-allow": runnerenv.NetAllow,
	} {
		if f := all[flag]; f == nil || len(f.Envs) != 1 || f.Envs[0] != env {
			t.Errorf("%s: want env %s", flag, env)
		}
	}
}

// TestReadme keeps runner/README.md in step with the code: every variable
// and every exit code is documented.
func TestReadme(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for name, f := range flags(t) {
		for _, e := range f.Envs {
			if !strings.Contains(doc, "`"+e+"`") {
				t.Errorf("README does not document %s (%s)", e, name)
			}
		}
	}
	rows := exitRows(t, "runner/README.md", doc)
	for _, c := range exitcode.Runner() {
		if nonRetryable := strings.Contains(rows[c.Code], "FailJob"); nonRetryable != c.NonRetryable {
			t.Errorf("README: exit code %d: NonRetryable is %v; its row must say FailJob exactly then: %q", c.Code, c.NonRetryable, rows[c.Code])
		}
	}
	if list := nonRetryable(); !strings.Contains(doc, "`result.NonRetryableExitCodes()` "+list) {
		t.Errorf("README does not say that result.NonRetryableExitCodes() is %s", list)
	}
	b, err = os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	exitRows(t, "README.md", string(b))
}

// nonRetryable is the runner's non-retryable exit codes as the READMEs
// list them: "(2, 3)".
func nonRetryable() string {
	var s []string
	for _, c := range result.NonRetryableExitCodes() {
		s = append(s, strconv.Itoa(int(c)))
	}
	return "(" + strings.Join(s, ", ") + ")"
}

// exitRows returns doc's exit code rows by code, without Markdown, and
// checks that they are exactly the runner's codes, each with its meaning.
func exitRows(t *testing.T, name, doc string) map[int]string {
	t.Helper()
	rows := map[int]string{}
	for _, m := range regexp.MustCompile(`(?m)^\| (\d+) \|.*$`).FindAllStringSubmatch(doc, -1) {
		code, _ := strconv.Atoi(m[1])
		rows[code] = strings.ReplaceAll(m[0], "`", "")
	}
	for _, c := range exitcode.Runner() {
		switch row, ok := rows[c.Code]; {
		case !ok:
			t.Errorf("%s has no exit code row for %d", name, c.Code)
		case !strings.Contains(row, " "+c.Meaning):
			t.Errorf("%s: the row of exit code %d must say %q: %q", name, c.Code, c.Meaning, row)
		}
	}
	for code := range rows {
		if !slices.ContainsFunc(exitcode.Runner(), func(c exitcode.Code) bool { return c.Code == code }) {
			t.Errorf("%s documents exit code %d, which is not in package exitcode", name, code)
		}
	}
	return rows
}

// TestReadmeProfiles: the READMEs name the profiles of the registry, and
// only those; runner/README.md lists them all with the default.
func TestReadmeProfiles(t *testing.T) {
	all := names.All()
	for _, path := range []string{"../README.md", "../../README.md"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`--profiles[ =]([a-z0-9,-]+)`).FindAllStringSubmatch(string(b), -1) {
			for _, p := range strings.Split(m[1], ",") {
				if p != "" && !slices.Contains(all, p) {
					t.Errorf("%s: %q names unknown profile %q", path, m[0], p)
				}
			}
		}
	}
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, row, ok := strings.Cut(string(b), "\n| `profile --profiles` |")
	if !ok {
		t.Fatal("runner/README.md has no row for profile --profiles")
	}
	row, _, _ = strings.Cut(row, "\n")
	cells := strings.Split(row, "|")
	if len(cells) != 4 {
		t.Fatalf("profile --profiles row: %d cells, want 4: %q", len(cells), row)
	}
	if got, want := strings.Trim(cells[1], " `"), strings.Join(names.Defaults(), ","); got != want {
		t.Errorf("runner/README.md: profile --profiles default %q, want %q", got, want)
	}
	var listed []string
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cells[2], -1) {
		listed = append(listed, m[1])
	}
	if !slices.Equal(listed, all) {
		t.Errorf("runner/README.md: profile --profiles lists %v, want %v", listed, all)
	}
}

func TestVersion(t *testing.T) {
	o := runCLI(t, context.Background(), nil, "version")
	if o.code != 0 || o.stdout != "guestkit-runner "+testVersion+"\n" {
		t.Fatalf("version: exit %d, stdout %q, stderr %q", o.code, o.stdout, o.stderr)
	}
}

func TestUsage(t *testing.T) {
	img := rawDisk(t, t.TempDir(), "disk.raw")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string // substring, for help
		stderr string // substring
	}{
		{"help", []string{"--help"}, 0, "Usage: guestkit-runner", ""},
		{"run help without required flags", []string{"run", "--help"}, 0, "--upload-backoff", ""},
		{"inspect help", []string{"inspect", "-h"}, 0, "--summary", ""},
		{"no command", nil, result.ExitUsage, "", "expected one of"},
		{"unknown command", []string{"repair"}, result.ExitUsage, "", "unexpected argument repair"},
		{"unknown flag", []string{"run", "--spec", "s.json", "--result", "r.json", "--frobnicate"}, result.ExitUsage, "", "unknown flag --frobnicate"},
		{"missing --result", []string{"run", "--spec", "s.json"}, result.ExitUsage, "", "--result"},
		{"bad enum", []string{"inspect", "--accel", "hvf", img}, result.ExitUsage, "", "--accel"},
		{"bad log level", []string{"--log-level", "loud", "version"}, result.ExitUsage, "", "--log-level"},
		{"inspect missing image", []string{"inspect", "/nonexistent/disk.qcow2"}, result.ExitUsage, "", "/nonexistent/disk.qcow2"},
		{"inspect zero timeout", []string{"inspect", "--timeout", "0", img}, result.ExitUsage, "", "--timeout"},
		{"result key with ..", []string{"run", "--spec", "s.json", "--result", "s3://results/jobs/../x.json"}, result.ExitUsage, "", "invalid object key"},
		{"result file name with a control character", []string{"run", "--spec", "s.json", "--result", "/tmp/results/bad\x01name.json"}, result.ExitUsage, "", "control character"},
		{"result scheme", []string{"run", "--spec", "s.json", "--result", "ftp://host/x.json"}, result.ExitUsage, "", `unsupported scheme "ftp"`},
		{"zero upload attempts", []string{"run", "--spec", "s.json", "--result", "r.json", "--upload-attempts", "0"}, result.ExitUsage, "", "--upload-attempts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := runCLI(t, context.Background(), nil, tc.args...)
			if o.code != tc.code {
				t.Errorf("exit %d, want %d (err %v)\nstdout: %s\nstderr: %s", o.code, tc.code, o.err, o.stdout, o.stderr)
			}
			if !strings.Contains(o.stdout, tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, o.stdout)
			}
			if !strings.Contains(o.stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, o.stderr)
			}
			if tc.code == result.ExitUsage && !strings.HasPrefix(o.stderr, "guestkit-runner: ") {
				t.Errorf("a usage error must be reported on stderr: %q", o.stderr)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{&cli.ExitError{Code: result.ExitNoncompliant}, 2},
		{&cli.ExitError{Code: result.ExitTimeout, Err: context.DeadlineExceeded}, 6},
		{os.ErrClosed, result.ExitInternal},
	} {
		if got := cli.ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestInspectSummary(t *testing.T) {
	dir := t.TempDir()
	img := rawDisk(t, dir, "disk.raw")
	out := filepath.Join(dir, "result.json")
	l := newFakeLauncher()
	o := runCLI(t, context.Background(), l, "inspect", img, "-o", out, "--summary", "--accel", "tcg", "--memory", "768")
	if o.code != 0 {
		t.Fatalf("exit %d (%v)\nstdout: %s\nstderr: %s", o.code, o.err, o.stdout, o.stderr)
	}
	for _, want := range []string{
		"job local-disk.raw: completed (exit 0)", "accel tcg",
		"image " + img + ": raw, 4 MiB virtual",
		`root /dev/sda1: linux Debian GNU/Linux 12 (bookworm) (debian 12.5, x86_64), hostname "web-01"`,
		"packages: 3 (deb)", "can log in: root, alice", "PermitRootLogin=yes",
	} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, o.stdout)
		}
	}
	if strings.Contains(o.stdout, `"api_version"`) {
		t.Errorf("with -o, the JSON goes to the file, not stdout:\n%s", o.stdout)
	}
	res := readResult(t, out)
	if res.JobID != "local-disk.raw" || res.Status != result.StatusCompleted || res.Image.Format != "raw" || res.Image.URI != img {
		t.Errorf("result: %+v image %+v", res, res.Image)
	}
	if calls := l.launched(); len(calls) != 1 || calls[0].Accel != "tcg" || calls[0].MemoryMB != 768 || calls[0].Format != "raw" || calls[0].Image != img {
		t.Errorf("launch options: %+v", calls)
	}
	if l.app.closeCount() != 1 {
		t.Errorf("Close called %d times", l.app.closeCount())
	}
}

func TestInspectJSONToStdout(t *testing.T) {
	img := rawDisk(t, t.TempDir(), "disk.raw")
	o := runCLI(t, context.Background(), newFakeLauncher(), "inspect", img)
	if o.code != 0 {
		t.Fatalf("exit %d: %s", o.code, o.stderr)
	}
	var res result.Result
	if err := json.Unmarshal([]byte(o.stdout), &res); err != nil {
		t.Fatalf("stdout is not a result: %v\n%s", err, o.stdout)
	}
	if d := reportOf(t, &res); res.Status != result.StatusCompleted || len(d.OperatingSystems) != 1 || d.OperatingSystems[0].Hostname != "web-01" {
		t.Errorf("result: %s %s", res.Status, res.Data)
	}
}

// TestInspectOutputUnwritable: exit 7 promises the result on stderr.
func TestInspectOutputUnwritable(t *testing.T) {
	img := rawDisk(t, t.TempDir(), "disk.raw")
	o := runCLI(t, context.Background(), newFakeLauncher(), "inspect", img, "-o", "/proc/guestkit/result.json")
	if o.code != result.ExitUploadFailed {
		t.Fatalf("exit %d, want 7\n%s", o.code, o.stderr)
	}
	res := resultOnStderr(t, o.stderr)
	if res.Status != result.StatusCompleted || res.JobID != "local-disk.raw" {
		t.Errorf("stderr result: %+v", res)
	}
	if !strings.Contains(o.stderr, "/proc/guestkit/result.json") {
		t.Errorf("stderr does not name the file:\n%s", o.stderr)
	}
}

func TestInspectRejectsBadImage(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "evil.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b", "/etc/shadow", img, "64M")
	o := runCLI(t, context.Background(), nil, "inspect", img, "--summary")
	if o.code != result.ExitBadImage {
		t.Fatalf("exit %d, want 4\n%s\n%s", o.code, o.stdout, o.stderr)
	}
	if !strings.Contains(o.stdout, "error image_backing_file in probe") || !strings.Contains(o.stdout, "/etc/shadow") {
		t.Errorf("summary:\n%s", o.stdout)
	}
}

// TestPanicIsExitInternal: a bug must not exit with Go's status 2, which
// is ExitNoncompliant; the result is still stored.
func TestPanicIsExitInternal(t *testing.T) {
	dir := t.TempDir()
	l := newFakeLauncher()
	l.app.roots = func(context.Context) ([]string, error) { panic("fake appliance exploded") }
	specPath := writeJSON(t, dir, "spec.json", inspectSpec(qcow2(t, dir, "disk.qcow2")))
	out := filepath.Join(dir, "result.json")
	o := runCLI(t, context.Background(), l, "run", "--spec", specPath, "--result", out)
	if o.code != result.ExitInternal {
		t.Fatalf("exit %d, want 1\n%s", o.code, o.stderr)
	}
	res := readResult(t, out)
	if res.Status != result.StatusFailed || res.ExitCode != result.ExitInternal || res.Error == nil ||
		res.Error.Code != result.CodeInternal || res.Error.Phase != result.PhaseInspect ||
		!strings.Contains(res.Error.Message, "fake appliance exploded") {
		t.Errorf("result: status %s exit %d error %+v", res.Status, res.ExitCode, res.Error)
	}
	if l.app.closeCount() != 1 {
		t.Errorf("Close called %d times", l.app.closeCount())
	}
}
