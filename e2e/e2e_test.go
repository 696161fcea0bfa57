//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/spec/spectest"
	"guestkit.io/batch/internal/sweep"
	"guestkit.io/batch/internal/testenv"
)

// resultWait bounds the wait for one result: a runner under TCG on a busy
// 2-core machine takes one to three minutes, and may queue behind others.
const resultWait = 12 * time.Minute

// The whole path on a real cluster, from `kubectl apply` to results in the
// bucket. One deployment serves the scenarios in order; each asserts on
// the bucket's content, and on the Jobs and pods the cluster saw.
func TestE2E(t *testing.T) {
	images := testImages(t)
	c := startCluster(t)
	rec := record(t, c.cs)
	t.Cleanup(func() {
		if t.Failed() {
			c.dump(t)
		}
	})

	// The sweep profiles everything under images/; the other scenarios'
	// images live elsewhere.
	for key, file := range map[string]string{
		"images/debian.qcow2":                       "debian.qcow2",
		"images/profile-debian-misconfigured.qcow2": "profile-debian-misconfigured.qcow2",
		// A mixed fleet: a Windows guest beside the Linux ones.
		"images/windows-server2022-misconfigured.qcow2": "windows-server2022-misconfigured.qcow2",
		"scratch/debian.qcow2":                          "debian.qcow2",
		"untrusted/backing.qcow2":                       "backing.qcow2",
	} {
		c.putFile(t, key, filepath.Join(images, file))
	}

	t.Run("ThreeSpecs", func(t *testing.T) {
		c.put(t, "jobs/e2e-inspect.json", inspectSpec("e2e-inspect", c.uri("scratch/debian.qcow2"), 2))
		c.put(t, "jobs/e2e-profile.yaml", fmt.Sprintf(`version: "1.0"
job_id: e2e-profile
kind: VMOperation
operation: guestkit.profile
payload:
  type: guestkit.profile.v1
  data:
    image: {uri: %q, format: qcow2}
    profiles: [security]
    output: {format: sarif}
`, c.uri("images/profile-debian-misconfigured.qcow2")))
		c.put(t, "jobs/e2e-invalid.json", `{"version":"1.0","job_id":"e2e-invalid","kind":"VMOperation","operation":"guestkit.inspect",
 "execution":{"timeout_seconds":-5},
 "payload":{"type":"guestkit.inspect.v1","data":{"image":{"uri":"s3://elsewhere/x.img","format":"floppy"}}}}`)

		invalid := c.waitResult(t, "results/e2e-invalid.json", func(r *result.Result) bool { return true })
		if invalid.Status != result.StatusRejected || invalid.Error == nil || invalid.Error.Code != result.CodeSpecInvalid {
			t.Errorf("invalid spec: status %s, error %+v; want rejected spec_invalid", invalid.Status, invalid.Error)
		} else {
			var fields []string
			for _, f := range invalid.Error.Fields {
				fields = append(fields, f.Field)
			}
			for _, want := range []string{"execution.timeout_seconds", "payload.data.image.format"} {
				if !slices.Contains(fields, want) {
					t.Errorf("invalid spec: fields %v, want %s among them", fields, want)
				}
			}
		}

		inspect := c.waitResult(t, "results/e2e-inspect.json", final)
		if inspect.Status != result.StatusCompleted || inspect.ExitCode != 0 {
			t.Errorf("inspect: status %s exit %d error %+v", inspect.Status, inspect.ExitCode, inspect.Error)
		}
		if inspect.Runner.Name != "guestkit-runner" || inspect.Kubernetes == nil || inspect.Kubernetes.Pod == "" || inspect.Kubernetes.Namespace != namespace {
			t.Errorf("inspect: runner %+v kubernetes %+v: want guestkit-runner in a pod of %s", inspect.Runner, inspect.Kubernetes, namespace)
		}
		var data struct {
			OperatingSystems []struct {
				Distro, Hostname string
				Applications     []struct{ Name string }
			} `json:"operating_systems"`
		}
		if err := json.Unmarshal(inspect.Data, &data); err != nil || len(data.OperatingSystems) != 1 {
			t.Fatalf("inspect data: %v, %d roots", err, len(data.OperatingSystems))
		}
		os0 := data.OperatingSystems[0]
		hasBash := slices.ContainsFunc(os0.Applications, func(a struct{ Name string }) bool { return a.Name == "bash" })
		if os0.Distro != "debian" || os0.Hostname != "deb12-test" || !hasBash {
			t.Errorf("inspect: distro %q hostname %q, %d packages (bash: %v); want debian, deb12-test, bash",
				os0.Distro, os0.Hostname, len(os0.Applications), hasBash)
		}

		prof := c.waitResult(t, "results/e2e-profile.json", final)
		if prof.Status != result.StatusCompleted || prof.Operation != "guestkit.profile" {
			t.Errorf("profile: status %s operation %s error %+v", prof.Status, prof.Operation, prof.Error)
		}
		if got := ruleStatus(t, prof, "sshd_disable_root_login"); got != "fail" {
			t.Errorf("profile: sshd_disable_root_login is %q on the misconfigured image, want fail", got)
		}
		sarif := c.get(t, "results/e2e-profile.sarif")
		if !bytes.Contains(sarif, []byte(`"2.1.0"`)) || !bytes.Contains(sarif, []byte("sshd_disable_root_login")) {
			t.Errorf("profile: results/e2e-profile.sarif is not a SARIF 2.1.0 report naming the failed rule (%d bytes)", len(sarif))
		}

		if n := rec.jobsFor("e2e-invalid"); n != 0 {
			t.Errorf("the invalid spec got %d Jobs, want none", n)
		}
		for _, id := range []string{"e2e-inspect", "e2e-profile"} {
			if n := rec.jobsFor(id); n != 1 {
				t.Errorf("%s: %d Jobs, want 1", id, n)
			}
		}
	})

	t.Run("SweepFromCronJob", func(t *testing.T) {
		c.kubectl(t, "-n", namespace, "create", "job", "--from=cronjob/guestkit-sweep", "e2e-sweep")
		c.waitJobComplete(t, "e2e-sweep", 25*time.Minute)
		keys := c.list(t, "sweeps/")
		var reportKey string
		for _, k := range keys {
			if strings.HasSuffix(k, "/report.json") {
				reportKey = k
			}
		}
		if reportKey == "" || !slices.Contains(keys, strings.TrimSuffix(reportKey, ".json")+".md") {
			t.Fatalf("sweep: objects %v, want sweeps/<date>/report.json and report.md", keys)
		}
		var rep sweep.Report
		if err := json.Unmarshal(c.get(t, reportKey), &rep); err != nil {
			t.Fatalf("sweep report %s: %v", reportKey, err)
		}
		if rep.Prefix != "images/" || rep.Totals.Images != 3 || len(rep.Images) != 3 {
			t.Fatalf("sweep report: prefix %q, %d images (%d listed); want images/ with 3", rep.Prefix, rep.Totals.Images, len(rep.Images))
		}
		byKey := map[string]sweep.ImageReport{}
		for _, im := range rep.Images {
			byKey[im.ImageKey] = im
		}
		bad, good := byKey["images/profile-debian-misconfigured.qcow2"], byKey["images/debian.qcow2"]
		if bad.Status != sweep.StatusNoncompliant ||
			!slices.ContainsFunc(bad.FailedRules, func(r sweep.FailedRule) bool { return r.ID == "sshd_disable_root_login" }) {
			t.Errorf("sweep: misconfigured image %+v, want noncompliant with sshd_disable_root_login failed", bad)
		}
		if good.Status != sweep.StatusCompleted && good.Status != sweep.StatusNoncompliant {
			t.Errorf("sweep: debian image status %s (%+v), want a profile report", good.Status, good.Error)
		}
		// The Windows guest fails its planted Windows rules (RDP without
		// NLA, ...) and no Linux rule: those do not apply to it.
		win := byKey["images/windows-server2022-misconfigured.qcow2"]
		if win.Status != sweep.StatusNoncompliant ||
			!slices.ContainsFunc(win.FailedRules, func(r sweep.FailedRule) bool { return r.ID == "windows_rdp_nla_required" }) ||
			slices.ContainsFunc(win.FailedRules, func(r sweep.FailedRule) bool { return !strings.HasPrefix(r.ID, "windows_") }) ||
			win.NotApplicable == 0 {
			t.Errorf("sweep: Windows image %+v, want noncompliant with windows_rdp_nla_required failed, only Windows rules failed, Linux rules not applicable", win)
		}
		for _, im := range rep.Images {
			if n := rec.jobsFor(im.JobID); n != 1 {
				t.Errorf("sweep: %s got %d Jobs, want 1 (the CronJob's sweep and the watch Deployment share them)", im.JobID, n)
			}
		}
	})

	t.Run("RunnerPodKilled", func(t *testing.T) {
		c.put(t, "jobs/e2e-killed.json", busySpec("e2e-killed", c.uri("scratch/debian.qcow2"), 3))
		pod := rec.waitRunningPod(t, "e2e-killed", 5*time.Minute)
		// The runner is booting the appliance by now.
		time.Sleep(10 * time.Second)
		c.kubectl(t, "-n", namespace, "delete", "pod", pod, "--grace-period=1")
		t.Logf("deleted pod %s", pod)
		r := c.waitResult(t, "results/e2e-killed.json", final)
		if r.Status != result.StatusCompleted {
			t.Errorf("killed: status %s error %+v, want completed by the retry", r.Status, r.Error)
		}
		if r.Kubernetes == nil || r.Kubernetes.Pod == pod {
			t.Errorf("killed: result from pod %+v, want the retry's, not %s", r.Kubernetes, pod)
		}
		if n := rec.jobsFor("e2e-killed"); n != 1 {
			t.Errorf("killed: %d Jobs, want 1", n)
		}
		if n := rec.podsFor("e2e-killed"); n < 2 {
			t.Errorf("killed: %d pods, want the killed one and its retry", n)
		}
		c.onlyResult(t, "e2e-killed")
	})

	t.Run("DispatcherRestart", func(t *testing.T) {
		before := c.leader(t)
		ids := []string{"e2e-restart-1", "e2e-restart-2", "e2e-restart-3"}
		for _, id := range ids {
			c.put(t, "jobs/"+id+".json", busySpec(id, c.uri("scratch/debian.qcow2"), 3))
		}
		// Mid-run: a Job launched, and (two at a time) one spec waiting.
		rec.waitJobs(t, ids[:1], 3*time.Minute)
		c.kubectl(t, "-n", namespace, "delete", "pod", "-l", "app.kubernetes.io/name=guestkit-dispatcher", "--wait=true")
		c.waitDispatcher(t)
		if after := c.leader(t); after == before {
			t.Errorf("leader %s before and after deleting the dispatcher pods", after)
		}
		c.completedOnce(t, rec, ids)
	})

	t.Run("BucketRestart", func(t *testing.T) {
		ids := []string{"e2e-bucket-1", "e2e-bucket-2"}
		for _, id := range ids {
			c.put(t, "jobs/"+id+".json", busySpec(id, c.uri("scratch/debian.qcow2"), 3))
		}
		rec.waitRunningPod(t, ids[0], 5*time.Minute)
		time.Sleep(5 * time.Second)
		start := time.Now()
		c.restartBucket(t, 30*time.Second)
		t.Logf("bucket down and up again in %v", time.Since(start).Round(time.Second))
		c.completedOnce(t, rec, ids)
	})

	t.Run("BackingFileRejected", func(t *testing.T) {
		c.put(t, "jobs/e2e-backing.json", inspectSpec("e2e-backing", c.uri("untrusted/backing.qcow2"), 3))
		r := c.waitResult(t, "results/e2e-backing.json", final)
		if r.Status != result.StatusRejected || r.Error == nil || r.Error.Code != result.CodeImageBackingFile ||
			!strings.Contains(strings.ToLower(r.Error.Message), "backing") {
			t.Errorf("backing file: status %s error %+v, want rejected image_backing_file", r.Status, r.Error)
		}
		if r.ExitCode != result.ExitBadImage {
			t.Errorf("backing file: exit code %d, want %d", r.ExitCode, result.ExitBadImage)
		}
		if n := rec.podsFor("e2e-backing"); n != 1 {
			t.Errorf("backing file: %d pods, want 1 (a rejected image is not retried)", n)
		}
		c.onlyResult(t, "e2e-backing")
		// No pod of the whole run, runner or not, ran privileged.
		rec.checkPods(t)
	})
}

