package sbom

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"guestkit.io/batch/internal/direct"
	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/testenv"
)

// trivy is the Trivy that scripts/install-trivy.sh built (make trivy,
// part of make prepare).
func trivy(t *testing.T) string {
	t.Helper()
	bin, err := testenv.ScriptPath("install-trivy.sh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		testenv.Unavailable(t, "sbom: no Trivy: %v: run `make trivy` (scripts/install-trivy.sh, ~7 min once)", err)
	}
	return bin
}

// testImage is a synthetic test image (scripts/testimages.sh).
func testImage(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("GUESTKIT_TEST_IMAGES")
	if dir == "" {
		testenv.Unavailable(t, "no test images: run `make test`, or set GUESTKIT_TEST_IMAGES")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		testenv.Unavailable(t, "test image %s: %v", name, err)
	}
	return p
}

// inspectImage inspects a test image with the direct backend (no VM).
func inspectImage(t *testing.T, path string) *inspect.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := direct.OpenImage(ctx, path, "qcow2", direct.Options{})
	if err != nil {
		t.Fatalf("direct backend on %s: %v", path, err)
	}
	defer b.Close()
	rep, err := inspect.Run(ctx, b, inspect.Options{SkipUsers: true, SkipServices: true, SkipNetwork: true, SkipSecurity: true, SkipStorage: true}, nil)
	if err != nil {
		t.Fatalf("inspect %s: %v", path, err)
	}
	return rep
}

// trivyPackages is what `trivy sbom` lists: name version arch, the
// version as the package manager writes it ([epoch:]version[-release]).
func trivyPackages(t *testing.T, bin, doc string) (osFamily, osName string, pkgs []string) {
	t.Helper()
	// No vulnerability database here: --scanners '' lists packages only;
	// --offline-scan and --skip-* keep it off the network.
	cmd := exec.Command(bin, "sbom", "--scanners", "", "--list-all-pkgs", "--format", "json",
		"--skip-db-update", "--offline-scan", "--skip-version-check", "--disable-telemetry", "--quiet",
		"--cache-dir", t.TempDir(), doc)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("trivy sbom %s: %v\n%s", filepath.Base(doc), err, msg)
	}
	var rep struct {
		Metadata struct {
			OS *struct{ Family, Name string }
		}
		Results []struct {
			Class    string
			Packages []struct {
				Name, Version, Release, Arch string
				Epoch                        int
			}
		}
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("trivy's report: %v", err)
	}
	if rep.Metadata.OS != nil {
		osFamily, osName = rep.Metadata.OS.Family, rep.Metadata.OS.Name
	}
	for _, r := range rep.Results {
		for _, p := range r.Packages {
			v := p.Version
			if p.Release != "" {
				v += "-" + p.Release
			}
			if p.Epoch != 0 {
				v = fmt.Sprintf("%d:%s", p.Epoch, v)
			}
			pkgs = append(pkgs, p.Name+" "+v+" "+p.Arch)
		}
	}
	slices.Sort(pkgs)
	return osFamily, osName, pkgs
}

// Trivy, a real consumer, reads both documents of real images (inspected
// by the direct backend) and lists the same packages, with the same
// versions and architectures, as the inspection report; every document is
// valid against the official schemas.
func TestTrivyReadsSBOMs(t *testing.T) {
	if testing.Short() {
		t.Skip("Trivy: not under -short")
	}
	bin := trivy(t)
	for _, c := range []struct {
		image  string
		roots  int
		family []string // Trivy's detected OS, per root
	}{
		{"debian.qcow2", 1, []string{"debian 12.5"}},
		{"rpm.qcow2", 1, []string{"rocky 9.4"}},
		{"alpine.qcow2", 1, []string{"alpine 3.19"}},
		{"multi-os.qcow2", 2, []string{"debian 12.5", "alpine 3.19"}},
	} {
		t.Run(c.image, func(t *testing.T) {
			rep := inspectImage(t, testImage(t, c.image))
			if len(rep.OperatingSystems) != c.roots {
				t.Fatalf("%d roots, want %d", len(rep.OperatingSystems), c.roots)
			}
			opts := Options{Subject: Subject{Name: c.image, JobID: "trivy-test"}, Created: time.Now()}
			validate(t, rep, opts)
			dir := t.TempDir()
			for format, write := range map[string]func(*inspect.Report, Options) ([][]byte, error){"cdx": CycloneDX, "spdx": SPDX} {
				docs, err := write(rep, opts)
				if err != nil {
					t.Fatal(err)
				}
				if len(docs) != c.roots {
					t.Fatalf("%s: %d documents for %d roots", format, len(docs), c.roots)
				}
				for i, d := range docs {
					o := rep.OperatingSystems[i]
					var want []string
					for _, a := range o.Applications {
						want = append(want, a.Name+" "+a.PackageVersion(o.PackageFormat)+" "+a.Arch)
					}
					slices.Sort(want)
					want = slices.Compact(want)
					if len(want) == 0 {
						t.Fatalf("root %s lists no packages", o.Root)
					}
					path := filepath.Join(dir, fmt.Sprintf("%d.%s.json", i+1, format))
					if err := os.WriteFile(path, d, 0o644); err != nil {
						t.Fatal(err)
					}
					fam, name, got := trivyPackages(t, bin, path)
					if fam+" "+name != c.family[i] {
						t.Errorf("%s root %s: Trivy detected OS %q, want %q", format, o.Root, fam+" "+name, c.family[i])
					}
					t.Logf("%s root %s: Trivy lists %d packages (%s, ...)", format, o.Root, len(got), strings.Join(got[:min(2, len(got))], ", "))
					if !slices.Equal(got, want) {
						t.Errorf("%s root %s: Trivy lists\n%s\nthe report\n%s", format, o.Root, strings.Join(got, "\n"), strings.Join(want, "\n"))
					}
				}
			}
		})
	}
}
