package localrun

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/metrics"
	"guestkit.io/batch/internal/policy"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/result/resulttest"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/store/storetest"
	"guestkit.io/batch/internal/testenv"
)

// TestRealRunnerThroughController drives the whole embedded path: a file
// bucket, controller.Once, and the real guestkit-runner on a real image
// (about a minute under TCG).
func TestRealRunnerThroughController(t *testing.T) {
	image := debianImage(t)
	runner := buildRunner(t)
	st, home := storetest.Folder(t)
	missing := filepath.Join(t.TempDir(), "missing.qcow2")
	pol, err := policy.New(policy.Config{Home: home, LocalFolder: true, HostPathRoots: []string{filepath.Dir(image), filepath.Dir(missing)}})
	if err != nil {
		t.Fatal(err)
	}
	inspect := func(id, path string) map[string]any {
		return map[string]any{
			"version": "1.0", "job_id": id, "kind": "VMOperation", "operation": "guestkit.inspect",
			"execution": map[string]any{"max_attempts": 1, "timeout_seconds": 900},
			"payload": map[string]any{"type": "guestkit.inspect.v1", "data": map[string]any{
				"image": map[string]any{"path": path, "format": "qcow2"}}},
		}
	}
	ok := putSpec(t, st, "jobs/ok.json", inspect("ok", image))
	noimg := putSpec(t, st, "jobs/noimg.json", inspect("noimg", missing))
	if err := st.Put(t.Context(), "jobs/bad.json", []byte(`{"version": "1.0", "job_id": `)); err != nil {
		t.Fatal(err)
	}

	log := testLog(t)
	m := metrics.New()
	trigger := controller.NewTrigger()
	stop, cancel := context.WithCancel(t.Context())
	defer cancel()
	x, err := New(stop, Config{
		Runner: runner, Store: st, Results: controller.NewResults(st, "test", log, m), Parallel: 2,
		ExtraEnv: []string{"LIBGUESTFS_BACKEND=direct"}, Log: log, Metrics: m, OnFinish: trigger.Poke,
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(controller.Config{Store: st, Executor: x, Policy: pol, MaxActive: 4, Interval: 5 * time.Second, Log: log, Metrics: m, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, done := context.WithTimeout(stop, 15*time.Minute)
	defer done()
	start := time.Now()
	sum, err := c.Once(ctx, trigger, nil)
	if err != nil {
		t.Fatalf("once: %v", err)
	}
	if err := x.Wait(ctx); err != nil {
		t.Fatalf("wait: %v", err)
	}
	t.Logf("3 specs dispatched in %s", time.Since(start).Round(time.Second))

	r := resulttest.Read(t, st, ok.ResultKey)
	var report struct {
		OperatingSystems []struct {
			Distro, Hostname string
			MajorVersion     int `json:"major_version"`
		} `json:"operating_systems"`
	}
	if err := json.Unmarshal(r.Data, &report); err != nil {
		t.Fatalf("ok: report: %v", err)
	}
	if r.Status != result.StatusCompleted || r.ExitCode != 0 || r.Runner.Name != "guestkit-runner" || r.JobID != "ok" ||
		len(report.OperatingSystems) != 1 || report.OperatingSystems[0].Distro != "debian" || report.OperatingSystems[0].MajorVersion != 12 {
		t.Errorf("ok: %s exit %d by %s, OS %+v, error %+v: want the runner's completed Debian 12 inspection",
			r.Status, r.ExitCode, r.Runner.Name, report.OperatingSystems, r.Error)
	}

	r = resulttest.Read(t, st, store.InvalidResultKey("jobs/bad.json"))
	if r.Status != result.StatusRejected || r.Error == nil || r.Error.Code != result.CodeSpecInvalid || r.Runner.Name != result.DispatcherName {
		t.Errorf("bad: %s by %s, error %+v: want the dispatcher's rejected spec_invalid", r.Status, r.Runner.Name, r.Error)
	}

	r = resulttest.Read(t, st, noimg.ResultKey)
	if r.Status != result.StatusRejected || r.ExitCode != result.ExitBadImage || r.Error == nil || r.Error.Code != result.CodeImageNotFound || r.Runner.Name != "guestkit-runner" {
		t.Errorf("noimg: %s exit %d by %s, error %+v: want the runner's rejected image_not_found", r.Status, r.ExitCode, r.Runner.Name, r.Error)
	}

	if sum.Total != 3 || sum.ByStatus[result.StatusCompleted] != 1 || sum.ByStatus[result.StatusRejected] != 2 || len(sum.ByStatus) != 2 || !sum.Failed() {
		t.Errorf("summary: total %d, by status %v", sum.Total, sum.ByStatus)
	}
	if len(sum.Items) != 2 || sum.Items[0].Key != "jobs/bad.json" || sum.Items[0].Code != result.CodeSpecInvalid ||
		sum.Items[1].Key != "jobs/noimg.json" || sum.Items[1].Code != result.CodeImageNotFound || sum.Items[1].ExitCode != result.ExitBadImage {
		t.Errorf("summary items: %+v", sum.Items)
	}
	if s, f := counter(t, m, "jobs_succeeded_total", "", ""), counter(t, m, "jobs_failed_total", "", ""); s != 1 || f != 1 {
		t.Errorf("jobs succeeded %v, failed %v: want 1 and 1 (noimg's exit 4)", s, f)
	}
	if got := x.Active(); got != 0 {
		t.Errorf("Active = %d after Wait", got)
	}
}

// TestRealRunnerBucketSettings: a MinIO bucket whose endpoint is only in
// the bucket URL (s3://B?endpoint=...), as `--bucket` takes it, and no
// AWS_ENDPOINT_URL_S3 anywhere. The runner opens the spec, the result, the
// image (s3://B/images/...) and the SARIF report beside the result itself,
// so each URI it gets must carry the endpoint.
func TestRealRunnerBucketSettings(t *testing.T) {
	image := debianImage(t)
	runner := buildRunner(t)
	m := testenv.StartMinIO(t)
	for k, v := range m.Env() {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("MINIO_ENDPOINT", "")
	bucketURL := "s3://" + m.Bucket + "?endpoint=" + m.Endpoint + "&path-style=true&region=" + testenv.Region
	ctx := t.Context()
	st, err := store.Open(ctx, bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	// Uploaded with its sha256, which the bucket keeps and attests.
	obj, digest := uploadImage(t, st, "images/debian.qcow2", image)
	e := putSpec(t, st, "jobs/prof.json", map[string]any{
		"version": "1.0", "job_id": "prof", "kind": "VMOperation", "operation": "guestkit.profile",
		"execution": map[string]any{"max_attempts": 1, "timeout_seconds": 900},
		"payload": map[string]any{"type": "guestkit.profile.v1", "data": map[string]any{
			"image":    map[string]any{"uri": "s3://" + m.Bucket + "/images/debian.qcow2", "format": "qcow2", "checksum": "sha256:" + digest},
			"profiles": []string{"security"},
			"output":   map[string]any{"format": "sarif"},
		}},
	})

	r := runSpec(t, runner, bucketURL, st, e)
	if r.Status != result.StatusCompleted || r.Runner.Name != "guestkit-runner" || r.Image == nil || r.Image.URI != "s3://"+m.Bucket+"/images/debian.qcow2" {
		t.Fatalf("prof: %s by %s, image %+v, error %+v: want the runner's completed profile naming the spec's image", r.Status, r.Runner.Name, r.Image, r.Error)
	}
	// The dispatcher granted a presigned GET and what it saw of the
	// object; the runner streamed it, pinned to that ETag.
	img := r.Image
	if img.Access != result.AccessStream || img.ETag != obj.ETag || img.Fetch == nil || img.Fetch.Bytes == 0 || img.SHA256 != digest {
		t.Errorf("image %+v (fetch %+v): want streamed, ETag %s, sha256 %s", img, img.Fetch, obj.ETag, digest)
	}
	wantMethod := result.VerifiedSidecar
	if obj.SHA256 != "" {
		wantMethod = result.VerifiedStoreChecksum
	}
	if obj.Size <= 16<<20 {
		// A small image is read whole at open: hashing what was read
		// beats any attestation, and costs nothing.
		wantMethod = result.VerifiedWholeObject
	}
	if v := img.Verification; v == nil || v.Method != wantMethod || v.SHA256 != digest {
		t.Errorf("verification %+v, want %s of %s", v, wantMethod, digest)
	}
	sarif, err := st.Get(ctx, "results/prof.sarif", 16<<20)
	if err != nil || !strings.Contains(string(sarif), `"2.1.0"`) {
		t.Errorf("results/prof.sarif beside the result: %v (%d bytes)", err, len(sarif))
	}
}

// debianImage is the test Debian image from scripts/testimages.sh
// ($GUESTKIT_TEST_IMAGES, which `make test` sets). Without it the test is
// skipped, except on CI, where it must run.
func debianImage(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs libguestfs and the test images; run `make test`")
	}
	dir := os.Getenv("GUESTKIT_TEST_IMAGES")
	p := filepath.Join(dir, "debian.qcow2")
	if _, err := os.Stat(p); dir == "" || err != nil {
		testenv.Unavailable(t, "no test image %s: run `make test`, or `bash scripts/testimages.sh DIR` and set GUESTKIT_TEST_IMAGES=DIR", p)
	}
	return p
}

// buildRunner builds guestkit-runner from this tree (cgo and libguestfs;
// a minute the first time, seconds from the build cache).
func buildRunner(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "guestkit-runner")
	cmd := exec.Command("go", "build", "-o", bin, "./runner")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the runner: %v\n%s", err, out)
	}
	return bin
}

// TestRealRunnerAttestedImage: an image too large to be read whole is
// verified by what the bucket attests, as the dispatcher read it when it
// granted the image (store.Upload made the bucket keep its sha256), and
// only a small part of it is fetched.
func TestRealRunnerAttestedImage(t *testing.T) {
	image := filepath.Join(filepath.Dir(debianImage(t)), "rpm.qcow2")
	runner := buildRunner(t)
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	bucketURL := "minio://" + m.Bucket
	st, err := store.Open(t.Context(), bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	obj, digest := uploadImage(t, st, "images/rpm.qcow2", image)
	e := putSpec(t, st, "jobs/rpm.json", map[string]any{
		"version": "1.0", "job_id": "rpm", "kind": "VMOperation", "operation": "guestkit.inspect",
		"execution": map[string]any{"max_attempts": 1, "timeout_seconds": 900},
		"payload": map[string]any{"type": "guestkit.inspect.v1", "data": map[string]any{
			"image": map[string]any{"uri": "minio://" + m.Bucket + "/images/rpm.qcow2", "format": "qcow2", "checksum": "sha256:" + digest},
		}},
	})
	r := runSpec(t, runner, bucketURL, st, e)
	if r.Status != result.StatusCompleted || r.Image == nil {
		t.Fatalf("rpm: %s, error %+v", r.Status, r.Error)
	}
	want := result.VerifiedSidecar
	if obj.SHA256 != "" {
		want = result.VerifiedStoreChecksum
	}
	img := r.Image
	if v := img.Verification; v == nil || v.Method != want || v.SHA256 != digest || img.SHA256 != digest {
		t.Errorf("verification %+v, sha256 %q: want %s of %s", v, img.SHA256, want, digest)
	}
	if img.Access != result.AccessStream || img.ETag != obj.ETag || img.Fetch == nil || img.Fetch.Fraction > 0.1 {
		t.Errorf("image %+v, fetch %+v: want streamed, pinned to %s, a small part fetched", img, img.Fetch, obj.ETag)
	}
}

// uploadImage stores the image file with store.Upload (so the bucket keeps
// its sha256 and a sidecar) and returns the object and its digest.
func uploadImage(t *testing.T, st store.Store, key, path string) (store.Object, string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := store.Upload(t.Context(), st, key, bytes.NewReader(data), int64(len(data)), store.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return obj, hex.EncodeToString(sum[:])
}

// runSpec runs one spec through the local executor and the real runner,
// and returns its stored result.
func runSpec(t *testing.T, runner, bucketURL string, st store.Store, e *intake.Entry) *result.Result {
	t.Helper()
	ctx := t.Context()
	log := testLog(t)
	m := metrics.New()
	x, err := New(ctx, Config{
		Runner: runner, Store: st, Stores: &store.Stores{Home: bucketURL}, Results: controller.NewResults(st, "test", log, m),
		ExtraEnv: []string{"LIBGUESTFS_BACKEND=direct"}, Log: log, Metrics: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Launch(ctx, e); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	if err := x.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	return resulttest.Read(t, st, e.ResultKey)
}

// TestRealRunnerVersionedImage: in a versioned bucket the dispatcher
// grants the version it saw (a URL naming it, and --image-version), and
// the runner's result records that version.
func TestRealRunnerVersionedImage(t *testing.T) {
	image := filepath.Join(filepath.Dir(debianImage(t)), "rpm.qcow2")
	runner := buildRunner(t)
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	bucket := m.NewBucket(t)
	if err := m.Client(t).EnableVersioning(t.Context(), bucket); err != nil {
		t.Fatal(err)
	}
	bucketURL := "minio://" + bucket
	st, err := store.Open(t.Context(), bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := uploadImage(t, st, "images/rpm.qcow2", image)
	if obj.VersionID == "" {
		t.Fatalf("upload to a versioned bucket: no version (%+v)", obj)
	}
	e := putSpec(t, st, "jobs/rpm.json", map[string]any{
		"version": "1.0", "job_id": "rpm", "kind": "VMOperation", "operation": "guestkit.inspect",
		"execution": map[string]any{"max_attempts": 1, "timeout_seconds": 900},
		"payload": map[string]any{"type": "guestkit.inspect.v1", "data": map[string]any{
			"image": map[string]any{"uri": "minio://" + bucket + "/images/rpm.qcow2", "format": "qcow2"},
		}},
	})
	// What a runner is given: the URL names the version, and so does
	// --image-version, which the runner pins every read to.
	x := &Executor{cfg: Config{Store: st, Stores: &store.Stores{Home: bucketURL}}}
	args, err := x.runnerArgs(t.Context(), e, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	granted := strings.Join(args, " ")
	if !strings.Contains(granted, "versionId="+obj.VersionID) || !strings.Contains(granted, "--image-version "+obj.VersionID) {
		t.Errorf("runner args %q: want the image URL and --image-version naming version %s", granted, obj.VersionID)
	}
	r := runSpec(t, runner, bucketURL, st, e)
	if r.Status != result.StatusCompleted || r.Image == nil {
		t.Fatalf("rpm: %s, error %+v", r.Status, r.Error)
	}
	if img := r.Image; img.Access != result.AccessStream || img.VersionID != obj.VersionID || img.ETag != obj.ETag {
		t.Errorf("image %+v: want streamed, version %s, ETag %s", img, obj.VersionID, obj.ETag)
	}
}