// final accepts a result that no retry will replace: a runner writes one
// at every attempt, and a retryable failure is followed by another.
func final(r *result.Result) bool {
	return r.Status != result.StatusFailed || r.Error == nil || !r.Error.Retryable
}

func testImages(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("GUESTKIT_TEST_IMAGES")
	if dir == "" {
		testenv.Unavailable(t, "GUESTKIT_TEST_IMAGES is not set: run `make e2e` (scripts/testimages.sh makes the images)")
	}
	for _, f := range []string{"debian.qcow2", "profile-debian-misconfigured.qcow2", "backing.qcow2", "windows-server2022-misconfigured.qcow2"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			testenv.Unavailable(t, "test image %v: run `make images`", err)
		}
	}
	return dir
}

func inspectSpec(id, uri string, attempts int) string {
	return spectest.JSON(spectest.Inspect(id, uri, spectest.WithAttempts(attempts), spectest.WithTimeout(1800)))
}

// busySpec is a job whose runner works long enough to be interrupted:
// the appliance backend (the direct one is done in a fraction of a second,
// before a pod, the bucket or the dispatcher can be taken away from it).
func busySpec(id, uri string, attempts int) string {
	return spectest.JSON(spectest.Inspect(id, uri, spectest.WithAttempts(attempts), spectest.WithTimeout(1800),
		spectest.WithBackend(spec.BackendAppliance)))
}

