package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/testenv"
)

// TestRunAgainstMinIO: `run` reads its spec from and stores its result in
// a real MinIO, through both s3:// (aws-sdk-go-v2) and minio://
// (minio-go), with credentials and endpoint from the environment. A result
// upload that meets a stopped server is retried and lands once the server
// is back.
func TestRunAgainstMinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a MinIO server")
	}
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	client := m.Client(t)
	ctx := context.Background()
	dir := t.TempDir()
	img := qcow2(t, dir, "web.qcow2")
	put := func(key string, v any) {
		b, _ := json.Marshal(v)
		if _, err := client.PutObject(ctx, m.Bucket, key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(key string) *result.Result {
		obj, err := client.GetObject(ctx, m.Bucket, key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(obj)
		if err != nil {
			t.Fatalf("result %s: %v", key, err)
		}
		var res result.Result
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatalf("result %s: %v\n%s", key, err, b)
		}
		return &res
	}
	for _, scheme := range []string{"s3", "minio"} {
		t.Run(scheme, func(t *testing.T) {
			s := inspectSpec(img)
			s["job_id"] = "bucket-" + scheme
			put("jobs/"+scheme+".json", s)
			o := runCLI(t, ctx, newFakeLauncher(), "run",
				"--spec", scheme+"://"+m.Bucket+"/jobs/"+scheme+".json",
				"--result", scheme+"://"+m.Bucket+"/results/"+scheme+".json")
			if o.code != 0 {
				t.Fatalf("exit %d\n%s", o.code, o.stderr)
			}
			res := get("results/" + scheme + ".json")
			if res.JobID != "bucket-"+scheme || res.Status != result.StatusCompleted || len(res.Data) == 0 {
				t.Errorf("result: %+v", res)
			}
		})
	}

	t.Run("server down during upload", func(t *testing.T) {
		put("jobs/retry.json", inspectSpec(img))
		l := newFakeLauncher()
		// Stop MinIO when the appliance shuts down, right before the upload,
		// so that the first attempts fail whatever the machine's load. Bring
		// it back after 10 s: longer than aws-sdk-go-v2's own retries of one
		// call (3 attempts, at most about 6 s of backoff), so that the
		// runner's retry loop has to carry the upload.
		// Once, and joined before the subtest ends: a restart after it
		// would fail a finished test.
		var once sync.Once
		restarted := make(chan struct{})
		l.app.onClose = func() {
			once.Do(func() {
				m.Stop()
				go func() {
					defer close(restarted)
					time.Sleep(10 * time.Second)
					m.Restart()
				}()
			})
		}
		t.Cleanup(func() {
			once.Do(func() { close(restarted) }) // never closed: nothing to wait for
			<-restarted
		})
		o := runCLI(t, ctx, l, "run", "--spec", "s3://"+m.Bucket+"/jobs/retry.json",
			"--result", "s3://"+m.Bucket+"/results/retry.json", "--upload-attempts", "10", "--upload-backoff", "1s")
		if o.code != 0 {
			t.Fatalf("exit %d, want the retried upload to land\n%s", o.code, o.stderr)
		}
		if res := get("results/retry.json"); res.Status != result.StatusCompleted {
			t.Errorf("result: %+v", res)
		}
		if !bytes.Contains([]byte(o.stderr), []byte("retrying")) {
			t.Errorf("no retry was logged:\n%s", o.stderr)
		}
	})
}
