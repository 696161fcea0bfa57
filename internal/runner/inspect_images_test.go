package runner_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
)

// TestInspectMatchesVirtInspector runs the runner and virt-inspector on every
// good test image and requires the same answer, field by field: OS
// identity, mountpoints, filesystems and applications.
func TestInspectMatchesVirtInspector(t *testing.T) {
	for _, img := range images(t) {
		if img.Expected != "ok" {
			continue
		}
		t.Run(img.Name, func(t *testing.T) {
			res, vi := runBoth(t, img)
			if res.Status != result.StatusCompleted || res.ExitCode != result.ExitCompleted {
				t.Fatalf("status %s exit %d, error %+v", res.Status, res.ExitCode, res.Error)
			}
			if res.Accelerator == nil || (res.Accelerator.Used != "kvm" && res.Accelerator.Used != "tcg") {
				t.Errorf("accelerator not recorded: %+v", res.Accelerator)
			}
			if res.Image == nil || res.Image.Format != img.Format || res.Image.VirtualSize <= 0 {
				t.Errorf("image facts = %+v, want format %s and a size", res.Image, img.Format)
			}
			var rep inspect.Report
			if err := json.Unmarshal(res.Data, &rep); err != nil {
				t.Fatal(err)
			}
			compareWithVirtInspector(t, rep.OperatingSystems, vi)
			compareGroundTruth(t, img, &rep)
			direct := runnerExecute(t, img, 600, spec.BackendDirect)
			compareBackends(t, res, direct)
		})
	}
}

func compareWithVirtInspector(t *testing.T, got []inspect.OS, want []viOS) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d roots, virt-inspector found %d", len(got), len(want))
	}
	sort.Slice(want, func(i, j int) bool { return want[i].Root < want[j].Root })
	for i, w := range want {
		g := got[i]
		eq := func(field string, a, b any) {
			if fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("root %s: %s = %q, virt-inspector says %q", w.Root, field, fmt.Sprint(a), fmt.Sprint(b))
			}
		}
		eq("root", g.Root, w.Root)
		eq("type", g.Type, w.Name)
		eq("arch", g.Arch, w.Arch)
		eq("distro", g.Distro, w.Distro)
		eq("product_name", g.ProductName, w.ProductName)
		eq("product_variant", g.ProductVariant, w.ProductVariant)
		eq("major_version", g.MajorVersion, w.MajorVersion)
		eq("minor_version", g.MinorVersion, w.MinorVersion)
		eq("windows_systemroot", g.WindowsSystemroot, w.WindowsSystemroot)
		eq("windows_current_control_set", g.WindowsCCS, w.WindowsCCS)
		eq("package_format", g.PackageFormat, w.PackageFormat)
		eq("package_management", g.PackageManagement, w.PackageManagement)
		eq("hostname", g.Hostname, w.Hostname)
		eq("osinfo", g.OSInfo, w.OSInfo)

		var gm, wm []string
		for _, m := range g.Mountpoints {
			gm = append(gm, m.Path+"="+m.Device)
		}
		for _, m := range w.Mountpoints {
			wm = append(wm, m.Path+"="+m.Dev)
		}
		eq("mountpoints", gm, wm)

		gf := map[string]string{}
		for _, f := range g.Filesystems {
			gf[f.Device] = strings.Join([]string{f.Type, f.Label, f.UUID}, "|")
		}
		wf := map[string]string{}
		for _, f := range w.Filesystems {
			wf[f.Dev] = strings.Join([]string{f.Type, f.Label, f.UUID}, "|")
		}
		eq("filesystems", sortedPairs(gf), sortedPairs(wf))

		if len(g.Applications) != len(w.Applications) {
			t.Errorf("root %s: %d applications, virt-inspector lists %d", w.Root, len(g.Applications), len(w.Applications))
		}
		if len(w.Applications) == 0 {
			t.Errorf("root %s: virt-inspector lists no applications; the test image should have packages", w.Root)
		}
		ga := map[string]inspect.Application{}
		for _, a := range g.Applications {
			ga[a.Name+"/"+a.Arch] = a
		}
		for _, wa := range w.Applications {
			a, ok := ga[wa.Name+"/"+wa.Arch]
			if !ok {
				t.Errorf("root %s: application %s (%s) missing", w.Root, wa.Name, wa.Arch)
				continue
			}
			p := "application " + wa.Name + "."
			eq(p+"display_name", a.DisplayName, wa.DisplayName)
			eq(p+"epoch", a.Epoch, wa.Epoch)
			eq(p+"version", a.Version, wa.Version)
			eq(p+"release", a.Release, wa.Release)
			eq(p+"url", a.URL, wa.URL)
			eq(p+"source_package", a.SourcePackage, wa.SourcePackage)
			eq(p+"summary", a.Summary, wa.Summary)
			eq(p+"description", a.Description, wa.Description)
		}
	}
}

func sortedPairs(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// TestBadImagesAreRejected: each bad image ends with its own error code, a
// rejected (or, for infrastructure, failed) result, a message that names
// the file, and the documented exit code. None crashes the runner.
func TestBadImagesAreRejected(t *testing.T) {
	for _, img := range images(t) {
		if img.Expected == "ok" {
			continue
		}
		t.Run(img.Name, func(t *testing.T) {
			appliance := runnerExecute(t, img, 900, spec.BackendAppliance)
			checkRejected(t, appliance, img)
			direct := runnerExecute(t, img, 900, spec.BackendDirect)
			checkRejected(t, direct, img)
			// What was learnt before the refusal (a disk without an OS
			// still has storage facts) is the same on both.
			compareBackends(t, appliance, direct)
		})
	}
}

// checkRejected: the image's own code, rejected, exit 4, the file named.
func checkRejected(t *testing.T, res *result.Result, img testImage) {
	t.Helper()
	if res.Error == nil {
		t.Fatalf("status %s, no error; want %s", res.Status, img.Expected)
	}
	if string(res.Error.Code) != img.Expected {
		t.Fatalf("code %s (%s), want %s", res.Error.Code, res.Error.Message, img.Expected)
	}
	if res.Status != result.StatusRejected || res.ExitCode != result.ExitBadImage || res.Error.Retryable {
		t.Errorf("status %s exit %d retryable %v; want rejected, %d, not retryable", res.Status, res.ExitCode, res.Error.Retryable, result.ExitBadImage)
	}
	if !strings.Contains(res.Error.Message, img.File) && img.Expected != "image_no_os" {
		t.Errorf("message %q does not name %s", res.Error.Message, img.File)
	}
	if res.Error.Phase == "" {
		t.Error("no phase")
	}
}
