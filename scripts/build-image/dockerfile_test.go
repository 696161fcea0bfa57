package main

import (
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const testDockerfile = `# syntax=docker/dockerfile:1
ARG BASE=debian:12-slim
ARG GLOBAL_ONLY=global

FROM golang AS build
ENV GOFLAGS=-trimpath
RUN echo "ignored" \
 && echo "also ignored"
CMD ["build"]

FROM ${BASE} AS app
ARG BASE
ARG VERSION=dev
ARG REVISION
# a comment
LABEL org.opencontainers.image.title="app" \
      # a comment inside a continuation
      org.opencontainers.image.description='it says "$VERSION" literally' \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION:-unknown}" \
      org.opencontainers.image.base.name="${BASE}" \
      global="${GLOBAL_ONLY}" \
      escaped=a\ b\$c
ENV A=one \
    B="two $A" \
    PATH=/app/bin:$PATH
ENV C=${B:+set}
COPY --from=build /out /out
USER 65532:65532
WORKDIR /srv
WORKDIR data
EXPOSE 8080 9090/udp
ENTRYPOINT ["/app/bin/app", "--flag=1"]

FROM app AS child
CMD ["--help"]
`

func TestParseStageConfig(t *testing.T) {
	base := v1.Config{Env: []string{"PATH=/usr/bin:/bin"}, Cmd: []string{"bash"}, WorkingDir: "/"}
	cfg, err := parseStageConfig(testDockerfile, "app", map[string]string{"VERSION": "1.2.3"}, base)
	if err != nil {
		t.Fatal(err)
	}
	want := v1.Config{
		// B: an ENV sees the variables as they were before it (Docker).
		Env:        []string{"PATH=/app/bin:/usr/bin:/bin", "A=one", "B=two ", "C=set"},
		Entrypoint: []string{"/app/bin/app", "--flag=1"},
		Cmd:        nil, // ENTRYPOINT drops the base image's CMD
		User:       "65532:65532",
		WorkingDir: "/srv/data",
		Labels: map[string]string{
			"org.opencontainers.image.title":       "app",
			"org.opencontainers.image.description": `it says "$VERSION" literally`,
			"org.opencontainers.image.version":     "1.2.3",
			"org.opencontainers.image.revision":    "unknown",
			"org.opencontainers.image.base.name":   "debian:12-slim",
			"global":                               "", // not redeclared in the stage
			"escaped":                              "a b$c",
		},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "9090/udp": {}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config\n got %+v\nwant %+v", cfg, want)
	}
	if !reflect.DeepEqual(base.Env, []string{"PATH=/usr/bin:/bin"}) {
		t.Errorf("the base configuration was changed: %v", base.Env)
	}

	child, err := parseStageConfig(testDockerfile, "child", nil, base)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(child.Cmd, []string{"--help"}) || child.User != "65532:65532" || child.Labels["org.opencontainers.image.version"] != "dev" {
		t.Errorf("child stage: cmd %q, user %q, version %q: want its parent's config and its own CMD",
			child.Cmd, child.User, child.Labels["org.opencontainers.image.version"])
	}

	build, err := parseStageConfig(testDockerfile, "build", nil, base)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(build.Cmd, []string{"build"}) || len(build.Env) != 2 {
		t.Errorf("build stage: cmd %q env %q", build.Cmd, build.Env)
	}
}

func TestParseStageConfigErrors(t *testing.T) {
	for name, text := range map[string]string{
		"no such stage":           "FROM a AS b\n",
		"shell form entrypoint":   "FROM a AS app\nENTRYPOINT /bin/app --x\n",
		"config not supported":    "FROM a AS app\nVOLUME /data\n",
		"inherited unsupported":   "FROM a AS base\nHEALTHCHECK CMD true\nFROM base AS app\n",
		"legacy env form":         "FROM a AS app\nENV A one two\n",
		"unterminated quote":      "FROM a AS app\nLABEL a=\"b\n",
		"trailing continuation":   "FROM a AS app\nENV A=b \\\n",
		"heredoc":                 "FROM a AS app\nRUN <<EOF\necho\nEOF\n",
		"instruction before FROM": "ENV A=b\nFROM a AS app\n",
		"bad substitution":        "FROM a AS app\nENV A=${B:?x}\n",
	} {
		if _, err := parseStageConfig(text, "app", nil, v1.Config{}); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// The repository's Dockerfile is within what the parser reads, and gives
// the configuration the rootless images must have.
func TestRepositoryDockerfile(t *testing.T) {
	args := map[string]string{"VERSION": "v9.9.9", "REVISION": "abc123"}
	base := v1.Config{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}

	runner, err := stageConfig("../../Dockerfile", "runner", args, base)
	if err != nil {
		t.Fatal(err)
	}
	want := v1.Config{
		Env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"LIBGUESTFS_PATH=/opt/guestkit/appliance",
			"LIBGUESTFS_BACKEND=direct",
		},
		Entrypoint: []string{"/usr/local/bin/guestkit-runner"},
		Cmd:        []string{"--help"},
		User:       "65532:65532",
		WorkingDir: "/tmp",
	}
	labels := runner.Labels
	runner.Labels = nil
	if !reflect.DeepEqual(runner, want) {
		t.Errorf("runner config\n got %+v\nwant %+v", runner, want)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.title":     "guestkit-runner",
		"org.opencontainers.image.version":   "v9.9.9",
		"org.opencontainers.image.revision":  "abc123",
		"org.opencontainers.image.vendor":    "guestkit",
		"org.opencontainers.image.base.name": "debian:12-slim",
	} {
		if labels[k] != v {
			t.Errorf("runner label %s = %q, want %q", k, labels[k], v)
		}
	}
	if !strings.Contains(labels["org.opencontainers.image.description"], "libguestfs") {
		t.Errorf("runner description %q", labels["org.opencontainers.image.description"])
	}

	base.WorkingDir, base.User = "/home/nonroot", "65532"
	dispatcher, err := stageConfig("../../Dockerfile", "dispatcher", args, base)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dispatcher.Entrypoint, []string{"/usr/local/bin/guestkit-dispatcher"}) ||
		!reflect.DeepEqual(dispatcher.Cmd, []string{"--help"}) || dispatcher.User != "65532:65532" ||
		dispatcher.WorkingDir != "/home/nonroot" ||
		!reflect.DeepEqual(dispatcher.ExposedPorts, map[string]struct{}{"8080/tcp": {}}) ||
		dispatcher.Labels["org.opencontainers.image.title"] != "guestkit-dispatcher" ||
		dispatcher.Labels["org.opencontainers.image.base.name"] != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("dispatcher config %+v", dispatcher)
	}
}
