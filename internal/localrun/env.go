package localrun

import (
	"fmt"
	"strings"
)

// reservedEnv reports whether the executor sets name for each attempt, as
// the Job template does: inherited from the dispatcher's environment, or
// set in ExtraEnv, it would point every job at the same spec, result,
// image or scratch folder, or stamp a wrong kubernetes block on results.
func reservedEnv(name string) bool {
	switch name {
	case "GUESTKIT_SPEC", "GUESTKIT_RESULT", "GUESTKIT_REPORT", "GUESTKIT_JOB_ID",
		"GUESTKIT_ACCEL", "GUESTKIT_IMAGE", "GUESTKIT_IMAGE_URL", "GUESTKIT_SCRATCH_DIR", "TMPDIR",
		"POD_NAME", "POD_NAMESPACE", "NODE_NAME", "JOB_NAME":
		return true
	}
	return false
}

// baseEnv is the runner's environment before the per-attempt variables:
// the dispatcher's, without reserved names, then extra. An appliance
// cache (LIBGUESTFS_CACHEDIR) is pinned where libguestfs would put it for
// the dispatcher, so that the per-attempt TMPDIR does not make every
// attempt build the appliance again.
func baseEnv(inherited, extra []string) ([]string, error) {
	var env []string
	cacheDir, tmpDir := "", ""
	for _, kv := range inherited {
		name, value, _ := strings.Cut(kv, "=")
		switch name {
		case "LIBGUESTFS_CACHEDIR":
			cacheDir = value
		case "TMPDIR":
			tmpDir = value
		}
		if !reservedEnv(name) {
			env = append(env, kv)
		}
	}
	for _, kv := range extra {
		name, value, ok := strings.Cut(kv, "=")
		switch {
		case !ok || name == "" || strings.ContainsAny(name, "\x00") || strings.Contains(value, "\x00"):
			return nil, fmt.Errorf("extra env %q: want NAME=value", kv)
		case reservedEnv(name):
			return nil, fmt.Errorf("extra env %s: set by the executor for each attempt; it cannot be overridden", name)
		case name == "LIBGUESTFS_CACHEDIR":
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
	return append(env, "LIBGUESTFS_CACHEDIR="+cacheDir), nil
}

// attemptEnv is the environment of one attempt.
func (x *Executor) attemptEnv(scratch string) []string {
	env := make([]string, 0, len(x.env)+3)
	env = append(env, x.env...)
	return append(env, "GUESTKIT_ACCEL="+x.cfg.Accel, "TMPDIR="+scratch, "GUESTKIT_SCRATCH_DIR="+scratch)
}
