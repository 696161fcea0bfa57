package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/spec"
)

// windowsImages reads $GUESTKIT_TEST_IMAGES/MANIFEST.windows, written by
// scripts/windowsimages.sh (`make images` runs it beside testimages.sh).
func windowsImages(t *testing.T) []testImage {
	t.Helper()
	out := manifest(t, "MANIFEST.windows", "scripts/windowsimages.sh")
	if len(out) < 4 {
		t.Fatalf("MANIFEST.windows lists %d images, want Server 2022 and Windows 11, hardened and misconfigured", len(out))
	}
	return out
}

// windowsTruth is the part of a Windows image's <name>.expected.json that
// inspection must reproduce.
type windowsTruth struct {
	OS []struct {
		Root              string            `json:"root"`
		Type              string            `json:"type"`
		Distro            string            `json:"distro"`
		Arch              string            `json:"arch"`
		ProductName       string            `json:"product_name"`
		ProductVariant    string            `json:"product_variant"`
		MajorVersion      int               `json:"major_version"`
		MinorVersion      int               `json:"minor_version"`
		Build             string            `json:"build"`
		OSInfo            string            `json:"osinfo"`
		Hostname          string            `json:"hostname"`
		WindowsSystemroot string            `json:"windows_systemroot"`
		WindowsCCS        string            `json:"windows_current_control_set"`
		DriveMappings     map[string]string `json:"drive_mappings"`
		Applications      []struct {
			Name        string `json:"name"`
			DisplayName string `json:"display_name"`
			Version     string `json:"version"`
			Publisher   string `json:"publisher"`
			InstallPath string `json:"install_path"`
			WOW64       bool   `json:"wow64"`
		} `json:"applications"`
		NotListed []string       `json:"applications_not_listed"`
		Windows11 bool           `json:"windows_11"`
		Users     []truthUser    `json:"users"`
		Services  []truthService `json:"services"`
		Settings  []truthSetting `json:"settings"`
	} `json:"operating_systems"`
	Filesystems []struct {
		Device string `json:"device"`
		Type   string `json:"fstype"`
		Label  string `json:"label"`
		UUID   string `json:"uuid"`
	} `json:"filesystems"`
}

type truthUser struct {
	RID           uint32 `json:"rid"`
	Name          string `json:"name"`
	Administrator bool   `json:"administrator"`
	Disabled      bool   `json:"disabled"`
}

type truthService struct {
	Name   string `json:"name"`
	Type   int    `json:"type"`
	Object string `json:"object_name"`
}

type truthSetting struct {
	ID    string `json:"id"`
	Value any    `json:"value"`
}

// TestWindowsImagesMatchVirtInspector profiles each synthetic Windows
// image (one appliance launch: a profile result embeds the inspection) and
// runs virt-inspector on it, and requires, field by field, the same answer
// from both (identity, mountpoints, filesystems, drive letters,
// applications with their publisher and install path) and the image's
// ground truth: what scripts/windowsimages.sh wrote into the hives. The
// profile must decide the Windows rules as the ground truth's settings
// say and leave every Linux rule notapplicable.
func TestWindowsImagesMatchVirtInspector(t *testing.T) {
	for _, img := range windowsImages(t) {
		t.Run(img.Name, func(t *testing.T) {
			t.Parallel() // one TCG appliance is mostly one busy thread
			ctx := context.Background()
			vi := make(chan []viOS, 1)
			go func() {
				os, err := virtInspector(ctx, img)
				if err != nil {
					t.Errorf("virt-inspector %s: %v", img.File, err)
				}
				vi <- os
			}()
			res := runner.Execute(ctx, profileJob(img, "windows", 1800), nil, runner.Config{Version: "test", Accel: "auto", Backend: spec.BackendAppliance})
			viOS := <-vi
			if res.Status != result.StatusCompleted {
				t.Fatalf("status %s exit %d, error %+v", res.Status, res.ExitCode, res.Error)
			}
			var data runner.ProfileData
			if err := json.Unmarshal(res.Data, &data); err != nil {
				t.Fatal(err)
			}
			if data.Report == nil || viOS == nil {
				t.Fatal("no inspection")
			}
			compareWithVirtInspector(t, data.OperatingSystems, viOS)
			compareWindowsWithVirtInspector(t, data.OperatingSystems, viOS)
			compareWindowsTruth(t, img, data.Report)
			checkWindowsProfile(t, img, res, &data)
		})
	}
}

