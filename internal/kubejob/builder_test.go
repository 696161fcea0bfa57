package kubejob

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/policy"
	"guestkit.io/batch/internal/spec/spectest"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/templates"
)

func TestNewJobDefaults(t *testing.T) {
	b := mustBuilder(t, BuilderConfig{Version: "1.2.3"})
	j := spectest.New("inspect-web-01", "s3://vm-images/web-01.qcow2")
	in := input(j)
	job, err := b.NewJob(in)
	if err != nil {
		t.Fatal(err)
	}

	if job.Name != "gk-inspect-web-01-ae976fc145" || job.Namespace != "guestkit" {
		t.Errorf("name %s/%s", job.Namespace, job.Name)
	}
	wantLabels := map[string]string{
		"app.kubernetes.io/name":       "guestkit-runner",
		"app.kubernetes.io/component":  "runner",
		"app.kubernetes.io/managed-by": "guestkit-dispatcher",
		"app.kubernetes.io/instance":   "guestkit",
		"app.kubernetes.io/version":    "1.2.3",
		"guestkit.io/job-id-hash":      "dbb430fc9b697897587b81ae65ef66dd",
		"guestkit.io/operation":        "guestkit.inspect",
	}
	wantAnnotations := map[string]string{
		"guestkit.io/job-id":      "inspect-web-01",
		"guestkit.io/bucket":      "s3://jobs",
		"guestkit.io/spec-key":    "specs/inspect-web-01.json",
		"guestkit.io/result-key":  "results/inspect-web-01.json",
		"guestkit.io/spec-digest": j.Digest(),
	}
	for what, got := range map[string]map[string]string{"Job labels": job.Labels, "pod labels": job.Spec.Template.Labels} {
		if !maps.Equal(got, wantLabels) {
			t.Errorf("%s = %v, want %v", what, got, wantLabels)
		}
	}
	for what, got := range map[string]map[string]string{"Job annotations": job.Annotations, "pod annotations": job.Spec.Template.Annotations} {
		if !maps.Equal(got, wantAnnotations) {
			t.Errorf("%s = %v, want %v", what, got, wantAnnotations)
		}
	}
	if !strings.HasPrefix(j.Digest(), "sha256:") {
		t.Errorf("digest %q", j.Digest())
	}

	s := job.Spec
	// 3 attempts (the default) of 3600s + 600s grace, 10s+20s back-off, 900s scheduling.
	if *s.BackoffLimit != 2 || *s.ActiveDeadlineSeconds != 3*4200+30+900 || *s.Template.Spec.ActiveDeadlineSeconds != 4200 || *s.TTLSecondsAfterFinished != 86400 {
		t.Errorf("backoffLimit %d, activeDeadlineSeconds %d, pod %d, ttl %d", *s.BackoffLimit, *s.ActiveDeadlineSeconds, *s.Template.Spec.ActiveDeadlineSeconds, *s.TTLSecondsAfterFinished)
	}
	wantPolicy := &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{
			{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}},
		{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
			ContainerName: ptr("runner"), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{2, 3, 4, 64}}},
	}}
	if !reflect.DeepEqual(s.PodFailurePolicy, wantPolicy) {
		t.Errorf("podFailurePolicy = %+v", s.PodFailurePolicy)
	}

	ps := s.Template.Spec
	if ps.RestartPolicy != corev1.RestartPolicyNever || *ps.AutomountServiceAccountToken || *ps.EnableServiceLinks || ps.ServiceAccountName != "" {
		t.Errorf("restartPolicy %s, automount %v, service links %v, service account %q", ps.RestartPolicy, *ps.AutomountServiceAccountToken, *ps.EnableServiceLinks, ps.ServiceAccountName)
	}
	if !maps.Equal(ps.NodeSelector, map[string]string{"guestkit.io/disk-access": "true"}) || ps.Tolerations != nil || ps.ImagePullSecrets != nil {
		t.Errorf("nodeSelector %v, tolerations %v, pull secrets %v", ps.NodeSelector, ps.Tolerations, ps.ImagePullSecrets)
	}
	wantPodSC := &corev1.PodSecurityContext{
		RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(65532)), RunAsGroup: ptr(int64(65532)),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if !reflect.DeepEqual(ps.SecurityContext, wantPodSC) {
		t.Errorf("pod securityContext = %+v", ps.SecurityContext)
	}
	if len(ps.Containers) != 1 || len(ps.InitContainers) != 0 {
		t.Errorf("%d containers, %d init containers", len(ps.Containers), len(ps.InitContainers))
	}
	c := runner(t, job)
	wantSC := &corev1.SecurityContext{
		Privileged: ptr(false), AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	if !reflect.DeepEqual(c.SecurityContext, wantSC) {
		t.Errorf("container securityContext = %+v", c.SecurityContext)
	}
	if c.Image != "registry.example/guestkit-runner:1.2.3" || c.ImagePullPolicy != corev1.PullIfNotPresent ||
		!reflect.DeepEqual(c.Command, []string{"guestkit-runner"}) || !reflect.DeepEqual(c.Args, []string{"run"}) ||
		c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("image %s %s, command %v %v, termination message %s", c.Image, c.ImagePullPolicy, c.Command, c.Args, c.TerminationMessagePolicy)
	}
	wantEnv := map[string]string{
		"GUESTKIT_SPEC":           in.SpecURI,
		"GUESTKIT_RESULT":         in.ResultURI,
		"GUESTKIT_JOB_ID":         "inspect-web-01",
		"GUESTKIT_ACCEL":          "auto",
		"GUESTKIT_BACKEND":        "auto",
		"GUESTKIT_IMAGE_ACCESS":   "auto",
		"GUESTKIT_VERIFY":         "auto",
		"GUESTKIT_DOWNLOAD_LIMIT": "-1",
		"GUESTKIT_SCRATCH_DIR":    "/tmp",
		"GUESTKIT_NET_GUARD":      "true",
		"GUESTKIT_NET_ALLOW":      "",
		"TMPDIR":                  "/tmp",
		"HOME":                    "/tmp",
		"LIBGUESTFS_CACHEDIR":     "/var/tmp",
		"LIBGUESTFS_BACKEND":      "direct",
		"POD_NAME":                "fieldRef:metadata.name",
		"POD_NAMESPACE":           "fieldRef:metadata.namespace",
		"NODE_NAME":               "fieldRef:spec.nodeName",
		"JOB_NAME":                "fieldRef:metadata.labels['batch.kubernetes.io/job-name']",
	}
	if got := envOf(c); !maps.Equal(got, wantEnv) || len(c.Env) != len(wantEnv) {
		t.Errorf("env = %v\nwant %v", got, wantEnv)
	}
	if c.EnvFrom != nil {
		t.Errorf("envFrom = %v", c.EnvFrom)
	}
	wantRes := DefaultResources()
	if !reflect.DeepEqual(c.Resources, wantRes) {
		t.Errorf("resources = %v", c.Resources)
	}
	wantMounts := []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}, {Name: "var-tmp", MountPath: "/var/tmp"}}
	if !reflect.DeepEqual(c.VolumeMounts, wantMounts) {
		t.Errorf("mounts = %+v", c.VolumeMounts)
	}
	wantVolumes := []corev1.Volume{
		// A streamed image needs no room for a copy of itself.
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: resource.NewQuantity(ScratchBase, resource.BinarySI)}}},
		{Name: "var-tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	if !reflect.DeepEqual(ps.Volumes, wantVolumes) {
		t.Errorf("volumes = %+v", ps.Volumes)
	}
}

