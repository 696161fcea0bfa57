// Command guestkit-dispatcher turns a bucket of job specs into runs of
// guestkit-runner: Kubernetes Jobs, or local processes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"guestkit.io/batch/dispatcher/cli"
)

// version is set by the build (-ldflags -X main.version=...).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], cli.Deps{Stdout: os.Stdout, Stderr: os.Stderr, Version: version})
	stop()
	os.Exit(cli.ExitCode(err))
}
