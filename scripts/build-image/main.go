// Command build-image writes container images without a Docker engine:
// root filesystem directories become deterministic layers, and layers plus
// a configuration become a docker-format image archive (what `docker save`
// writes), which `ctr images import` and `kind load image-archive` load.
// scripts/build-image.sh drives it; see there for the images it builds.
//
//	build-image layer -o LAYER.tar.gz ROOTFS
//	build-image image -o IMAGE.tar -tag NAME:TAG [-dockerfile F -target STAGE -build-arg K=V ...]
//	                  [-base-env K=V ...] [-base-user U] [-base-workdir D] [-label K=V ...] LAYER...
//
// A LAYER of image is a directory (made into a layer on the way) or a gzip
// layer written by layer. The configuration is the base image's (the -base-
// flags), then the Dockerfile stage's ENV, LABEL, USER, WORKDIR, EXPOSE,
// ENTRYPOINT and CMD, then the -label overrides (an empty value removes the
// label). RUN and COPY are what the caller does with the root filesystem.
//
// Every file's mtime and the image's creation time are -epoch (default:
// SOURCE_DATE_EPOCH, else 0), so the same tree gives the same digests.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "build-image:", err)
		os.Exit(1)
	}
}

func usage() error {
	return fmt.Errorf("usage: build-image layer|image [flags] ARGS (see the package comment)")
}

func run(args []string) error {
	if len(args) == 0 {
		return usage()
	}
	switch args[0] {
	case "layer":
		return runLayer(args[1:])
	case "image":
		return runImage(args[1:])
	default:
		return usage()
	}
}

// defaultEpoch is SOURCE_DATE_EPOCH, the reproducible-builds convention, or 0.
func defaultEpoch() int64 {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return 0
}

func runLayer(args []string) error {
	fs := flag.NewFlagSet("layer", flag.ContinueOnError)
	out := fs.String("o", "", "the gzip layer to write")
	epoch := fs.Int64("epoch", defaultEpoch(), "mtime of every file, in seconds since 1970")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 1 {
		return fmt.Errorf("usage: build-image layer -o LAYER.tar.gz ROOTFS")
	}
	start := time.Now()
	size, err := writeLayerFile(*out, fs.Arg(0), time.Unix(*epoch, 0).UTC())
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "build-image: %s: %.1f MiB in %s\n", *out, float64(size)/(1<<20), time.Since(start).Round(time.Second))
	return nil
}

func runImage(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	var o imageOptions
	var buildArgs, baseEnv, labels listFlag
	fs.StringVar(&o.Output, "o", "", "the image archive to write")
	fs.StringVar(&o.Tag, "tag", "", "the image's name:tag in the archive")
	fs.StringVar(&o.Dockerfile, "dockerfile", "", "the Dockerfile whose stage gives the configuration")
	fs.StringVar(&o.Target, "target", "", "the Dockerfile's stage")
	fs.Var(&buildArgs, "build-arg", "a Dockerfile ARG, NAME=VALUE (repeatable)")
	fs.Var(&baseEnv, "base-env", "the base image's environment, NAME=VALUE (repeatable)")
	fs.StringVar(&o.Base.User, "base-user", "", "the base image's user")
	fs.StringVar(&o.Base.WorkingDir, "base-workdir", "", "the base image's working directory")
	fs.Var(&labels, "label", "a label set last, NAME=VALUE; NAME= removes it (repeatable)")
	epoch := fs.Int64("epoch", defaultEpoch(), "creation time and mtime of every file, in seconds since 1970")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Output == "" || o.Tag == "" || fs.NArg() == 0 || (o.Dockerfile == "") != (o.Target == "") {
		return fmt.Errorf("usage: build-image image -o IMAGE.tar -tag NAME:TAG [-dockerfile F -target STAGE] LAYER [LAYER ...]")
	}
	var err error
	if o.BuildArgs, err = keyValues("build-arg", buildArgs); err != nil {
		return err
	}
	o.Base.Env = baseEnv
	if _, err := keyValues("base-env", baseEnv); err != nil {
		return err
	}
	if o.Labels, err = keyValues("label", labels); err != nil {
		return err
	}
	o.Layers = fs.Args()
	o.Created = time.Unix(*epoch, 0).UTC()
	return writeImage(o, os.Stderr)
}

// keyValues parses NAME=VALUE flags.
func keyValues(flagName string, list []string) (map[string]string, error) {
	m := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-%s %q: want NAME=VALUE", flagName, kv)
		}
		m[k] = v
	}
	return m, nil
}