func TestNewJobDigestOfParsedSpec(t *testing.T) {
	doc := `{"version":"1.0","job_id":"p1","operation":"guestkit.profile","x-extra":1,
	  "payload":{"type":"guestkit.profile.v1","data":{"image":{"uri":"s3://vm-images/k.qcow2"},"profiles":["security"]}}}`
	j, _, err := spec.Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	job, err := mustBuilder(t, BuilderConfig{}).NewJob(input(j))
	if err != nil {
		t.Fatal(err)
	}
	if got := job.Annotations[AnnotationSpecDigest]; got != j.Digest() || got == "" {
		t.Errorf("digest annotation %q, want %q", got, j.Digest())
	}
	if got := job.Labels[LabelOperation]; got != "guestkit.profile" {
		t.Errorf("operation label %q", got)
	}
}

func TestNewJobImageSources(t *testing.T) {
	rro := ptr(corev1.RecursiveReadOnlyIfPossible)
	dir := ptr(corev1.HostPathDirectory)
	tests := []struct {
		name      string
		job       *spec.Job
		kind      spec.ImageKind
		image     string // GUESTKIT_IMAGE
		volume    *corev1.Volume
		mountPath string
	}{
		{name: "s3", job: spectest.New("a", "s3://vm-images/a.qcow2"), kind: spec.ImageBucket},
		{name: "minio", job: spectest.New("a", "minio://vm-images/dir/a.raw"), kind: spec.ImageBucket},
		{name: "presigned https", job: spectest.New("a", "https://minio.example/vm-images/a.qcow2?X-Amz-Signature=x"), kind: spec.ImageHTTP},
		{
			name: "pvc", job: spectest.New("a", "pvc://vm-disks/tenant-a/web.qcow2"), kind: spec.ImagePVC,
			image:     "/images/vm-disks/tenant-a/web.qcow2",
			volume:    &corev1.Volume{Name: "image", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "vm-disks", ReadOnly: true}}},
			mountPath: "/images/vm-disks",
		},
		{
			name: "pvc with a dotted claim", job: spectest.New("a", "pvc://disks.v2/web.qcow2"), kind: spec.ImagePVC,
			image:     "/images/disks.v2/web.qcow2",
			volume:    &corev1.Volume{Name: "image", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "disks.v2", ReadOnly: true}}},
			mountPath: "/images/disks.v2",
		},
		{
			name: "path under a root", job: spectest.New("a", "", spectest.WithPath("/srv/images/tenant/web.qcow2")), kind: spec.ImageHostPath,
			image:     "/srv/images/tenant/web.qcow2",
			volume:    &corev1.Volume{Name: "image", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv/images", Type: dir}}},
			mountPath: "/srv/images",
		},
		{
			name: "path, the longest root", job: spectest.New("a", "", spectest.WithPath("/data/vm/nested/web.qcow2")), kind: spec.ImageHostPath,
			image:     "/data/vm/nested/web.qcow2",
			volume:    &corev1.Volume{Name: "image", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/data/vm/nested", Type: dir}}},
			mountPath: "/data/vm/nested",
		},
		{
			name: "path under disk_locality",
			job: spectest.New("a", "", spectest.WithPath("/srv/images/tenant/web.qcow2"),
				spectest.WithRouting(spec.Routing{Affinity: &spec.Affinity{DiskLocality: "/srv/images/tenant"}, NodeSelector: map[string]string{"kubernetes.io/hostname": "node-7"}})),
			kind:      spec.ImageHostPath,
			image:     "/srv/images/tenant/web.qcow2",
			volume:    &corev1.Volume{Name: "image", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv/images/tenant", Type: dir}}},
			mountPath: "/srv/images/tenant",
		},
		{
			name: "file URI", job: spectest.New("a", "file:///srv/images/web.raw"), kind: spec.ImageHostPath,
			image:     "/srv/images/web.raw",
			volume:    &corev1.Volume{Name: "image", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv/images", Type: dir}}},
			mountPath: "/srv/images",
		},
	}
	b := mustBuilder(t, BuilderConfig{HostPathRoots: []string{"/srv/images", "/data", "/data/vm/nested"}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := b.ImageSourceOf(tt.job)
			if err != nil {
				t.Fatal(err)
			}
			if src.Kind != tt.kind || src.LocalPath != tt.image || src.URI != tt.job.Image().Location() {
				t.Errorf("source %+v", src)
			}
			job, err := b.NewJob(input(tt.job))
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Check(input(tt.job)); err != nil {
				t.Errorf("Check = %v for a spec NewJob accepts", err)
			}
			c := runner(t, job)
			if got, ok := envOf(c)["GUESTKIT_IMAGE"]; got != tt.image || ok != (tt.image != "") {
				t.Errorf("GUESTKIT_IMAGE = %q (set %v), want %q", got, ok, tt.image)
			}
			vols := job.Spec.Template.Spec.Volumes
			mounts := c.VolumeMounts
			if tt.volume == nil {
				if len(vols) != 2 || len(mounts) != 2 {
					t.Errorf("extra volumes %+v, mounts %+v", vols, mounts)
				}
				return
			}
			if len(vols) != 3 || !reflect.DeepEqual(vols[2], *tt.volume) {
				t.Errorf("volumes = %+v\nwant the template's and %+v", vols, *tt.volume)
			}
			want := corev1.VolumeMount{Name: "image", MountPath: tt.mountPath, ReadOnly: true, RecursiveReadOnly: rro}
			if len(mounts) != 3 || !reflect.DeepEqual(mounts[2], want) {
				t.Errorf("mounts = %+v\nwant the template's and %+v", mounts, want)
			}
			if !strings.HasPrefix(tt.image, tt.mountPath+"/") {
				t.Errorf("test: image %s not under mount %s", tt.image, tt.mountPath)
			}
		})
	}
}

func TestNewJobSpecErrors(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		cfg   BuilderConfig
		job   *spec.Job
		now   time.Time
		field string // of the SpecError; "" for validation errors
		msg   string
	}{
		{name: "host paths disabled", job: spectest.New("a", "", spectest.WithPath("/srv/images/a.qcow2")),
			field: "payload.data.image.path", msg: "disabled"},
		{name: "file URI, host paths disabled", job: spectest.New("a", "file:///srv/images/a.qcow2"),
			field: "payload.data.image.uri", msg: "disabled"},
		{name: "path outside the roots", cfg: BuilderConfig{HostPathRoots: []string{"/srv/images"}},
			job: spectest.New("a", "", spectest.WithPath("/etc/shadow")), field: "payload.data.image.path", msg: "not under a host path root"},
		{name: "root prefix is not a parent", cfg: BuilderConfig{HostPathRoots: []string{"/srv/images"}},
			job: spectest.New("a", "", spectest.WithPath("/srv/images2/a.qcow2")), field: "payload.data.image.path", msg: "not under a host path root"},
		{name: "path outside disk_locality", cfg: BuilderConfig{HostPathRoots: []string{"/srv"}},
			job:   spectest.New("a", "", spectest.WithPath("/srv/b/a.qcow2"), spectest.WithRouting(spec.Routing{Affinity: &spec.Affinity{DiskLocality: "/srv/a"}})),
			field: "payload.data.image.path", msg: "not under routing.affinity.disk_locality /srv/a"},
		{name: "disk_locality outside the roots", cfg: BuilderConfig{HostPathRoots: []string{"/srv/images"}},
			job:   spectest.New("a", "", spectest.WithPath("/var/lib/a.qcow2"), spectest.WithRouting(spec.Routing{Affinity: &spec.Affinity{DiskLocality: "/var/lib"}})),
			field: "routing.affinity.disk_locality", msg: "not under a host path root"},
		{name: "worker pool not a label value", job: spectest.New("a", "s3://vm-images/k", spectest.WithRouting(spec.Routing{WorkerPool: "pool one"})),
			field: "routing.worker_pool", msg: "not usable as a node selector"},
		{name: "node selector overrides disk access", job: spectest.New("a", "s3://vm-images/k", spectest.WithRouting(spec.Routing{NodeSelector: map[string]string{"guestkit.io/disk-access": "false"}})),
			field: "routing.node_selector.guestkit.io/disk-access", msg: "conflicts with the node selector guestkit.io/disk-access=true"},
		{name: "other namespace", job: spectest.New("a", "s3://vm-images/k", func(j *spec.Job) { j.Metadata = &spec.Metadata{Namespace: "tenant-b"} }),
			field: "metadata.namespace", msg: "namespace guestkit"},
		{name: "deadline passed", job: spectest.New("a", "s3://vm-images/k", func(j *spec.Job) { spectest.Execution(j).Deadline = ptr(now.Add(-time.Second)) }), now: now,
			field: "execution.deadline", msg: "passed at dispatch"},
		{name: "invalid spec", job: spectest.New("a", "pvc://Bad_Claim/x"), msg: "payload.data.image.uri"},
		{name: "unsupported operation", job: spectest.New("a", "s3://vm-images/k", func(j *spec.Job) { j.Operation = "system.echo" }), msg: "unsupported operation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input(tt.job)
			in.Now = tt.now
			b := mustBuilder(t, tt.cfg)
			_, err := b.NewJob(in)
			// Check refuses exactly what NewJob refuses.
			if cerr := b.Check(in); cerr == nil || cerr.Error() != fmt.Sprint(err) {
				t.Errorf("Check = %v, want NewJob's %v", cerr, err)
			}
			var se *spec.Refused
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *spec.Refused", err)
			}
			if se.Field != tt.field || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v (field %q), want field %q and %q", err, se.Field, tt.field, tt.msg)
			}
			if tt.field == "" {
				var ve *spec.ValidationError
				if !errors.As(err, &ve) {
					t.Errorf("err = %v, want a *spec.ValidationError inside", err)
				}
			}
		})
	}
}

func TestNewJobCallerErrors(t *testing.T) {
	b := mustBuilder(t, BuilderConfig{})
	j := spectest.New("a", "s3://vm-images/k")
	for name, in := range map[string]JobInput{
		"no spec":       {SpecURI: "s3://b/s", ResultURI: "s3://b/r"},
		"no spec URI":   {Job: j, ResultURI: "s3://b/r"},
		"no result URI": {Job: j, SpecURI: "s3://b/s"},
	} {
		_, err := b.NewJob(in)
		var se *spec.Refused
		if err == nil || errors.As(err, &se) {
			t.Errorf("%s: err = %v, want a caller error", name, err)
		}
	}
}

func TestNewJobRoutingAndPlacement(t *testing.T) {
	tests := []struct {
		name string
		cfg  BuilderConfig
		job  *spec.Job
		want map[string]string
	}{
		{name: "default", job: spectest.New("a", "s3://vm-images/k"), want: map[string]string{"guestkit.io/disk-access": "true"}},
		{name: "any node", cfg: BuilderConfig{NodeSelector: map[string]string{}}, job: spectest.New("a", "s3://vm-images/k"), want: map[string]string{}},
		{name: "own disk access label", cfg: BuilderConfig{NodeSelector: map[string]string{"example.com/vm-disks": "yes"}},
			job: spectest.New("a", "s3://vm-images/k"), want: map[string]string{"example.com/vm-disks": "yes"}},
		{
			name: "worker pool and node selector",
			job:  spectest.New("a", "s3://vm-images/k", spectest.WithRouting(spec.Routing{WorkerPool: "fast-nvme", NodeSelector: map[string]string{"topology.kubernetes.io/zone": "eu-1a", "guestkit.io/disk-access": "true"}})),
			want: map[string]string{"guestkit.io/disk-access": "true", "guestkit.io/worker-pool": "fast-nvme", "topology.kubernetes.io/zone": "eu-1a"},
		},
		{
			name: "own worker pool label", cfg: BuilderConfig{WorkerPoolLabel: "example.com/pool"},
			job:  spectest.New("a", "s3://vm-images/k", spectest.WithRouting(spec.Routing{WorkerPool: "gpu"})),
			want: map[string]string{"guestkit.io/disk-access": "true", "example.com/pool": "gpu"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, err := mustBuilder(t, tt.cfg).NewJob(input(tt.job))
			if err != nil {
				t.Fatal(err)
			}
			if got := job.Spec.Template.Spec.NodeSelector; !maps.Equal(got, tt.want) {
				t.Errorf("nodeSelector = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewJobKVM(t *testing.T) {
	kvmGID := int64(108)
	tests := []struct {
		name    string
		cfg     BuilderConfig
		limit   corev1.ResourceName // device plugin resource expected
		devMnt  bool
		groups  []int64
		wantErr string
	}{
		{name: "none", cfg: BuilderConfig{KVMGroup: &kvmGID}},
		{name: "device plugin", cfg: BuilderConfig{KVM: KVMDevicePlugin, KVMGroup: &kvmGID}, limit: "devices.kubevirt.io/kvm", groups: []int64{108}},
		{name: "own device plugin", cfg: BuilderConfig{KVM: KVMDevicePlugin, KVMResource: "example.com/kvm", Accel: "kvm"}, limit: "example.com/kvm"},
		{name: "host path", cfg: BuilderConfig{KVM: KVMHostPath, KVMGroup: &kvmGID}, devMnt: true, groups: []int64{108}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, err := mustBuilder(t, tt.cfg).NewJob(input(spectest.New("a", "s3://vm-images/k")))
			if err != nil {
				t.Fatal(err)
			}
			c := runner(t, job)
			q, inLimits := c.Resources.Limits[tt.limit]
			r, inRequests := c.Resources.Requests[tt.limit]
			if tt.limit != "" && (!inLimits || !inRequests || q.Value() != 1 || r.Value() != 1) {
				t.Errorf("resources %v: want 1 %s", c.Resources, tt.limit)
			}
			if tt.limit == "" && len(c.Resources.Limits) != 1 {
				t.Errorf("limits %v", c.Resources.Limits)
			}
			// Memory and CPU stay.
			if c.Resources.Limits.Memory().String() != "3Gi" || c.Resources.Requests.Cpu().String() != "1" {
				t.Errorf("resources %v", c.Resources)
			}
			var hasDev bool
			for _, v := range job.Spec.Template.Spec.Volumes {
				if v.HostPath != nil && v.HostPath.Path == "/dev/kvm" {
					hasDev = *v.HostPath.Type == corev1.HostPathCharDev
				}
			}
			var mounted bool
			for _, m := range c.VolumeMounts {
				mounted = mounted || m.MountPath == "/dev/kvm" && !m.ReadOnly
			}
			if hasDev != tt.devMnt || mounted != tt.devMnt {
				t.Errorf("/dev/kvm volume %v, mount %v, want %v", hasDev, mounted, tt.devMnt)
			}
			if got := job.Spec.Template.Spec.SecurityContext.SupplementalGroups; !reflect.DeepEqual(got, tt.groups) {
				t.Errorf("supplementalGroups = %v, want %v", got, tt.groups)
			}
			if got := envOf(c)["GUESTKIT_ACCEL"]; got != cmpOrStr(tt.cfg.Accel, "auto") {
				t.Errorf("GUESTKIT_ACCEL = %q", got)
			}
			if sc := c.SecurityContext; *sc.Privileged || *sc.AllowPrivilegeEscalation {
				t.Errorf("privileged with KVM %s", tt.cfg.KVM)
			}
		})
	}
}

func cmpOrStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestNewJobConfigPassThrough(t *testing.T) {
	limit := resource.MustParse("50Gi")
	cfg := BuilderConfig{
		Namespace: "vm-scans", RunnerImage: "r@sha256:0123", ImagePullPolicy: corev1.PullAlways,
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
		ServiceAccount:   "guestkit-runner", Instance: "team-a", SecretRef: "bucket-creds",
		Tolerations: []corev1.Toleration{{Key: "guestkit.io/dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("4Gi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("4Gi"), corev1.ResourceCPU: resource.MustParse("2")},
		},
		TTLSecondsAfterFinished: ptr(int32(600)),
		Env: []corev1.EnvVar{
			{Name: "AWS_ENDPOINT_URL_S3", Value: "http://minio.minio:9000"},
			{Name: "GUESTKIT_MEMORY_MB", Value: "2048"},
			{Name: "AWS_REGION", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s3"}, Key: "region"}}},
		},
		Accel:            "tcg",
		ScratchSizeLimit: &limit,
		SchedulingGrace:  time.Minute,
	}
	b := mustBuilder(t, cfg)
	j := spectest.New("a", "s3://vm-images/k", spectest.WithAttempts(1), spectest.WithTimeout(60))
	in := input(j)
	in.ReportURI = "https://minio.example/jobs/results/a.sarif?X-Amz-Signature=r"
	job, err := b.NewJob(in)
	if err != nil {
		t.Fatal(err)
	}
	ps := job.Spec.Template.Spec
	c := runner(t, job)
	if job.Namespace != "vm-scans" || job.Labels[LabelInstance] != "team-a" || job.Spec.Template.Labels[LabelInstance] != "team-a" {
		t.Errorf("namespace %s, instance %v", job.Namespace, job.Labels)
	}
	if _, ok := job.Labels[LabelVersion]; ok {
		t.Errorf("version label without a version: %v", job.Labels)
	}
	if c.Image != "r@sha256:0123" || c.ImagePullPolicy != corev1.PullAlways || !reflect.DeepEqual(ps.ImagePullSecrets, cfg.ImagePullSecrets) {
		t.Errorf("image %s %s, pull secrets %v", c.Image, c.ImagePullPolicy, ps.ImagePullSecrets)
	}
	if ps.ServiceAccountName != "guestkit-runner" || *ps.AutomountServiceAccountToken {
		t.Errorf("service account %q, automount %v", ps.ServiceAccountName, *ps.AutomountServiceAccountToken)
	}
	if !reflect.DeepEqual(ps.Tolerations, cfg.Tolerations) {
		t.Errorf("tolerations %v", ps.Tolerations)
	}
	if !reflect.DeepEqual(c.Resources, cfg.Resources) {
		t.Errorf("resources %v", c.Resources)
	}
	wantFrom := []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "bucket-creds"}}}}
	if !reflect.DeepEqual(c.EnvFrom, wantFrom) {
		t.Errorf("envFrom %v", c.EnvFrom)
	}
	env := envOf(c)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_S3": "http://minio.minio:9000", "GUESTKIT_MEMORY_MB": "2048", "AWS_REGION": "secret:s3/region",
		"GUESTKIT_ACCEL": "tcg", "GUESTKIT_REPORT": in.ReportURI,
	} {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	if got := ps.Volumes[0].EmptyDir.SizeLimit; got == nil || got.String() != "50Gi" {
		t.Errorf("scratch size limit %v", got)
	}
	// One attempt of 60s + 600s grace, 60s scheduling, no back-off.
	if *job.Spec.BackoffLimit != 0 || *job.Spec.ActiveDeadlineSeconds != 720 || *ps.ActiveDeadlineSeconds != 660 || *job.Spec.TTLSecondsAfterFinished != 600 {
		t.Errorf("backoffLimit %d, deadline %d, pod %d, ttl %d", *job.Spec.BackoffLimit, *job.Spec.ActiveDeadlineSeconds, *ps.ActiveDeadlineSeconds, *job.Spec.TTLSecondsAfterFinished)
	}
	// The config is copied: changing the caller's does not change the next Job.
	cfg.Env[0].Value = "changed"
	cfg.Tolerations[0].Key = "changed"
	job2, err := b.NewJob(in)
	if err != nil {
		t.Fatal(err)
	}
	if envOf(runner(t, job2))["AWS_ENDPOINT_URL_S3"] != "http://minio.minio:9000" || job2.Spec.Template.Spec.Tolerations[0].Key != "guestkit.io/dedicated" {
		t.Errorf("builder shares the caller's config")
	}
}

func TestNewJobMetadataFromSpec(t *testing.T) {
	hostile := "line 1\nline 2: {a: b} # not a comment\n- not a list\n\"quoted\" 'single' \\ \t tab\u2028"
	j := spectest.New("a", "s3://vm-images/k", spectest.WithKey("key: with \"quotes\" # and {yaml: [x]} &anchor *alias"), func(j *spec.Job) {
		j.Metadata = &spec.Metadata{
			Namespace: "guestkit",
			Labels: map[string]string{
				"team":                         "vm-platform",
				"app.kubernetes.io/part-of":    "cmdb-sync",
				"app.kubernetes.io/managed-by": "someone-else",
				"guestkit.io/job-id-hash":      "forged",
				"batch.kubernetes.io/job-name": "forged",
			},
			Annotations: map[string]string{
				"example.com/note":   hostile,
				"guestkit.io/job-id": "forged",
			},
		}
	})
	// Without an admission, no spec metadata reaches the pod.
	job, err := mustBuilder(t, BuilderConfig{}).NewJob(input(j))
	if err != nil {
		t.Fatal(err)
	}
	if job.Labels["team"] != "" || job.Annotations["example.com/note"] != "" {
		t.Errorf("spec metadata copied without an admission: %v %v", job.Labels, job.Annotations)
	}
	// The policy admits the allowed keys, reserved ones included: the
	// Builder drops those, and its own labels win.
	pol, err := policy.New(policy.Config{Home: "s3://vm-images", Buckets: []string{"s3://vm-images/"},
		LabelKeys:      []string{"team", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by", "guestkit.io/job-id-hash", "batch.kubernetes.io/job-name"},
		AnnotationKeys: []string{"example.com/note", "guestkit.io/job-id"}})
	if err != nil {
		t.Fatal(err)
	}
	j.Metadata.Labels["not-allowed"] = "x"
	in := input(j)
	if in.Admission, err = pol.Admit("jobs/a.json", j); err != nil {
		t.Fatal(err)
	}
	if job, err = mustBuilder(t, BuilderConfig{}).NewJob(in); err != nil {
		t.Fatal(err)
	}
	for _, labels := range []map[string]string{job.Labels, job.Spec.Template.Labels} {
		if _, ok := labels["not-allowed"]; ok {
			t.Errorf("a label the policy does not allow was copied: %v", labels)
		}
		for k, want := range map[string]string{
			"team": "vm-platform", "app.kubernetes.io/part-of": "cmdb-sync",
			"app.kubernetes.io/managed-by": "guestkit-dispatcher", "guestkit.io/job-id-hash": JobIDHash("a"),
		} {
			if labels[k] != want {
				t.Errorf("label %s = %q, want %q", k, labels[k], want)
			}
		}
		if _, ok := labels["batch.kubernetes.io/job-name"]; ok {
			t.Errorf("reserved label copied: %v", labels)
		}
	}
	for _, ann := range []map[string]string{job.Annotations, job.Spec.Template.Annotations} {
		if ann["example.com/note"] != hostile {
			t.Errorf("annotation = %q, want %q", ann["example.com/note"], hostile)
		}
		if ann[AnnotationJobID] != "a" {
			t.Errorf("job-id annotation %q", ann[AnnotationJobID])
		}
		if ann[AnnotationIdempotencyKey] != j.Execution.IdempotencyKey {
			t.Errorf("idempotency-key annotation %q", ann[AnnotationIdempotencyKey])
		}
	}
}

func TestDeadlines(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	withDeadline := func(d time.Duration) func(*spec.Job) {
		return func(j *spec.Job) { spectest.Execution(j).Deadline = ptr(now.Add(d)) }
	}
	b := mustBuilder(t, BuilderConfig{})
	tests := []struct {
		name     string
		job      *spec.Job
		now      time.Time
		pod, all time.Duration
	}{
		{"defaults", spectest.New("a", "s3://vm-images/k"), time.Time{}, 70 * time.Minute, 3*70*time.Minute + 30*time.Second + 15*time.Minute},
		{"one attempt", spectest.New("a", "s3://vm-images/k", spectest.WithAttempts(1), spectest.WithTimeout(60)), time.Time{}, 11 * time.Minute, 11*time.Minute + 15*time.Minute},
		{"five attempts", spectest.New("a", "s3://vm-images/k", spectest.WithAttempts(5), spectest.WithTimeout(60)), time.Time{}, 11 * time.Minute, 5*11*time.Minute + 150*time.Second + 15*time.Minute},
		{"back-off capped", spectest.New("a", "s3://vm-images/k", spectest.WithAttempts(10), spectest.WithTimeout(1)), time.Time{}, 10*time.Minute + time.Second,
			10*(10*time.Minute+time.Second) + (10+20+40+80+160+320)*time.Second + 3*10*time.Minute + 15*time.Minute},
		{"deadline ignored without now", spectest.New("a", "s3://vm-images/k", withDeadline(-time.Hour)), time.Time{}, 70 * time.Minute, 3*70*time.Minute + 30*time.Second + 15*time.Minute},
		{"deadline far", spectest.New("a", "s3://vm-images/k", withDeadline(48*time.Hour)), now, 70 * time.Minute, 3*70*time.Minute + 30*time.Second + 15*time.Minute},
		{"deadline near", spectest.New("a", "s3://vm-images/k", withDeadline(30*time.Minute)), now, 35 * time.Minute, 35 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod, all, err := b.Deadlines(tt.job, tt.now)
			if err != nil || pod != tt.pod || all != tt.all {
				t.Errorf("Deadlines = %v, %v, %v; want %v, %v", pod, all, err, tt.pod, tt.all)
			}
		})
	}
}

func TestNewBuilderConfigErrors(t *testing.T) {
	ok := BuilderConfig{Namespace: "guestkit", RunnerImage: "r:1"}
	tests := []struct {
		name   string
		change func(*BuilderConfig)
		msg    string
	}{
		{"no namespace", func(c *BuilderConfig) { c.Namespace = "" }, "namespace is required"},
		{"bad namespace", func(c *BuilderConfig) { c.Namespace = "Guest_Kit" }, `namespace "Guest_Kit"`},
		{"no image", func(c *BuilderConfig) { c.RunnerImage = " " }, "runner image is required"},
		{"pull policy", func(c *BuilderConfig) { c.ImagePullPolicy = "Sometimes" }, `image pull policy "Sometimes"`},
		{"kvm mode", func(c *BuilderConfig) { c.KVM = "passthrough" }, `KVM mode "passthrough"`},
		{"accel", func(c *BuilderConfig) { c.Accel = "hvf" }, `accel "hvf"`},
		{"accel kvm without kvm", func(c *BuilderConfig) { c.Accel = "kvm" }, "accel kvm needs a KVM mode"},
		{"reserved env", func(c *BuilderConfig) { c.Env = []corev1.EnvVar{{Name: "GUESTKIT_SPEC", Value: "x"}} }, "env GUESTKIT_SPEC: set by the Job template"},
		{"bad env name", func(c *BuilderConfig) { c.Env = []corev1.EnvVar{{Name: "1BAD", Value: "x"}} }, `env "1BAD"`},
		{"root /", func(c *BuilderConfig) { c.HostPathRoots = []string{"/"} }, "must not be /"},
		{"root under /tmp", func(c *BuilderConfig) { c.HostPathRoots = []string{"/tmp/images"} }, "under /tmp"},
		{"root holding /etc", func(c *BuilderConfig) { c.HostPathRoots = []string{"/etc"} }, "/etc"},
		{"root holding /var/tmp", func(c *BuilderConfig) { c.HostPathRoots = []string{"/var"} }, "/var/tmp"},
		{"relative root", func(c *BuilderConfig) { c.HostPathRoots = []string{"srv/images"} }, "absolute, clean"},
		{"unclean root", func(c *BuilderConfig) { c.HostPathRoots = []string{"/srv/../etc"} }, "absolute, clean"},
		{"negative ttl", func(c *BuilderConfig) { c.TTLSecondsAfterFinished = ptr(int32(-1)) }, "ttlSecondsAfterFinished -1"},
		{"version label", func(c *BuilderConfig) { c.Version = "1.0+build" }, `version "1.0+build"`},
		{"node selector", func(c *BuilderConfig) { c.NodeSelector = map[string]string{"bad key!": "x"} }, "node selector bad key!=x"},
		{"secret name", func(c *BuilderConfig) { c.SecretRef = "Bad_Secret" }, `secret "Bad_Secret"`},
		{"kvm group", func(c *BuilderConfig) { c.KVMGroup = ptr(int64(-5)) }, "KVM group -5"},
		{"template missing", func(c *BuilderConfig) { c.TemplatePath = "/nonexistent/job.yaml.tmpl" }, "/nonexistent/job.yaml.tmpl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.change(&cfg)
			_, err := NewBuilder(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want %q", err, tt.msg)
			}
		})
	}
	// Several problems are reported together.
	_, err := NewBuilder(BuilderConfig{KVM: "x"})
	for _, want := range []string{"namespace", "runner image", "KVM mode"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q in it", err, want)
		}
	}
}

