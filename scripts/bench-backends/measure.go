package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// measure is one run of one command.
type measure struct {
	wall time.Duration
	// peakRSS is the largest sum of RSS over the command's process tree
	// seen by sampling, or the largest single process's maximum RSS
	// (getrusage) when that is higher: a run shorter than a sampling
	// interval is still measured.
	peakRSS int64
	// read is rchar of the whole tree: every byte its read and pread
	// calls returned (image, appliance kernel and root, config files).
	read int64
	// imageRead is what the runner's direct reader says it read of the
	// image (result backend.bytes_read); -1: not reported.
	imageRead int64
	exitCode  int    // -1: killed by a signal or timed out
	timedOut  bool   // the per-command timeout expired
	stderr    string // the last non-empty line, for "fails (...)"
}

// childEnv switches the bench's own binary into the measuring wrapper: it
// starts the command, reaps it and reports on fd 3. The wrapper exists for
// rchar: a process's /proc/PID/io includes the counts of every descendant it
// and they have reaped, so the wrapper's own counter after the wait is the
// tree's, even for processes that have exited (which sampling would miss).
// The bench itself cannot use its own counter, its sampling reads /proc.
const childEnv = "GUESTKIT_BENCH_BACKENDS_WRAP"

// report is what the wrapper writes on fd 3.
type report struct {
	WallNS   int64  `json:"wall_ns"`
	MaxRSS   int64  `json:"max_rss"` // bytes
	Read     int64  `json:"read"`
	Exit     int    `json:"exit"`
	TimedOut bool   `json:"timed_out"`
	Err      string `json:"err,omitempty"`
}

// wrap is main in the wrapper: args is the command; its stdout and
// stderr are the wrapper's (files the bench opened, passed as they are,
// so the wrapper reads nothing itself).
func wrap(args []string) {
	out := os.NewFile(3, "report")
	rep := runWrapped(args)
	json.NewEncoder(out).Encode(rep)
	out.Close()
	os.Exit(0)
}

func runWrapped(args []string) report {
	timeout, err := time.ParseDuration(os.Getenv(childEnv))
	if err != nil || len(args) == 0 {
		return report{Exit: -1, Err: fmt.Sprintf("wrapper: bad timeout %q or no command", os.Getenv(childEnv))}
	}
	before, err := rchar("self")
	if err != nil {
		return report{Exit: -1, Err: err.Error()}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = os.Environ()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// A group of its own, so a timeout kills qemu too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return report{Exit: -1, Err: err.Error()}
	}
	var timedOut atomic.Bool
	timer := time.AfterFunc(timeout, func() {
		timedOut.Store(true)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})
	err = cmd.Wait()
	wall := time.Since(start)
	timer.Stop()
	after, rerr := rchar("self")
	rep := report{WallNS: int64(wall), Read: after - before, TimedOut: timedOut.Load(), Exit: cmd.ProcessState.ExitCode()}
	if rerr != nil {
		rep.Err = rerr.Error()
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rep.MaxRSS = ru.Maxrss << 10 // KiB on Linux
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		rep.Err = err.Error()
	}
	// Whatever the command left behind (a daemonised child) goes too.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	return rep
}

// rchar reads the rchar line of /proc/PID/io.
func rchar(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/io")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "rchar:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%s/io: no rchar line", pid)
}

