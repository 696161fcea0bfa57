package localrun

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"guestkit.io/batch/internal/runnerenv"
)

// baseEnv is the runner's environment before the per-attempt variables:
// what runnerenv.Host lets through of the dispatcher's (never its bucket
// credentials), then extra, then the network guard. An appliance cache
// (LIBGUESTFS_CACHEDIR) is pinned where libguestfs would put it for the
// dispatcher, so that the per-attempt TMPDIR does not make every attempt
// build the appliance again.
func baseEnv(inherited, extra []string, netAllow []netip.Prefix) ([]string, error) {
	var env []string
	cacheDir, tmpDir := "", ""
	for _, kv := range inherited {
		name, value, _ := strings.Cut(kv, "=")
		switch name {
		case runnerenv.CacheDir:
			cacheDir = value
		case runnerenv.TmpDir:
			tmpDir = value
		}
		if runnerenv.Host(name) && !runnerenv.IsPerJob(name) {
			env = append(env, kv)
		}
	}
	for _, kv := range extra {
		name, value, ok := strings.Cut(kv, "=")
		switch {
		case !ok || name == "" || strings.ContainsAny(name, "\x00") || strings.Contains(value, "\x00"):
			return nil, fmt.Errorf("extra env %q: want NAME=value", kv)
		case runnerenv.IsPerJob(name):
			return nil, fmt.Errorf("extra env %s: set by the executor for each attempt; it cannot be overridden", name)
		case name == runnerenv.CacheDir:
			cacheDir = value
		}
		env = append(env, kv) // exec keeps the last of duplicate names
	}
	if cacheDir == "" {
		cacheDir = tmpDir
	}
	if cacheDir == "" {
		cacheDir = "/var/tmp" // libguestfs' own default
	}
	allow := make([]string, len(netAllow))
	for i, p := range netAllow {
		allow[i] = p.String()
	}
	return append(env, runnerenv.CacheDir+"="+cacheDir,
		runnerenv.NetGuard+"=true", runnerenv.NetAllow+"="+strings.Join(allow, ",")), nil
}

// attemptEnv is the environment of one attempt.
func (x *Executor) attemptEnv(scratch string) []string {
	env := make([]string, 0, len(x.env)+3)
	env = append(env, x.env...)
	download := x.cfg.DownloadLimit
	if download <= 0 {
		download = -1
	}
	return append(env, runnerenv.Accel+"="+x.cfg.Accel, runnerenv.Backend+"="+x.cfg.Backend, runnerenv.TmpDir+"="+scratch, runnerenv.ScratchDir+"="+scratch,
		runnerenv.ImageAccess+"="+x.cfg.ImageAccess, runnerenv.Verify+"="+x.cfg.Verify, runnerenv.DownloadLimit+"="+strconv.FormatInt(download, 10))
}
