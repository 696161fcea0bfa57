# guestkit-batch. `make` builds; `make test` passes every test on a fresh
# Debian 12 machine (it installs what it needs first).

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
CACHE   ?= $(HOME)/.cache/guestkit-batch
IMAGES  ?= $(CACHE)/images
BIN     := bin
LDFLAGS := -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

export GUESTKIT_CACHE := $(CACHE)
# libguestfs: the direct backend everywhere; the runner picks KVM or TCG
# itself (see README, "Acceleration").
export LIBGUESTFS_BACKEND := direct

KIND_CLUSTER ?= guestkit
OVERLAY      ?= kind
E2E_TIMEOUT  ?= 60m

.PHONY: all build setup images minio kube openscap trivy prepare test fuzz-short test-unit test-integration e2e e2e-run lint demo bench-runner bench-dispatcher bench-sweep bench-image bench-backends bench-stream clean image image-archive kind-up kind-down deploy

all: build

setup:
	bash scripts/setup.sh

build: setup
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/guestkit-runner ./runner
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/guestkit-dispatcher ./dispatcher

images: setup
	bash scripts/testimages.sh $(IMAGES) >/dev/null
	bash scripts/windowsimages.sh $(IMAGES) >/dev/null

minio:
	bash scripts/install-minio.sh >/dev/null

kube:
	bash scripts/install-kube.sh >/dev/null

# OpenSCAP, the SSG Debian 12 content and a debootstrap Debian 12 root, for
# internal/profile/oscaptest (cached; cold about 2 minutes).
openscap: setup
	bash scripts/install-openscap.sh >/dev/null

# Trivy v0.74.0, built from the Go module proxy into the cache (cold about
# 7 minutes): internal/sbom's test has it read our CycloneDX and SPDX
# documents; bench-backends compares inventories with it.
trivy:
	bash scripts/install-trivy.sh >/dev/null

# Unit tests only: no appliance, no images (seconds).
test-unit:
	$(GO) test -short ./...

# Everything, as CI runs it: lint, the unit and integration tests (the
# runner against real libguestfs on the synthetic images, the dispatcher
# against a real kube-apiserver and MinIO), then the end-to-end tests on a
# local one-node cluster of real processes (e2e/README.md).
test: prepare lint
	GUESTKIT_TEST_IMAGES=$(IMAGES) $(GO) test -timeout 75m -count=1 ./...
	$(MAKE) --no-print-directory fuzz-short
	$(MAKE) --no-print-directory e2e-run

# Every fuzz test for FUZZTIME (default 5s) each, after the seed corpus.
fuzz-short:
	bash scripts/fuzz-short

# Everything the tests need, built side by side where it can be: on a fresh
# machine the MinIO and Kubernetes builds, the test images (qemu) and the
# image root filesystem (debootstrap) overlap.
prepare:
	$(MAKE) --no-print-directory -j3 build images minio kube openscap trivy image-archive

# The unit and integration tests without the end-to-end ones.
test-integration: build images minio kube openscap trivy
	GUESTKIT_TEST_IMAGES=$(IMAGES) $(GO) test -timeout 75m -count=1 ./...

# The end-to-end tests (build tag e2e) on the provider GUESTKIT_E2E_PROVIDER
# names: local (default; a one-node cluster of real processes, as root),
# kind, or kubeconfig.
e2e: build images minio kube image-archive
	$(MAKE) --no-print-directory e2e-run

e2e-run:
	GUESTKIT_TEST_IMAGES=$(IMAGES) $(GO) test -tags e2e -timeout $(E2E_TIMEOUT) -count=1 -v ./e2e/

# A kind cluster from kind-config.yaml with both images loaded (needs Docker
# and kind); then `make deploy`.
kind-up: image
	@kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' || \
	  kind create cluster --name $(KIND_CLUSTER) --config kind-config.yaml --wait 180s
	@if docker image inspect guestkit-runner:dev >/dev/null 2>&1; then \
	  kind load docker-image guestkit-runner:dev guestkit-dispatcher:dev --name $(KIND_CLUSTER); \
	else \
	  for a in $$(bash scripts/build-image.sh --path all); do kind load image-archive $$a --name $(KIND_CLUSTER); done; \
	fi

kind-down:
	kind delete cluster --name $(KIND_CLUSTER)

# guestkit-batch on the current kubectl context: manifests/overlays/$(OVERLAY)
# (kind: MinIO in the cluster, local images; aws: S3 with IRSA, edit it first).
deploy:
	kubectl apply -k manifests/overlays/$(OVERLAY)
	kubectl -n guestkit rollout status deployment/guestkit-dispatcher --timeout=5m

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^internal/thirdparty/')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags 'e2e bench' ./e2e/
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags 'e2e bench' ./e2e/

