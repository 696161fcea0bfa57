package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// measure is one run of one command.
type measure struct {
	wall time.Duration
	// peakRSS is getrusage's ru_maxrss of the command, which Linux
	// raises to that of any descendant it reaped (qemu under the runner),
	// as /usr/bin/time -v reports it.
	peakRSS int64
	exit    int    // -1: killed or timed out
	stderr  string // the last non-empty line
}

// runMeasured runs args in a process group of its own (a timeout kills
// qemu too), stdout to outPath (or nowhere).
func runMeasured(ctx context.Context, timeout time.Duration, env, args []string, outPath string) (measure, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if outPath != "" {
		f, err := os.Create(outPath)
		if err != nil {
			return measure{}, err
		}
		defer f.Close()
		cmd.Stdout = f
	}
	var stderr tailWriter
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return measure{}, fmt.Errorf("start %s: %w", args[0], err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	_ = cmd.Wait()
	close(done)
	m := measure{wall: time.Since(start), exit: cmd.ProcessState.ExitCode(), stderr: lastLine(stderr.String())}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.peakRSS = ru.Maxrss << 10
	}
	if ctx.Err() != nil {
		m.exit, m.stderr = -1, fmt.Sprintf("timed out after %s", timeout)
	}
	return m, nil
}

// tailWriter keeps the last 8 KiB written: enough for the last line,
// bounded whatever a command logs.
type tailWriter struct{ b []byte }

func (w *tailWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	if len(w.b) > 8<<10 {
		w.b = append(w.b[:0], w.b[len(w.b)-8<<10:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string { return string(w.b) }

// childEnvironment is the bench's environment without GUESTKIT_ settings
// (the runner would take them as flags) nor bucket credentials (the
// runner must read through the presigned URL alone).
func childEnvironment() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "GUESTKIT_") && !strings.HasPrefix(kv, "GUESTKIT_CACHE="),
			strings.HasPrefix(kv, "AWS_"), strings.HasPrefix(kv, "MINIO_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LIBGUESTFS_BACKEND=direct")
}

// hasFlag says whether the runner's command takes flag, from its help.
func hasFlag(ctx context.Context, runner, command, flag string) bool {
	out, _ := exec.CommandContext(ctx, runner, command, "--help").Output()
	return strings.Contains(string(out), flag+"=") || strings.Contains(string(out), flag+" ")
}

func version(ctx context.Context, bin string, args ...string) string {
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return firstLine(string(out))
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return firstLine(lines[len(lines)-1])
}

func sumSizes(imgs []image) int64 {
	var n int64
	for _, im := range imgs {
		n += im.size
	}
	return n
}

// size prints bytes in binary units, three significant digits.
func size(n int64) string {
	switch {
	case n < 0:
		return "-"
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
}

func sizeOpt(n int64) string {
	if n < 0 {
		return "-"
	}
	return size(n)
}

func intOpt(n int64) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func pct(n, of int64) string {
	if of <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(n)/float64(of))
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }
