#!/usr/bin/env bash
# Installs the MinIO server that internal/testenv starts for the store
# tests. MinIO ships no release for this pin through apt, so it is built
# from source through the Go module proxy, once, and cached (a build takes
# 5-20 minutes; a cached run takes ~0 s).
#
#   bash scripts/install-minio.sh          # build if missing; last line: binary path
#   bash scripts/install-minio.sh --path   # print the binary path, build nothing
#
# The binary lands in ${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}/bin/minio-SHORT/minio,
# SHORT being the first 8 hex digits of the pinned commit, so a new pin never
# reuses an old binary. GUESTKIT_MINIO, if set, overrides the path in
# internal/testenv (and this script is then not needed).
set -euo pipefail

# The one place the MinIO version is pinned: a Go pseudo-version of
# github.com/minio/minio (master, 2026-02-12, commit 7aac2a2c5b7c). MinIO
# stopped tagging Go-module-compatible releases, hence the pseudo-version.
# It honours If-None-Match: * on PutObject, which Store.Create relies on.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

commit=${MINIO_VERSION##*-}
CACHE=${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}
dir=$CACHE/bin/minio-${commit:0:8}
bin=$dir/minio

if [[ "${1:-}" == "--path" ]]; then
	echo "$bin"
	exit 0
fi

if [[ ! -x "$bin" ]]; then
	mkdir -p "$dir"
	# One build at a time: parallel test runs must not build twice.
	exec 9>"$dir/.lock"
	flock 9
	if [[ ! -x "$bin" ]]; then
		echo "install-minio: building github.com/minio/minio@$MINIO_VERSION (takes minutes)" >&2
		tmp=$(mktemp -d "$dir/.build-XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		# Outside any module, so the repository's go.mod plays no part.
		(cd "$tmp" && GOBIN=$tmp go install "github.com/minio/minio@$MINIO_VERSION") >&2
		mv "$tmp/minio" "$bin" # same filesystem: the binary appears whole
	fi
fi

"$bin" --version >/dev/null
echo "$bin"
