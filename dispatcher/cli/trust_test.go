package cli_test

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"guestkit.io/batch/dispatcher/cli"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/result/resulttest"
	"guestkit.io/batch/internal/runner/runnertest"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/spec/spectest"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/store/storetest"
	"guestkit.io/batch/internal/testenv"
)

// TestTrustBoundary tries the attacks of a stranger who can only write
// under jobs/, against `guestkit-dispatcher once` with the local executor
// on a real MinIO bucket: each is refused, and nothing reached its target
// (another bucket's request count, a loopback server's log, the runner).
func TestTrustBoundary(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	m := testenv.StartMinIO(t)
	m.SetEnv(t) // the dispatcher's credentials, which no runner may get
	ctx := t.Context()
	home := fmt.Sprintf("s3://%s?endpoint=%s&path-style=true&region=%s", m.Bucket, m.Endpoint, testenv.Region)
	st, err := store.Open(ctx, home)
	if err != nil {
		t.Fatal(err)
	}
	other := m.NewBucket(t)
	ost, err := store.Open(ctx, fmt.Sprintf("s3://%s?endpoint=%s&path-style=true&region=%s", other, m.Endpoint, testenv.Region))
	if err != nil {
		t.Fatal(err)
	}
	storetest.Put(t, ost, "images/secret.qcow2", "QFI\xfb someone else's disk")
	storetest.Put(t, st, "images/ok.qcow2", "QFI\xfb")

	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		t.Logf("the loopback server got %s %s", r.Method, r.URL)
	}))
	defer srv.Close()

	attacks := map[string]struct {
		job   *spec.Job
		field string
	}{
		"other-present": {spectest.Inspect("other-present", "s3://"+other+"/images/secret.qcow2"), "payload.data.image.uri"},
		"other-missing": {spectest.Inspect("other-missing", "s3://"+other+"/images/missing.qcow2"), "payload.data.image.uri"},
		"home-outside":  {spectest.Inspect("home-outside", "s3://"+m.Bucket+"/jobs/ok.json"), "payload.data.image.uri"},
		"minio-other":   {spectest.Inspect("minio-other", "minio://"+other+"/images/secret.qcow2"), "payload.data.image.uri"},
		"loopback":      {spectest.Inspect("loopback", srv.URL+"/x.qcow2"), "payload.data.image.uri"},
		"metadata":      {spectest.Inspect("metadata", "http://169.254.169.254/latest/meta-data/iam/x"), "payload.data.image.uri"},
		"shadow":        {spectest.Inspect("shadow", "/etc/shadow"), "payload.data.image.path"},
		"shadow-uri":    {spectest.Inspect("shadow-uri", "file:///etc/shadow"), "payload.data.image.uri"},
		"pvc":           {spectest.Inspect("pvc", "pvc://any-claim/x.qcow2"), "payload.data.image.uri"},
		"attempts":      {spectest.Inspect("attempts", "images/ok.qcow2", spectest.WithAttempts(100)), "execution.max_attempts"},
		"week":          {spectest.Inspect("week", "images/ok.qcow2", spectest.WithTimeout(7*24*3600)), "execution.timeout_seconds"},
		"sweep-squat":   {spectest.Inspect("sweep-2026-03-02-web-0123456789", "images/ok.qcow2"), "job_id"},
	}
	for name, a := range attacks {
		storetest.Put(t, st, "jobs/"+name+".json", spectest.JSON(a.job))
	}
	storetest.Put(t, st, "jobs/team/ok.json", spectest.JSON(spectest.Inspect("ok", "images/ok.qcow2",
		spectest.WithAnnotations(map[string]string{"iam.amazonaws.com/role": "admin"}))))

	before, err := m.BucketRequests(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake")
	if err := os.MkdirAll(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	r := dispatcher(t, "--bucket", home, "once", "--runner", runnertest.Write(t, dir), "--interval", "100ms",
		"--runner-env", "FAKE_DIR="+fake)
	if r.code != cli.ExitJobsFailed {
		t.Fatalf("once: exit %d, want 1 (rejected specs)\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	after, err := m.BucketRequests(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(before, after) {
		t.Errorf("requests reached the other bucket: before %v, after %v", before, after)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback server got %d requests", n)
	}
	order, _ := os.ReadFile(filepath.Join(fake, "starts"))
	if got := strings.Fields(string(order)); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("runners started for %v, want only ok", got)
	}

	var messages []string
	for name, a := range attacks {
		key := store.ResultKey(a.job.JobID)
		if a.field == "job_id" {
			key = store.InvalidResultKey("jobs/" + name + ".json")
		}
		res := resulttest.Read(t, st, key)
		e := res.Error
		if res.Status != result.StatusRejected || res.ExitCode != result.ExitBadSpec || e == nil || e.Code != result.CodeSpecRefused ||
			len(e.Fields) != 1 || e.Fields[0].Field != a.field || e.Details["rule"] == "" {
			t.Errorf("%s: %s %+v, want rejected spec_refused on %s with its rule", name, res.Status, e, a.field)
			continue
		}
		if res.Image != nil {
			t.Errorf("%s: the result describes the image: %+v", name, res.Image)
		}
		for _, leak := range []string{"bytes", "size", "text file", "not found", "exist", "qcow2 image", "root:"} {
			if strings.Contains(strings.ToLower(e.Message), leak) {
				t.Errorf("%s: the result says %q about the target: %s", name, leak, e.Message)
			}
		}
		if strings.HasPrefix(name, "other-") {
			messages = append(messages, strings.NewReplacer(a.job.JobID, "ID", "missing", "X", "secret", "X").Replace(e.Message))
		}
	}
	// An object that exists and one that does not are refused alike.
	if len(messages) != 2 || messages[0] != messages[1] {
		t.Errorf("other bucket: the results tell existing from missing objects: %q", messages)
	}
	if _, err := st.Stat(ctx, "results/sweep-2026-03-02-web-0123456789.json"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the squatter's result is at the sweep's result key: %v", err)
	}

	// The one admitted runner: granted presigned URLs, the network guard,
	// and nothing of the dispatcher's credentials.
	args, _ := os.ReadFile(filepath.Join(fake, "ok.args"))
	for _, flag := range []string{"--spec " + m.Endpoint + "/", "--result " + m.Endpoint + "/", "--image-url " + m.Endpoint + "/", "X-Amz-Signature="} {
		if !strings.Contains(string(args), flag) {
			t.Errorf("runner args lack %q: %s", flag, args)
		}
	}
	env, _ := os.ReadFile(filepath.Join(fake, "ok.env"))
	for _, line := range strings.Split(string(env), "\n") {
		name, _, _ := strings.Cut(line, "=")
		if strings.HasPrefix(name, "AWS_") || strings.HasPrefix(name, "MINIO_") || name == "KUBECONFIG" {
			t.Errorf("the runner got the dispatcher's %s", name)
		}
	}
	if !strings.Contains(string(env), "\nGUESTKIT_NET_GUARD=true\n") {
		t.Errorf("the runner's network guard is off:\n%s", env)
	}
}
