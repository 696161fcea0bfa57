//go:build e2e && bench

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"guestkit.io/batch/internal/kubejob"
	"guestkit.io/batch/internal/result"
)

// TestBenchImage reports the images' sizes and, on the local cluster, how
// long a runner pod takes from its creation to its first appliance
// launch, phase by phase (make bench-image). Rounds:
// GUESTKIT_BENCH_ROUNDS (default 3), one spec at a time.
func TestBenchImage(t *testing.T) {
	images := testImages(t)
	archives := imageArchives(t)
	fmt.Println("== image sizes (" + time.Now().Format("2006-01-02") + ")")
	fmt.Printf("%-26s %12s %8s %14s %14s\n", "archive", "archive", "layers", "compressed", "uncompressed")
	for _, a := range archives {
		archiveSize, n, compressed, uncompressed := imageSizes(t, a)
		fmt.Printf("%-26s %12s %8d %14s %14s\n", filepath.Base(a), mib(archiveSize), n, mib(compressed), mib(uncompressed))
	}

	rounds := 3
	if s := os.Getenv("GUESTKIT_BENCH_ROUNDS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			rounds = n
		}
	}
	// Jobs stay after their result, so their pods' status and logs can be
	// read; one at a time, so rounds do not share the CPUs.
	c := startLocal(t, map[string]string{"GUESTKIT_CLEANUP": "false", "GUESTKIT_MAX_ACTIVE": "1"})
	for name, d := range c.imports {
		fmt.Printf("import into containerd: %-26s %8.1f s\n", name, d.Seconds())
	}
	c.putFile(t, "scratch/debian.qcow2", filepath.Join(images, "debian.qcow2"))

	fmt.Println("== runner pod: creation to first appliance launch (local cluster, TCG)")
	fmt.Println("seconds after the pod's creation: scheduled, container running, image accepted (downloaded, probed), appliance launched, result stored")
	fmt.Printf("%-6s %10s %10s %12s %12s %12s\n", "round", "scheduled", "container", "image ready", "launched", "result")
	var totals, overheads []float64
	for i := range rounds {
		id := fmt.Sprintf("bench-start-%d", i+1)
		c.put(t, "jobs/"+id+".json", busySpec(id, c.uri("scratch/debian.qcow2"), 1)) // the appliance: its launch is what this measures
		r := c.waitResult(t, "results/"+id+".json", final)
		if r.Status != result.StatusCompleted || r.Kubernetes == nil {
			t.Fatalf("%s: status %s error %+v", id, r.Status, r.Error)
		}
		pod, err := c.cs.CoreV1().Pods(namespace).Get(context.Background(), r.Kubernetes.Pod, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("pod %s: %v", r.Kubernetes.Pod, err)
		}
		p := podPhases(t, c, pod)
		created := pod.CreationTimestamp.Time
		at := func(tm time.Time) float64 { return tm.Sub(created).Seconds() }
		fmt.Printf("%-6d %9.1fs %9.1fs %11.1fs %11.1fs %11.1fs\n", i+1,
			at(p.scheduled), at(p.started), at(p.accepted), at(p.launched), at(r.FinishedAt))
		totals = append(totals, at(p.launched))
		overheads = append(overheads, at(p.started))
	}
	medTotal, medOverhead := median(totals), median(overheads)
	fmt.Printf("median pod creation → appliance launched: %.1f s, of which pod creation → container running: %.1f s (%.0f%%)\n",
		medTotal, medOverhead, 100*medOverhead/medTotal)
}

// imageSizes reads a docker archive: its size, its layer count, and the
// layers' compressed and uncompressed sizes.
func imageSizes(t testing.TB, archive string) (archiveSize int64, layers int, compressed, uncompressed int64) {
	t.Helper()
	st, err := os.Stat(archive)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatalf("%s: %v", archive, err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		n, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		compressed += n
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		u, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		uncompressed += u
	}
	return st.Size(), len(ls), compressed, uncompressed
}

type phases struct{ scheduled, started, accepted, launched time.Time }

// podPhases reads when the pod was scheduled and its container started
// (pod status), and when the runner accepted the image and had the
// appliance up (its log lines, with the kubelet's timestamps).
func podPhases(t testing.TB, c *cluster, pod *corev1.Pod) phases {
	t.Helper()
	var p phases
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodScheduled {
			p.scheduled = cond.LastTransitionTime.Time
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name != kubejob.ContainerName {
			continue
		}
		if s := cs.State.Terminated; s != nil {
			p.started = s.StartedAt.Time
		}
	}
	req := c.cs.CoreV1().Pods(namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: kubejob.ContainerName, Timestamps: true})
	rc, err := req.Stream(context.Background())
	if err != nil {
		t.Fatalf("logs of %s: %v", pod.Name, err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		ts, line, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		switch {
		case p.accepted.IsZero() && strings.Contains(line, "image accepted"):
			p.accepted = tm
		case p.launched.IsZero() && strings.Contains(line, "appliance launched"):
			p.launched = tm
		}
	}
	if p.scheduled.IsZero() || p.started.IsZero() || p.accepted.IsZero() || p.launched.IsZero() {
		t.Fatalf("pod %s: phases %+v: a status or log line is missing", pod.Name, p)
	}
	return p
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
