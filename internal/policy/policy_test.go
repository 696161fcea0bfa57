package policy_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"guestkit.io/batch/internal/policy"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/spec/spectest"
)

func mustPolicy(t *testing.T, cfg policy.Config) *policy.Policy {
	t.Helper()
	p, err := policy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAdmitImages(t *testing.T) {
	home := "s3://guestkit?endpoint=http://minio:9000&path-style=true"
	closed := policy.Config{Home: home}
	open := policy.Config{Home: home, Buckets: []string{"s3://vm-images/prod/", "minio://other"},
		HTTPHosts: []string{"images.example.com", "mirror.example.com:8443"}, HostPathRoots: []string{"/srv/images"},
		PVCs: []string{"vm-disks"}}
	for _, tt := range []struct {
		name string
		cfg  policy.Config
		job  *spec.Job
		// want: the admitted kind, bucket and key; or rule, the refusing rule.
		kind        spec.ImageKind
		bucket, key string
		rule        string
	}{
		{name: "a key of the home bucket", cfg: closed, job: spectest.Inspect("a", "images/web01.qcow2"),
			kind: spec.ImageBucket, bucket: "s3://guestkit", key: "images/web01.qcow2"},
		{name: "the home bucket by URI", cfg: closed, job: spectest.Inspect("a", "s3://guestkit/images/db/x.qcow2"),
			kind: spec.ImageBucket, bucket: "s3://guestkit", key: "images/db/x.qcow2"},
		{name: "a key of the home bucket outside images/", cfg: closed, job: spectest.Inspect("a", "results/x.json"), rule: "allowed buckets"},
		{name: "the home bucket outside images/", cfg: closed, job: spectest.Inspect("a", "s3://guestkit/jobs/other.json"), rule: "allowed buckets"},
		{name: "another bucket", cfg: closed, job: spectest.Inspect("a", "s3://other-bucket/images/x.qcow2"), rule: "allowed buckets"},
		{name: "the home bucket's name on another backend", cfg: closed, job: spectest.Inspect("a", "minio://guestkit/images/x.qcow2"), rule: "allowed buckets"},
		{name: "http", cfg: closed, job: spectest.Inspect("a", "http://169.254.169.254/latest/meta-data/"), rule: "allowed http hosts"},
		{name: "a path", cfg: closed, job: spectest.Inspect("a", "/etc/shadow"), rule: "host path roots"},
		{name: "file://", cfg: closed, job: spectest.Inspect("a", "file:///etc/shadow"), rule: "host path roots"},
		{name: "a claim", cfg: closed, job: spectest.Inspect("a", "pvc://any-claim/x.qcow2"), rule: "allowed claims"},

		{name: "an allowed prefix", cfg: open, job: spectest.Inspect("a", "s3://vm-images/prod/web.qcow2"),
			kind: spec.ImageBucket, bucket: "s3://vm-images", key: "prod/web.qcow2"},
		{name: "beside an allowed prefix", cfg: open, job: spectest.Inspect("a", "s3://vm-images/production/web.qcow2"), rule: "allowed buckets"},
		{name: "a whole allowed bucket", cfg: open, job: spectest.Inspect("a", "minio://other/any/x.raw"),
			kind: spec.ImageBucket, bucket: "minio://other", key: "any/x.raw"},
		{name: "home's images/ no longer implied", cfg: open, job: spectest.Inspect("a", "images/x.qcow2"), rule: "allowed buckets"},
		{name: "an allowed host", cfg: open, job: spectest.Inspect("a", "https://images.example.com/x.qcow2"), kind: spec.ImageHTTP},
		{name: "an allowed host and port", cfg: open, job: spectest.Inspect("a", "https://mirror.example.com:8443/x.qcow2"), kind: spec.ImageHTTP},
		{name: "the allowed host on another port", cfg: open, job: spectest.Inspect("a", "https://mirror.example.com:9443/x.qcow2"), rule: "allowed http hosts"},
		{name: "a host that ends like an allowed one", cfg: open, job: spectest.Inspect("a", "https://evilimages.example.com/x.qcow2"), rule: "allowed http hosts"},
		{name: "a path under a root", cfg: open, job: spectest.Inspect("a", "/srv/images/web.qcow2"), kind: spec.ImageHostPath},
		{name: "a path beside a root", cfg: open, job: spectest.Inspect("a", "/srv/images-old/web.qcow2"), rule: "host path roots"},
		{name: "an allowed claim", cfg: open, job: spectest.Inspect("a", "pvc://vm-disks/web.qcow2"), kind: spec.ImagePVC},
		{name: "another claim", cfg: open, job: spectest.Inspect("a", "pvc://secrets/x"), rule: "allowed claims"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := mustPolicy(t, tt.cfg).Admit("jobs/a.json", tt.job)
			if tt.rule != "" {
				var r *spec.Refused
				if !errors.As(err, &r) || r.Rule != tt.rule || r.Field == "" {
					t.Fatalf("Admit = %+v, %v; want refused by %q", a, err, tt.rule)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Image.Kind != tt.kind || a.Image.Bucket != tt.bucket || a.Image.Key != tt.key {
				t.Errorf("image %+v, want %s %q %q", a.Image, tt.kind, tt.bucket, tt.key)
			}
		})
	}
}

// A refusal says which rule and field, and nothing about the target: the
// operator's roots and buckets are not listed either.
func TestRefusalSaysNothingAboutTheTarget(t *testing.T) {
	p := mustPolicy(t, policy.Config{Home: "s3://guestkit", HostPathRoots: []string{"/srv/secret-layout"}})
	for _, j := range []*spec.Job{
		spectest.Inspect("a", "/etc/shadow"),
		spectest.Inspect("a", "s3://other/x"),
		spectest.Inspect("a", "https://10.0.0.1/x"),
	} {
		_, err := p.Admit("jobs/a.json", j)
		if err == nil {
			t.Fatalf("%s admitted", j.Image().Location())
		}
		for _, leak := range []string{"secret-layout", "guestkit", "exist", "bytes", "size"} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("%v mentions %q", err, leak)
			}
		}
	}
}

