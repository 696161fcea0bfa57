package runner_test

import (
	"context"
	"testing"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
)

func runnerExecute(t *testing.T, img testImage, timeout int64, backend string) *result.Result {
	t.Helper()
	return runner.Execute(context.Background(), inspectJob(img, timeout), nil, runner.Config{Version: "test", Accel: "auto", Backend: backend})
}
