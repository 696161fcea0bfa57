package intake

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"guestkit.io/batch/internal/policy"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/spec/spectest"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/store/storetest"
)

func inspectSpec(id string, priority int, opts ...func(*spec.Job)) string {
	return spectest.JSON(spectest.Inspect(id, "/vms/a.qcow2", append(opts, spectest.WithPriority(priority))...))
}

func keys(list []*Entry) []string {
	var out []string
	for _, e := range list {
		out = append(out, e.Key)
	}
	return out
}

func reasonOf(t *testing.T, e *Entry) Reason {
	t.Helper()
	var re *RejectError
	if !errors.As(e.Err, &re) {
		t.Fatalf("%s: err %v is not a RejectError", e.Key, e.Err)
	}
	return re.Reason
}

func TestScanClassifiesEverySpec(t *testing.T) {
	ctx := context.Background()
	st, dir := storetest.Folder(t)
	storetest.Put(t, st, "jobs/low.json", inspectSpec("low", 1))
	storetest.Put(t, st, "jobs/high.json", inspectSpec("high", 9))
	storetest.Put(t, st, "jobs/nested/mid.yaml", "version: \"1.0\"\njob_id: mid\nkind: VMOperation\noperation: guestkit.inspect\nexecution: {priority: 5}\npayload:\n  type: guestkit.inspect.v1\n  data: {image: {path: /vms/a.qcow2, format: qcow2}}\n")
	storetest.Put(t, st, "jobs/done.json", inspectSpec("done", 5))
	storetest.Put(t, st, store.ResultKey("done"), `{"status":"completed"}`)
	storetest.Put(t, st, "jobs/malformed.json", `{"job_id": "x",`)
	storetest.Put(t, st, "jobs/badyaml.yaml", "job_id: [unclosed\n")
	storetest.Put(t, st, "jobs/unknown-op.json", strings.Replace(inspectSpec("unknown-op", 5), "guestkit.inspect\"", "guestkit.repair\"", 1))
	storetest.Put(t, st, "jobs/noimage.json", `{"version":"1.0","job_id":"noimage","kind":"VMOperation","operation":"guestkit.inspect","payload":{"type":"guestkit.inspect.v1","data":{}}}`)
	storetest.Put(t, st, "jobs/huge.json", inspectSpec("huge", 5, spectest.WithAnnotations(map[string]string{"pad": strings.Repeat("x", spec.MaxSize)})))
	// A file name with a control character: a folder can hold it, a key
	// must not pass it on.
	if err := os.WriteFile(filepath.Join(dir, "jobs", "evil\x1b[31m.json"), []byte(inspectSpec("evil", 5)), 0o644); err != nil {
		t.Fatal(err)
	}

	snap, err := NewScanner(st, 4, nil).Scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(keys(snap.Pending), " "), "jobs/high.json jobs/nested/mid.yaml jobs/low.json"; got != want {
		t.Errorf("pending = %s, want %s (priority order)", got, want)
	}
	if got := keys(snap.Done); len(got) != 1 || got[0] != "jobs/done.json" {
		t.Errorf("done = %v", got)
	}
	want := map[string]struct {
		reason    Reason
		resultKey string
		msg       string
	}{
		"jobs/malformed.json":    {ReasonSyntax, store.InvalidResultKey("jobs/malformed.json"), "json"},
		"jobs/badyaml.yaml":      {ReasonSyntax, store.InvalidResultKey("jobs/badyaml.yaml"), "yaml"},
		"jobs/unknown-op.json":   {ReasonInvalid, store.ResultKey("unknown-op"), "guestkit.repair"},
		"jobs/noimage.json":      {ReasonInvalid, store.ResultKey("noimage"), "payload.data.image"},
		"jobs/huge.json":         {ReasonTooLarge, store.InvalidResultKey("jobs/huge.json"), "1 MiB"},
		"jobs/evil\x1b[31m.json": {ReasonKey, store.InvalidResultKey("jobs/evil\x1b[31m.json"), "control character"},
	}
	if len(snap.Rejected) != len(want) {
		t.Errorf("rejected = %q, want %d", keys(snap.Rejected), len(want))
	}
	for _, e := range snap.Rejected {
		w, ok := want[e.Key]
		if !ok {
			t.Errorf("unexpected rejection of %s: %v", e.Key, e.Err)
			continue
		}
		if r := reasonOf(t, e); r != w.reason {
			t.Errorf("%s: reason %s, want %s (%v)", e.Key, r, w.reason, e.Err)
		}
		if e.ResultKey != w.resultKey {
			t.Errorf("%s: result key %s, want %s", e.Key, e.ResultKey, w.resultKey)
		}
		if !strings.Contains(strings.ToLower(e.Err.Error()), strings.ToLower(w.msg)) {
			t.Errorf("%s: error %q does not mention %q", e.Key, e.Err, w.msg)
		}
		if err := store.ValidateKey(e.ResultKey); err != nil {
			t.Errorf("%s: result key %q: %v", e.Key, e.ResultKey, err)
		}
	}
}

