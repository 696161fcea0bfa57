package kubejob

import (
	"fmt"
	"guestkit.io/batch/internal/spec/spectest"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"guestkit.io/batch/internal/spec"
)

var nameRE = regexp.MustCompile(`^gk-(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-)?[0-9a-f]{10}$`)

func TestJobName(t *testing.T) {
	long := strings.Repeat("abcdefghij", 20) // 200 characters
	tests := []struct {
		name     string
		job      *spec.Job
		readable string // the part between "gk-" and the hash
	}{
		{"plain", spectest.New("inspect-web-01", "s3://vm-images/k"), "inspect-web-01"},
		{"upper and underscore", spectest.New("A_B", "s3://vm-images/k"), "a-b"},
		{"dots and runs", spectest.New("web..01__x.qcow2", "s3://vm-images/k"), "web-01-x-qcow2"},
		{"leading digits", spectest.New("2024-06-01.scan", "s3://vm-images/k"), "2024-06-01-scan"},
		{"leading dot and dash", spectest.New("._-x", "s3://vm-images/k"), "x"},
		{"long", spectest.New(long, "s3://vm-images/k"), long[:49]},
		{"idempotency key wins", spectest.New("job-1", "s3://vm-images/k", spectest.WithKey("Tenant/ABC:42")), "tenant-abc-42"},
		{"unicode key", spectest.New("job-1", "s3://vm-images/k", spectest.WithKey("café-éé-日本")), "caf"},
		{"nothing readable", spectest.New("job-1", "s3://vm-images/k", spectest.WithKey("日本語")), ""},
		{"long key with separators at the cut", spectest.New("j", "s3://vm-images/k", spectest.WithKey(strings.Repeat("a", 48)+"__b")), strings.Repeat("a", 48)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := JobName(tt.job)
			if !nameRE.MatchString(got) || len(got) > 63 {
				t.Fatalf("JobName = %q: not gk-READABLE-HASH10 within 63 characters", got)
			}
			if msgs := validation.IsDNS1123Label(got); len(msgs) > 0 {
				t.Fatalf("JobName = %q: %v", got, msgs)
			}
			want := "gk-" + tt.readable + "-"
			if tt.readable == "" {
				want = "gk-"
			}
			if r := got[:len(got)-10]; r != want {
				t.Errorf("JobName = %q, readable part %q, want %q", got, r, want)
			}
			if again := JobName(tt.job); again != got {
				t.Errorf("JobName not deterministic: %q then %q", got, again)
			}
		})
	}
}

func TestJobNameDistinct(t *testing.T) {
	long := strings.Repeat("x", 150)
	// Each pair sanitizes or truncates to the same readable part.
	pairs := [][2]*spec.Job{
		{spectest.New("A_B", "s3://vm-images/k"), spectest.New("a-b", "s3://vm-images/k")},
		{spectest.New("a.b", "s3://vm-images/k"), spectest.New("a_b", "s3://vm-images/k")},
		{spectest.New(long+"1", "s3://vm-images/k"), spectest.New(long+"2", "s3://vm-images/k")},
		{spectest.New("j", "s3://vm-images/k", spectest.WithKey("clé")), spectest.New("j", "s3://vm-images/k", spectest.WithKey("clè"))},
		// The same string as a job_id and as someone else's idempotency key.
		{spectest.New("shared", "s3://vm-images/k"), spectest.New("other", "s3://vm-images/k", spectest.WithKey("shared"))},
	}
	for _, p := range pairs {
		a, b := JobName(p[0]), JobName(p[1])
		if a == b {
			t.Errorf("%q and %q both named %q", identityOf(p[0]), identityOf(p[1]), a)
		}
		if a[:len(a)-10] != b[:len(b)-10] {
			t.Errorf("test pair should share a readable part: %q, %q", a, b)
		}
	}
}

