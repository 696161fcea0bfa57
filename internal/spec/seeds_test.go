package spec

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// seedWarnings is what loading each supported seed must warn, exactly.
func seedWarnings() map[string][]string {
	priv := "constraints.require_privileged: ignored: runners never run privileged"
	dest := "payload.data.output.destination: ignored: the result is written to the result URI the runner was given"
	sum := "payload.data.image.checksum: digest is not 64 hex digits; checksum verification will fail"
	return map[string][]string{
		"jobs--inspect-full.json":                     {priv, dest},
		"jobs--inspect-minimal.json":                  nil,
		"jobs--profile-security.json":                 {priv, sum, dest},
		"worker-jobs--guestkit-inspect-basic.json":    {dest},
		"worker-jobs--guestkit-inspect-full.json":     {priv, dest},
		"worker-jobs--guestkit-profile-security.json": {dest},
	}
}

// seedUnsupported maps each other seed to its operation.
func seedUnsupported() map[string]string {
	return map[string]string{
		"jobs--fix-offline.json":                          "guestkit.fix",
		"worker-jobs--echo-test.json":                     "system.echo",
		"worker-jobs--guestkit-agent-call-basic.json":     "guestkit.agent.call",
		"worker-jobs--guestkit-agent-doctor-basic.json":   "guestkit.agent.doctor",
		"worker-jobs--guestkit-agent-evidence-basic.json": "guestkit.agent.evidence",
		"worker-jobs--guestkit-doctor-basic.json":         "guestkit.doctor",
		"worker-jobs--guestkit-migrate-plan-basic.json":   "guestkit.migrate-plan",
		"worker-jobs--guestkit-repair-basic.json":         "guestkit.repair",
	}
}

func readSeed(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "seed-jobs", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func warningStrings(w []Warning) []string {
	var s []string
	for _, x := range w {
		s = append(s, x.String())
	}
	return s
}

func TestSeedsAllListed(t *testing.T) {
	files, err := filepath.Glob("testdata/seed-jobs/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no seeds: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		_, ok1 := seedWarnings()[name]
		_, ok2 := seedUnsupported()[name]
		if ok1 == ok2 {
			t.Errorf("%s: must be listed in exactly one of seedWarnings and seedUnsupported", name)
		}
	}
	if n := len(seedWarnings()) + len(seedUnsupported()); n != len(files) {
		t.Errorf("%d seeds listed, %d files", n, len(files))
	}
}

func TestSupportedSeedsValidateUnchanged(t *testing.T) {
	for name, want := range seedWarnings() {
		t.Run(name, func(t *testing.T) {
			data := readSeed(t, name)
			j, w, err := Load(data)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := warningStrings(w); !slices.Equal(got, want) {
				t.Errorf("warnings:\n got %q\nwant %q", got, want)
			}
			if string(j.Raw) != string(data) {
				t.Error("Raw is not the document as given")
			}
			var doc struct {
				JobID     string `json:"job_id"`
				Operation string `json:"operation"`
				Payload   struct {
					Data struct {
						Image struct{ Path string }
					}
				}
			}
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			if j.JobID != doc.JobID || j.Operation != doc.Operation || j.Image().Path != doc.Payload.Data.Image.Path {
				t.Errorf("got job_id %q op %q path %q, want %q %q %q", j.JobID, j.Operation, j.Image().Path,
					doc.JobID, doc.Operation, doc.Payload.Data.Image.Path)
			}
			if !strings.HasPrefix(j.Digest(), "sha256:") || len(j.Digest()) != 71 {
				t.Errorf("digest %q", j.Digest())
			}
		})
	}
}

func TestUnsupportedSeedsRejected(t *testing.T) {
	for name, op := range seedUnsupported() {
		t.Run(name, func(t *testing.T) {
			j, w, err := Load(readSeed(t, name))
			if !errors.Is(err, ErrUnsupportedOperation) {
				t.Fatalf("err = %v, want ErrUnsupportedOperation", err)
			}
			want := `unsupported operation "` + op + `" (supported: guestkit.inspect, guestkit.profile)`
			if err.Error() != want {
				t.Errorf("message:\n got %s\nwant %s", err, want)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatal("not a *ValidationError")
			}
			if len(ve.Problems) != 1 || ve.Problems[0].Field != "operation" || ve.Problems[0].Value != op {
				t.Errorf("problems = %+v", ve.Problems)
			}
			if j == nil || j.JobID == "" || j.Payload.Data != nil {
				t.Errorf("job = %+v; want job_id kept and payload data left uninterpreted", j)
			}
			// The data of an unknown operation is not ours to judge.
			for _, x := range w {
				if strings.HasPrefix(x.Field, "payload.data") {
					t.Errorf("warning about uninterpreted data: %v", x)
				}
			}
		})
	}
}

// classify says how this package treats a seed: "valid", "unsupported"
// or the error.
func classify(data []byte) string {
	_, _, err := Load(data)
	switch {
	case err == nil:
		return "valid"
	case errors.Is(err, ErrUnsupportedOperation):
		return "unsupported"
	}
	return err.Error()
}

// TestSharedSeeds checks the seeds the project shares, so that a changed
// or new seed is noticed. CI always has them.
func TestSharedSeeds(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "seed-jobs")
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no seeds in %s; CI must have them", dir)
		}
		t.Skipf("no seeds in %s", dir)
	}
	for _, f := range files {
		name := filepath.Base(f)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Operation string }
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Errorf("%s: not JSON: %v", name, err)
			continue
		}
		want := "unsupported"
		if slices.Contains(SupportedOperations(), doc.Operation) {
			want = "valid"
		}
		if got := classify(data); got != want {
			t.Errorf("%s (%s): %s, want %s", name, doc.Operation, got, want)
		}
		if local, err := os.ReadFile(filepath.Join("testdata", "seed-jobs", name)); err == nil {
			if got, was := classify(data), classify(local); got != was {
				t.Errorf("%s: shared copy is %s, testdata copy %s", name, got, was)
			}
		}
	}
}

