// Command bench-runner compares guestkit-runner with virt-inspector and a
// bare appliance launch on the same images, and inspection alone with
// inspection plus every profile. It is a report, not a test: it prints
// medians of alternating rounds and the ratios between them.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"guestkit.io/batch/internal/libguestfs"
	"guestkit.io/batch/internal/profile/names"
)

type measure struct {
	wall    time.Duration
	peakRSS int64 // bytes, summed over the process tree
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-runner:", err)
		os.Exit(1)
	}
}

func run() error {
	runner := flag.String("runner", "bin/guestkit-runner", "guestkit-runner binary")
	images := flag.String("images", "", "directory made by scripts/testimages.sh")
	names := flag.String("only", "debian.qcow2,rpm.qcow2,lvm.qcow2", "comma-separated image files")
	rounds := flag.Int("rounds", 3, "alternating rounds per image")
	flag.Parse()
	if *images == "" {
		return errors.New("-images is required")
	}
	env := append(os.Environ(), "LIBGUESTFS_BACKEND=direct")
	if err := libguestfs.KVMUsable(); err != nil {
		// The runner falls back to TCG by itself; the libguestfs tools
		// must be told, or they hang on hosts with broken nested KVM.
		env = append(env, "LIBGUESTFS_BACKEND_SETTINGS=force_tcg")
	}
	ctx := context.Background()
	host, _ := os.Hostname()
	fmt.Printf("bench-runner %s on %s, %d cores, %d rounds (medians)\n\n", time.Now().UTC().Format(time.RFC3339), host, runtime.NumCPU(), *rounds)
	// Fixed widths, so that each row prints as soon as its image is done.
	const row = "%-22s %11s %14s %14s %14s %10s %12s %15s %13s %8s %8s %8s\n"
	fmt.Printf(row, "image", "bare launch", "virt-inspector", "runner inspect", "runner profile", "inspect/vi", "inspect/bare", "profile/inspect", "peak RSS bare", "vi", "inspect", "profile")
	for _, name := range strings.Split(*names, ",") {
		img := filepath.Join(*images, name)
		format := strings.TrimPrefix(filepath.Ext(name), ".")
		specPath, err := profileSpec(img, format)
		if err != nil {
			return err
		}
		tools := []struct {
			name string
			args []string
		}{
			{"bare", []string{"guestfish", "--ro", "--format=" + format, "-a", img, "run"}},
			{"vi", []string{"virt-inspector", "--format=" + format, "-a", img}},
			{"inspect", []string{*runner, "inspect", "--format", format, "-o", os.DevNull, img}},
			{"profile", []string{*runner, "run", "--spec", specPath, "--result", filepath.Join(os.TempDir(), "bench-profile-result.json"), "--image", img}},
		}
		res := map[string][]measure{}
		for r := 0; r < *rounds; r++ {
			for _, t := range tools {
				m, err := measureCmd(ctx, env, t.args)
				if err != nil {
					return fmt.Errorf("%s on %s: %w", t.name, name, err)
				}
				res[t.name] = append(res[t.name], m)
			}
		}
		med := map[string]measure{}
		for k, v := range res {
			med[k] = median(v)
		}
		ratio := func(a, b string) string {
			return fmt.Sprintf("%.2fx", med[a].wall.Seconds()/med[b].wall.Seconds())
		}
		secs := func(k string) string { return fmt.Sprintf("%.1fs", med[k].wall.Seconds()) }
		mib := func(k string) string { return fmt.Sprintf("%d MiB", med[k].peakRSS>>20) }
		fmt.Printf(row, name, secs("bare"), secs("vi"), secs("inspect"), secs("profile"),
			ratio("inspect", "vi"), ratio("inspect", "bare"), ratio("profile", "inspect"),
			mib("bare"), mib("vi"), mib("inspect"), mib("profile"))
	}
	fmt.Println("\ntargets: inspect/vi <= 1.00x, inspect/bare <= 1.30x, profile/inspect <= 1.20x")
	return nil
}

// profileSpec writes a guestkit.profile spec with every profile.
func profileSpec(img, format string) (string, error) {
	spec := map[string]any{
		"version": "1.0", "job_id": "bench-profile", "operation": "guestkit.profile",
		"payload": map[string]any{"type": "guestkit.profile.v1", "data": map[string]any{
			"image":    map[string]any{"path": img, "format": format},
			"profiles": names.All(),
		}},
	}
	b, _ := json.Marshal(spec)
	p := filepath.Join(os.TempDir(), "bench-profile-spec.json")
	return p, os.WriteFile(p, b, 0o644)
}

// measureCmd runs a command and samples the RSS of its whole process tree
// (the tool and its qemu) every 50 ms.
func measureCmd(ctx context.Context, env, args []string) (measure, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = nil, nil
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return measure{}, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			m := measure{wall: time.Since(start), peakRSS: peak}
			var ee *exec.ExitError
			// The runner exits 2 for a noncompliant profile: a result, not a failure.
			if errors.As(err, &ee) && ee.ExitCode() == 2 {
				err = nil
			}
			return m, err
		case <-tick.C:
			if r := treeRSS(cmd.Process.Pid); r > peak {
				peak = r
			}
		}
	}
}

// treeRSS sums VmRSS over pid and its descendants.
func treeRSS(root int) int64 {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 {
			ppid, _ := strconv.Atoi(f[1])
			children[ppid] = append(children[ppid], pid)
		}
	}
	var sum int64
	var walk func(int)
	walk = func(p int) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "VmRSS:") {
					f := strings.Fields(l)
					if len(f) >= 2 {
						kb, _ := strconv.ParseInt(f[1], 10, 64)
						sum += kb << 10
					}
				}
			}
		}
		for _, c := range children[p] {
			walk(c)
		}
	}
	walk(root)
	return sum
}

func median(ms []measure) measure {
	w := append([]measure(nil), ms...)
	sort.Slice(w, func(i, j int) bool { return w[i].wall < w[j].wall })
	r := append([]measure(nil), ms...)
	sort.Slice(r, func(i, j int) bool { return r[i].peakRSS < r[j].peakRSS })
	return measure{wall: w[len(w)/2].wall, peakRSS: r[len(r)/2].peakRSS}
}
