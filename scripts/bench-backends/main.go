// Command bench-backends is issue 12's benchmark (make bench-backends): on
// each test image, the runner's backends (direct, appliance), Trivy's
// offline package inventory and a bare appliance launch, side by side in
// one run, the tools alternating within each round. It reports the median
// wall time, peak RSS of the whole process tree and bytes read, whether each
// answer was right, and the ratios to the targets. It is a report,
// not a test: a missed target is printed, not failed.
//
// The reference answer is the appliance's (packages, name and version, of
// every OS root merged, or the error code); the appliance itself is checked
// against the image's NAME.expected.json.
//
// Settings are flags, each with an environment variable for make:
//
//	-runner    guestkit-runner binary (bin/guestkit-runner)
//	-images    folder scripts/testimages.sh made, with its MANIFEST ($GUESTKIT_TEST_IMAGES)
//	-trivy     trivy binary, scripts/install-trivy.sh's ($GUESTKIT_BENCH_TRIVY; empty: no Trivy)
//	-backends  runner backends to measure ($GUESTKIT_BENCH_BACKENDS, direct,appliance)
//	-only      MANIFEST names or files ($GUESTKIT_BENCH_IMAGES; default every image)
//	-rounds    alternating rounds ($GUESTKIT_BENCH_ROUNDS, 3)
//	-timeout   per command (10m)
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"guestkit.io/batch/internal/libguestfs"
	"guestkit.io/batch/internal/profile/names"
)

// The targets, for the direct backend.
const (
	targetTrivyRatio = 4.0
	targetBareRatio  = 0.10
	targetRSS        = 150 << 20
	targetProfile    = time.Second
)

// Tool names in the table.
const (
	toolTrivy    = "trivy"
	toolTrivyRaw = "trivy raw"
	toolBare     = "bare launch"
	toolProfiles = "direct+profiles"
)

func main() {
	if os.Getenv(childEnv) != "" {
		wrap(os.Args[1:])
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-backends:", err)
		os.Exit(1)
	}
}

// tool is one column of the comparison: how to run it on an image and how
// to read its answer.
type tool struct {
	name string
	// args returns the command line; out is the file its answer goes to.
	args   func(img testImage, path, out string) []string
	answer func(m measure, out string) answer
	// runs says whether the tool applies to the image.
	runs func(img testImage) bool
	kind toolKind
	// raw: the tool reads a raw copy of the image (qemu-img convert,
	// made before the rounds).
	raw bool
}

type toolKind int

const (
	kindRunner toolKind = iota // a runner result, with a backend block
	kindTrivy                  // Trivy's report: no error codes, no roots
	kindBare                   // launched or not
)

type config struct {
	runner, images, trivy string
	backends, only        []string
	rounds                int
	timeout               time.Duration
}

func envOr(k, def string) string { return cmp.Or(os.Getenv(k), def) }