// uri is a bucket object's URI as specs name it.
func (c *cluster) uri(key string) string { return "s3://" + c.bucketName + "/" + key }

func (c *cluster) put(t testing.TB, key, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.bucket.PutObject(ctx, c.bucketName, key, strings.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func (c *cluster) putFile(t testing.TB, key, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := c.bucket.FPutObject(ctx, c.bucketName, key, path, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put %s from %s: %v", key, path, err)
	}
}

func (c *cluster) get(t testing.TB, key string) []byte {
	t.Helper()
	data, err := c.getErr(key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return data
}

func (c *cluster) getErr(key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	obj, err := c.bucket.GetObject(ctx, c.bucketName, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	return io.ReadAll(io.LimitReader(obj, 64<<20))
}

func (c *cluster) list(t testing.TB, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var keys []string
	for o := range c.bucket.ListObjects(ctx, c.bucketName, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list %s: %v", prefix, o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

// waitResult polls a result key until it holds a result that done
// accepts. A bucket that does not answer for a while (BucketRestart) is
// waited out like a missing key.
func (c *cluster) waitResult(t testing.TB, key string, done func(*result.Result) bool) *result.Result {
	t.Helper()
	deadline := time.Now().Add(resultWait)
	var last *result.Result
	var lastErr error
	for time.Now().Before(deadline) {
		data, err := c.getErr(key)
		if err == nil {
			var r result.Result
			if err = json.Unmarshal(data, &r); err == nil {
				last = &r
				if done(&r) {
					return &r
				}
			}
		}
		var resp minio.ErrorResponse
		if err != nil && !(errors.As(err, &resp) && resp.Code == "NoSuchKey") {
			lastErr = err
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("no final result at %s after %v (last: %+v, last error: %v)", key, resultWait, last, lastErr)
	return nil
}

// completedOnce checks that every job_id ends completed, from exactly one
// Job ever created, with one result object.
func (c *cluster) completedOnce(t testing.TB, rec *recorder, ids []string) {
	t.Helper()
	for _, id := range ids {
		r := c.waitResult(t, "results/"+id+".json", final)
		if r.Status != result.StatusCompleted {
			t.Errorf("%s: status %s error %+v", id, r.Status, r.Error)
		}
		if n := rec.jobsFor(id); n != 1 {
			t.Errorf("%s: %d Jobs created, want 1", id, n)
		}
		c.onlyResult(t, id)
	}
}

// onlyResult checks that a job has exactly one result object: none under
// results/conflicts/ or results/invalid/ besides results/<id>.json.
func (c *cluster) onlyResult(t testing.TB, id string) {
	t.Helper()
	var got []string
	for _, k := range c.list(t, "results/") {
		base := filepath.Base(k)
		if strings.HasPrefix(base, id+".") || strings.HasPrefix(base, id+"-") || strings.Contains(base, "-"+id+".") {
			got = append(got, k)
		}
	}
	if len(got) != 1 || got[0] != "results/"+id+".json" {
		t.Errorf("%s: result objects %v, want exactly results/%s.json", id, got, id)
	}
}

func ruleStatus(t testing.TB, r *result.Result, id string) string {
	t.Helper()
	var data struct {
		Reports []struct {
			Results []struct{ ID, Status string }
		} `json:"profile_reports"`
	}
	if err := json.Unmarshal(r.Data, &data); err != nil {
		t.Fatalf("profile data of %s: %v", r.JobID, err)
	}
	for _, rep := range data.Reports {
		for _, rr := range rep.Results {
			if rr.ID == id {
				return rr.Status
			}
		}
	}
	return ""
}

// leader is the dispatcher replica holding the Lease.
func (c *cluster) leader(t testing.TB) string {
	t.Helper()
	l, err := c.cs.CoordinationV1().Leases(namespace).Get(context.Background(), "guestkit-dispatcher", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		t.Fatalf("lease: %v", err)
	}
	return *l.Spec.HolderIdentity
}

// waitJobComplete waits for a Job's Complete condition; Failed is fatal
// at once, with its pods' logs.
func (c *cluster) waitJobComplete(t testing.TB, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		j, err := c.cs.BatchV1().Jobs(namespace).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			for _, cond := range j.Status.Conditions {
				if cond.Status != corev1.ConditionTrue {
					continue
				}
				switch cond.Type {
				case "Complete":
					return
				case "Failed":
					logs, _ := c.kubectlErr("-n", namespace, "logs", "job/"+name, "--tail=40")
					t.Fatalf("Job %s failed: %s: %s\n%s", name, cond.Reason, cond.Message, logs)
				}
			}
		}
		time.Sleep(3 * time.Second)
	}
	logs, _ := c.kubectlErr("-n", namespace, "logs", "job/"+name, "--tail=40")
	t.Fatalf("Job %s not complete after %v\n%s", name, timeout, logs)
}

// dump logs what the cluster looks like, for a failed run.
func (c *cluster) dump(t testing.TB) {
	for _, args := range [][]string{
		{"-n", namespace, "get", "jobs,pods,leases", "-o", "wide"},
		{"-n", namespace, "get", "events", "--sort-by=.lastTimestamp"},
		{"-n", namespace, "logs", "-l", "app.kubernetes.io/name=guestkit-dispatcher", "--tail=60", "--prefix"},
	} {
		out, err := c.kubectlErr(args...)
		t.Logf("kubectl %s:\n%s%v", strings.Join(args, " "), out, err)
	}
}
