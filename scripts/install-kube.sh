#!/usr/bin/env bash
# Installs the Kubernetes binaries that internal/testenv starts as a real
# control plane (etcd comes from Debian's etcd-server, see
# packages-test.txt). No release of these is packaged for Debian 12 and
# there is no network but the Go module proxy, so they are built from
# k8s.io/kubernetes through the proxy, once, and cached (a build takes about
# 5 minutes on 2 cores; a cached run takes ~0 s).
#
#   bash scripts/install-kube.sh          # build if missing; last line: bin directory
#   bash scripts/install-kube.sh --path   # print the bin directory, build nothing
#
# The binaries (kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet, kubectl) land in
# ${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}/bin/kube-VERSION/, which is
# complete only when it holds the stamp file .complete: it is built in a
# temporary folder and renamed into place. GUESTKIT_KUBE_BIN, if set,
# overrides the folder in internal/testenv (and this script is then not
# needed).
set -euo pipefail

# The one place the Kubernetes version is pinned. The staging modules
# (k8s.io/api, k8s.io/client-go, ...) of a release vX.Y.Z are tagged v0.Y.Z.
KUBE_VERSION=v1.34.2
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

CACHE=${GUESTKIT_CACHE:-$HOME/.cache/guestkit-batch}
dir=$CACHE/bin/kube-$KUBE_VERSION
stamp=$dir/.complete

if [[ "${1:-}" == "--path" ]]; then
	echo "$dir"
	exit 0
fi

if [[ ! -f "$stamp" ]]; then
	mkdir -p "$CACHE/bin"
	# One build at a time: parallel test runs must not build twice.
	exec 9>"$CACHE/bin/.kube-$KUBE_VERSION.lock"
	flock 9
	if [[ ! -f "$stamp" ]]; then
		echo "install-kube: building k8s.io/kubernetes@$KUBE_VERSION (takes minutes)" >&2
		tmp=$(mktemp -d "$CACHE/bin/.kube-$KUBE_VERSION.build-XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		mod=$tmp/mod
		mkdir -p "$mod" "$tmp/bin"
		# Only the proxy and the build cache, not the caller's module setup.
		export GOWORK=off GOFLAGS='' GO111MODULE=on

		# k8s.io/kubernetes replaces its staging modules with folders of its
		# own repository, which the module zip leaves out; a module that
		# requires it must replace each one with its published v0.Y.Z. The
		# list is the replace block of k8s.io/kubernetes's own go.mod.
		kmod=$(cd "$mod" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
			sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
		[[ -f "$kmod" ]] || {
			echo "install-kube: no go.mod for k8s.io/kubernetes@$KUBE_VERSION" >&2
			exit 1
		}
		mapfile -t staging < <(sed -n '/^replace (/,/^)/s|^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*|\1|p' "$kmod")
		((${#staging[@]} > 10)) || {
			echo "install-kube: found ${#staging[@]} staging modules in $kmod, expected dozens" >&2
			exit 1
		}
		staging_version=v0.${KUBE_VERSION#v1.}
		{
			echo "module guestkit.local/kube-build"
			echo
			echo "go $(sed -n 's/^go \(.*\)/\1/p' "$kmod")"
			# The godebug defaults Kubernetes itself is built with.
			sed -n '/^godebug (/,/^)/p; /^godebug [^(]/p' "$kmod"
			echo
			echo "require k8s.io/kubernetes $KUBE_VERSION"
			echo
			echo "replace ("
			for m in "${staging[@]}"; do
				echo "	$m => $m $staging_version"
			done
			echo ")"
		} >"$mod/go.mod"

		# As hack/lib/golang.sh and hack/lib/version.sh build a release:
		# the version variables (left unset, the version is v0.0.0 and
		# kubectl refuses to talk to the server), the tags, -trimpath, no
		# symbols. One go build for all five shares the compiled packages.
		major=${KUBE_VERSION#v}
		major=${major%%.*}
		minor=${KUBE_VERSION#v*.}
		minor=${minor%%.*}
		ldflags="-s -w"
		for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
			ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION"
			ldflags+=" -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
			ldflags+=" -X $pkg.gitTreeState=clean"
		done
		pkgs=()
		for b in "${BINARIES[@]}"; do
			pkgs+=("k8s.io/kubernetes/cmd/$b")
		done
		(cd "$mod" && go build -mod=mod -trimpath -tags=selinux,notest,grpcnotrace \
			-ldflags "$ldflags" -o "$tmp/bin/" "${pkgs[@]}") >&2

		for b in "${BINARIES[@]}"; do
			if [[ $b == kubectl ]]; then
				v=$("$tmp/bin/$b" version --client)
			else
				v=$("$tmp/bin/$b" --version)
			fi
			[[ $v == *"$KUBE_VERSION"* ]] || {
				echo "install-kube: $b reports \"$v\", not $KUBE_VERSION" >&2
				exit 1
			}
		done
		echo "$KUBE_VERSION" >"$tmp/bin/.complete"
		rm -rf "$dir" # an incomplete folder, from a build that died
		mv "$tmp/bin" "$dir" # same filesystem: the folder appears whole
	fi
fi

"$dir/kubectl" version --client >/dev/null
echo "$dir"