func TestRejectedResultNamesTheSpecAndFields(t *testing.T) {
	ctx := context.Background()
	st, _ := storetest.Folder(t)
	storetest.Put(t, st, "jobs/unknown-op.json", strings.Replace(inspectSpec("op-x", 5), "guestkit.inspect\"", "guestkit.repair\"", 1))
	storetest.Put(t, st, "jobs/bad-fields.json", `{"version":"1.0","job_id":"bad-fields","kind":"VMOperation","operation":"guestkit.inspect","execution":{"timeout_seconds":-5},"payload":{"type":"guestkit.inspect.v1","data":{}}}`)
	snap, err := NewScanner(st, 0, nil).Scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	by := result.Runner{Name: "guestkit-dispatcher", Version: "test"}
	got := map[string]*result.Result{}
	for _, e := range snap.Rejected {
		got[e.Key] = e.RejectedResult(by, now, nil)
	}
	r := got["jobs/unknown-op.json"]
	if r == nil || r.Status != result.StatusRejected || r.Error.Code != result.CodeSpecUnsupported || r.JobID != "op-x" || r.ExitCode != result.ExitBadSpec {
		t.Fatalf("unknown operation result = %+v", r)
	}
	if r.Error.Details["spec_key"] != "jobs/unknown-op.json" || !strings.HasPrefix(r.Error.Details["spec_digest"], "sha256:") {
		t.Errorf("details = %v", r.Error.Details)
	}
	r = got["jobs/bad-fields.json"]
	if r == nil || r.Error.Code != result.CodeSpecInvalid {
		t.Fatalf("bad fields result = %+v", r)
	}
	fields := map[string]bool{}
	for _, f := range r.Error.Fields {
		fields[f.Field] = true
	}
	for _, f := range []string{"execution.timeout_seconds", "payload.data.image"} {
		if !fields[f] {
			t.Errorf("fields %v lack %s", r.Error.Fields, f)
		}
	}
}