// An operator's template: a copy of the default with edits.
func TestTemplateOverride(t *testing.T) {
	def := string(templates.JobTemplate())
	tests := []struct {
		name     string
		old, new string // replace old with new in the default
		wantErr  string // "" for success
		check    func(*testing.T, *batchv1.Job)
	}{
		{
			name: "extra fields", old: "      restartPolicy: Never\n",
			new: "      restartPolicy: Never\n      priorityClassName: guestkit-low\n      hostname: {{ json .Job.JobID }}\n",
			check: func(t *testing.T, j *batchv1.Job) {
				if ps := j.Spec.Template.Spec; ps.PriorityClassName != "guestkit-low" || ps.Hostname != "template-check" {
					t.Errorf("priorityClassName %q, hostname %q", ps.PriorityClassName, ps.Hostname)
				}
			},
		},
		{name: "parse error", old: "{{ json .Name }}", new: "{{ json .Name }}{{ end }}", wantErr: "unexpected {{end}}"},
		{name: "unknown field", old: "  backoffLimit:", new: "  backofLimit:", wantErr: `unknown field "backofLimit"`},
		{name: "unknown template field", old: "{{ json .Namespace }}", new: "{{ json .Namespaces }}", wantErr: "can't evaluate field Namespaces"},
		{name: "fixed name", old: "  name: {{ json .Name }}", new: "  name: runner-job", wantErr: `is named "runner-job"`},
		{name: "no runner", old: "      - name: runner\n", new: "      - name: worker\n", wantErr: `no container named "runner"`},
		{name: "restart policy", old: "restartPolicy: Never", new: "restartPolicy: OnFailure", wantErr: `restartPolicy "OnFailure"`},
		{name: "privileged", old: "          privileged: false", new: "          privileged: true", wantErr: "privileged container \"runner\""},
		{name: "escalation", old: "allowPrivilegeEscalation: false", new: "allowPrivilegeEscalation: true", wantErr: "escalate privileges"},
		{name: "host pid", old: "      restartPolicy: Never\n", new: "      restartPolicy: Never\n      hostPID: true\n", wantErr: "host namespace"},
		{name: "spec URI dropped", old: "        - name: GUESTKIT_SPEC\n          value: {{ json .SpecURI }}\n", new: "", wantErr: "does not set GUESTKIT_SPEC"},
		{name: "pod labels dropped", old: "      labels: {{ json .Labels }}\n", new: "", wantErr: "lacks the pod template label"},
		{name: "job annotations dropped", old: "  annotations: {{ json .Annotations }}\nspec:", new: "spec:", wantErr: "lacks the Job annotation guestkit.io/job-id"},
		{name: "not a job", old: "kind: Job", new: "kind: CronJob", wantErr: "not a batch/v1 Job"},
		{name: "yaml syntax", old: "  backoffLimit: {{ .BackoffLimit }}", new: "  backoffLimit: [{{ .BackoffLimit }}", wantErr: `rendered line 9: "  backoffLimit: [2"`},
		{name: "unquoted value", old: "  annotations: {{ json .Annotations }}\nspec:", new: "  annotations: {{ .Annotations }}\nspec:", wantErr: "not a valid Job"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(def, tt.old) {
				t.Fatalf("test: %q is not in the default template", tt.old)
			}
			p := filepath.Join(t.TempDir(), "my-job.yaml.tmpl")
			if err := os.WriteFile(p, []byte(strings.Replace(def, tt.old, tt.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			b, err := NewBuilder(BuilderConfig{Namespace: "guestkit", RunnerImage: "r:1", TemplatePath: p})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), p) {
					t.Fatalf("err = %v, want %q naming %s", err, tt.wantErr, p)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			job, err := b.NewJob(sampleInput())
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, job)
		})
	}
}

