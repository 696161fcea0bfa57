package localrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/metrics"
	"guestkit.io/batch/internal/policy"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/result/resulttest"
	"guestkit.io/batch/internal/runner/runnertest"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/spec/spectest"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/store/storetest"
)

// fixture is an executor on a file bucket with the fake runner.
type fixture struct {
	t       *testing.T
	dir     string // FAKE_DIR
	scratch string
	st      store.Store
	results *controller.Results
	m       *metrics.Dispatcher
	x       *Executor
	stop    context.CancelFunc
	// finished counts OnFinish calls.
	finished atomic.Int32
}

// newFixture makes an executor; cfg's zero fields get the fixture's.
func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), scratch: t.TempDir()}
	runner := runnertest.Write(t, t.TempDir())
	if cfg.Store == nil {
		cfg.Store, _ = storetest.Folder(t)
	}
	f.st, f.m = cfg.Store, metrics.New()
	log := testLog(t)
	f.results = controller.NewResults(cfg.Store, "test", log, f.m)
	cfg.Runner, cfg.Results, cfg.Log, cfg.Metrics = runner, f.results, log, f.m
	cfg.ExtraEnv = append(cfg.ExtraEnv, "FAKE_DIR="+f.dir)
	cfg.ScratchDir = f.scratch
	cfg.OnFinish = func() { f.finished.Add(1) }
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = 20 * time.Millisecond
	}
	if cfg.Grace == 0 {
		cfg.Grace = 100 * time.Millisecond
	}
	if cfg.TermGrace == 0 {
		cfg.TermGrace = 300 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	x, err := New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	f.x = x
	t.Cleanup(func() {
		cancel()
		wctx, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		_ = x.Wait(wctx)
	})
	return f
}

func testLog(t *testing.T) *logrus.Logger {
	log := logrus.New()
	log.Out = t.Output()
	log.Level = logrus.DebugLevel
	return log
}

// job stores a spec with job_id id, execution exec, and the fake's script
// for it; it returns the spec's entry as the scanner would make it.
func (f *fixture) job(id string, exec map[string]any, script string) *intake.Entry {
	f.t.Helper()
	f.script(id, script)
	var doc map[string]any
	if err := json.Unmarshal([]byte(spectest.JSON(spectest.Inspect(id, "/vms/"+id+".qcow2"))), &doc); err != nil {
		f.t.Fatal(err)
	}
	if exec != nil {
		doc["execution"] = exec
	}
	return putSpec(f.t, f.st, "jobs/"+id+".json", doc)
}

func (f *fixture) script(id, script string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, id+".sh"), []byte(script), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func putSpec(t *testing.T, st store.Store, key string, doc map[string]any) *intake.Entry {
	t.Helper()
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(t.Context(), key, data); err != nil {
		t.Fatal(err)
	}
	j, _, err := spec.Load(data)
	if err != nil {
		t.Fatalf("spec %s: %v", key, err)
	}
	return &intake.Entry{Key: key, Job: j, JobID: j.JobID, Digest: j.Digest(), ResultKey: store.ResultKey(j.JobID),
		Admission: admit(t, strings.TrimSuffix(st.URI("x"), "x"), key, j)}
}

// admit is the default policy's admission of j in the bucket home, with
// the folder of its image path allowed, as an operator would with
// --host-path-roots.
func admit(t *testing.T, home, key string, j *spec.Job) *policy.Admission {
	t.Helper()
	cfg := policy.Config{Home: home, LocalFolder: true, PVCs: []string{"vm-disks"}}
	if img := j.Image(); img != nil && img.Path != "" {
		cfg.HostPathRoots = []string{filepath.Dir(img.Path)}
	}
	p, err := policy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.Admit(key, j)
	if err != nil {
		t.Fatalf("admit %s: %v", key, err)
	}
	return a
}

func (f *fixture) launch(e *intake.Entry) {
	f.t.Helper()
	if err := f.x.Launch(f.t.Context(), e); err != nil {
		f.t.Fatalf("launch %s: %v", e.JobID, err)
	}
}

// wait waits for every job to settle.
func (f *fixture) wait() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.t.Context(), 30*time.Second)
	defer cancel()
	if err := f.x.Wait(ctx); err != nil {
		f.t.Fatalf("wait: %v", err)
	}
}

// result reads a job's result, checked against the result v1 schema.
func (f *fixture) result(e *intake.Entry) *result.Result {
	f.t.Helper()
	return resulttest.Read(f.t, f.st, e.ResultKey)
}

// pids are the fake runner's pids for job id, one per attempt.
func (f *fixture) pids(id string) []int {
	f.t.Helper()
	data, err := os.ReadFile(filepath.Join(f.dir, id+".pids"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	var pids []int
	for _, l := range strings.Fields(string(data)) {
		p, err := strconv.Atoi(l)
		if err != nil {
			f.t.Fatal(err)
		}
		pids = append(pids, p)
	}
	return pids
}

// readInt reads a number a fake script wrote, waiting for it to appear.
func (f *fixture) readInt(name string) int {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(filepath.Join(f.dir, name))
		if n, aerr := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && aerr == nil {
			return n
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: no number after 10s (%v)", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counter is the value of a dispatcher metric, with label=value when set.
func counter(t *testing.T, m *metrics.Dispatcher, name, label, value string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != "guestkit_dispatcher_"+name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			match := label == ""
			for _, l := range mt.GetLabel() {
				match = match || l.GetName() == label && l.GetValue() == value
			}
			if match {
				return mt.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// gone waits until pid is dead (no process, or a zombie nobody reaps).
func gone(pid int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Kill(pid, 0)
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if errors.Is(err, syscall.ESRCH) || zombie(string(stat)) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d still alive: %s", pid, stat)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func zombie(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	return i >= 0 && strings.HasPrefix(stat[i:], ") Z")
}

// noLeaks fails when goroutines started since before are still running.
func noLeaks(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// emptyDir fails unless dir holds nothing.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) > 0 {
		t.Errorf("%s holds %d entries (%s...), want none", dir, len(ents), ents[0].Name())
	}
}

// flakyStore fails its first fails Creates, as a bucket that is down.
type flakyStore struct {
	store.Store
	fails   int32
	creates atomic.Int32
}

func (s *flakyStore) Create(ctx context.Context, key string, data []byte) error {
	if s.creates.Add(1) <= s.fails {
		return errors.New("bucket unreachable")
	}
	return s.Store.Create(ctx, key, data)
}