func TestConflictsAndAliases(t *testing.T) {
	ctx := context.Background()
	st, dir := storetest.Folder(t)
	storetest.Put(t, st, "jobs/a-first.json", inspectSpec("dup", 5))
	storetest.Put(t, st, "jobs/b-copy.yaml", "{\"version\": \"1.0\", \"job_id\": \"dup\", \"kind\": \"VMOperation\", \"operation\": \"guestkit.inspect\", \"execution\": {\"priority\": 5}, \"payload\": {\"type\": \"guestkit.inspect.v1\", \"data\": {\"image\": {\"path\": \"/vms/a.qcow2\", \"format\": \"qcow2\"}}}}\n")
	storetest.Put(t, st, "jobs/c-other.json", inspectSpec("dup", 7))
	// The owner is the oldest object, whatever the key order says.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "jobs", "c-other.json"), old, old); err != nil {
		t.Fatal(err)
	}
	snap, err := NewScanner(st, 0, nil).Scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(snap.Pending); len(got) != 1 || got[0] != "jobs/c-other.json" {
		t.Fatalf("pending = %v, want the oldest spec only", got)
	}
	if len(snap.Rejected) != 2 {
		t.Fatalf("rejected = %v, want both younger specs (one is a YAML copy of the other)", keys(snap.Rejected))
	}
	for _, e := range snap.Rejected {
		var re *RejectError
		if !errors.As(e.Err, &re) || re.Reason != ReasonConflict || re.Owner != "jobs/c-other.json" {
			t.Errorf("%s: %v", e.Key, e.Err)
		}
		if e.ResultKey != store.ConflictResultKey("dup", e.Key) {
			t.Errorf("%s: result key %s", e.Key, e.ResultKey)
		}
		res := e.RejectedResult(result.Runner{Name: "d"}, time.Now(), nil)
		if res.Error.Code != result.CodeSpecConflict || res.Error.Details["owner_spec_key"] != "jobs/c-other.json" {
			t.Errorf("%s: result %+v", e.Key, res.Error)
		}
	}

	// Same content in JSON and YAML is one job: the copy is an alias.
	st2, _ := storetest.Folder(t)
	storetest.Put(t, st2, "jobs/a.json", inspectSpec("same", 5))
	storetest.Put(t, st2, "jobs/b.yaml", "version: \"1.0\"\njob_id: same\nkind: VMOperation\noperation: guestkit.inspect\nexecution: {priority: 5}\npayload: {type: guestkit.inspect.v1, data: {image: {path: /vms/a.qcow2, format: qcow2}}}\n")
	snap, err = NewScanner(st2, 0, nil).Scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Pending) != 1 || len(snap.Aliases) != 1 || len(snap.Rejected) != 0 {
		t.Fatalf("pending %v aliases %v rejected %v", keys(snap.Pending), keys(snap.Aliases), keys(snap.Rejected))
	}
	storetest.Put(t, st2, store.ResultKey("same"), `{}`)
	snap, err = NewScanner(st2, 0, nil).Scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Done) != 2 {
		t.Errorf("done = %v, want both copies once the result exists", keys(snap.Done))
	}
}

// listing injects keys that no folder (and no MinIO) can hold, as an S3
// listing can return them.
type listing struct {
	store.Store
	extra []store.Object
}

func (l listing) List(ctx context.Context, prefix string, fn func(store.Object) error) error {
	if err := l.Store.List(ctx, prefix, fn); err != nil {
		return err
	}
	if prefix != store.SpecsPrefix {
		return nil
	}
	for _, o := range l.extra {
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

func TestUnsafeKeysAreRejectedNotRead(t *testing.T) {
	st, _ := storetest.Folder(t)
	bad := []string{"jobs/../../etc/passwd", "jobs/a\nb.json", "jobs//x.json", "jobs/\x7f.json", "jobs/ok/./x.json"}
	var extra []store.Object
	for _, k := range bad {
		extra = append(extra, store.Object{Key: k, Size: 10})
	}
	snap, err := NewScanner(listing{st, extra}, 0, nil).Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Rejected) != len(bad) || len(snap.Errors) != 0 {
		t.Fatalf("rejected %q errors %v", keys(snap.Rejected), snap.Errors)
	}
	seen := map[string]bool{}
	for _, e := range snap.Rejected {
		if reasonOf(t, e) != ReasonKey {
			t.Errorf("%q: %v", e.Key, e.Err)
		}
		if err := store.ValidateKey(e.ResultKey); err != nil || !strings.HasPrefix(e.ResultKey, "results/invalid/") {
			t.Errorf("%q: result key %q (%v)", e.Key, e.ResultKey, err)
		}
		if seen[e.ResultKey] {
			t.Errorf("result key %s used twice", e.ResultKey)
		}
		seen[e.ResultKey] = true
		res := e.RejectedResult(result.Runner{Name: "d"}, time.Now(), nil)
		if strings.ContainsAny(res.Error.Details["spec_key"], "\n\x7f") || strings.ContainsAny(res.Error.Message, "\n\x7f") {
			t.Errorf("%q: control characters reach the result: %q / %q", e.Key, res.Error.Details["spec_key"], res.Error.Message)
		}
	}
}

// failing fails Get for one key, as a flaky bucket does.
type failing struct {
	store.Store
	key  string
	fail bool
}

func (f *failing) Get(ctx context.Context, key string, max int64) ([]byte, error) {
	if f.fail && key == f.key {
		return nil, errors.New("connection reset")
	}
	return f.Store.Get(ctx, key, max)
}

func TestReadErrorsAreRetriedNotRejected(t *testing.T) {
	st, _ := storetest.Folder(t)
	storetest.Put(t, st, "jobs/a.json", inspectSpec("a", 5))
	storetest.Put(t, st, "jobs/b.json", inspectSpec("b", 5))
	f := &failing{Store: st, key: "jobs/b.json", fail: true}
	sc := NewScanner(f, 0, nil)
	snap, err := sc.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Pending) != 1 || len(snap.Rejected) != 0 || snap.Errors["jobs/b.json"] == nil {
		t.Fatalf("pending %v rejected %v errors %v", keys(snap.Pending), keys(snap.Rejected), snap.Errors)
	}
	f.fail = false
	snap, err = sc.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Pending) != 2 || len(snap.Errors) != 0 {
		t.Fatalf("after recovery: pending %v errors %v", keys(snap.Pending), snap.Errors)
	}
	if sc.Reads() != 2 {
		t.Errorf("reads = %d, want 2: a.json from the cache the second time", sc.Reads())
	}
}