// windowsPlanted are the Windows rules the misconfigured images fail, as
// scripts/testimages/windows.sh plants them: RDP without NLA, SMBv1 on, the
// public firewall profile off, AutoAdminLogon with a DefaultPassword, LM
// hashes kept, WDigest storing credentials, UAC off, no LSA protection,
// anonymous enumeration allowed, Guest enabled, no lockout threshold, no
// minimum length, passwords that never expire. The domain and private
// firewall profiles stay on and the lockout duration is 30 minutes.
var windowsPlanted = []string{
	"windows_rdp_nla_required", "windows_smb1_server_disabled", "windows_firewall_public_enabled",
	"windows_autoadminlogon_disabled", "windows_no_lm_hash", "windows_wdigest_no_plaintext", "windows_uac_enabled",
	"windows_lsa_protection", "windows_restrict_anonymous", "windows_restrict_anonymous_sam",
	"windows_guest_account_disabled", "windows_account_lockout_threshold", "windows_password_min_length",
	"windows_password_max_age",
}

// checkWindowsProfile: on a hardened image every Windows rule passes; on a
// misconfigured one exactly windowsPlanted fail, with the hive as
// evidence; no Linux rule passes or fails on either.
func checkWindowsProfile(t *testing.T, img testImage, res *result.Result, data *runner.ProfileData) {
	t.Helper()
	if len(data.Profiles) != 1 || data.Profiles[0].Report == nil {
		t.Fatalf("%d profile reports, want 1", len(data.Profiles))
	}
	rep := data.Profiles[0].Report
	if rep.OS.Family != profile.FamilyWindows {
		t.Errorf("family %q, want windows", rep.OS.Family)
	}
	hardened := strings.HasSuffix(img.Name, "-hardened")
	windowsRules := 0
	for _, r := range rep.Results {
		win := strings.HasPrefix(r.ID, "windows_")
		switch {
		case !win && r.Status != profile.StatusNotApplicable:
			t.Errorf("Linux rule %s: %s on a Windows guest, want notapplicable\n%s", r.ID, r.Status, evidenceText(r.Evidence))
		case !win:
		case hardened && r.Status != profile.StatusPass:
			t.Errorf("hardened: %s %s, want pass\n%s", r.ID, r.Status, evidenceText(r.Evidence))
		case !hardened && slices.Contains(windowsPlanted, r.ID):
			if r.Status != profile.StatusFail || !strings.Contains(evidenceText(r.Evidence), "/Windows/System32/config/") {
				t.Errorf("planted: %s %s, want fail with the hive as evidence\n%s", r.ID, r.Status, evidenceText(r.Evidence))
			}
		case !hardened && r.Status != profile.StatusPass:
			t.Errorf("misconfigured: %s %s, want pass (not planted)\n%s", r.ID, r.Status, evidenceText(r.Evidence))
		}
		if win {
			windowsRules++
		}
	}
	if windowsRules < 15 {
		t.Errorf("%d Windows rules evaluated, want at least 15", windowsRules)
	}
	wantExit := result.ExitNoncompliant
	if hardened {
		wantExit = result.ExitCompleted
	}
	if res.ExitCode != wantExit {
		t.Errorf("exit %d, want %d (summary %+v)", res.ExitCode, wantExit, rep.Summary)
	}
}

// compareWindowsWithVirtInspector compares what compareWithVirtInspector
// leaves out: drive letters, and each application's publisher and install
// path.
func compareWindowsWithVirtInspector(t *testing.T, got []inspect.OS, want []viOS) {
	t.Helper()
	if len(got) != 1 || len(want) != 1 {
		t.Fatalf("%d roots, virt-inspector found %d; want 1", len(got), len(want))
	}
	g, w := got[0], want[0]
	drives := map[string]string{}
	for _, d := range w.DriveMappings {
		drives[d.Name] = d.Dev
	}
	if len(drives) == 0 {
		t.Error("virt-inspector reports no drive letters; the image's MountedDevices should give some")
	}
	if a, b := fmt.Sprint(g.DriveMappings), fmt.Sprint(drives); a != b {
		t.Errorf("drive_mappings = %s, virt-inspector says %s", a, b)
	}
	apps := map[string]inspect.Application{}
	for _, a := range g.Applications {
		apps[a.Name] = a
	}
	for _, wa := range w.Applications {
		a, ok := apps[wa.Name]
		if !ok {
			continue // compareWithVirtInspector reports it
		}
		if a.Publisher != wa.Publisher || a.InstallPath != wa.InstallPath {
			t.Errorf("application %s: publisher %q, install path %q; virt-inspector says %q, %q", wa.Name, a.Publisher, a.InstallPath, wa.Publisher, wa.InstallPath)
		}
	}
}

