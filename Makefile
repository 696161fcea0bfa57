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

.PHONY: all build setup images minio kube test test-unit lint demo bench-runner bench-dispatcher clean image image-archive

all: build

setup:
	bash scripts/setup.sh

build: setup
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/guestkit-runner ./runner
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/guestkit-dispatcher ./dispatcher

images: setup
	bash scripts/testimages.sh $(IMAGES) >/dev/null

minio:
	bash scripts/install-minio.sh >/dev/null

kube:
	bash scripts/install-kube.sh >/dev/null

# Unit tests only: no appliance, no images (seconds).
test-unit:
	$(GO) test -short ./...

# Everything: unit tests, and the runner against real libguestfs on the
# synthetic images, compared with virt-inspector.
test: build images minio kube lint
	GUESTKIT_TEST_IMAGES=$(IMAGES) $(GO) test -timeout 75m -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^internal/thirdparty/')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

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

clean:
	rm -rf $(BIN)
