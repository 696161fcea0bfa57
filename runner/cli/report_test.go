package cli_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"guestkit.io/batch/internal/result"
)

// sarifLog is the part of SARIF 2.1.0 the tests read.
type sarifLog struct {
	Version string `json:"version"`
	Runs    []struct {
		Results []struct {
			RuleID string `json:"ruleId"`
			Level  string `json:"level"`
		} `json:"results"`
	} `json:"runs"`
}

func hasSARIFResult(l sarifLog, rule string) bool {
	for _, r := range l.Runs {
		for _, x := range r.Results {
			if x.RuleID == rule {
				return true
			}
		}
	}
	return false
}

// TestRunWritesReportsBeside: a profile spec whose output.format is sarif
// gets a SARIF report beside the JSON result; --report-format junit
// overrides it with JUnit XML.
func TestRunWritesReportsBeside(t *testing.T) {
	dir := t.TempDir()
	m := loadSeed("worker-jobs--guestkit-profile-security.json")
	set(m, "payload.data.image.path", qcow2(t, dir, "db.qcow2"))
	set(m, "payload.data.output.format", "sarif")
	specPath := writeJSON(t, dir, "spec.json", m)
	out := filepath.Join(dir, "results", "profile-security-001.json")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	o := runCLI(t, context.Background(), newFakeLauncher(), "run", "--spec", specPath, "--result", "file://"+out)
	if o.code != result.ExitNoncompliant {
		t.Fatalf("exit %d\n%s", o.code, o.stderr)
	}
	if res := readResult(t, out); len(res.Warnings) != 0 && strings.Contains(strings.Join(res.Warnings, " "), "output.format") {
		t.Errorf("sarif is produced for profiles, no warning expected: %v", res.Warnings)
	}
	b, err := os.ReadFile(strings.TrimSuffix(out, ".json") + ".sarif")
	if err != nil {
		t.Fatalf("SARIF beside the result: %v", err)
	}
	var l sarifLog
	if err := json.Unmarshal(b, &l); err != nil || l.Version != "2.1.0" || !hasSARIFResult(l, "sshd_disable_root_login") {
		t.Errorf("SARIF: version %q err %v, want sshd_disable_root_login among results", l.Version, err)
	}

	o = runCLI(t, context.Background(), newFakeLauncher(), "run", "--spec", specPath, "--result", out, "--report-format", "junit")
	if o.code != result.ExitNoncompliant {
		t.Fatalf("exit %d\n%s", o.code, o.stderr)
	}
	b, err = os.ReadFile(strings.TrimSuffix(out, ".json") + ".junit.xml")
	if err != nil {
		t.Fatalf("JUnit beside the result: %v", err)
	}
	var suites struct {
		Suites []struct {
			Cases []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &suites); err != nil || len(suites.Suites) == 0 {
		t.Fatalf("JUnit: %v\n%s", err, b)
	}
	failed := false
	for _, s := range suites.Suites {
		for _, c := range s.Cases {
			if strings.Contains(c.Name, "sshd_disable_root_login") && c.Failure != nil {
				failed = true
			}
		}
	}
	if !failed {
		t.Error("JUnit has no failed testcase for sshd_disable_root_login")
	}
}

// TestProfileCommand: `profile IMAGE --report-format sarif` prints SARIF on
// stdout, exits 2 on findings, and honours --severity-threshold.
func TestProfileCommand(t *testing.T) {
	dir := t.TempDir()
	img := qcow2(t, dir, "vm.qcow2")
	o := runCLI(t, context.Background(), newFakeLauncher(), "profile", "--report-format", "sarif", img)
	if o.code != result.ExitNoncompliant {
		t.Fatalf("exit %d\n%s", o.code, o.stderr)
	}
	var l sarifLog
	if err := json.Unmarshal([]byte(o.stdout), &l); err != nil || !hasSARIFResult(l, "sshd_disable_root_login") {
		t.Fatalf("stdout is not the SARIF report (%v):\n%.300s", err, o.stdout)
	}
	out := filepath.Join(dir, "r.json")
	o = runCLI(t, context.Background(), newFakeLauncher(), "profile", "--severity-threshold", "none", "--no-fail-on-critical",
		"--profiles", "security,pci-dss", "-o", out, img)
	if o.code != result.ExitCompleted {
		t.Fatalf("threshold none: exit %d\n%s", o.code, o.stderr)
	}
	d := reportOf(t, readResult(t, out))
	var names []string
	for _, p := range d.Profiles[0].Profiles {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "security,pci-dss" {
		t.Errorf("profiles = %v", names)
	}
	o = runCLI(t, context.Background(), nil, "profile", "--profiles", "bogus", img)
	if o.code != result.ExitUsage || !strings.Contains(o.stderr, "bogus") {
		t.Errorf("unknown profile: exit %d stderr %q", o.code, o.stderr)
	}
}

// TestSBOMReports: cyclonedx and spdx on inspect (stdout), profile (beside
// -o) and run (beside the result, from the spec's output.format or
// --report-format), with the inspection's packages and their purls.
func TestSBOMReports(t *testing.T) {
	dir := t.TempDir()
	img := qcow2(t, dir, "vm.qcow2")
	const purl = "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12"

	o := runCLI(t, context.Background(), newFakeLauncher(), "inspect", "--report-format", "cyclonedx", img)
	if o.code != result.ExitCompleted {
		t.Fatalf("inspect: exit %d\n%s", o.code, o.stderr)
	}
	var bom struct {
		BOMFormat, SpecVersion string
		Metadata               struct{ Component struct{ Name, Type string } }
		Components             []struct{ Type, Name, Version, Purl string }
	}
	if err := json.Unmarshal([]byte(o.stdout), &bom); err != nil || bom.BOMFormat != "CycloneDX" || bom.SpecVersion != "1.6" {
		t.Fatalf("stdout is not CycloneDX 1.6 (%v):\n%.300s", err, o.stdout)
	}
	if bom.Metadata.Component.Name != img || bom.Components[0].Type != "operating-system" || bom.Components[0].Name != "debian" ||
		len(bom.Components) != 4 || bom.Components[1].Purl != purl {
		t.Errorf("CycloneDX document: %+v", bom)
	}
	if o := runCLI(t, context.Background(), newFakeLauncher(), "inspect", "--report-format", "sarif", img); o.code != result.ExitUsage {
		t.Errorf("inspect --report-format sarif: exit %d, want %d (inspect has no findings)", o.code, result.ExitUsage)
	}

	out := filepath.Join(dir, "p.json")
	o = runCLI(t, context.Background(), newFakeLauncher(), "profile", "--report-format", "spdx", "-o", out, img)
	if o.code != result.ExitNoncompliant {
		t.Fatalf("profile: exit %d\n%s", o.code, o.stderr)
	}
	b, err := os.ReadFile(filepath.Join(dir, "p.spdx.json"))
	if err != nil || !strings.Contains(string(b), `"spdxVersion": "SPDX-2.3"`) || !strings.Contains(string(b), purl) {
		t.Errorf("SPDX beside -o: %v\n%.300s", err, b)
	}
	if res := readResult(t, out); res.JobID == "" {
		t.Error("profile -o: no JSON result beside the SPDX")
	}

	m := loadSeed("worker-jobs--guestkit-inspect-basic.json")
	set(m, "payload.data.image.path", img)
	set(m, "payload.data.output.format", "cyclonedx")
	specPath := writeJSON(t, dir, "spec.json", m)
	res := filepath.Join(dir, "results", "job.json")
	if err := os.MkdirAll(filepath.Dir(res), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ flag, file, want string }{
		{"", "job.cdx.json", `"bomFormat": "CycloneDX"`},
		{"spdx", "job.spdx.json", `"spdxVersion": "SPDX-2.3"`},
	} {
		args := []string{"run", "--spec", specPath, "--result", "file://" + res}
		if c.flag != "" {
			args = append(args, "--report-format", c.flag)
		}
		o := runCLI(t, context.Background(), newFakeLauncher(), args...)
		if o.code != result.ExitCompleted {
			t.Fatalf("run %v: exit %d\n%s", args, o.code, o.stderr)
		}
		if r := readResult(t, res); strings.Contains(strings.Join(r.Warnings, " "), "output.format") {
			t.Errorf("an SBOM applies to inspect results, no warning expected: %v", r.Warnings)
		}
		b, err := os.ReadFile(filepath.Join(dir, "results", c.file))
		if err != nil || !strings.Contains(string(b), c.want) || !strings.Contains(string(b), purl) {
			t.Errorf("%s beside the result: %v\n%.300s", c.file, err, b)
		}
	}
}