func TestDefaultTemplateErrorsNameIt(t *testing.T) {
	b := mustBuilder(t, BuilderConfig{})
	// A rendered Job that fails the checks: force it by breaking the data.
	d, err := b.templateData(sampleInput())
	if err != nil {
		t.Fatal(err)
	}
	d.Name = "other"
	if problems := checkJob(&batchv1.Job{}, d); len(problems) == 0 {
		t.Errorf("an empty Job passes the checks")
	}
	if b.source != templates.JobTemplateName {
		t.Errorf("source %q", b.source)
	}
}

// A Job that will run the direct backend starts no VM: no /dev/kvm, the
// small resources. The spec's options.backend wins over the dispatcher's
// default, both ways.
func TestNewJobBackend(t *testing.T) {
	withBackend := func(b string) func(*spec.Job) {
		return func(j *spec.Job) { j.Payload.Data.Options = &spec.Options{Backend: b} }
	}
	tests := []struct {
		name, dispatcher, spec, want string
	}{
		{"default", "", "", "auto"},
		{"dispatcher direct", "direct", "", "direct"},
		{"spec direct", "auto", "direct", "direct"},
		{"spec appliance over dispatcher direct", "direct", "appliance", "appliance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustBuilder(t, BuilderConfig{KVM: KVMDevicePlugin, Backend: tt.dispatcher})
			var opts []func(*spec.Job)
			if tt.spec != "" {
				opts = append(opts, withBackend(tt.spec))
			}
			job, err := b.NewJob(input(spectest.New("a", "s3://vm-images/k", opts...)))
			if err != nil {
				t.Fatal(err)
			}
			c := runner(t, job)
			if got := envOf(c)["GUESTKIT_BACKEND"]; got != tt.want {
				t.Errorf("GUESTKIT_BACKEND = %q, want %q", got, tt.want)
			}
			_, kvm := c.Resources.Limits[DefaultKVMResource]
			direct := tt.want == "direct"
			if kvm == direct {
				t.Errorf("KVM device requested: %v (backend %s)", kvm, tt.want)
			}
			wantRes := DefaultResources()
			if direct {
				wantRes = DefaultDirectResources()
			}
			if !c.Resources.Limits.Memory().Equal(*wantRes.Limits.Memory()) || !c.Resources.Requests.Memory().Equal(*wantRes.Requests.Memory()) {
				t.Errorf("resources %v, want %v", c.Resources, wantRes)
			}
		})
	}
	if _, err := NewBuilder(BuilderConfig{Namespace: "n", RunnerImage: "i", Backend: "fast"}); err == nil || !strings.Contains(err.Error(), `backend "fast"`) {
		t.Errorf("bad backend accepted: %v", err)
	}
}

