// Command bench-stream is issue 13's benchmark (make bench-stream): how much
// of a bucket image an inspection fetches when the runner streams it, against
// downloading it first. It is a report, not a test: a missed target is
// printed, not failed.
//
// It starts MinIO on 127.0.0.1 in a temporary folder, uploads the images,
// and puts a counting reverse proxy in front of it: the presigned GET URLs
// name the proxy, so every byte and request of every reader is counted at
// the HTTP level, whatever the reader reports of itself. Then for each
// image, backend (direct, appliance) and operation (inspect, profile) it
// runs `guestkit-runner run --image-url URL` twice, with --image-access
// stream and download, and prints: object size, virtual size, bytes and
// requests fetched (proxy, and the result's image.fetch), fetched/object
// size, wall time, stream/download wall ratio and peak RSS (getrusage of the
// runner and the descendants it reaped, as /usr/bin/time -v reports it).
// With nbdkit, the appliance is also measured over nbdkit's curl plugin
// (readahead, cache and stats filters) read by virt-inspector: the
// alternative NBD export the issue asks to choose by measurement.
//
// Settings are flags, each with an environment variable for make:
//
//	-runner        guestkit-runner binary (bin/guestkit-runner)
//	-images        scripts/testimages.sh's folder ($GUESTKIT_TEST_IMAGES); only its "ok" images
//	-bench-images  scripts/bench-image.sh's folder ($GUESTKIT_BENCH_STREAM_IMAGES)
//	-only          image names or files ($BENCH_IMAGES; default every image of both folders)
//	-backends      direct,appliance ($GUESTKIT_BENCH_BACKENDS)
//	-ops           inspect,profile ($GUESTKIT_BENCH_OPS)
//	-appliance-ops operations measured on the appliance ($GUESTKIT_BENCH_APPLIANCE_OPS,
//	               inspect,profile): an appliance run takes 20-40 s under TCG; profile reads about
//	               twice inspect's bytes (15 against 8 MiB of the 700 MB image)
//	-appliance-images test images measured on the appliance and nbdkit besides every bench image
//	               and every image -only names ($GUESTKIT_BENCH_APPLIANCE_IMAGES; "all": every one;
//	               default one of each format and layout: debian.qcow2, debian.raw, debian.vmdk,
//	               lvm.qcow2, rpm.qcow2), which keeps a warm run under 20 minutes
//	-minio         MinIO server binary ($GUESTKIT_MINIO; scripts/install-minio.sh prints it)
//	-nbdkit        nbdkit binary ($GUESTKIT_BENCH_NBDKIT; empty: no nbdkit rows)
//	-latency       added to every request by the proxy, an emulated remote bucket ($GUESTKIT_BENCH_LATENCY, 0)
//	-bandwidth     MiB/s of each response through the proxy, 0 unlimited ($GUESTKIT_BENCH_BANDWIDTH, 0);
//	               e.g. -latency 20ms -bandwidth 100 for a bucket in another zone
//	-rounds        rounds per row, medians ($GUESTKIT_BENCH_ROUNDS, 1)
//	-timeout       per command (15m)
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"guestkit.io/batch/internal/libguestfs"
	"guestkit.io/batch/internal/profile/names"
)

// The targets for streamed reads.
const (
	target700m = 0.05 // at most 5% of a 700 MB image fetched
	target20g  = 0.01 // at most 1% of a 20 GiB one
)

const (
	bucket    = "bench"
	accessKey = "bench-stream"
	secretKey = "bench-stream-secret"
	region    = "us-east-1"
)

type config struct {
	runner, images, benchImages, minio, nbdkit string
	only, backends, ops, applianceOps          []string
	applianceImages                            []string
	latency, timeout                           time.Duration
	bandwidth                                  float64 // MiB/s
	rounds                                     int
}