func run() error {
	var cfg config
	var backends, only string
	rounds, _ := strconv.Atoi(envOr("GUESTKIT_BENCH_ROUNDS", "3"))
	flag.StringVar(&cfg.runner, "runner", "bin/guestkit-runner", "guestkit-runner binary")
	flag.StringVar(&cfg.images, "images", os.Getenv("GUESTKIT_TEST_IMAGES"), "folder made by scripts/testimages.sh")
	flag.StringVar(&cfg.trivy, "trivy", os.Getenv("GUESTKIT_BENCH_TRIVY"), "trivy binary (scripts/install-trivy.sh); empty: no Trivy")
	flag.StringVar(&backends, "backends", envOr("GUESTKIT_BENCH_BACKENDS", "direct,appliance"), "comma-separated runner backends to measure")
	flag.StringVar(&only, "only", os.Getenv("GUESTKIT_BENCH_IMAGES"), "comma-separated MANIFEST names or files (default: all)")
	flag.IntVar(&cfg.rounds, "rounds", rounds, "alternating rounds per image")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "timeout of one command")
	flag.Parse()
	if cfg.images == "" {
		return errors.New("-images is required")
	}
	if cfg.rounds < 1 {
		return fmt.Errorf("-rounds %d: want at least 1", cfg.rounds)
	}
	cfg.backends = splitList(backends)
	cfg.only = splitList(only)
	runnerPath, err := filepath.Abs(cfg.runner)
	if err != nil {
		return err
	}
	cfg.runner = runnerPath

	all, err := readManifest(filepath.Join(cfg.images, "MANIFEST"))
	if err != nil {
		return err
	}
	imgs := all
	if len(cfg.only) > 0 {
		imgs = nil
		for _, im := range all {
			if slices.Contains(cfg.only, im.name) || slices.Contains(cfg.only, im.file) {
				imgs = append(imgs, im)
			}
		}
		if len(imgs) == 0 {
			return fmt.Errorf("-only %s: no such image in the MANIFEST", only)
		}
	}

	env := childEnvironment()
	accel := "kvm"
	if err := libguestfs.KVMUsable(); err != nil {
		// The runner falls back to TCG by itself; guestfish must be
		// told, or it fails on hosts with broken nested KVM.
		env = append(env, "LIBGUESTFS_BACKEND_SETTINGS=force_tcg")
		accel = "tcg (" + err.Error() + ")"
	}
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "bench-backends-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	inspectFlag := hasFlag(ctx, cfg.runner, "inspect", "--backend")
	profileFlag := hasFlag(ctx, cfg.runner, "profile", "--backend")
	tools, notes := pickTools(cfg, inspectFlag, profileFlag, tmp)

	host, _ := os.Hostname()
	var uts syscall.Utsname
	syscall.Uname(&uts)
	fmt.Printf("bench-backends %s on %s (Linux %s), %d cores, accel %s\n", time.Now().Format(time.RFC3339), host, utsString(uts.Release[:]), runtime.NumCPU(), accel)
	fmt.Printf("runner: %s; trivy: %s\n", version(ctx, cfg.runner, "version"), cmp.Or(version(ctx, cfg.trivy, "--version"), "not measured (no -trivy)"))
	fmt.Printf("rounds: %d, the tools alternating (each round starts with the next tool); medians\n", cfg.rounds)
	fmt.Printf("peak RSS: the largest sum of RSS over the process tree, /proc sampled every 5 ms for 1 s then every 25 ms (%s), at least the largest single process's getrusage maximum\n", cgroupNote())
	fmt.Println("read: rchar of the whole process tree (every byte read() and pread() returned: the image, qemu-img's probe, and for the appliance its kernel and root too); image read: what the direct reader says it read of the image (result backend.bytes_read)")
	fmt.Println("answer: packages (name, [epoch:]version-release, every root merged) against the appliance's; the appliance against NAME.expected.json")
	for _, n := range notes {
		fmt.Println("note:", n)
	}
	fmt.Println()
	const row = "%-34s %-16s %9s %9s %11s %11s  %s\n"
	fmt.Printf(row, "image", "tool", "wall", "peak RSS", "read", "image read", "answer")

	var sums []imageSummary
	for _, img := range imgs {
		s, err := benchImage(ctx, cfg, env, tools, img, tmp)
		if err != nil {
			return err
		}
		for _, t := range tools {
			r, ok := s.rows[t.name]
			if !ok {
				continue
			}
			fmt.Printf(row, img.file, t.name, secs(r.med.wall), mib(r.med.peakRSS), size(r.med.read), size(r.med.imageRead), r.verdict)
		}
		for _, n := range s.notes {
			fmt.Printf("%-34s note: %s\n", img.file, n)
		}
		sums = append(sums, s)
	}
	fmt.Println()
	printTargets(sums, cfg.trivy != "")
	return nil
}

