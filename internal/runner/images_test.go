package runner_test

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"guestkit.io/batch/internal/libguestfs"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/spec"
)

// testImage is a line of the image builder's MANIFEST.
type testImage struct {
	Name, File, Format, Expected string
	Path                         string
}

// images reads $GUESTKIT_TEST_IMAGES/MANIFEST (made by scripts/testimages.sh,
// which `make test` runs). These tests need real libguestfs; only -short
// skips them, and `make test` never passes -short.
func images(t *testing.T) []testImage {
	t.Helper()
	out := manifest(t, "MANIFEST", "scripts/testimages.sh")
	if len(out) < 10 {
		t.Fatalf("MANIFEST lists %d images, want the full set", len(out))
	}
	return out
}

// manifest reads the image list name in $GUESTKIT_TEST_IMAGES that script
// writes: name, file, format, expected outcome, tab-separated.
func manifest(t *testing.T, name, script string) []testImage {
	t.Helper()
	if testing.Short() {
		t.Skip("needs libguestfs and the test images; run `make test`")
	}
	dir := os.Getenv("GUESTKIT_TEST_IMAGES")
	if dir == "" {
		t.Fatalf("GUESTKIT_TEST_IMAGES is not set: run `make test`, or `bash %s` and point it at the output", script)
	}
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("images manifest: %v", err)
	}
	defer f.Close()
	var out []testImage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
			continue
		}
		f := strings.Split(l, "\t")
		if len(f) < 4 {
			t.Fatalf("%s line %q: want 4 tab-separated fields", name, l)
		}
		out = append(out, testImage{Name: f[0], File: f[1], Format: f[2], Expected: f[3], Path: filepath.Join(dir, f[1])})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

func inspectJob(img testImage, timeout int64) *spec.Job {
	return &spec.Job{
		Version: "1.0", JobID: "test-" + img.Name, Kind: "VMOperation", Operation: spec.OpInspect,
		Execution: &spec.Execution{TimeoutSeconds: &timeout},
		Payload: spec.Payload{Type: spec.OpInspect + ".v1", Data: &spec.Data{
			Image: &spec.Image{Path: img.Path, Format: img.Format},
		}},
	}
}

// libguestfsEnv is the environment for libguestfs tools in tests: TCG when
// this host's KVM fails the runner's self-test, as the runner itself does.
func libguestfsEnv() []string {
	env := append(os.Environ(), "LIBGUESTFS_BACKEND=direct")
	if libguestfs.KVMUsable() != nil {
		env = append(env, "LIBGUESTFS_BACKEND_SETTINGS=force_tcg")
	}
	return env
}

// viOS is virt-inspector's XML for one operating system.
type viOS struct {
	Root              string `xml:"root"`
	Name              string `xml:"name"`
	Arch              string `xml:"arch"`
	Distro            string `xml:"distro"`
	ProductName       string `xml:"product_name"`
	ProductVariant    string `xml:"product_variant"`
	MajorVersion      int    `xml:"major_version"`
	MinorVersion      int    `xml:"minor_version"`
	WindowsSystemroot string `xml:"windows_systemroot"`
	WindowsCCS        string `xml:"windows_current_control_set"`
	PackageFormat     string `xml:"package_format"`
	PackageManagement string `xml:"package_management"`
	Hostname          string `xml:"hostname"`
	OSInfo            string `xml:"osinfo"`
	Mountpoints       []struct {
		Dev  string `xml:"dev,attr"`
		Path string `xml:",chardata"`
	} `xml:"mountpoints>mountpoint"`
	DriveMappings []struct {
		Name string `xml:"name,attr"`
		Dev  string `xml:",chardata"`
	} `xml:"drive_mappings>drive_mapping"`
	Filesystems []struct {
		Dev   string `xml:"dev,attr"`
		Type  string `xml:"type"`
		Label string `xml:"label"`
		UUID  string `xml:"uuid"`
	} `xml:"filesystems>filesystem"`
	Applications []struct {
		Name          string `xml:"name"`
		DisplayName   string `xml:"display_name"`
		Epoch         int    `xml:"epoch"`
		Version       string `xml:"version"`
		Release       string `xml:"release"`
		Arch          string `xml:"arch"`
		URL           string `xml:"url"`
		SourcePackage string `xml:"source_package"`
		Summary       string `xml:"summary"`
		Description   string `xml:"description"`
		Publisher     string `xml:"publisher"`    // Windows
		InstallPath   string `xml:"install_path"` // Windows
	} `xml:"applications>application"`
}

func virtInspector(ctx context.Context, img testImage) ([]viOS, error) {
	cmd := exec.CommandContext(ctx, "virt-inspector", "--no-icon", "--format="+img.Format, "-a", img.Path)
	cmd.Env = libguestfsEnv()
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, &viError{err: err, stderr: string(ee.Stderr)}
		}
		return nil, err
	}
	var doc struct {
		OS []viOS `xml:"operatingsystem"`
	}
	if err := xml.Unmarshal(out, &doc); err != nil {
		return nil, err
	}
	return doc.OS, nil
}

type viError struct {
	err    error
	stderr string
}

func (e *viError) Error() string { return e.err.Error() + ": " + e.stderr }

// runBoth runs the runner and virt-inspector on the same image at the same
// time: each appliance is single-threaded under TCG.
func runBoth(t *testing.T, img testImage) (*result.Result, []viOS) {
	t.Helper()
	ctx := context.Background()
	type viOut struct {
		os  []viOS
		err error
	}
	ch := make(chan viOut, 1)
	go func() {
		os, err := virtInspector(ctx, img)
		ch <- viOut{os, err}
	}()
	res := runner.Execute(ctx, inspectJob(img, 1800), nil, runner.Config{Version: "test", Accel: "auto", Backend: spec.BackendAppliance})
	vi := <-ch
	if vi.err != nil {
		t.Fatalf("virt-inspector %s: %v", img.File, vi.err)
	}
	return res, vi.os
}

func decodeReport(t *testing.T, res *result.Result) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(res.Data, &m); err != nil {
		t.Fatalf("result data: %v", err)
	}
	return m
}