// image is one object of the bucket.
type image struct {
	name, file, path, format string
	size                     int64 // the file's, which is the object's
	bench                    bool  // from bench-image.sh
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-stream:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string { return cmp.Or(os.Getenv(k), def) }

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func run() error {
	var cfg config
	var only, backends, ops, applianceOps, applianceImages string
	rounds, _ := strconv.Atoi(envOr("GUESTKIT_BENCH_ROUNDS", "1"))
	latency, err := time.ParseDuration(envOr("GUESTKIT_BENCH_LATENCY", "0s"))
	if err != nil {
		return fmt.Errorf("GUESTKIT_BENCH_LATENCY: %w", err)
	}
	flag.StringVar(&cfg.runner, "runner", "bin/guestkit-runner", "guestkit-runner binary")
	flag.StringVar(&cfg.images, "images", os.Getenv("GUESTKIT_TEST_IMAGES"), "folder made by scripts/testimages.sh (empty: none)")
	flag.StringVar(&cfg.benchImages, "bench-images", os.Getenv("GUESTKIT_BENCH_STREAM_IMAGES"), "folder made by scripts/bench-image.sh (empty: none)")
	flag.StringVar(&only, "only", os.Getenv("BENCH_IMAGES"), "comma-separated image names or files (default: all)")
	flag.StringVar(&backends, "backends", envOr("GUESTKIT_BENCH_BACKENDS", "direct,appliance"), "runner backends")
	flag.StringVar(&ops, "ops", envOr("GUESTKIT_BENCH_OPS", "inspect,profile"), "operations")
	flag.StringVar(&applianceOps, "appliance-ops", envOr("GUESTKIT_BENCH_APPLIANCE_OPS", "inspect,profile"), "operations measured on the appliance backend")
	flag.StringVar(&applianceImages, "appliance-images", envOr("GUESTKIT_BENCH_APPLIANCE_IMAGES", "debian.qcow2,debian.raw,debian.vmdk,lvm.qcow2,rpm.qcow2"), `test images measured on the appliance besides the bench images and -only's ("all": every one)`)
	flag.StringVar(&cfg.minio, "minio", os.Getenv("GUESTKIT_MINIO"), "MinIO server binary (scripts/install-minio.sh)")
	flag.StringVar(&cfg.nbdkit, "nbdkit", os.Getenv("GUESTKIT_BENCH_NBDKIT"), "nbdkit binary (empty: no nbdkit rows)")
	flag.DurationVar(&cfg.latency, "latency", latency, "delay the proxy adds to every request")
	bandwidth, err := strconv.ParseFloat(envOr("GUESTKIT_BENCH_BANDWIDTH", "0"), 64)
	if err != nil {
		return fmt.Errorf("GUESTKIT_BENCH_BANDWIDTH: %w", err)
	}
	flag.Float64Var(&cfg.bandwidth, "bandwidth", bandwidth, "MiB/s of each response through the proxy (0: unlimited)")
	flag.IntVar(&cfg.rounds, "rounds", rounds, "rounds per row (medians)")
	flag.DurationVar(&cfg.timeout, "timeout", 15*time.Minute, "timeout of one command")
	flag.Parse()
	cfg.only, cfg.backends, cfg.ops, cfg.applianceOps = splitList(only), splitList(backends), splitList(ops), splitList(applianceOps)
	cfg.applianceImages = splitList(applianceImages)
	if cfg.minio == "" {
		return errors.New("-minio is required (bash scripts/install-minio.sh prints it)")
	}
	if cfg.rounds < 1 {
		return fmt.Errorf("-rounds %d: want at least 1", cfg.rounds)
	}
	if cfg.runner, err = filepath.Abs(cfg.runner); err != nil {
		return err
	}
	imgs, err := listImages(cfg)
	if err != nil {
		return err
	}

	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "bench-stream-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	env := childEnvironment()
	accel := "kvm"
	if err := libguestfs.KVMUsable(); err != nil {
		// The runner falls back to TCG by itself; virt-inspector must
		// be told, or it fails on hosts with broken nested KVM.
		env = append(env, "LIBGUESTFS_BACKEND_SETTINGS=force_tcg")
		accel = "tcg (" + err.Error() + ")"
	}

	srv, err := startMinIO(ctx, cfg.minio, filepath.Join(tmp, "minio"))
	if err != nil {
		return err
	}
	defer srv.stop()
	proxy, err := startCounter(srv.endpoint, cfg.latency, cfg.bandwidth*(1<<20))
	if err != nil {
		return err
	}
	defer proxy.close()
	// Uploads go straight to MinIO; presigned URLs name the proxy.
	up, err := minio.New(srv.host, &minio.Options{Creds: credentials.NewStaticV4(accessKey, secretKey, ""), Region: region})
	if err != nil {
		return err
	}
	signer, err := minio.New(proxy.addr, &minio.Options{Creds: credentials.NewStaticV4(accessKey, secretKey, ""), Region: region})
	if err != nil {
		return err
	}
	if err := up.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: region}); err != nil {
		return fmt.Errorf("make bucket: %w", err)
	}

	streamFlag := hasFlag(ctx, cfg.runner, "run", "--image-access")
	var notes []string
	if !streamFlag {
		notes = append(notes, "the runner has no --image-access flag yet: stream rows are skipped, download rows run with --image-url alone (the runner downloads)")
	}
	nbdkitWhy := nbdkitUsable(ctx, cfg.nbdkit)
	if nbdkitWhy != "" {
		notes = append(notes, "nbdkit rows skipped: "+nbdkitWhy)
	} else if !slices.Contains(cfg.backends, "appliance") {
		nbdkitWhy = "no appliance backend asked"
	}

	host, _ := os.Hostname()
	var uts syscall.Utsname
	_ = syscall.Uname(&uts)
	fmt.Printf("bench-stream %s on %s (Linux %s), %d cores, accel %s\n", time.Now().Format(time.RFC3339), host, utsString(uts.Release[:]), runtime.NumCPU(), accel)
	fmt.Printf("runner: %s; MinIO on %s behind a counting proxy (added latency %s, bandwidth per response %s); rounds %d (medians)\n", version(ctx, cfg.runner, "version"), srv.host, cfg.latency, bandwidthString(cfg.bandwidth), cfg.rounds)
	fmt.Println("fetched: body bytes the proxy served to the run (ground truth), [the result's image.fetch.bytes]; req: HTTP requests the proxy served [image.fetch.requests]; %: fetched / object size")
	fmt.Println("s/d: stream wall / download wall, same image, backend and operation; RSS: peak RSS of the command and the children it reaped (getrusage, as /usr/bin/time -v); nbdkit rows: virt-inspector + nbdkit")
	var onApp []string
	for _, im := range imgs {
		if cfg.onAppliance(im) {
			onApp = append(onApp, im.file)
		}
	}
	fmt.Printf("appliance (%s) and nbdkit rows on: %s\n", strings.Join(cfg.applianceOps, ","), strings.Join(onApp, ", "))
	for _, n := range notes {
		fmt.Println("note:", n)
	}
	fmt.Println()

	t := time.Now()
	for _, img := range imgs {
		if _, err := up.FPutObject(ctx, bucket, img.file, img.path, minio.PutObjectOptions{PartSize: 64 << 20}); err != nil {
			return fmt.Errorf("upload %s: %w", img.file, err)
		}
	}
	fmt.Printf("uploaded %d images (%s) in %.1f s\n\n", len(imgs), size(sumSizes(imgs)), time.Since(t).Seconds())

	const row = "%-34s %9s %9s %-9s %-7s %-8s %21s %15s %7s %8s %6s %8s  %s\n"
	fmt.Printf(row, "image", "object", "virtual", "backend", "op", "access", "fetched [result]", "req [result]", "%", "wall", "s/d", "RSS", "answer")
	var sum summary
	pairs := 0 // stream/download pairs measured so far
	for _, img := range imgs {
		url, err := signer.PresignedGetObject(ctx, bucket, img.file, 6*time.Hour, nil)
		if err != nil {
			return fmt.Errorf("presign %s: %w", img.file, err)
		}
		onAppliance := cfg.onAppliance(img)
		for _, b := range cfg.backends {
			for _, op := range cfg.ops {
				if b == "appliance" && (!onAppliance || !slices.Contains(cfg.applianceOps, op)) {
					continue
				}
				// The two accesses take turns, and which goes first
				// alternates by round and by row: whatever the first
				// run of a pair warms (page cache, the appliance's
				// files) favours neither.
				var got [2]runResult
				var runs [2][]runResult
				accesses := []string{"stream", "download"}
				for r := range cfg.rounds {
					order := []int{0, 1}
					if (r+pairs)%2 == 1 {
						order = []int{1, 0}
					}
					for _, i := range order {
						if accesses[i] == "stream" && !streamFlag {
							continue
						}
						run, err := benchRun(ctx, cfg, env, proxy, img, url.String(), b, op, accesses[i], tmp, streamFlag)
						if err != nil {
							return err
						}
						runs[i] = append(runs[i], run)
					}
				}
				pairs++
				for i := range got {
					if len(runs[i]) == 0 {
						got[i] = runResult{skipped: "skipped: no --image-access in the runner"}
						continue
					}
					got[i] = medianRun(runs[i])
				}
				for i, access := range []string{"stream", "download"} {
					r := got[i]
					if r.skipped != "" {
						fmt.Printf(row, img.file, size(img.size), "", b, op, access, "", "", "", "", "", "", r.skipped)
						continue
					}
					ratio := ""
					if i == 0 && got[1].skipped == "" && got[1].wall > 0 {
						ratio = fmt.Sprintf("%.2f", r.wall.Seconds()/got[1].wall.Seconds())
					}
					fmt.Printf(row, img.file, size(img.size), size(r.vsize), b, op, r.accessShown(access),
						size(r.fetched)+" ["+sizeOpt(r.resBytes)+"]", fmt.Sprintf("%d [%s]", r.requests, intOpt(r.resRequests)),
						pct(r.fetched, img.size), secs(r.wall), ratio, mib(r.peakRSS), r.answer)
				}
				sum.add(img, b, op, got[0], got[1])
			}
		}
		if nbdkitWhy == "" && onAppliance {
			r, err := benchNbdkit(ctx, cfg, env, proxy, img, url.String(), tmp)
			if err != nil {
				return err
			}
			fmt.Printf(row, img.file, size(img.size), "", "nbdkit", "inspect", "nbd", size(r.fetched)+" ["+sizeOpt(r.nbdBytes)+"]",
				fmt.Sprintf("%d [%s]", r.requests, intOpt(r.nbdReads)), pct(r.fetched, img.size), secs(r.wall), "", mib(r.peakRSS), r.out)
		}
	}
	if nbdkitWhy == "" {
		fmt.Println("\nnbdkit rows: [bracketed] are the stats filter's plugin reads (bytes, NBD read ops), next to the curl plugin; filters client side first:", strings.Join(nbdkitFilters, ", "))
	}
	fmt.Println()
	sum.print()
	return nil
}

