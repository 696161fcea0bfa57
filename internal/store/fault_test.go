package store

import (
	"context"
	"testing"
	"time"

	"guestkit.io/batch/internal/testenv"
)

// With the server down, a write fails within the caller's deadline instead
// of hanging, and the same store works again once the server is back.
func TestBucketUnreachable(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	ctx := t.Context()
	stores := map[string]Store{}
	for _, url := range []string{"s3://" + m.Bucket, "minio://" + m.Bucket} {
		st := mustOpen(t, ctx, url)
		mustPut(t, &fixture{ctx: ctx}, st, "warm", []byte("up")) // pooled connections, cached region
		stores[url] = st
	}

	m.Stop()
	for url, st := range stores {
		const timeout = 3 * time.Second
		ctx, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		err := st.Put(ctx, "while-down", []byte("lost"))
		took := time.Since(start)
		cancel()
		if err == nil {
			t.Fatalf("%s: Put with the server down succeeded", url)
		}
		if took > timeout+2*time.Second {
			t.Fatalf("%s: Put took %v past a %v deadline", url, took, timeout)
		}
		t.Logf("%s: down: %v after %v", url, err, took.Round(time.Millisecond))
	}

	m.Restart()
	for url, st := range stores {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		f := &fixture{ctx: ctx}
		mustPut(t, f, st, "after-restart", []byte(url))
		wantContent(t, f, st, "after-restart", []byte(url))
		wantContent(t, f, st, "warm", []byte("up"))
		cancel()
	}
}
