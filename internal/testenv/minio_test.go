package testenv

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// The server starts, serves the bucket, and keeps its data across Restart
// on the same endpoint; Stop really takes it down.
func TestMinIOStopRestart(t *testing.T) {
	start := time.Now()
	m := StartMinIO(t)
	t.Logf("MinIO ready in %v at %s", time.Since(start).Round(time.Millisecond), m.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := m.Client(t)
	data := []byte("survives a restart")
	if _, err := c.PutObject(ctx, m.Bucket, "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	m.Stop()
	if resp, err := http.Get(m.Endpoint + "/minio/health/live"); err == nil {
		resp.Body.Close()
		t.Fatalf("server still answers after Stop: %s", resp.Status)
	}
	m.Stop() // idempotent

	m.Restart()
	obj, err := c.GetObject(ctx, m.Bucket, "k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	obj.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after restart: %q, %v; want %q", got, err, data)
	}

	b := m.NewBucket(t)
	if ok, err := c.BucketExists(ctx, b); err != nil || !ok {
		t.Fatalf("NewBucket %s: exists=%v, %v", b, ok, err)
	}
	env := m.Env()
	if env["AWS_ENDPOINT_URL_S3"] != m.Endpoint || env["MINIO_ENDPOINT"] != m.Host || env["AWS_REGION"] != Region {
		t.Fatalf("Env: %v", env)
	}
}
