# syntax=docker/dockerfile:1
#
# The two images of guestkit-batch (linux/amd64: the appliance kernel is
# linux-image-cloud-amd64):
#
#   docker build --target runner     -t guestkit-runner:dev     --build-arg VERSION=$(git describe --tags --always --dirty) .
#   docker build --target dispatcher -t guestkit-dispatcher:dev --build-arg VERSION=$(git describe --tags --always --dirty) .
#
# Both run as uid 65532 with a read-only root filesystem: the runner writes
# only under /tmp and /var/tmp, which the Job template mounts as emptyDirs.

ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNNER_BASE=debian:12-slim
ARG DISPATCHER_BASE=gcr.io/distroless/static-debian12:nonroot

# ---- Go toolchain, shared by both builds -------------------------------------
FROM ${GO_IMAGE} AS go
WORKDIR /src
# The toolchain of the image, never a download; paths not baked in.
ENV GOTOOLCHAIN=local GOFLAGS=-trimpath

# ---- guestkit-dispatcher: pure Go, static --------------------------------------
FROM go AS build-dispatcher
COPY go.mod go.sum ./
# The replace target of libguestfs.org/guestfs must exist for the module graph.
COPY internal/thirdparty/guestfs/go.mod internal/thirdparty/guestfs/
RUN go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/guestkit-dispatcher ./dispatcher

# ---- guestkit-runner: cgo against Debian 12's libguestfs -----------------------
FROM go AS build-runner
# libguestfs's Go bindings are not on the module proxy: golang-guestfs-dev
# ships them as source, and internal/thirdparty/guestfs/guestfs.go is a
# symlink to that file. Installed before the sources are copied, so that a
# source change does not reinstall them.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libguestfs-dev golang-guestfs-dev \
 && rm -rf /var/lib/apt/lists/*
COPY go.mod go.sum ./
COPY internal/thirdparty/guestfs/go.mod internal/thirdparty/guestfs/
RUN go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/root/.cache/go-build \
    test -r internal/thirdparty/guestfs/guestfs.go \
 && CGO_ENABLED=1 go build -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/guestkit-runner ./runner

# ---- dispatcher image ----------------------------------------------------------
# distroless/static: CA certificates, tzdata and the nonroot user (65532),
# no shell, no package manager.
FROM ${DISPATCHER_BASE} AS dispatcher
ARG DISPATCHER_BASE
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="guestkit-dispatcher" \
      org.opencontainers.image.description="Turns a bucket of guestkit job specs into one Kubernetes Job per disk image, with exactly one result per spec" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.vendor="guestkit" \
      org.opencontainers.image.base.name="${DISPATCHER_BASE}"
COPY --from=build-dispatcher /out/guestkit-dispatcher /usr/local/bin/guestkit-dispatcher
USER 65532:65532
# /metrics, /healthz, /readyz and the /minio/events webhook (watch).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/guestkit-dispatcher"]
CMD ["--help"]

# ---- runner image ----------------------------------------------------------------
FROM ${RUNNER_BASE} AS runner
ARG RUNNER_BASE
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="guestkit-runner" \
      org.opencontainers.image.description="Inspects or profiles one VM disk image read-only with libguestfs and stores one result; the container of every guestkit-dispatcher Job" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.vendor="guestkit" \
      org.opencontainers.image.base.name="${RUNNER_BASE}"

# The one package list, shared with the rootless build. INITRD=No: the
# kernel is only the appliance's; the host-style initramfs would be unused.
COPY scripts/packages-runner.txt /usr/share/guestkit/packages-runner.txt
RUN apt-get update \
 && INITRD=No DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      $(grep -v '^#' /usr/share/guestkit/packages-runner.txt) \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log /boot/initrd.img*

RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin nonroot

# A fixed appliance, built once here from this image's kernel and packages,
# shrunk, and booted once as uid 65532. The recipe is shared with the
# rootless build (scripts/build-image.sh): see scripts/make-appliance.sh.
COPY scripts/make-appliance.sh /usr/share/guestkit/make-appliance.sh
RUN bash /usr/share/guestkit/make-appliance.sh /opt/guestkit/appliance

# LIBGUESTFS_PATH holds only the fixed appliance, so libguestfs never looks
# for supermin.d. The direct backend: there is no libvirtd in a pod.
ENV LIBGUESTFS_PATH=/opt/guestkit/appliance \
    LIBGUESTFS_BACKEND=direct
COPY --from=build-runner /out/guestkit-runner /usr/local/bin/guestkit-runner
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/guestkit-runner"]
CMD ["--help"]
