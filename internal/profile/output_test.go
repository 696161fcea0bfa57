package profile

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func misconfiguredReport(t *testing.T, opts Options) *Report {
	t.Helper()
	m, _ := loadTree(t, "debian-misconfigured")
	rep, err := Evaluate(context.Background(), Target{FS: m}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func sarifSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	const id = "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/master/Schemata/sarif-schema-2.1.0.json"
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(id, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(id)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

func TestSARIFValidAgainstOfficialSchema(t *testing.T) {
	sch := sarifSchema(t)
	// A file name that needs escaping in a URI, and a notchecked result.
	m, _ := loadTree(t, "debian-misconfigured")
	m = overlay(m, fstest.MapFS{"opt/my app/data file#1": txtMode("x", 0o666, 0, 0)})
	for _, opts := range []Options{
		{Profiles: allProfiles(), IncludeRemediation: true},
		{Profiles: []string{"security"}, WalkMaxEntries: 5},
	} {
		rep, err := Evaluate(context.Background(), Target{FS: m}, opts)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteSARIF(&buf, rep, "1.2.3"); err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(inst); err != nil {
			t.Fatalf("SARIF does not validate: %v", err)
		}
	}
	// The schema is really enforced: a broken log is rejected.
	bad, _ := jsonschema.UnmarshalJSON(strings.NewReader(`{"version":"2.1.0","runs":[{"tool":{"driver":{}},"results":[{"level":"fatal"}]}]}`))
	if err := sch.Validate(bad); err == nil {
		t.Fatal("schema accepted an invalid log")
	}
}

func TestSARIFContent(t *testing.T) {
	rep := misconfiguredReport(t, Options{Profiles: allProfiles(), IncludeRemediation: true})
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, rep, "1.2.3"); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name    string `json:"name"`
					Version string `json:"version"`
					Rules   []struct {
						ID         string `json:"id"`
						HelpURI    string `json:"helpUri"`
						Help       struct{ Text string }
						Properties struct {
							Tags []string `json:"tags"`
						} `json:"properties"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Kind      string `json:"kind"`
				Level     string `json:"level"`
				Message   struct{ Text string }
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI       string `json:"uri"`
							URIBaseID string `json:"uriBaseId"`
						} `json:"artifactLocation"`
						Region struct {
							StartLine int `json:"startLine"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	run := log.Runs[0]
	if log.Version != "2.1.0" || run.Tool.Driver.Name != "guestkit-profile" || run.Tool.Driver.Version != "1.2.3" {
		t.Errorf("header %+v", log)
	}
	if len(run.Tool.Driver.Rules) != len(rep.Results) {
		t.Errorf("%d rules for %d results", len(run.Tool.Driver.Rules), len(rep.Results))
	}
	if len(run.Results) != rep.Summary.ByStatus.Fail+rep.Summary.ByStatus.NotChecked+rep.Summary.ByStatus.Error {
		t.Errorf("%d results for summary %+v", len(run.Results), rep.Summary.ByStatus)
	}
	found := false
	for _, r := range run.Results {
		if run.Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("ruleIndex of %s points at %s", r.RuleID, run.Tool.Driver.Rules[r.RuleIndex].ID)
		}
		if r.RuleID != "sshd_disable_root_login" {
			continue
		}
		found = true
		rule := run.Tool.Driver.Rules[r.RuleIndex]
		loc := r.Locations[0].PhysicalLocation
		if r.Kind != "fail" || r.Level != "error" || loc.ArtifactLocation.URI != "etc/ssh/sshd_config.d/50-cloud-init.conf" ||
			loc.ArtifactLocation.URIBaseID != GuestRootBaseID || loc.Region.StartLine != 2 {
			t.Errorf("root login result %+v", r)
		}
		if !strings.Contains(r.Message.Text, "PermitRootLogin yes") || !strings.Contains(rule.Help.Text, "PermitRootLogin no") {
			t.Errorf("message %q help %q", r.Message.Text, rule.Help.Text)
		}
		tags := strings.Join(rule.Properties.Tags, ",")
		if !strings.Contains(tags, "CIS-Debian:5.1.20") || !strings.Contains(tags, "PCI-DSS:2.2.6") || !strings.Contains(rule.HelpURI, "sshd_disable_root_login") {
			t.Errorf("tags %s helpUri %s", tags, rule.HelpURI)
		}
	}
	if !found {
		t.Error("no result for sshd_disable_root_login")
	}
}

func TestJUnit(t *testing.T) {
	rep := misconfiguredReport(t, Options{Profiles: []string{"security", "compliance"}, IncludeRemediation: true})
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, rep); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
			Skipped  int    `xml:"skipped,attr"`
			Cases    []struct {
				Name      string `xml:"name,attr"`
				ClassName string `xml:"classname,attr"`
				Failure   *struct {
					Message string `xml:"message,attr"`
					Type    string `xml:"type,attr"`
					Body    string `xml:",chardata"`
				} `xml:"failure"`
				Skipped *struct {
					Message string `xml:"message,attr"`
				} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if len(doc.Suites) != 2 || doc.Suites[0].Name != "security" {
		t.Fatalf("suites %+v", doc.Suites)
	}
	total, fails := 0, 0
	for i, s := range doc.Suites {
		total += s.Tests
		fails += s.Failures
		if s.Tests != rep.Profiles[i].Rules || s.Failures != rep.Profiles[i].Counts.Fail {
			t.Errorf("suite %s: %d tests %d failures; profile %+v", s.Name, s.Tests, s.Failures, rep.Profiles[i])
		}
	}
	if doc.Tests != total || doc.Failures != fails {
		t.Errorf("totals %d/%d vs %d/%d", doc.Tests, doc.Failures, total, fails)
	}
	var shadow, selinux bool
	for _, c := range doc.Suites[0].Cases {
		if c.Name == "no_empty_passwords_etc_shadow" {
			shadow = c.Failure != nil && c.Failure.Type == "critical" && strings.Contains(c.Failure.Body, "/etc/shadow:8: backdoor") &&
				strings.Contains(c.Failure.Body, "Remediation:") && c.ClassName == "guestkit.security"
		}
	}
	for _, c := range doc.Suites[1].Cases {
		if c.Name == "selinux_state" {
			selinux = c.Skipped != nil && strings.HasPrefix(c.Skipped.Message, "notapplicable: ")
		}
	}
	if !shadow || !selinux {
		t.Errorf("shadow failure %v, selinux skipped %v:\n%s", shadow, selinux, buf.String())
	}
}

// TestReportJSON pins the JSON field names consumers rely on.
func TestReportJSON(t *testing.T) {
	rep := misconfiguredReport(t, Options{Profiles: []string{"security"}})
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "os", "profiles", "results", "summary", "hardening_index", "noncompliant", "threshold", "fail_on_critical"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
	s := string(data)
	for _, k := range []string{`"by_status":{"pass":`, `"failed_by_severity":{"critical":2`, `"pass_rate":`, `"cis_debian":"5.1.20","cis_rhel":"5.1.20","cis_level":1,`,
		`"complianceascode":"sshd_disable_root_login"`, `"pci_dss":["2.2.6","8.2.2"]`, `"evidence":[{"file":"/etc/ssh/sshd_config.d/50-cloud-init.conf","line":2,"value":"PermitRootLogin yes"`,
		`"family":"debian"`, `"schema":"guestkit.io/profile/v1"`} {
		if !strings.Contains(s, k) {
			t.Errorf("JSON lacks %s", k)
		}
	}
	if strings.Contains(s, `"remediation"`) {
		t.Error("remediation present without include_remediation")
	}
}
