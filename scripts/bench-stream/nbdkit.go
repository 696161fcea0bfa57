package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The appliance over nbdkit, the alternative issue 13 names for the NBD
// export: nbdkit's curl plugin on the presigned URL, behind its readahead
// and cache filters, with the stats filter next to the plugin (what reached
// the network, in NBD reads), exported on a unix socket; virt-inspector (one
// appliance launch: inspect-os, then each root's filesystems and
// applications) reads it. The counting proxy sees the HTTP requests.

// nbdkitFilters is the filter stack, client side first.
var nbdkitFilters = []string{"readahead", "cache", "stats"}

type nbdkitRun struct {
	measure
	nbdReads, nbdBytes int64 // the stats filter's read line; -1: not found
	out                string
}

func runNbdkit(ctx context.Context, cfg config, env []string, img image, url, tmp string) (nbdkitRun, error) {
	dir, err := os.MkdirTemp(tmp, "nbdkit-")
	if err != nil {
		return nbdkitRun{}, err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "nbd.sock")
	stats := filepath.Join(dir, "stats")
	args := []string{"--foreground", "--readonly", "--unix", sock, "--exit-with-parent"}
	for _, f := range nbdkitFilters {
		args = append(args, "--filter="+f)
	}
	// cache-max-size bounds the cache like the Go reader's LRU;
	// cache-on-read keeps what was read, for the next reads of it.
	args = append(args, "curl", "url="+url, "statsfile="+stats, "statsappend=false",
		"cache-max-size=64M", "cache-on-read=true")
	nb := exec.CommandContext(ctx, cfg.nbdkit, args...)
	nb.Env = env
	var nbErr strings.Builder
	nb.Stderr = &nbErr
	nb.Dir = dir // the cache filter's temporary file goes to TMPDIR
	nb.Env = append(nb.Env, "TMPDIR="+dir)
	if err := nb.Start(); err != nil {
		return nbdkitRun{}, fmt.Errorf("start nbdkit: %w", err)
	}
	stopped := false
	stop := func() *syscall.Rusage {
		if stopped {
			return nil
		}
		stopped = true
		// SIGTERM: nbdkit writes its stats file on a clean exit.
		_ = nb.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = nb.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = nb.Process.Kill()
			<-done
		}
		ru, _ := nb.ProcessState.SysUsage().(*syscall.Rusage)
		return ru
	}
	defer stop()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nbdkitRun{}, fmt.Errorf("nbdkit: no socket after 10 s: %s", lastLine(nbErr.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	vi := []string{"virt-inspector", "--no-icon", "-a", "nbd://?socket=" + sock}
	if img.format != "" {
		vi = append(vi[:1], append([]string{"--format=" + img.format}, vi[1:]...)...)
	}
	outPath := filepath.Join(dir, "inspector.xml")
	m, err := runMeasured(ctx, cfg.timeout, env, vi, outPath)
	if err != nil {
		return nbdkitRun{}, err
	}
	ru := stop()
	if ru != nil {
		m.peakRSS += ru.Maxrss << 10 // two processes at once: the sum bounds the peak
	}
	r := nbdkitRun{measure: m, nbdReads: -1, nbdBytes: -1}
	r.nbdReads, r.nbdBytes = readStats(stats)
	if m.exit != 0 {
		r.out = "virt-inspector exit " + strconv.Itoa(m.exit) + ": " + m.stderr
		if s := lastLine(nbErr.String()); s != "" {
			r.out += "; nbdkit: " + s
		}
		return r, nil
	}
	b, _ := os.ReadFile(outPath)
	r.out = fmt.Sprintf("%d roots, %d applications", strings.Count(string(b), "<operatingsystem>"), strings.Count(string(b), "<application>"))
	return r, nil
}

var statsRead = regexp.MustCompile(`^read: (\d+) ops, [0-9.]+ s, ([0-9.]+) (bytes|KiB|MiB|GiB|TiB)`)

// readStats reads the stats filter's "read: N ops, T s, 3.16 MiB, ..."
// line (the size is rounded to three digits).
func readStats(path string) (ops, bytes int64) {
	f, err := os.Open(path)
	if err != nil {
		return -1, -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := statsRead.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			ops, _ = strconv.ParseInt(m[1], 10, 64)
			v, _ := strconv.ParseFloat(m[2], 64)
			shift := map[string]uint{"bytes": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}[m[3]]
			return ops, int64(v * float64(uint64(1)<<shift))
		}
	}
	return -1, -1
}

// nbdkitUsable says why the nbdkit mode cannot run, or "".
func nbdkitUsable(ctx context.Context, bin string) string {
	if bin == "" {
		return "no nbdkit (-nbdkit empty)"
	}
	out, err := exec.CommandContext(ctx, bin, "curl", "--version").CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || errors.Is(err, exec.ErrNotFound) {
			return fmt.Sprintf("nbdkit's curl plugin unusable: %s", lastLine(string(out)+err.Error()))
		}
		return err.Error()
	}
	if _, err := exec.LookPath("virt-inspector"); err != nil {
		return "no virt-inspector"
	}
	return ""
}
