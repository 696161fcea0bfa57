package sweep

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

var created = time.Date(2026, 3, 2, 1, 30, 0, 0, time.UTC)

// bucket is a real minio store; nothing here touches its endpoint.
func bucket(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), "minio://images?endpoint=127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func objects(keys ...string) []store.Object {
	var out []store.Object
	for _, k := range keys {
		out = append(out, store.Object{Key: k, Size: 1 << 30})
	}
	return out
}

func hash10(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])[:10]
}

func TestSpecs(t *testing.T) {
	prio := 0
	opts := Options{
		Profiles:          []string{"security", "compliance"},
		SeverityThreshold: "high",
		Timeout:           30 * time.Minute,
		MaxAttempts:       2,
		Priority:          &prio,
		Labels:            map[string]string{"team": "sec"},
		CreatedAt:         created.In(time.FixedZone("CET", 3600)),
	}
	images := objects(
		"vms/web-01.qcow2", "vms/web-01.qcow2.sha256", "vms/db", "vms/README.md",
		"vms/", "vms/meta.json", "vms/.DS_Store", "vms/SHA256SUMS", "vms/win.VHDX", "vms/notes.TXT",
	)
	planned, skipped, err := Specs("2026-03-02", images, bucket(t), opts)
	if err != nil {
		t.Fatal(err)
	}

	wantSkipped := []SkippedImage{
		{"vms/", "folder marker (key ends in /)"},
		{"vms/.DS_Store", "hidden file"},
		{"vms/README.md", "sidecar file (.md), not a disk image"},
		{"vms/SHA256SUMS", "checksum list, not a disk image"},
		{"vms/meta.json", "sidecar file (.json), not a disk image"},
		{"vms/notes.TXT", "sidecar file (.txt), not a disk image"},
		{"vms/web-01.qcow2.sha256", "sidecar file (.sha256), not a disk image"},
	}
	if !slices.Equal(skipped, wantSkipped) {
		t.Errorf("skipped:\n got %q\nwant %q", skipped, wantSkipped)
	}

	var keys []string
	for _, p := range planned {
		keys = append(keys, p.ImageKey)
	}
	if want := []string{"vms/db", "vms/web-01.qcow2", "vms/win.VHDX"}; !slices.Equal(keys, want) {
		t.Fatalf("planned %q, want %q", keys, want)
	}

	p := planned[1]
	id := "sweep-2026-03-02-vms_web-01.qcow2-" + hash10("vms/web-01.qcow2")
	if p.Job.JobID != id {
		t.Errorf("job_id %q, want %q", p.Job.JobID, id)
	}
	if p.SpecKey != "sweeps/jobs/2026-03-02/"+id+".json" || p.ResultKey != "results/"+id+".json" {
		t.Errorf("keys %q, %q", p.SpecKey, p.ResultKey)
	}
	if err := p.Job.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if string(p.Job.Raw) != string(p.SpecJSON) {
		t.Errorf("Job.Raw is not SpecJSON")
	}

	// What the runner reads, field by field.
	var doc map[string]any
	if err := json.Unmarshal(p.SpecJSON, &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"version":    "1.0",
		"job_id":     id,
		"created_at": "2026-03-02T01:30:00Z",
		"kind":       "VMOperation",
		"operation":  "guestkit.profile",
		"metadata":   map[string]any{"labels": map[string]any{"team": "sec"}},
		"execution": map[string]any{
			"idempotency_key": "sweep/2026-03-02/vms/web-01.qcow2",
			"max_attempts":    2.0,
			"timeout_seconds": 1800.0,
			"priority":        0.0,
		},
		"payload": map[string]any{
			"type": "guestkit.profile.v1",
			"data": map[string]any{
				"image":    map[string]any{"uri": "minio://images/vms/web-01.qcow2"},
				"profiles": []any{"security", "compliance"},
				"options":  map[string]any{"severity_threshold": "high"},
			},
		},
	}
	got, _ := json.MarshalIndent(doc, "", " ")
	exp, _ := json.MarshalIndent(want, "", " ")
	if string(got) != string(exp) {
		t.Errorf("spec:\n%s\nwant:\n%s", got, exp)
	}
	if d := p.Job.Digest(); !strings.HasPrefix(d, "sha256:") {
		t.Errorf("digest %q", d)
	}

	// Same input, same plan: a rerun of the night's sweep rewrites the
	// same specs.
	again, _, err := Specs("2026-03-02", images, bucket(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range planned {
		if string(again[i].SpecJSON) != string(planned[i].SpecJSON) {
			t.Errorf("%s: spec differs between runs", planned[i].ImageKey)
		}
	}
}

func TestSpecsDefaults(t *testing.T) {
	planned, _, err := Specs("2026-03-02", objects("a.img"), bucket(t), Options{Profiles: []string{"pci-dss"}, CreatedAt: created})
	if err != nil {
		t.Fatal(err)
	}
	j := planned[0].Job
	if j.Timeout() != spec.DefaultTimeout || j.MaxAttempts() != spec.DefaultMaxAttempts || j.Priority() != spec.DefaultPriority {
		t.Errorf("timeout %s, max attempts %d, priority %d: want the spec defaults", j.Timeout(), j.MaxAttempts(), j.Priority())
	}
	if po := j.ProfileOptions(); po.SeverityThreshold != spec.DefaultSeverityThreshold || !slices.Equal(po.Profiles, []string{"pci-dss"}) {
		t.Errorf("profile options %+v", po)
	}
	if j.Metadata != nil || j.Image().Format != "" {
		t.Errorf("metadata %+v, format %q: want none", j.Metadata, j.Image().Format)
	}
}

func TestSpecsFileStore(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	planned, _, err := Specs("2026-03-02", objects("vms/a b#1.qcow2"), st, Options{Profiles: []string{"security"}, CreatedAt: created})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := planned[0].Job.Image().URI, "file://"+dir+"/vms/a b%231.qcow2"; got != want {
		t.Errorf("uri %q, want %q", got, want)
	}
}

var jobIDSyntax = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func TestJobID(t *testing.T) {
	long := strings.Repeat("x", 900) + "/the-file-name.qcow2"
	tests := []struct {
		key, readable string
	}{
		{"web-01.qcow2", "web-01.qcow2"},
		{"vms/prod/db_01.img", "vms_prod_db_01.img"},
		{"vms/a b  c.raw", "vms_a_b_c.raw"},
		{"vms/ünïcödé.vmdk", "vms_n_c_d_.vmdk"},
		{"日本語", ""},
		{"--.hidden-ish", "hidden-ish"},
		{"../../etc/passwd", "etc_passwd"},
		{"a/./b", "a_._b"},
		{"x|y;z$(rm -rf)`", "x_y_z_rm_-rf"},
		{long, strings.Repeat("x", 80) + "_the-file-name.qcow2"},
	}
	for _, tc := range tests {
		id := jobID("2026-03-02", tc.key)
		want := "sweep-2026-03-02-" + tc.readable + "-" + hash10(tc.key)
		if tc.readable == "" {
			want = "sweep-2026-03-02-" + hash10(tc.key)
		}
		if id != want {
			t.Errorf("jobID(%q) = %q, want %q", tc.key, id, want)
		}
		if len(id) > 128 || !jobIDSyntax.MatchString(id) {
			t.Errorf("jobID(%q) = %q: not a job_id", tc.key, id)
		}
		if again := jobID("2026-03-02", tc.key); again != id {
			t.Errorf("jobID(%q) not deterministic: %q then %q", tc.key, id, again)
		}
	}
	if got := len(jobID("2026-03-02", long)); got != 128 {
		t.Errorf("long key: job_id of %d characters, want the 128 maximum", got)
	}
	// Keys that sanitize alike still get their own job_id.
	if a, b := jobID("2026-03-02", "a b.img"), jobID("2026-03-02", "a_b.img"); a == b {
		t.Errorf("a b.img and a_b.img share job_id %q", a)
	}
	if a, b := jobID("2026-03-02", "a.img"), jobID("2026-03-03", "a.img"); a == b {
		t.Errorf("two nights share job_id %q", a)
	}
}

// Keys that store.ValidateKey accepts but that stress the spec: each ends
// planned with a valid spec, or skipped with the reason.
func TestSpecsNastyKeys(t *testing.T) {
	long := "vms/" + strings.Repeat("ü", 400) + ".qcow2" // 807 bytes
	nbsp := "vms/a\u00a0b.img"
	bidi := "vms/evil\u202egpj.img"
	keys := []string{long, nbsp, bidi, "vms/50%?#x.img", "vms/ends.with.dot.", "vms/-dash.img"}
	planned, skipped, err := Specs("2026-03-02", objects(keys...), bucket(t), Options{Profiles: []string{"security"}, CreatedAt: created})
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || skipped[0].Key != bidi || !strings.HasPrefix(skipped[0].Reason, "cannot be named in a job spec: ") ||
		!strings.Contains(skipped[0].Reason, "payload.data.image.uri") {
		t.Errorf("skipped %q: want only %q, for its image uri", skipped, bidi)
	}
	ik := map[string]string{}
	for _, p := range planned {
		if err := p.Job.Validate(); err != nil {
			t.Errorf("%q: %v", p.ImageKey, err)
		}
		if !jobIDSyntax.MatchString(p.Job.JobID) {
			t.Errorf("%q: job_id %q", p.ImageKey, p.Job.JobID)
		}
		if err := store.ValidateKey(p.SpecKey); err != nil {
			t.Errorf("%q: spec key: %v", p.ImageKey, err)
		}
		ik[p.ImageKey] = p.Job.Execution.IdempotencyKey
	}
	if len(planned) != len(keys)-1 {
		t.Fatalf("planned %d of %d", len(planned), len(keys)-1)
	}
	sum := func(k string) string { s := sha256.Sum256([]byte(k)); return hex.EncodeToString(s[:]) }
	for key, want := range map[string]string{
		long:             "sweep/2026-03-02/sha256:" + sum(long), // over 253 bytes
		nbsp:             "sweep/2026-03-02/sha256:" + sum(nbsp), // not printable
		"vms/50%?#x.img": "sweep/2026-03-02/vms/50%?#x.img",
	} {
		if ik[key] != want {
			t.Errorf("%q: idempotency_key %q, want %q", key, ik[key], want)
		}
	}
}

func TestSkipReason(t *testing.T) {
	images := []string{
		"a.qcow2", "a.img", "a.raw", "a.vmdk", "a.vdi", "a.vhdx", "a.vhd", "noext", "dir.json/disk",
		"a.json.qcow2", "disk.iso", "disk.qcow2.xz", "README", "sha256sums.img",
	}
	for _, k := range images {
		if why := skipReason(k); why != "" {
			t.Errorf("skipReason(%q) = %q, want an image", k, why)
		}
	}
	notImages := map[string]string{
		"a/":                "folder marker (key ends in /)",
		"a.qcow2.sha256":    "sidecar file (.sha256), not a disk image",
		"a.qcow2.SHA256":    "sidecar file (.sha256), not a disk image",
		"a.sha256sum":       "sidecar file (.sha256sum), not a disk image",
		"a.md5":             "sidecar file (.md5), not a disk image",
		"a.qcow2.sig":       "sidecar file (.sig), not a disk image",
		"vm.ovf":            "sidecar file (.ovf), not a disk image",
		"domain.xml":        "sidecar file (.xml), not a disk image",
		"a.yaml":            "sidecar file (.yaml), not a disk image",
		"upload.qcow2.part": "sidecar file (.part), not a disk image",
		"x/.keep":           "hidden file",
		"x/MD5SUMS":         "checksum list, not a disk image",
		"x/sha512sums":      "checksum list, not a disk image",
	}
	for k, want := range notImages {
		if got := skipReason(k); got != want {
			t.Errorf("skipReason(%q) = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"a//b.img", "a/../b.img", "/abs.img"} {
		if got := skipReason(k); !strings.HasPrefix(got, "invalid object key") {
			t.Errorf("skipReason(%q) = %q, want an invalid key", k, got)
		}
	}
}

func TestSpecsErrors(t *testing.T) {
	ok := Options{Profiles: []string{"security"}, CreatedAt: created}
	eleven := 11
	tests := []struct {
		name   string
		date   string
		images []string
		change func(*Options)
		want   string
	}{
		{"short month", "2026-3-02", nil, nil, `sweep date "2026-3-02": want YYYY-MM-DD`},
		{"no such day", "2026-02-30", nil, nil, `sweep date "2026-02-30": want YYYY-MM-DD`},
		{"time", "2026-03-02T00:00:00Z", nil, nil, `want YYYY-MM-DD`},
		{"no clock", "2026-03-02", nil, func(o *Options) { o.CreatedAt = time.Time{} }, "CreatedAt is required"},
		{"no profiles", "2026-03-02", nil, func(o *Options) { o.Profiles = nil }, "no profiles"},
		{"unknown profile", "2026-03-02", nil, func(o *Options) { o.Profiles = []string{"security", "stig"} }, `unknown profile "stig" (known: ` + strings.Join(spec.KnownProfiles(), ", ") + `)`},
		{"duplicate profile", "2026-03-02", nil, func(o *Options) { o.Profiles = []string{"security", "security"} }, `profile "security" listed twice`},
		{"fractional timeout", "2026-03-02", nil, func(o *Options) { o.Timeout = 1500 * time.Millisecond }, "timeout 1.5s is not a whole number of seconds"},
		{"threshold", "2026-03-02", nil, func(o *Options) { o.SeverityThreshold = "severe" }, `payload.data.options.severity_threshold "severe": must be one of`},
		{"priority", "2026-03-02", nil, func(o *Options) { o.Priority = &eleven }, `execution.priority "11"`},
		{"label", "2026-03-02", nil, func(o *Options) { o.Labels = map[string]string{"team": "a b"} }, `metadata.labels.team "a b"`},
		{"duplicate image", "2026-03-02", []string{"a.img", "b.img", "a.img"}, nil, `image "a.img" is listed twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			if tc.change != nil {
				tc.change(&o)
			}
			_, _, err := Specs(tc.date, objects(tc.images...), bucket(t), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