// The hashing is part of the contract: a dispatcher upgrade must find the
// Jobs the previous version created.
func TestJobNameGolden(t *testing.T) {
	// printf 'job_id\0inspect-web-01' | sha256sum | cut -c1-10
	if got := JobName(spectest.New("inspect-web-01", "s3://vm-images/k")); got != "gk-inspect-web-01-ae976fc145" {
		t.Errorf("JobName = %q", got)
	}
	// printf 'idempotency_key\0order-77' | sha256sum | cut -c1-10
	if got := JobName(spectest.New("x", "s3://vm-images/k", spectest.WithKey("order-77"))); got != "gk-order-77-e9e5fc186b" {
		t.Errorf("JobName = %q", got)
	}
}

func TestJobNameSameKeySameName(t *testing.T) {
	// Two submissions of the same work: different job_ids, same key.
	a := spectest.New("retry-1", "s3://vm-images/k", spectest.WithKey("order-77"))
	b := spectest.New("retry-2", "s3://b/other", spectest.WithKey("order-77"))
	if JobName(a) != JobName(b) {
		t.Errorf("same idempotency key, names %q and %q", JobName(a), JobName(b))
	}
}

func TestJobNameNoCollisionsAtScale(t *testing.T) {
	seen := map[string]string{}
	for i := range 20000 {
		id := fmt.Sprintf("Job_%d", i)
		n := JobName(spectest.New(id, "s3://vm-images/k"))
		if prev, ok := seen[n]; ok {
			t.Fatalf("%s and %s both named %s", prev, id, n)
		}
		seen[n] = id
	}
}

func identityOf(j *spec.Job) string {
	k, v := identity(j)
	return k + "=" + v
}

func TestLabelValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"guestkit.inspect", "guestkit.inspect"},
		{"v1.2.3", "v1.2.3"},
		{"", ""},
		{"v1.2.3+build.5", "v1-2-3-build-5-"}, // then a hash
		{strings.Repeat("a", 70), strings.Repeat("a", 52) + "-"},
		{"日本", ""}, // hash only
	}
	for _, tt := range tests {
		got := labelValue(tt.in)
		if msgs := validation.IsValidLabelValue(got); len(msgs) > 0 {
			t.Errorf("labelValue(%q) = %q: %v", tt.in, got, msgs)
		}
		if tt.want == tt.in {
			if got != tt.in {
				t.Errorf("labelValue(%q) = %q, want it unchanged", tt.in, got)
			}
			continue
		}
		if !strings.HasPrefix(got, tt.want) || len(got) != len(tt.want)+10 {
			t.Errorf("labelValue(%q) = %q, want %q and 10 hex digits", tt.in, got, tt.want)
		}
	}
	if labelValue("a+b") == labelValue("a b") {
		t.Errorf("labelValue collides for a+b and a b")
	}
}

func TestJobIDHash(t *testing.T) {
	h := JobIDHash("inspect-web-01")
	if len(h) != 32 || len(validation.IsValidLabelValue(h)) > 0 {
		t.Errorf("JobIDHash = %q", h)
	}
	// echo -n inspect-web-01 | sha256sum | cut -c1-32
	if h != "dbb430fc9b697897587b81ae65ef66dd" {
		t.Errorf("JobIDHash(inspect-web-01) = %s", h)
	}
	if JobIDHash("a") == JobIDHash("A") {
		t.Errorf("JobIDHash is case-insensitive")
	}
}

func TestReservedKey(t *testing.T) {
	for k, want := range map[string]bool{
		"team":                         false,
		"example.com/owner":            false,
		"app.kubernetes.io/part-of":    false,
		"app.kubernetes.io/name":       false, // copied, then overwritten
		"guestkit.io/job-id":           true,
		"sub.guestkit.io/x":            true,
		"batch.kubernetes.io/job-name": true,
		"kubernetes.io/hostname":       true,
		"node.k8s.io/x":                true,
		"controller-uid":               true,
		"job-name":                     true,
		"notguestkit.io/x":             false,
	} {
		if got := reservedKey(k); got != want {
			t.Errorf("reservedKey(%q) = %v, want %v", k, got, want)
		}
	}
}