# The runner and dispatcher images, guestkit-runner:dev and
# guestkit-dispatcher:dev: docker build when a Docker engine answers, else
# image-archive.
image:
	@if docker info >/dev/null 2>&1; then \
	  set -e; for t in runner dispatcher; do \
	    docker build --target $$t -t guestkit-$$t:dev --build-arg VERSION=$(VERSION) \
	      --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) .; \
	  done; \
	else \
	  $(MAKE) image-archive; \
	fi

# The same images without Docker (debootstrap, chroot; root): docker-format
# archives for `ctr -n k8s.io images import` or `kind load image-archive`.
# Prints their paths.
image-archive: build
	VERSION=$(VERSION) bash scripts/build-image.sh all

# The main job on the embedded default: guestkit-dispatcher once with the
# local executor and a local folder as the bucket, on the sample image.
demo: build images
	bash scripts/demo.sh $(BIN) $(IMAGES) $(CACHE)/demo-bucket

bench-runner: build images
	$(GO) run ./scripts/bench-runner -runner $(BIN)/guestkit-runner -images $(IMAGES)

# guestkit-dispatcher against a real kube-apiserver and MinIO: a report
# (throughput, requests, RSS, spec-to-Job latency), minutes long. Settings:
# GUESTKIT_BENCH_* (scripts/bench-dispatcher/doc.go).
bench-dispatcher: build kube minio
	GUESTKIT_BENCH_DISPATCHER=$(CURDIR)/$(BIN)/guestkit-dispatcher $(GO) test -tags bench -run '^TestBenchDispatcher$$' -count=1 -v -timeout 60m ./scripts/bench-dispatcher/

# Issue 15's incremental sweep: 300 tiny images, 10% changed, incremental
# against --full (settings: GUESTKIT_BENCH_SWEEP_*, scripts/bench-sweep/doc.go).
bench-sweep: minio
	$(GO) test -tags bench -run '^TestBenchSweep$$' -count=1 -v -timeout 30m ./scripts/bench-sweep/

# The images' sizes, and a runner pod's time from creation to its first
# appliance launch on the local cluster (GUESTKIT_BENCH_ROUNDS, default 3).
bench-image: build images minio kube image-archive
	GUESTKIT_TEST_IMAGES=$(IMAGES) $(GO) test -tags 'e2e bench' -run '^TestBenchImage$$' -count=1 -v -timeout 30m ./e2e/

# Issue 12's report: on every test image, the runner's backends (direct,
# appliance), Trivy's offline package inventory and a bare appliance launch
# side by side: wall time, peak RSS, bytes read, right answers, the targets.
# Trivy is built once into the cache (make trivy, ~7 min). Settings:
# GUESTKIT_BENCH_ROUNDS, GUESTKIT_BENCH_IMAGES, GUESTKIT_BENCH_BACKENDS
# (scripts/bench-backends/main.go).
bench-backends: build images
	trivy=$$(bash scripts/install-trivy.sh) && \
	  GUESTKIT_BENCH_TRIVY=$$trivy $(GO) run ./scripts/bench-backends -runner $(BIN)/guestkit-runner -images $(IMAGES)

# Issue 13's report: the test images and the real-OS bench images
# (scripts/bench-image.sh, cached; a cold build takes ~2-3 min and ~6 GiB)
# in a local MinIO, read by the runner through presigned URLs: streamed
# against downloaded, on both backends; bytes and requests fetched, wall
# time, peak RSS, the targets. The appliance is also measured over nbdkit's
# curl plugin (Debian's nbdkit, installed here if missing: bench-only, not a
# test package). ~15 min warm. BENCH_IMAGES=debian.qcow2,debian12-20g
# narrows it; other settings: GUESTKIT_BENCH_* (scripts/bench-stream/main.go).
bench-stream: build images minio
	command -v nbdkit >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q nbdkit >/dev/null
	bench=$$(bash scripts/bench-image.sh | tail -1) && minio=$$(bash scripts/install-minio.sh) && \
	  GUESTKIT_BENCH_NBDKIT=$${GUESTKIT_BENCH_NBDKIT-$$(command -v nbdkit)} \
	  $(GO) run ./scripts/bench-stream -runner $(BIN)/guestkit-runner -images $(IMAGES) -bench-images $$bench -minio $$minio -only "$(BENCH_IMAGES)"

clean:
	rm -rf $(BIN)
