// Package appliancetest compares rpmdb with the libguestfs appliance on
// the project's rpm test images. It is a package of its own so that the
// fuzz targets of rpmdb do not link libguestfs and testenv.
package appliancetest

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"guestkit.io/batch/internal/prereq"
	"guestkit.io/batch/internal/rpmdb"
	"libguestfs.org/guestfs"
)

// TestImagesAgainstAppliance lists the packages of every rpm test image
// twice: with the appliance's inspect_list_applications2, and with
// rpmdb.Read on the guest's rpm database and macro files copied out by
// the same appliance. The lists must agree field by field, in order.
func TestImagesAgainstAppliance(t *testing.T) {
	if testing.Short() {
		t.Skip("boots the libguestfs appliance")
	}
	dir := os.Getenv("GUESTKIT_TEST_IMAGES")
	manifest, err := os.Open(filepath.Join(dir, "MANIFEST"))
	if dir == "" || err != nil {
		prereq.Missing(t, "no test images: run `make test`, or set GUESTKIT_TEST_IMAGES")
	}
	defer manifest.Close()
	if os.Getenv("LIBGUESTFS_BACKEND") == "" {
		t.Setenv("LIBGUESTFS_BACKEND", "direct")
	}
	if _, ok := os.LookupEnv("LIBGUESTFS_BACKEND_SETTINGS"); !ok {
		t.Setenv("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
	}
	checked := 0
	for sc := bufio.NewScanner(manifest); sc.Scan(); {
		f := strings.Split(sc.Text(), "\t")
		if strings.HasPrefix(sc.Text(), "#") || len(f) < 4 || f[3] != "ok" || !isRPMImage(t, dir, f[0]) {
			continue
		}
		checked++
		name, file, format := f[0], f[1], f[2]
		t.Run(name, func(t *testing.T) {
			compareImage(t, filepath.Join(dir, file), format)
		})
	}
	if checked == 0 {
		t.Fatal("no rpm test image in the manifest")
	}
}

// isRPMImage reads the image's expected report: does an OS of it use rpm?
func isRPMImage(t *testing.T, dir, name string) bool {
	b, err := os.ReadFile(filepath.Join(dir, name+".expected.json"))
	if err != nil {
		return false
	}
	var exp struct {
		OperatingSystems []struct {
			PackageFormat string `json:"package_format"`
		} `json:"operating_systems"`
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatalf("%s.expected.json: %v", name, err)
	}
	for _, os := range exp.OperatingSystems {
		if os.PackageFormat == "rpm" {
			return true
		}
	}
	return false
}

func compareImage(t *testing.T, image, format string) {
	g, err := guestfs.Create()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Add_drive(image, &guestfs.OptargsAdd_drive{Readonly_is_set: true, Readonly: true, Format_is_set: true, Format: format}); err != nil {
		t.Fatal(err)
	}
	if err := g.Launch(); err != nil {
		t.Fatal(err)
	}
	roots, err := g.Inspect_os()
	if err != nil || len(roots) == 0 {
		t.Fatalf("inspect_os: %v, %v", roots, err)
	}
	for _, root := range roots {
		mps, err := g.Inspect_get_mountpoints(root)
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for mp := range mps {
			order = append(order, mp)
		}
		sort.Slice(order, func(i, j int) bool { return len(order[i]) < len(order[j]) })
		for _, mp := range order {
			if err := g.Mount_ro(mps[mp], mp); err != nil {
				t.Fatalf("mount %s on %s: %v", mps[mp], mp, err)
			}
		}
		apps, err := g.Inspect_list_applications2(root)
		if err != nil {
			t.Fatal(err)
		}
		var want []rpmdb.Package
		for _, a := range *apps {
			want = append(want, rpmdb.Package{Name: a.App2_name, Epoch: int(a.App2_epoch), Version: a.App2_version,
				Release: a.App2_release, Arch: a.App2_arch, URL: a.App2_url, Summary: a.App2_summary, Description: a.App2_description})
			if a.App2_display_name != "" || a.App2_install_path != "" || a.App2_publisher != "" || a.App2_source_package != "" {
				t.Errorf("the appliance fills a field rpmdb.Package lacks: %+v", a)
			}
		}
		local := t.TempDir()
		for _, d := range []string{"/var/lib/rpm", "/usr/lib/sysimage/rpm", "/usr/lib/rpm", "/etc/rpm"} {
			if ok, err := g.Is_dir(d, nil); err != nil || !ok {
				continue
			}
			parent := filepath.Join(local, path.Dir(d))
			if err := os.MkdirAll(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := g.Copy_out(d, parent); err != nil {
				t.Fatalf("copy-out %s: %v", d, err)
			}
		}
		if err := g.Umount_all(); err != nil {
			t.Fatal(err)
		}
		got, err := rpmdb.Read(context.Background(), os.DirFS(local))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || len(want) == 0 {
			t.Fatalf("%s: %d packages, the appliance %d", root, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: package %d:\n got %#v\nwant %#v", root, i, got[i], want[i])
			}
		}
	}
}
