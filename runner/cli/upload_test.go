package cli

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/store"
)

// TestUpload checks the retry loop itself: how many attempts, what is not
// retried, and that a context ends the wait.
func TestUpload(t *testing.T) {
	var puts, failFirst atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if n := puts.Add(1); n <= failFirst.Load() {
			http.Error(w, "try again", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	log := logrus.NewEntry(logger)
	body := []byte(`{"api_version":"guestkit.io/result/v1"}`)

	for _, tc := range []struct {
		name      string
		failFirst int32
		attempts  int
		want      int32 // PUTs
		err       string
	}{
		{"first attempt", 0, 6, 1, ""},
		{"third attempt", 2, 6, 3, ""},
		{"gives up", 100, 4, 4, "store result after 4 attempts: put " + srv.URL + "/r.json?<redacted>: HTTP 503"},
		{"one attempt", 100, 1, 1, "store result after 1 attempt: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			puts.Store(0)
			failFirst.Store(tc.failFirst)
			c := &RunCmd{Result: srv.URL + "/r.json?X-Amz-Signature=x", UploadAttempts: tc.attempts, UploadBackoff: time.Millisecond}
			err := c.upload(context.Background(), log, body)
			if puts.Load() != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%d PUTs, err %v; want %d, %q", puts.Load(), err, tc.want, tc.err)
			}
		})
	}

	t.Run("invalid key is not retried", func(t *testing.T) {
		c := &RunCmd{Result: filepath.Join(t.TempDir(), "bad\x01name.json"), UploadAttempts: 6, UploadBackoff: time.Hour}
		start := time.Now()
		err := c.upload(context.Background(), log, body)
		if !errors.Is(err, store.ErrInvalidKey) || !strings.Contains(err.Error(), "after 1 attempt:") || time.Since(start) > 10*time.Second {
			t.Errorf("err = %v after %s", err, time.Since(start))
		}
	})

	t.Run("context ends the wait", func(t *testing.T) {
		puts.Store(0)
		failFirst.Store(100)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		c := &RunCmd{Result: srv.URL + "/r.json", UploadAttempts: 6, UploadBackoff: time.Hour}
		start := time.Now()
		err := c.upload(ctx, log, body)
		if !errors.Is(err, context.DeadlineExceeded) || puts.Load() != 1 || time.Since(start) > 10*time.Second {
			t.Errorf("err = %v, %d PUTs, after %s", err, puts.Load(), time.Since(start))
		}
	})
}