func bandwidthString(mibs float64) string {
	if mibs <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%g MiB/s", mibs)
}

// onAppliance says whether the appliance (and nbdkit) rows are measured on
// img.
func (cfg config) onAppliance(img image) bool {
	in := func(l []string) bool { return slices.Contains(l, img.name) || slices.Contains(l, img.file) }
	return img.bench || in(cfg.only) || in(cfg.applianceImages) || slices.Contains(cfg.applianceImages, "all")
}

// listImages reads both MANIFESTs: the test images that inspect to a
// result (expected ok), and every bench image.
func listImages(cfg config) ([]image, error) {
	var all []image
	read := func(dir string, bench bool) error {
		if dir == "" {
			return nil
		}
		f, err := os.Open(filepath.Join(dir, "MANIFEST"))
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			l := sc.Text()
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			c := strings.Split(l, "\t")
			if len(c) < 4 {
				return fmt.Errorf("%s/MANIFEST: want at least 4 tab-separated columns: %q", dir, l)
			}
			if !bench && c[3] != "ok" {
				continue // the bad images end in the probe, before any streaming
			}
			p := filepath.Join(dir, c[1])
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			all = append(all, image{name: c[0], file: c[1], path: p, format: c[2], size: st.Size(), bench: bench})
		}
		return sc.Err()
	}
	if err := read(cfg.images, false); err != nil {
		return nil, err
	}
	if err := read(cfg.benchImages, true); err != nil {
		return nil, err
	}
	if len(cfg.only) == 0 {
		if len(all) == 0 {
			return nil, errors.New("no images: give -images and/or -bench-images")
		}
		return all, nil
	}
	var out []image
	for _, im := range all {
		if slices.Contains(cfg.only, im.name) || slices.Contains(cfg.only, im.file) {
			out = append(out, im)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-only %s: no such image in the MANIFESTs", strings.Join(cfg.only, ","))
	}
	return out, nil
}