func TestSeedYAMLEquivalent(t *testing.T) {
	fromJSON, wj, err := Load(readSeed(t, "jobs--inspect-full.json"))
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile("testdata/inspect-full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fromYAML, wy, err := Load(y)
	if err != nil {
		t.Fatalf("Load YAML: %v", err)
	}
	if !slices.Equal(warningStrings(wj), warningStrings(wy)) {
		t.Errorf("warnings differ:\nJSON %q\nYAML %q", warningStrings(wj), warningStrings(wy))
	}
	if fromJSON.Digest() != fromYAML.Digest() {
		t.Errorf("digest: JSON %s, YAML %s", fromJSON.Digest(), fromYAML.Digest())
	}
	fromJSON.Raw, fromYAML.Raw = nil, nil
	if !reflect.DeepEqual(fromJSON, fromYAML) {
		a, _ := json.MarshalIndent(fromJSON, "", " ")
		b, _ := json.MarshalIndent(fromYAML, "", " ")
		t.Errorf("jobs differ:\nJSON %s\nYAML %s", a, b)
	}
}

func TestSeedContent(t *testing.T) {
	j, _, err := Load(readSeed(t, "jobs--inspect-full.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := j.Timeout(); got != 2*time.Hour {
		t.Errorf("Timeout = %v", got)
	}
	if j.MaxAttempts() != 3 || j.Attempt() != 1 || j.Priority() != 7 || !j.Cancellable() {
		t.Errorf("execution accessors: %d %d %d %v", j.MaxAttempts(), j.Attempt(), j.Priority(), j.Cancellable())
	}
	if d, ok := j.Deadline(); !ok || !d.Equal(time.Date(2026, 1, 30, 14, 0, 0, 0, time.UTC)) {
		t.Errorf("Deadline = %v %v", d, ok)
	}
	img := j.Image()
	if sum, ok := img.SHA256(); !ok || sum != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("SHA256 = %q %v", sum, ok)
	}
	if img.Location() != "file:///mnt/vms/prod-web-01.qcow2" || *img.SizeBytes != 42949672960 {
		t.Errorf("image %s %d", img.Location(), *img.SizeBytes)
	}
	if j.Metadata.Labels["cost-center"] != "engineering" || j.Observability.ParentSpanID != nil ||
		j.Audit.Authorization.Subject != "service-account-scanner" || j.Routing.Affinity.DiskLocality != "/mnt/vms" {
		t.Errorf("metadata/observability/audit/routing not read: %+v %+v %+v", j.Metadata, j.Observability, j.Audit)
	}
	if j.Payload.Data.Output.Compression != nil {
		t.Error("compression null must read as absent")
	}
	want := InspectOptions{true, true, true, true, true, true, true, true}
	if got := j.InspectOptions(); got != want {
		t.Errorf("InspectOptions = %+v", got)
	}

	p, _, err := Load(readSeed(t, "jobs--profile-security.json"))
	if err != nil {
		t.Fatal(err)
	}
	po := p.ProfileOptions()
	if !slices.Equal(po.Profiles, []string{"security", "compliance", "hardening"}) || po.SeverityThreshold != "medium" ||
		!po.FailOnCritical || !po.IncludeRemediation {
		t.Errorf("ProfileOptions = %+v", po)
	}
	if _, ok := p.Image().SHA256(); ok {
		t.Error("placeholder checksum must not read as a digest")
	}
}

func TestDefaults(t *testing.T) {
	j, _, err := Load(readSeed(t, "jobs--inspect-minimal.json"))
	if err != nil {
		t.Fatal(err)
	}
	if j.Timeout() != time.Hour || j.MaxAttempts() != 3 || j.Attempt() != 1 || j.Priority() != 5 || !j.Cancellable() {
		t.Errorf("defaults: %v %d %d %d %v", j.Timeout(), j.MaxAttempts(), j.Attempt(), j.Priority(), j.Cancellable())
	}
	if _, ok := j.Deadline(); ok {
		t.Error("no deadline expected")
	}
	if j.OutputFormat() != "json" {
		t.Errorf("OutputFormat = %q", j.OutputFormat())
	}
	want := InspectOptions{DeepScan: false, Packages: true, Services: true, Users: true, Network: true, Security: true, Storage: true, Databases: true}
	if got := j.InspectOptions(); got != want {
		t.Errorf("InspectOptions = %+v", got)
	}
	if got := j.ProfileOptions(); got.SeverityThreshold != "medium" || !got.FailOnCritical || !got.IncludeRemediation || got.Profiles != nil {
		t.Errorf("ProfileOptions = %+v", got)
	}
}

// A Job built in Go has a digest too: that of its JSON.
func TestDigestOfBuiltJob(t *testing.T) {
	j := &Job{Version: "1.0", JobID: "a", Operation: OpInspect, Payload: Payload{Type: "guestkit.inspect.v1",
		Data: &Data{Image: &Image{Path: "/x.qcow2"}}}}
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(j)
	parsed, _, err := Load(b)
	if err != nil {
		t.Fatal(err)
	}
	if j.Digest() == "" || j.Digest() != parsed.Digest() {
		t.Errorf("built %q, parsed %q", j.Digest(), parsed.Digest())
	}
}