// pickTools lists the tools to run, in the order of the first round.
func pickTools(cfg config, inspectFlag, profileFlag bool, tmp string) ([]tool, []string) {
	var tools []tool
	var notes []string
	backends := cfg.backends
	if !inspectFlag {
		notes = append(notes, fmt.Sprintf("the runner has no --backend flag: the appliance only, measured without the flag (asked for %s)", strings.Join(cfg.backends, ",")))
		backends = []string{"appliance"}
	}
	always := func(testImage) bool { return true }
	for _, b := range backends {
		tools = append(tools, tool{
			name: b,
			args: func(img testImage, path, out string) []string {
				a := []string{cfg.runner, "inspect", "-o", out}
				if inspectFlag {
					a = append(a, "--backend", b)
				}
				if img.format != "" {
					a = append(a, "--format", img.format)
				}
				return append(a, path)
			},
			answer: func(_ measure, out string) answer { return runnerAnswer(out) },
			runs:   always,
			kind:   kindRunner,
		})
	}
	if cfg.trivy != "" {
		trivyArgs := func(_ testImage, path, out string) []string {
			// A private cache per run: no run reuses another's
			// analysis.
			cache, err := os.MkdirTemp(tmp, "trivy-cache-")
			if err != nil {
				cache = filepath.Join(tmp, "trivy-cache")
			}
			return []string{cfg.trivy, "vm", "--scanners", "", "--list-all-pkgs", "--format", "json",
				"--skip-db-update", "--offline-scan", "--skip-version-check", "--disable-telemetry", "--quiet",
				"--cache-dir", cache, "--output", out, path}
		}
		tools = append(tools, tool{name: toolTrivy, args: trivyArgs, answer: trivyAnswer, runs: always, kind: kindTrivy})
		// Trivy reads raw and some vmdk only: on a raw copy of the other
		// formats, what it finds in the disk's layout is measured too.
		tools = append(tools, tool{name: toolTrivyRaw, args: trivyArgs, answer: trivyAnswer, kind: kindTrivy, raw: true,
			runs: func(img testImage) bool { return img.expected == "ok" && img.format != "raw" }})
	} else {
		notes = append(notes, "no Trivy (-trivy empty)")
	}
	// The floor of any appliance run; only images that boot.
	tools = append(tools, tool{
		name: toolBare,
		args: func(img testImage, path, _ string) []string {
			a := []string{"guestfish", "--ro"}
			if img.format != "" {
				a = append(a, "--format="+img.format)
			}
			return append(a, "-a", path, "run")
		},
		answer: func(m measure, _ string) answer {
			if m.exitCode != 0 {
				return answer{fails: fmt.Sprintf("exit %d: %s", m.exitCode, m.stderr)}
			}
			return answer{}
		},
		runs: func(img testImage) bool { return img.expected == "ok" },
		kind: kindBare,
	})
	if slices.Contains(backends, "direct") {
		if profileFlag {
			tools = append(tools, tool{
				name: toolProfiles,
				args: func(img testImage, path, out string) []string {
					a := []string{cfg.runner, "profile", "-o", out, "--backend", "direct", "--profiles", strings.Join(names.All(), ",")}
					if img.format != "" {
						a = append(a, "--format", img.format)
					}
					return append(a, path)
				},
				answer: func(_ measure, out string) answer { return runnerAnswer(out) },
				runs:   always,
				kind:   kindRunner,
			})
		} else {
			notes = append(notes, "the runner's profile command has no --backend flag: inspect plus every profile not measured")
		}
	}
	return tools, notes
}

type row struct {
	med     measure
	verdict string
}

type imageSummary struct {
	img   testImage
	rows  map[string]row
	notes []string
}