// runMeasured runs args under the wrapper with env, stdout to stdout (a
// file path, or none), and samples the RSS of the wrapper's descendants
// until it exits.
func runMeasured(ctx context.Context, env, args []string, stdout string, timeout time.Duration) (measure, error) {
	self, err := os.Executable()
	if err != nil {
		return measure{}, err
	}
	outPath := os.DevNull
	if stdout != "" {
		outPath = stdout
	}
	out, err := os.Create(outPath)
	if err != nil {
		return measure{}, err
	}
	defer out.Close()
	errf, err := os.CreateTemp("", "bench-backends-stderr-*")
	if err != nil {
		return measure{}, err
	}
	defer os.Remove(errf.Name())
	defer errf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return measure{}, err
	}
	defer pr.Close()
	// The wrapper's own deadline comes first; this one only guards
	// against a wrapper that hangs.
	ctx, cancel := context.WithTimeout(ctx, timeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = append(env, childEnv+"="+timeout.String())
	cmd.Stdout, cmd.Stderr = out, errf
	cmd.ExtraFiles = []*os.File{pw}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return measure{}, err
	}
	pw.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	pid := cmd.Process.Pid
	// Often at first, when a direct inspection may already be over;
	// less often later, so that sampling does not compete for the
	// CPUs during a 20 s appliance run.
	start := time.Now()
	interval := func() time.Duration {
		if time.Since(start) < time.Second {
			return 5 * time.Millisecond
		}
		return 25 * time.Millisecond
	}
	timer := time.NewTimer(interval())
	defer timer.Stop()
	var werr error
loop:
	for {
		select {
		case werr = <-done:
			break loop
		case <-timer.C:
			if r := treeRSS(pid); r > peak {
				peak = r
			}
			timer.Reset(interval())
		}
	}
	var rep report
	if err := json.NewDecoder(pr).Decode(&rep); err != nil {
		return measure{}, fmt.Errorf("wrapper of %s: no report (%v, %v)", args[0], werr, err)
	}
	if rep.Err != "" {
		return measure{}, fmt.Errorf("%s: %s", args[0], rep.Err)
	}
	m := measure{wall: time.Duration(rep.WallNS), peakRSS: max(peak, rep.MaxRSS), read: rep.Read, exitCode: rep.Exit, timedOut: rep.TimedOut}
	if b, err := os.ReadFile(errf.Name()); err == nil {
		m.stderr = shorten(string(b))
	}
	return m, nil
}

// shorten keeps the end of a tool's error: its last line, without the
// wrapping most tools put before the cause (Trivy's "run error: vm scan
// error: ...: failed to new MBR: Invalid master boot record signature").
func shorten(s string) string {
	l := lastLine([]byte(s))
	if parts := strings.Split(l, ": "); len(parts) > 2 {
		l = strings.Join(parts[len(parts)-2:], ": ")
	}
	if len(l) > 100 {
		l = "..." + l[len(l)-97:]
	}
	return l
}

func lastLine(b []byte) string {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return strings.TrimSpace(string(lines[len(lines)-1]))
}

// treeRSS sums the RSS of root's descendants (root, the wrapper, is left
// out). /proc has no children lists on this kernel, so every process's
// stat is read: its ppid and rss fields.
func treeRSS(root int) int64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	type proc struct{ ppid, rss int }
	procs := map[int]proc{}
	var buf [1024]byte
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		// A descendant started after the wrapper has a higher pid,
		// unless pid numbers wrapped around meanwhile (then it is
		// missed, and getrusage's maximum is the floor).
		if err != nil || pid <= root {
			continue
		}
		f, err := os.Open("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		n, _ := f.Read(buf[:])
		f.Close()
		s := string(buf[:n])
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		// After the command name: state ppid ... rss is field 24 of
		// stat, the 22nd after ')'.
		fs := strings.Fields(s[i+1:])
		if len(fs) < 22 {
			continue
		}
		ppid, _ := strconv.Atoi(fs[1])
		rss, _ := strconv.Atoi(fs[21])
		procs[pid] = proc{ppid, rss}
	}
	in := map[int]bool{root: true}
	// Parents have lower pids than their children (bar wrap-around), so
	// one pass in pid order would do; loop until stable to be safe.
	var sum int64
	for changed := true; changed; {
		changed = false
		for pid, p := range procs {
			if !in[pid] && in[p.ppid] {
				in[pid] = true
				sum += int64(p.rss) * int64(os.Getpagesize())
				changed = true
			}
		}
	}
	return sum
}