func compareWindowsTruth(t *testing.T, img testImage, rep *inspect.Report) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(img.Path), img.Name+".expected.json"))
	if err != nil {
		t.Fatalf("ground truth: %v", err)
	}
	var truth windowsTruth
	if err := json.Unmarshal(data, &truth); err != nil {
		t.Fatalf("ground truth %s: %v", img.Name, err)
	}
	if len(truth.OS) != 1 || len(rep.OperatingSystems) != 1 {
		t.Fatalf("%d roots found, ground truth has %d; want 1", len(rep.OperatingSystems), len(truth.OS))
	}
	w, g := truth.OS[0], rep.OperatingSystems[0]
	eq := func(field string, got, want any) {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %q, ground truth %q", field, fmt.Sprint(got), fmt.Sprint(want))
		}
	}
	eq("root", g.Root, w.Root)
	eq("type", g.Type, w.Type)
	eq("distro", g.Distro, w.Distro)
	eq("arch", g.Arch, w.Arch)
	eq("product_name", g.ProductName, w.ProductName)
	eq("product_variant", g.ProductVariant, w.ProductVariant)
	eq("major_version", g.MajorVersion, w.MajorVersion)
	eq("minor_version", g.MinorVersion, w.MinorVersion)
	eq("osinfo", g.OSInfo, w.OSInfo)
	eq("hostname", g.Hostname, w.Hostname)
	eq("windows_systemroot", g.WindowsSystemroot, w.WindowsSystemroot)
	eq("windows_current_control_set", g.WindowsCCS, w.WindowsCCS)
	eq("drive_mappings", g.DriveMappings, w.DriveMappings)
	// The root's filesystems (the build sets the volume serials).
	var gf, wf []string
	for _, f := range g.Filesystems {
		gf = append(gf, strings.Join([]string{f.Device, f.Type, f.Label, f.UUID}, "|"))
	}
	for _, f := range truth.Filesystems {
		if f.Device == w.Root {
			wf = append(wf, strings.Join([]string{f.Device, f.Type, f.Label, f.UUID}, "|"))
		}
	}
	eq("filesystems", gf, wf)

	got := map[string]inspect.Application{}
	for _, a := range g.Applications {
		got[a.Name] = a
	}
	var want []string
	for _, a := range w.Applications {
		want = append(want, a.Name)
		ga, ok := got[a.Name]
		if !ok {
			t.Errorf("application %s (%s, wow64 %v) missing", a.Name, a.DisplayName, a.WOW64)
			continue
		}
		p := "application " + a.Name + "."
		eq(p+"display_name", ga.DisplayName, a.DisplayName)
		eq(p+"version", ga.Version, a.Version)
		eq(p+"publisher", ga.Publisher, a.Publisher)
		eq(p+"install_path", ga.InstallPath, a.InstallPath)
	}
	for _, n := range w.NotListed {
		if _, ok := got[n]; ok {
			t.Errorf("application %s listed: its uninstall key has no DisplayName", n)
		}
	}
	var have []string
	for n := range got {
		have = append(have, n)
	}
	sort.Strings(want)
	sort.Strings(have)
	eq("applications", have, want)
	compareWindowsSections(t, eq, w.Windows11, w.Users, w.Services, w.Settings, g.Windows)
}

// compareWindowsSections holds the sections virt-inspector lacks (read
// from the hives by internal/inspect) to the ground truth.
func compareWindowsSections(t *testing.T, eq func(string, any, any), win11 bool, users []truthUser, services []truthService, settings []truthSetting, w *inspect.Windows) {
	t.Helper()
	if w == nil || w.Identity == nil {
		t.Fatal("no windows section")
	}
	var tu, gu []string
	for _, u := range users {
		tu = append(tu, fmt.Sprint(u.RID, u.Name, u.Administrator, u.Disabled))
	}
	for _, u := range w.Users {
		gu = append(gu, fmt.Sprint(u.RID, u.Name, u.Administrator, u.Disabled))
	}
	sort.Strings(tu)
	sort.Strings(gu)
	eq("windows.users", gu, tu)
	// Win32 services (Type 0x10/0x20) only; drivers are not services.
	var ts, gs []string
	for _, s := range services {
		if s.Type&0x30 != 0 {
			ts = append(ts, s.Name+"|"+s.Object)
		}
	}
	for _, s := range w.Services {
		gs = append(gs, s.Name+"|"+s.Account)
	}
	sort.Strings(ts)
	sort.Strings(gs)
	eq("windows.services", gs, ts)
	set := map[string]string{}
	for _, s := range settings {
		set[s.ID] = fmt.Sprint(s.Value)
	}
	if w.RDP == nil || w.SMB == nil || w.Defender == nil || len(w.Firewall) != 3 {
		t.Fatalf("windows sections: rdp %v smb %v defender %v firewall %v", w.RDP, w.SMB, w.Defender, w.Firewall)
	}
	eq("windows.rdp.nla", w.RDP.NLA, set["rdp_nla"] == "1")
	eq("windows.smb.smb1_server", w.SMB.SMB1Server, set["smb1_server"] == "1")
	eq("windows.defender.real_time_protection", w.Defender.RealTime, set["defender_realtime_disabled"] != "1")
	for _, f := range w.Firewall {
		eq("windows.firewall."+f.Profile, f.Enabled, set["firewall_"+f.Profile] == "1")
	}
	if win11 != strings.HasPrefix(w.Identity.DisplayName, "Windows 11") {
		t.Errorf("windows.identity.display_name %q (build %d), ground truth windows_11 %v", w.Identity.DisplayName, w.Identity.Build, win11)
	}
}