// benchImage runs every tool on one image, rounds times, alternating.
func benchImage(ctx context.Context, cfg config, env []string, tools []tool, img testImage, tmp string) (imageSummary, error) {
	path := filepath.Join(cfg.images, img.file)
	var notes []string
	var rawPath string
	var active []tool
	for _, t := range tools {
		if !t.runs(img) {
			continue
		}
		if t.raw && rawPath == "" {
			rawPath = filepath.Join(tmp, "image.raw")
			args := []string{"convert", "-O", "raw"}
			if img.format != "" {
				args = append(args, "-f", img.format)
			}
			out, err := exec.CommandContext(ctx, "qemu-img", append(args, path, rawPath)...).CombinedOutput()
			defer os.Remove(filepath.Join(tmp, "image.raw"))
			if err != nil {
				notes = append(notes, fmt.Sprintf("no raw copy, so no %s: qemu-img convert: %v: %s", t.name, err, shorten(string(out))))
				rawPath = "-"
			}
		}
		if t.raw && rawPath == "-" {
			continue
		}
		active = append(active, t)
	}
	ms := map[string][]measure{}
	as := map[string][]answer{}
	for r := range cfg.rounds {
		for i := range active {
			t := active[(i+r)%len(active)]
			out := filepath.Join(tmp, strings.ReplaceAll(t.name, " ", "-")+".out")
			os.Remove(out)
			p := path
			if t.raw {
				p = rawPath
			}
			m, err := runMeasured(ctx, env, t.args(img, p, out), "", cfg.timeout)
			if err != nil {
				return imageSummary{}, fmt.Errorf("%s on %s: %w", t.name, img.file, err)
			}
			a := t.answer(m, out)
			m.imageRead = -1
			if t.kind == kindRunner {
				m.imageRead = a.imageRead
			}
			if m.timedOut {
				a = answer{fails: "timeout after " + cfg.timeout.String()}
			}
			ms[t.name] = append(ms[t.name], m)
			as[t.name] = append(as[t.name], a)
		}
	}
	// The reference: the appliance's answer each round, else what the
	// image was built with.
	exp, haveExp := expectedAnswer(filepath.Join(cfg.images, img.name+".expected.json"), img.expected)
	refs := as["appliance"]
	s := imageSummary{img: img, rows: map[string]row{}, notes: notes}
	for _, t := range active {
		var vs []string
		for r, a := range as[t.name] {
			ref := exp
			if refs != nil && t.name != "appliance" {
				ref = refs[r]
			}
			switch {
			case t.kind == kindBare:
				vs = append(vs, cmp.Or(a.fails, "launched"))
			case t.name == "appliance" && !haveExp:
				vs = append(vs, "reference (no expected.json)")
			case refs == nil && !haveExp:
				vs = append(vs, "no reference")
			case t.kind == kindTrivy:
				vs = append(vs, verdict(a, ref, true))
			default:
				vs = append(vs, verdict(a, ref, false))
			}
			// A run that did not read the disk the way its name says
			// (auto means direct unless it falls back).
			want := t.name
			if t.name == toolProfiles || t.name == "auto" {
				want = "direct"
			}
			if t.kind == kindRunner && a.used != "" && a.used != want {
				vs[len(vs)-1] += fmt.Sprintf(" [read by %s: %s]", a.used, cmp.Or(a.fallback, "no reason given"))
			}
		}
		s.rows[t.name] = row{med: median(ms[t.name]), verdict: summarize(vs)}
	}
	return s, nil
}

// printTargets prints the per-image ratios and the targets' lines.
func printTargets(sums []imageSummary, trivy bool) {
	const row = "%-34s %22s %12s %11s %16s\n"
	if slices.ContainsFunc(sums, func(s imageSummary) bool { _, ok := s.rows["direct"]; return ok }) {
		fmt.Printf(row, "image", "direct/trivy", "direct/bare", "direct RSS", "direct+profiles")
	}
	var trivyRatios, bareRatios, rss, prof []figure
	for _, s := range sums {
		d, ok := s.rows["direct"]
		if !ok {
			continue
		}
		cells := []string{"-", "-", mib(d.med.peakRSS), "-"}
		rss = append(rss, figure{float64(d.med.peakRSS), s.img.file})
		// Trivy on the image if it answers right, else on its raw copy.
		for _, name := range []string{toolTrivy, toolTrivyRaw} {
			t, ok := s.rows[name]
			if !ok {
				continue
			}
			if strings.HasPrefix(t.verdict, "right") && t.med.wall > 0 {
				f := d.med.wall.Seconds() / t.med.wall.Seconds()
				cells[0] = fmt.Sprintf("%.2fx", f)
				if name == toolTrivyRaw {
					cells[0] += " (raw)"
				}
				trivyRatios = append(trivyRatios, figure{f, s.img.file})
				break
			}
			short, _, _ := strings.Cut(t.verdict, " (")
			short, _, _ = strings.Cut(short, ":")
			cells[0] = "(trivy: " + short + ")"
		}
		if b, ok := s.rows[toolBare]; ok && b.verdict == "launched" {
			f := d.med.wall.Seconds() / b.med.wall.Seconds()
			cells[1] = fmt.Sprintf("%.3fx", f)
			bareRatios = append(bareRatios, figure{f, s.img.file})
		}
		if p, ok := s.rows[toolProfiles]; ok {
			cells[3] = secs(p.med.wall)
			prof = append(prof, figure{p.med.wall.Seconds(), s.img.file})
			rss = append(rss, figure{float64(p.med.peakRSS), s.img.file + " (profiles)"})
		}
		fmt.Printf(row, s.img.file, cells[0], cells[1], cells[2], cells[3])
	}
	if len(rss) > 0 {
		fmt.Println()
	}
	fmt.Printf("targets (%s), direct backend:\n", time.Now().Format("2006-01-02"))
	if len(rss) == 0 {
		fmt.Println("  not measured: no direct backend in this run")
		return
	}
	if trivy {
		target(fmt.Sprintf("wall time <= %.0fx Trivy's (where it answers right)", targetTrivyRatio), trivyRatios, targetTrivyRatio,
			func(v float64) string { return fmt.Sprintf("%.2fx", v) })
	}
	target(fmt.Sprintf("wall time <= %.2fx a bare appliance launch", targetBareRatio), bareRatios, targetBareRatio,
		func(v float64) string { return fmt.Sprintf("%.3fx", v) })
	target(fmt.Sprintf("peak RSS <= %d MiB (inspect, inspect+profiles)", targetRSS>>20), rss, targetRSS,
		func(v float64) string { return mib(int64(v)) })
	target(fmt.Sprintf("inspect plus every profile < %s", targetProfile), prof, targetProfile.Seconds(),
		func(v float64) string { return fmt.Sprintf("%.3fs", v) })
}