// runResult is one row: the medians of its rounds.
type runResult struct {
	measure
	fetched, requests     int64 // the proxy's counts
	resBytes, resRequests int64 // the result's image.fetch; -1: absent
	vsize                 int64
	access                string // the result's image.access
	answer                string
	skipped               string
}

func (r runResult) accessShown(asked string) string {
	if r.access == "" || r.access == asked {
		return asked
	}
	return asked + ">" + r.access // the runner fell back
}

// benchRun runs the runner once on img, reading it by access, and measures
// the run and what the proxy served it.
func benchRun(ctx context.Context, cfg config, env []string, proxy *counter, img image, url, backend, op, access, tmp string, streamFlag bool) (runResult, error) {
	dir, err := os.MkdirTemp(tmp, "run-")
	if err != nil {
		return runResult{}, err
	}
	defer os.RemoveAll(dir)
	spec := filepath.Join(dir, "spec.json")
	if err := writeSpec(spec, img, op); err != nil {
		return runResult{}, err
	}
	resPath := filepath.Join(dir, "result.json")
	scratch := filepath.Join(dir, "scratch")
	if err := os.Mkdir(scratch, 0o755); err != nil {
		return runResult{}, err
	}
	args := []string{cfg.runner, "run", "--spec", spec, "--result", resPath, "--image-url", url,
		"--backend", backend, "--scratch", scratch, "--upload-attempts", "1"}
	if streamFlag {
		// What a dispatcher passes besides the URL: the object's size,
		// from its Stat when it granted the image.
		args = append(args, "--image-access", access, "--image-size", strconv.FormatInt(img.size, 10))
	}
	proxy.reset()
	m, err := runMeasured(ctx, cfg.timeout, env, args, "")
	if err != nil {
		return runResult{}, err
	}
	r := runResult{measure: m, fetched: proxy.bytes.Load(), requests: proxy.requests.Load(), resBytes: -1, resRequests: -1}
	readResult(resPath, &r)
	return r, nil
}

