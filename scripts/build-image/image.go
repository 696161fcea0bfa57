package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// imageOptions say what writeImage writes.
type imageOptions struct {
	Output     string            // the image archive
	Tag        string            // name:tag in the archive's manifest
	Dockerfile string            // optional: the configuration's Dockerfile
	Target     string            // and stage
	BuildArgs  map[string]string // the Dockerfile's ARG values
	Base       v1.Config         // the base image's configuration
	Labels     map[string]string // set last; "" removes
	Layers     []string          // directories or gzip layer files, bottom first
	Created    time.Time         // creation time, and mtime of the files of directory layers
}

// writeImage writes a docker-format image archive (docker save's layout:
// manifest.json, the config, one .tar.gz per layer) of a linux/amd64
// image, under a temporary name renamed when complete. It logs the digests
// to log.
func writeImage(o imageOptions, log io.Writer) error {
	tag, err := name.NewTag(o.Tag)
	if err != nil {
		return fmt.Errorf("image tag: %w", err)
	}
	cfg, err := imageConfig(o)
	if err != nil {
		return err
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: o.Created},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return fmt.Errorf("image config: %w", err)
	}
	dir := filepath.Dir(o.Output)
	// Layers made of directories, read again when the archive is written.
	work, err := os.MkdirTemp(dir, ".tmp-layers-")
	if err != nil {
		return fmt.Errorf("layers: %w", err)
	}
	defer os.RemoveAll(work)
	for i, path := range o.Layers {
		layer, err := openLayer(path, filepath.Join(work, fmt.Sprintf("layer-%d.tar.gz", i)), o.Created)
		if err != nil {
			return err
		}
		digest, err := layer.Digest()
		if err != nil {
			return fmt.Errorf("layer %s: %w", path, err)
		}
		size, err := layer.Size()
		if err != nil {
			return fmt.Errorf("layer %s: %w", path, err)
		}
		fmt.Fprintf(log, "build-image: layer %s: %s, %.1f MiB\n", path, digest, float64(size)/(1<<20))
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:   layer,
			History: v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: "scripts/build-image.sh: " + filepath.Base(path)},
		})
		if err != nil {
			return fmt.Errorf("layer %s: %w", path, err)
		}
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("image digest: %w", err)
	}
	tmp := filepath.Join(dir, ".tmp-"+filepath.Base(o.Output))
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("image archive %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, o.Output); err != nil {
		return fmt.Errorf("image archive: %w", err)
	}
	fmt.Fprintf(log, "build-image: %s: %s %s\n", o.Output, tag, digest)
	return nil
}

// imageConfig is the base configuration, then the Dockerfile stage's, then
// the label overrides.
func imageConfig(o imageOptions) (v1.Config, error) {
	cfg := copyConfig(o.Base)
	if o.Dockerfile != "" {
		var err error
		if cfg, err = stageConfig(o.Dockerfile, o.Target, o.BuildArgs, cfg); err != nil {
			return v1.Config{}, err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.Labels)) {
		if o.Labels[k] == "" {
			delete(cfg.Labels, k)
			continue
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		cfg.Labels[k] = o.Labels[k]
	}
	return cfg, nil
}

// openLayer opens a gzip layer file, or makes a directory into one at file.
func openLayer(path, file string, mtime time.Time) (v1.Layer, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	if info.IsDir() {
		if _, err := writeLayerFile(file, path, mtime); err != nil {
			return nil, err
		}
		path = file
	} else if !strings.HasSuffix(path, ".tar.gz") {
		return nil, fmt.Errorf("layer %s: want a directory or a .tar.gz from build-image layer", path)
	}
	layer, err := tarball.LayerFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", path, err)
	}
	return layer, nil
}
