#!/usr/bin/env bash
# Installs Trivy: internal/sbom's test has it read the runner's CycloneDX and
# SPDX documents (make trivy, part of make prepare, so CI has it), and
# `make bench-backends` compares the runner's inventory with its own (issue
# 12). It is built from source through the Go module proxy, once, and cached
# (a build takes about 7 minutes on 2 cores; a cached run ~0 s).
#
#   bash scripts/install-trivy.sh          # build if missing; last line: binary path
#   bash scripts/install-trivy.sh --path   # print the binary path, build nothing
#
# The binary lands in ${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}/bin/trivy-VERSION,
# so a new pin never reuses an old binary.
set -euo pipefail

# The one place the Trivy version is pinned.
TRIVY_VERSION=v0.74.0

CACHE=${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}
dir=$CACHE/bin
bin=$dir/trivy-$TRIVY_VERSION

if [[ "${1:-}" == "--path" ]]; then
	echo "$bin"
	exit 0
fi

if [[ ! -x "$bin" ]]; then
	mkdir -p "$dir"
	# One build at a time: parallel runs must not build twice.
	exec 9>"$bin.lock"
	flock 9
	if [[ ! -x "$bin" ]]; then
		echo "install-trivy: building github.com/aquasecurity/trivy@$TRIVY_VERSION (takes minutes)" >&2
		tmp=$(mktemp -d "$dir/.trivy-build-XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		# Outside any module, so the repository's go.mod plays no part.
		# As Trivy's goreleaser.yml builds its releases: encoding/json/v2
		# (GOEXPERIMENT=jsonv2), static, and the version it prints.
		(cd "$tmp" && CGO_ENABLED=0 GOEXPERIMENT=jsonv2 GOBIN=$tmp \
			go install -ldflags "-X github.com/aquasecurity/trivy/pkg/version/app.ver=${TRIVY_VERSION#v}" \
			"github.com/aquasecurity/trivy/cmd/trivy@$TRIVY_VERSION") >&2
		mv "$tmp/trivy" "$bin" # same filesystem: the binary appears whole
	fi
fi

"$bin" --version >/dev/null
echo "$bin"
