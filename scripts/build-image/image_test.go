package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// An image of two layers (a gzip layer made before, a directory) and a
// Dockerfile's configuration, read back as a docker archive.
func TestWriteImage(t *testing.T) {
	dir := t.TempDir()
	created := time.Unix(1700000000, 0).UTC()
	base := filepath.Join(dir, "base.tar.gz")
	if _, err := writeLayerFile(base, testTree(t), created); err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(dir, "top")
	if err := os.MkdirAll(filepath.Join(top, "usr/local/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(top, "usr/local/bin/app"), []byte("app"), 0o755); err != nil {
		t.Fatal(err)
	}
	dockerfile := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(dockerfile, []byte(testDockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := imageOptions{
		Tag: "guestkit-test:dev", Dockerfile: dockerfile, Target: "app",
		BuildArgs: map[string]string{"VERSION": "1.0"},
		Base:      v1.Config{Env: []string{"PATH=/usr/bin"}},
		Labels:    map[string]string{"org.opencontainers.image.base.name": "", "extra": "x"},
		Layers:    []string{base, top},
		Created:   created,
	}

	var digests [2]v1.Hash
	for i := range digests {
		opts.Output = filepath.Join(dir, "image.tar")
		if err := writeImage(opts, io.Discard); err != nil {
			t.Fatal(err)
		}
		mf, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(opts.Output) })
		if err != nil {
			t.Fatal(err)
		}
		if len(mf) != 1 || !reflect.DeepEqual(mf[0].RepoTags, []string{"guestkit-test:dev"}) {
			t.Fatalf("manifest.json %+v: want one image tagged guestkit-test:dev", mf)
		}
		img, err := tarball.ImageFromPath(opts.Output, nil)
		if err != nil {
			t.Fatal(err)
		}
		if digests[i], err = img.Digest(); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			checkImage(t, img, base)
		}
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds of the same image: %s and %s", digests[0], digests[1])
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func checkImage(t *testing.T, img v1.Image, baseLayer string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("platform %s/%s, created %v", cf.OS, cf.Architecture, cf.Created)
	}
	c := cf.Config
	if !reflect.DeepEqual(c.Entrypoint, []string{"/app/bin/app", "--flag=1"}) || c.User != "65532:65532" ||
		c.WorkingDir != "/srv/data" || c.Env[0] != "PATH=/app/bin:/usr/bin" {
		t.Errorf("config %+v", c)
	}
	if _, ok := c.Labels["org.opencontainers.image.base.name"]; ok || c.Labels["extra"] != "x" ||
		c.Labels["org.opencontainers.image.version"] != "1.0" {
		t.Errorf("labels %v: want base.name removed, extra added, version 1.0", c.Labels)
	}
	mt, err := img.MediaType()
	if err != nil || mt != types.DockerManifestSchema2 {
		t.Errorf("manifest media type %s (%v)", mt, err)
	}

	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 || len(cf.RootFS.DiffIDs) != 2 || len(cf.History) != 2 {
		t.Fatalf("%d layers, %d diff IDs, %d history entries: want 2", len(layers), len(cf.RootFS.DiffIDs), len(cf.History))
	}
	data, err := os.ReadFile(baseLayer)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if d, _ := layers[0].Digest(); d.Hex != hex.EncodeToString(sum[:]) {
		t.Errorf("base layer digest %s, want the file's sha256 %x", d, sum)
	}
	for i, l := range layers {
		diffID, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		if diffID != cf.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: diff ID %s, config has %s", i, diffID, cf.RootFS.DiffIDs[i])
		}
		if mt, _ := l.MediaType(); mt != types.DockerLayer {
			t.Errorf("layer %d: media type %s", i, mt)
		}
	}
}