func TestSeedSpecsAreDispatchableOrRejectedWithReason(t *testing.T) {
	seeds, err := filepath.Glob("../../../shared/seed-jobs/*.json")
	if err != nil || len(seeds) == 0 {
		t.Skip("../shared/seed-jobs not beside the repository")
	}
	st, _ := storetest.Folder(t)
	for _, f := range seeds {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		storetest.Put(t, st, "jobs/"+filepath.Base(f), string(data))
	}
	snap, err := NewScanner(st, 0, nil).Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(snap.Pending) + len(snap.Rejected) + len(snap.Aliases); n != len(seeds) {
		t.Fatalf("%d seeds, %d classified", len(seeds), n)
	}
	for _, e := range snap.Pending {
		if op := e.Job.Operation; op != spec.OpInspect && op != spec.OpProfile {
			t.Errorf("%s pending with operation %s", e.Key, op)
		}
	}
	// The worker's examples reuse job_ids across files (inspect-minimal
	// and inspect-full share one): those are conflicts, not dropped.
	for _, e := range snap.Rejected {
		var re *RejectError
		if !errors.Is(e.Err, spec.ErrUnsupportedOperation) && !(errors.As(e.Err, &re) && re.Reason == ReasonConflict) {
			t.Errorf("%s rejected for %v, want only unsupported operations and job_id conflicts", e.Key, e.Err)
		}
	}
	if len(snap.Pending) < 4 {
		t.Errorf("only %d seed specs dispatchable", len(snap.Pending))
	}
}

// A spec under jobs/ that takes a sweep's job_id owns neither the job_id
// nor the sweep's result key: the dispatcher's own spec runs and its
// result is the one at results/<job_id>.json.
func TestReservedJobIDCannotSquat(t *testing.T) {
	st, dir := storetest.Folder(t)
	pol, err := policy.New(policy.Config{Home: dir, LocalFolder: true})
	if err != nil {
		t.Fatal(err)
	}
	id := "sweep-2026-03-02-web-0123456789"
	storetest.Put(t, st, "jobs/evil.json", spectest.JSON(spectest.Inspect(id, "images/hardened.qcow2")))
	time.Sleep(20 * time.Millisecond) // the squatter's object is older
	storetest.Put(t, st, "sweeps/jobs/2026-03-02/"+id+".json", spectest.JSON(spectest.Inspect(id, "images/web.qcow2")))
	snap, err := NewScanner(st, 0, pol).Scan(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Pending) != 1 || snap.Pending[0].Key != "sweeps/jobs/2026-03-02/"+id+".json" || snap.Pending[0].ResultKey != "results/"+id+".json" {
		t.Fatalf("pending %v, want the sweep's own spec with its result key", keys(snap.Pending))
	}
	if len(snap.Rejected) != 1 || snap.Rejected[0].Key != "jobs/evil.json" || reasonOf(t, snap.Rejected[0]) != ReasonRefused ||
		!strings.HasPrefix(snap.Rejected[0].ResultKey, "results/invalid/") {
		t.Fatalf("rejected %v (%+v), want jobs/evil.json refused with a result under results/invalid/", keys(snap.Rejected), snap.Rejected)
	}
	r := snap.Rejected[0].RejectedResult(result.Runner{Name: result.DispatcherName}, time.Now(), nil)
	if r.Error.Code != result.CodeSpecRefused || len(r.Error.Fields) != 1 || r.Error.Fields[0].Field != "job_id" {
		t.Errorf("result %+v", r.Error)
	}
}