func TestFolderBucketImages(t *testing.T) {
	dir := t.TempDir()
	local := mustPolicy(t, policy.Config{Home: dir, LocalFolder: true})
	a, err := local.Admit("jobs/a.json", spectest.Inspect("a", "images/web.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Image.Kind != spec.ImageHostPath || a.Image.LocalPath != dir+"/images/web.qcow2" {
		t.Errorf("a key of a folder bucket: %+v, want the file under its images/", a.Image)
	}
	if _, err := local.Admit("jobs/a.json", spectest.Inspect("a", dir+"/images/x/web.qcow2")); err != nil {
		t.Errorf("a path under the folder's images/: %v", err)
	}
	for _, img := range []string{"/etc/shadow", dir + "/jobs/other.json", "results/x.json", "file://" + dir + "/secrets/key"} {
		if _, err := local.Admit("jobs/a.json", spectest.Inspect("a", img)); err == nil {
			t.Errorf("%s admitted", img)
		}
	}
	// A folder bucket run on Kubernetes has no host path by default.
	kube := mustPolicy(t, policy.Config{Home: dir})
	if _, err := kube.Admit("jobs/a.json", spectest.Inspect("a", "images/web.qcow2")); err == nil {
		t.Error("a folder key admitted without LocalFolder")
	}
}

func TestCeilings(t *testing.T) {
	p := mustPolicy(t, policy.Config{Home: "s3://guestkit", MaxAttempts: 3, MaxTimeout: time.Hour, MaxPriority: 6})
	ok := spectest.Inspect("a", "images/x.qcow2", spectest.WithAttempts(3), spectest.WithTimeout(3600), spectest.WithPriority(6))
	if a, err := p.Admit("jobs/a.json", ok); err != nil || a.Priority != 6 || len(a.Warnings) != 0 {
		t.Errorf("at the ceilings: %+v, %v", a, err)
	}
	for _, tt := range []struct {
		job        *spec.Job
		field, val string
	}{
		{spectest.Inspect("a", "images/x.qcow2", spectest.WithAttempts(100)), "execution.max_attempts", "100"},
		{spectest.Inspect("a", "images/x.qcow2", spectest.WithTimeout(7*24*3600)), "execution.timeout_seconds", "604800"},
	} {
		_, err := p.Admit("jobs/a.json", tt.job)
		var r *spec.Refused
		if !errors.As(err, &r) || r.Field != tt.field || r.Value != tt.val || r.Rule == "" {
			t.Errorf("%s %s: %v, want refused", tt.field, tt.val, err)
		}
	}
	a, err := p.Admit("jobs/a.json", spectest.Inspect("a", "images/x.qcow2", spectest.WithPriority(10)))
	if err != nil || a.Priority != 6 || len(a.Warnings) != 1 || !strings.Contains(a.Warnings[0], "priority 10 lowered") {
		t.Errorf("priority 10: %+v, %v; want lowered to 6 with a warning", a, err)
	}
	// The defaults: 5 attempts, 24 h.
	d := mustPolicy(t, policy.Config{Home: "s3://guestkit"})
	if _, err := d.Admit("jobs/a.json", spectest.Inspect("a", "images/x.qcow2", spectest.WithAttempts(6))); err == nil {
		t.Error("6 attempts admitted by default")
	}
	if _, err := d.Admit("jobs/a.json", spectest.Inspect("a", "images/x.qcow2", spectest.WithTimeout(24*3600))); err != nil {
		t.Errorf("24 h refused by default: %v", err)
	}
}

func TestReservedJobIDs(t *testing.T) {
	p := mustPolicy(t, policy.Config{Home: "s3://guestkit"})
	j := spectest.Inspect("sweep-2026-03-02-web-0123456789", "images/x.qcow2")
	if _, err := p.Admit("jobs/sweeps/2026-03-02/x.json", j); err == nil {
		t.Error("a sweep job_id under jobs/ admitted")
	}
	if _, err := p.Admit("sweeps/jobs/2026-03-02/x.json", j); err != nil {
		t.Errorf("the dispatcher's own sweep spec refused: %v", err)
	}
}

func TestMetadataAndTenants(t *testing.T) {
	p := mustPolicy(t, policy.Config{Home: "s3://guestkit", LabelKeys: []string{"team"}, AnnotationKeys: []string{"example.com/ticket"}})
	j := spectest.Inspect("a", "images/x.qcow2",
		spectest.WithLabels(map[string]string{"team": "sec", "sidecar.istio.io/inject": "false"}),
		spectest.WithAnnotations(map[string]string{"example.com/ticket": "T-1", "iam.amazonaws.com/role": "admin"}))
	a, err := p.Admit("jobs/team-a/x.json", j)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Labels) != 1 || a.Labels["team"] != "sec" || len(a.Annotations) != 1 || a.Annotations["example.com/ticket"] != "T-1" {
		t.Errorf("labels %v, annotations %v: want only the allowed keys", a.Labels, a.Annotations)
	}
	for key, want := range map[string]string{
		"jobs/team-a/x.json": "team-a", "jobs/team-a/deep/x.json": "team-a", "jobs/x.json": "", "sweeps/jobs/2026-03-02/x.json": "sweeps",
	} {
		if got := policy.TenantOf(key); got != want {
			t.Errorf("TenantOf(%s) = %q, want %q", key, got, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []policy.Config{
		{},
		{Home: "s3://guestkit", Buckets: []string{"ftp://x/"}},
		{Home: "s3://guestkit", Buckets: []string{"/local/folder"}},
		{Home: "s3://guestkit", HostPathRoots: []string{"relative"}},
		{Home: "s3://guestkit", HostPathRoots: []string{"/"}},
		{Home: "s3://guestkit", HTTPHosts: []string{"http://x/"}},
		{Home: "s3://guestkit", MaxAttempts: -1},
	} {
		if _, err := policy.New(cfg); err == nil {
			t.Errorf("policy.New(%+v) accepted", cfg)
		}
	}
}