type figure struct {
	v     float64
	image string
}

// target prints the worst figure against the limit.
func target(what string, fs []figure, limit float64, format func(float64) string) {
	if len(fs) == 0 {
		fmt.Printf("  %-52s not measured\n", what)
		return
	}
	worst := slices.MaxFunc(fs, func(a, b figure) int { return cmp.Compare(a.v, b.v) })
	state := "met"
	if worst.v > limit {
		over := 0
		for _, f := range fs {
			if f.v > limit {
				over++
			}
		}
		state = fmt.Sprintf("MISSED on %d", over)
	}
	fmt.Printf("  %-52s worst %s (%s) of %d: %s\n", what, format(worst.v), worst.image, len(fs), state)
}

// childEnvironment is the bench's environment for the tools: the
// libguestfs direct backend, and none of the runner's GUESTKIT_ settings
// (a stray GUESTKIT_BACKEND or GUESTKIT_PROFILES would change what is
// measured), bar the cache folder.
func childEnvironment() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GUESTKIT_") && !strings.HasPrefix(kv, "GUESTKIT_CACHE=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LIBGUESTFS_BACKEND=direct")
}

// cgroupNote says why peak RSS is sampled rather than read from a
// cgroup's memory.peak (which also counts the page cache the image reads
// fill, so it would not compare with Trivy's figure either).
func cgroupNote() string {
	b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil || !slices.Contains(strings.Fields(string(b)), "memory") {
		return "no cgroup v2 memory controller here"
	}
	return "not a cgroup's memory.peak, which counts the page cache too"
}

// hasFlag says whether the runner's command takes flag, from its help.
func hasFlag(ctx context.Context, runner, command, flag string) bool {
	out, _ := exec.CommandContext(ctx, runner, command, "--help").Output()
	return strings.Contains(string(out), flag+"=") || strings.Contains(string(out), flag+" ")
}

func version(ctx context.Context, bin, arg string) string {
	if bin == "" {
		return ""
	}
	out, err := exec.CommandContext(ctx, bin, arg).Output()
	if err != nil {
		return bin + " (version unknown: " + err.Error() + ")"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

func median(ms []measure) measure {
	pick := func(f func(measure) int64) int64 {
		v := make([]int64, len(ms))
		for i, m := range ms {
			v[i] = f(m)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return measure{
		wall:      time.Duration(pick(func(m measure) int64 { return int64(m.wall) })),
		peakRSS:   pick(func(m measure) int64 { return m.peakRSS }),
		read:      pick(func(m measure) int64 { return m.read }),
		imageRead: pick(func(m measure) int64 { return m.imageRead }),
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func secs(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.3fs", d.Seconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

func mib(b int64) string { return fmt.Sprintf("%d MiB", (b+1<<19)>>20) }

func size(b int64) string {
	if b < 0 {
		return "-"
	}
	if b < 1<<20 {
		return fmt.Sprintf("%.0f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func utsString(b []int8) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