// TestScratchFollowsImageAccess: a streamed bucket image gets a small
// scratch emptyDir, no download and the identity the dispatcher saw; an
// http image room for a bounded download; download mode room for the
// object itself; and an operator's --scratch-size wins.
func TestScratchFollowsImageAccess(t *testing.T) {
	const gi = int64(1) << 30
	facts := controller.ImageFacts{ETag: "abc123", VersionID: "3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY", Size: 3 * gi, Attested: "store_checksum:" + strings.Repeat("0f", 32)}
	for _, tc := range []struct {
		name     string
		cfg      BuilderConfig
		uri      string
		scratch  int64
		download string
		pinned   bool
	}{
		{name: "bucket, streamed", uri: "s3://vm-images/a.qcow2", scratch: ScratchBase, download: "-1", pinned: true},
		{name: "http, streamed or downloaded", uri: "https://images.example/a.qcow2", scratch: ScratchBase + DefaultDownloadLimit, download: strconv.FormatInt(DefaultDownloadLimit, 10)},
		{name: "http, stream only", cfg: BuilderConfig{ImageAccess: "stream"}, uri: "https://images.example/a.qcow2", scratch: ScratchBase, download: "-1"},
		{name: "http, downloads off", cfg: BuilderConfig{DownloadLimit: -1}, uri: "https://images.example/a.qcow2", scratch: ScratchBase, download: "-1"},
		{name: "bucket, download mode", cfg: BuilderConfig{ImageAccess: "download"}, uri: "s3://vm-images/a.qcow2", scratch: ScratchBase + 3*gi, download: strconv.FormatInt(3*gi, 10), pinned: true},
		{name: "operator's size", cfg: BuilderConfig{ScratchSizeLimit: resource.NewQuantity(10*gi, resource.BinarySI)}, uri: "s3://vm-images/a.qcow2", scratch: 10 * gi, download: "-1", pinned: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mustBuilder(t, tc.cfg)
			in := input(spectest.New("a", tc.uri))
			in.ImageURL, in.Image = "https://minio.example:9000/vm-images/a.qcow2?X-Amz-Signature=x", facts
			job, err := b.NewJob(in)
			if err != nil {
				t.Fatal(err)
			}
			var got *resource.Quantity
			for _, v := range job.Spec.Template.Spec.Volumes {
				if v.Name == "tmp" && v.EmptyDir != nil {
					got = v.EmptyDir.SizeLimit
				}
			}
			if got == nil || got.Value() != tc.scratch {
				t.Errorf("scratch sizeLimit %v, want %d bytes", got, tc.scratch)
			}
			env := envOf(runner(t, job))
			if env["GUESTKIT_DOWNLOAD_LIMIT"] != tc.download {
				t.Errorf("GUESTKIT_DOWNLOAD_LIMIT %q, want %q", env["GUESTKIT_DOWNLOAD_LIMIT"], tc.download)
			}
			wantAccess := cmp.Or(tc.cfg.ImageAccess, "auto")
			if env["GUESTKIT_IMAGE_ACCESS"] != wantAccess || env["GUESTKIT_VERIFY"] != "auto" {
				t.Errorf("access %q verify %q", env["GUESTKIT_IMAGE_ACCESS"], env["GUESTKIT_VERIFY"])
			}
			pinned := env["GUESTKIT_IMAGE_ETAG"] == facts.ETag && env["GUESTKIT_IMAGE_VERSION"] == facts.VersionID && env["GUESTKIT_IMAGE_SIZE"] == strconv.FormatInt(facts.Size, 10) &&
				env["GUESTKIT_IMAGE_ATTESTED"] == facts.Attested
			if pinned != tc.pinned {
				t.Errorf("pinned %v (env %v), want %v", pinned, env, tc.pinned)
			}
		})
	}
	if _, err := NewBuilder(BuilderConfig{Namespace: "n", RunnerImage: "r", ImageAccess: "sometimes"}); err == nil || !strings.Contains(err.Error(), "image access") {
		t.Errorf("bad image access accepted: %v", err)
	}
}