func benchNbdkit(ctx context.Context, cfg config, env []string, proxy *counter, img image, url, tmp string) (struct {
	nbdkitRun
	fetched, requests int64
}, error) {
	type res = struct {
		nbdkitRun
		fetched, requests int64
	}
	var rounds []res
	for range cfg.rounds {
		proxy.reset()
		proxy.headFromGet.Store(true)
		r, err := runNbdkit(ctx, cfg, env, img, url, tmp)
		proxy.headFromGet.Store(false)
		if err != nil {
			return res{}, err
		}
		rounds = append(rounds, res{r, proxy.bytes.Load(), proxy.requests.Load()})
	}
	slices.SortFunc(rounds, func(a, b res) int { return cmp.Compare(a.wall, b.wall) })
	return rounds[len(rounds)/2], nil
}

func medianRun(rs []runResult) runResult {
	slices.SortFunc(rs, func(a, b runResult) int { return cmp.Compare(a.wall, b.wall) })
	return rs[len(rs)/2]
}

// writeSpec writes a job on the bucket object; the runner reads it through
// --image-url, so the s3:// URI only names it (no credentials are passed).
func writeSpec(path string, img image, op string) error {
	im := map[string]any{"uri": "s3://" + bucket + "/" + img.file}
	if img.format != "" {
		im["format"] = img.format
	}
	data := map[string]any{"image": im}
	if op == "profile" {
		data["profiles"] = names.All()
	}
	spec := map[string]any{
		"version": "1.0", "job_id": "bench-stream-" + op, "operation": "guestkit." + op,
		"execution": map[string]any{"timeout_seconds": 3600},
		"payload":   map[string]any{"type": "guestkit." + op + ".v1", "data": data},
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// readResult fills r from the runner's result: what it says it fetched,
// and its answer (OS roots and packages, or the error).
func readResult(path string, r *runResult) {
	b, err := os.ReadFile(path)
	if err != nil {
		r.answer = fmt.Sprintf("no result (exit %d): %s", r.exit, r.stderr)
		return
	}
	var res struct {
		Status string `json:"status"`
		Image  *struct {
			Access      string `json:"access"`
			VirtualSize int64  `json:"virtual_size"`
			FileSize    int64  `json:"file_size"`
			Fetch       *struct {
				Bytes    int64 `json:"bytes"`
				Requests int64 `json:"requests"`
			} `json:"fetch"`
		} `json:"image"`
		Backend *struct {
			Used     string `json:"used"`
			Fallback string `json:"fallback"`
		} `json:"backend"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		r.answer = "result: " + err.Error()
		return
	}
	if res.Image != nil {
		r.access, r.vsize = res.Image.Access, res.Image.VirtualSize
		if res.Image.Fetch != nil {
			r.resBytes, r.resRequests = res.Image.Fetch.Bytes, res.Image.Fetch.Requests
		}
	}
	switch {
	case res.Error != nil:
		r.answer = fmt.Sprintf("%s %s: %s", res.Status, res.Error.Code, firstLine(res.Error.Message))
	default:
		r.answer = res.Status + " " + dataSummary(res.Data)
	}
	if res.Backend != nil && res.Backend.Fallback != "" {
		r.answer += " (fell back: " + firstLine(res.Backend.Fallback) + ")"
	}
}

// dataSummary counts OS roots and packages in the result's data, which
// holds the operating systems under "operating_systems" for both
// operations.
func dataSummary(raw json.RawMessage) string {
	var d struct {
		OS []struct {
			Hostname     string            `json:"hostname"`
			Applications []json.RawMessage `json:"applications"`
			Packages     []json.RawMessage `json:"packages"`
		} `json:"operating_systems"`
	}
	if json.Unmarshal(raw, &d) != nil {
		return ""
	}
	var hosts []string
	pkgs := 0
	for _, o := range d.OS {
		hosts = append(hosts, o.Hostname)
		pkgs += len(o.Applications) + len(o.Packages)
	}
	return fmt.Sprintf("%d roots (%s), %d packages", len(d.OS), strings.Join(hosts, ","), pkgs)
}

// summary checks the targets on the stream rows.
type summary struct{ lines []string }

func (s *summary) add(img image, backend, op string, stream, download runResult) {
	if stream.skipped != "" {
		return
	}
	what := fmt.Sprintf("%s %s %s", img.file, backend, op)
	// A stream run that ends early (a refusal, an error) fetches little
	// and is quick: its figures meet no target.
	if download.skipped == "" && stream.answer != download.answer {
		s.lines = append(s.lines, fmt.Sprintf("%-50s ANSWERS DIFFER: stream %q, download %q", what, stream.answer, download.answer))
		return
	}
	if !strings.HasPrefix(stream.answer, "completed") {
		s.lines = append(s.lines, fmt.Sprintf("%-50s stream did not complete: %s", what, stream.answer))
		return
	}
	if img.bench {
		tgt := target700m
		if strings.Contains(img.name, "20g") {
			tgt = target20g
		}
		f := float64(stream.fetched) / float64(img.size)
		s.lines = append(s.lines, fmt.Sprintf("%-50s fetched %6.2f%% of the object (target <= %.0f%%): %s", what, 100*f, 100*tgt, verdict(f <= tgt)))
	}
	if download.skipped == "" && download.wall > 0 {
		q := stream.wall.Seconds() / download.wall.Seconds()
		s.lines = append(s.lines, fmt.Sprintf("%-50s stream/download wall %.2f (%+.2f s; target <= 1.00): %s", what, q, (stream.wall-download.wall).Seconds(), verdict(q <= 1)))
	}
}

func (s *summary) print() {
	fmt.Println("targets (issue 13: at most 5% of a 700 MB image fetched, at most 1% of a 20 GiB one, never slower than the download path):")
	if len(s.lines) == 0 {
		fmt.Println("  none measured: no stream rows")
	}
	for _, l := range s.lines {
		fmt.Println(" ", l)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// ------------------------------------------------------------------ MinIO

type minioServer struct {
	cmd            *exec.Cmd
	host, endpoint string
	exited         chan struct{}
}

func startMinIO(ctx context.Context, bin, dir string) (*minioServer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	host, err := freeAddr()
	if err != nil {
		return nil, err
	}
	console, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "minio.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "server", filepath.Join(dir, "data"), "--address", host, "--console-address", console)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "MINIO_ROOT_USER=" + accessKey,
		"MINIO_ROOT_PASSWORD=" + secretKey, "MINIO_BROWSER=off", "MINIO_UPDATE=off"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &minioServer{cmd: cmd, host: host, endpoint: "http://" + host, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.exited) }()
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-s.exited:
			b, _ := os.ReadFile(filepath.Join(dir, "minio.log"))
			return nil, fmt.Errorf("minio exited: %s", lastLine(string(b)))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		default:
		}
		if resp, err := client.Get(s.endpoint + "/minio/health/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
	}
	s.stop()
	return nil, errors.New("minio not ready after 30 s")
}

func (s *minioServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
