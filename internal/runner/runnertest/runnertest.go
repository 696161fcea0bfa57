// Package runnertest is the one fake guestkit-runner of the tests: a shell
// script that takes the runner's command line and stores results the way
// the real one does, for narrow tests of executors and the dispatcher CLI.
package runnertest

import (
	"os"
	"path/filepath"
	"testing"
)

// Script stands in for guestkit-runner: `run --spec URI --result URI
// --job-id ID`.
//
// With $FAKE_DIR set, it records its pid in $FAKE_DIR/ID.pids, its job in
// $FAKE_DIR/starts (one line per start), its command line in ID.args and
// its environment in ID.env, holds a
// marker running.PID while it runs (a line of $FAKE_DIR/concurrency counts
// the markers at its start), and sources $FAKE_DIR/ID.sh when it exists:
// the test's script for the job, where $result is the result file and
// store_result STATUS CODE writes a runner result there.
//
// Otherwise it exits 1 ("runner exploded") for a spec whose
// metadata.annotations.fake is "crash", and stores a completed result for
// any other.
const Script = `#!/bin/sh
set -u
args="$*"
while [ $# -gt 0 ]; do
	case $1 in
	--spec) spec=${2#file://}; shift 2 ;;
	--result) result=${2#file://}; shift 2 ;;
	--job-id) id=$2; shift 2 ;;
	*) shift ;;
	esac
done
store_result() {
	err=
	[ "$1" = completed ] || err=',"error":{"code":"infrastructure","message":"fake","phase":"launch","retryable":true}'
	mkdir -p "$(dirname "$result")"
	cat > "$result" <<EOF
{"api_version":"guestkit.io/result/v1","job_id":"$id","status":"$1","exit_code":$2,"runner":{"name":"guestkit-runner","version":"fake"},"started_at":"2026-01-01T00:00:00Z","finished_at":"2026-01-01T00:00:01Z","duration_seconds":1$err}
EOF
}
dir=${FAKE_DIR:-}
if [ -n "$dir" ]; then
	echo $$ >> "$dir/$id.pids"
	echo "$id" >> "$dir/starts"
	echo "$args" > "$dir/$id.args"
	env > "$dir/$id.env"
	marker=$dir/running.$$
	: > "$marker"
	trap 'rm -f "$marker"' EXIT
	ls "$dir" | grep -c '^running\.' >> "$dir/concurrency"
	if [ -f "$dir/$id.sh" ]; then
		. "$dir/$id.sh"
		exit $?
	fi
fi
if grep -q '"fake":"crash"' "$spec"; then echo "runner exploded" >&2; exit 1; fi
store_result completed 0
`

// Write writes Script as dir/guestkit-runner, executable, and returns its
// path.
func Write(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "guestkit-runner")
	if err := os.WriteFile(p, []byte(Script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
