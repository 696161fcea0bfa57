// Package manifests_test renders every kustomization under manifests/ with
// kubectl and checks the result three ways: by content (RBAC, probes,
// security contexts, the sweep CronJob, the NetworkPolicies, each overlay's
// specifics), by the
// dispatcher's own flag parser (the ConfigMap and container args parse, and
// the runner Job they configure is valid), and by a server-side dry run
// against a real kube-apiserver, with Pod Security "restricted" enforced by
// the shipped Namespace.
package manifests_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"guestkit.io/batch/dispatcher/cli"
	"guestkit.io/batch/internal/kubejob"
	"guestkit.io/batch/internal/notify"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/testenv"
)

const (
	namespace     = "guestkit"
	dispatcherSA  = "guestkit-dispatcher"
	runnerSA      = "guestkit-runner"
	credentials   = "guestkit-bucket-credentials"
	dispatcherApp = "guestkit-dispatcher" // Deployment, Service, Role, ConfigMap prefix
	sweepCronJob  = "guestkit-sweep"
	fieldManager  = "guestkit-manifests-test"
)

// The kustomizations, each rendered and checked; TestManifests fails if an
// overlay directory is not listed here.
var dirs = []string{"base", "overlays/kind", "overlays/aws"}

func TestManifests(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kubernetes control plane")
	}
	overlays, err := os.ReadDir("overlays")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range overlays {
		if e.IsDir() && !slices.Contains(dirs, "overlays/"+e.Name()) {
			t.Errorf("overlays/%s is not tested: add it to dirs", e.Name())
		}
	}

	k := testenv.StartKube(t)
	kc := &kubectl{bin: filepath.Join(k.BinDir, "kubectl"), kubeconfig: k.Kubeconfig}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			r := render(t, kc, dir)
			checkCommon(t, r)
			switch dir {
			case "base":
				checkBase(t, r)
			case "overlays/kind":
				checkKind(t, r)
			case "overlays/aws":
				checkAWS(t, r)
			}
			watch := parseDispatcher(t, r, "Deployment", dispatcherApp)
			checkWatch(t, r, watch)
			if find[appsv1.Deployment](r, "Deployment", "minio") != nil && watch.Watch.NotifyToken == "" {
				t.Errorf("watch: MinIO posts events with a token, but the dispatcher has no --notify-token")
			}
			sweep := parseDispatcher(t, r, "CronJob", sweepCronJob)
			if sweep.Sweep.Executor != "kubernetes" || sweep.Sweep.Namespace != namespace {
				t.Errorf("sweep: executor %q in namespace %q, want kubernetes in %s", sweep.Sweep.Executor, sweep.Sweep.Namespace, namespace)
			}
			job := runnerJob(t, r, &watch.Watch.ExecutorFlags, watch.Bucket)
			checkNetworkPolicies(t, r, job)

			// The Namespace, the service accounts and the RBAC for real: a
			// dry run of namespaced objects needs their namespace, and the
			// access checks need the bindings.
			kc.apply(t, r.docs(func(o object) bool {
				return slices.Contains([]string{"Namespace", "ServiceAccount", "Role", "RoleBinding"}, o.kind)
			}), false)
			kc.apply(t, r.yaml, true)
			jobYAML, err := yaml.Marshal(job)
			if err != nil {
				t.Fatal(err)
			}
			kc.apply(t, jobYAML, true)
			if dir == "base" {
				checkWarningsAreSeen(t, kc, r)
			}
			checkAccess(t, k)
		})
	}
}

// ---- rendering -----------------------------------------------------------

type kubectl struct{ bin, kubeconfig string }

func (kc *kubectl) run(t *testing.T, stdin []byte, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kc.bin, append([]string{"--kubeconfig", kc.kubeconfig}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// apply applies docs server-side, for real or as a server-side dry run, and
// fails on any error or warning: Pod Security violations of workloads are
// warnings.
func (kc *kubectl) apply(t *testing.T, docs []byte, dryRun bool) {
	t.Helper()
	args := []string{"apply", "--server-side", "--field-manager=" + fieldManager, "-f", "-"}
	if dryRun {
		args = append(args, "--dry-run=server")
	}
	out, stderr, err := kc.run(t, docs, args...)
	if err != nil || strings.Contains(stderr, "Warning:") {
		t.Errorf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, stderr, out)
	}
}

type object struct {
	kind string
	meta metav1.Object
	obj  any
	doc  []byte
}

type rendering struct {
	dir  string
	yaml []byte
	objs []object
}

// The kinds the manifests may hold, decoded strictly into their types. A
// new kind fails the test until it is added here (and checked).
var kinds = map[string]func() any{
	"v1/Namespace":                                    func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                               func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                                    func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                                       func() any { return &corev1.Secret{} },
	"v1/Service":                                      func() any { return &corev1.Service{} },
	"v1/PersistentVolumeClaim":                        func() any { return &corev1.PersistentVolumeClaim{} },
	"rbac.authorization.k8s.io/v1/Role":               func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding":        func() any { return &rbacv1.RoleBinding{} },
	"rbac.authorization.k8s.io/v1/ClusterRole":        func() any { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any { return &rbacv1.ClusterRoleBinding{} },
	"apps/v1/Deployment":                              func() any { return &appsv1.Deployment{} },
	"batch/v1/Job":                                    func() any { return &batchv1.Job{} },
	"batch/v1/CronJob":                                func() any { return &batchv1.CronJob{} },
	"policy/v1/PodDisruptionBudget":                   func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy":              func() any { return &networkingv1.NetworkPolicy{} },
}

func render(t *testing.T, kc *kubectl, dir string) *rendering {
	t.Helper()
	out, stderr, err := kc.run(t, nil, "kustomize", dir)
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr)
	}
	r := &rendering{dir: dir, yaml: []byte(out)}
	rd := k8syaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
		if !ok {
			t.Fatalf("%s: unexpected %s %s: add it to kinds and check it", dir, tm.APIVersion, tm.Kind)
		}
		obj := newObj()
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s: %s: %v\n%s", dir, tm.Kind, err, doc)
		}
		r.objs = append(r.objs, object{kind: tm.Kind, meta: obj.(metav1.Object), obj: obj, doc: doc})
	}
	if len(r.objs) == 0 {
		t.Fatalf("%s: rendered nothing", dir)
	}
	return r
}

func (r *rendering) docs(keep func(object) bool) []byte {
	var b bytes.Buffer
	for _, o := range r.objs {
		if keep(o) {
			b.WriteString("---\n")
			b.Write(o.doc)
		}
	}
	return b.Bytes()
}

// find returns the object of that kind and name, or nil.
func find[T any](r *rendering, kind, name string) *T {
	for _, o := range r.objs {
		if o.kind == kind && o.meta.GetName() == name {
			return o.obj.(*T)
		}
	}
	return nil
}

func must[T any](t *testing.T, r *rendering, kind, name string) *T {
	t.Helper()
	v := find[T](r, kind, name)
	if v == nil {
		t.Fatalf("%s: no %s %s", r.dir, kind, name)
	}
	return v
}

func ofKind(r *rendering, kind string) []object {
	var out []object
	for _, o := range r.objs {
		if o.kind == kind {
			out = append(out, o)
		}
	}
	return out
}

type podTemplate struct {
	where string
	tmpl  *corev1.PodTemplateSpec
}

func podTemplates(r *rendering) []podTemplate {
	var out []podTemplate
	for _, o := range r.objs {
		where := o.kind + " " + o.meta.GetName()
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			out = append(out, podTemplate{where, &v.Spec.Template})
		case *batchv1.Job:
			out = append(out, podTemplate{where, &v.Spec.Template})
		case *batchv1.CronJob:
			out = append(out, podTemplate{where, &v.Spec.JobTemplate.Spec.Template})
		}
	}
	return out
}

// ---- content -----------------------------------------------------------------

// wantRules are the dispatcher's API calls (internal/kubejob and leader
// election), as group/resource: verbs.
var wantRules = map[string][]string{
	"batch/jobs":                 {"create", "delete", "get", "list", "watch"},
	"/pods":                      {"get", "list"},
	"/pods/log":                  {"get"},
	"coordination.k8s.io/leases": {"create", "get", "update"},
}

func checkCommon(t *testing.T, r *rendering) {
	ns := must[corev1.Namespace](t, r, "Namespace", namespace)
	for _, mode := range []string{"enforce", "warn", "audit"} {
		if got := ns.Labels["pod-security.kubernetes.io/"+mode]; got != "restricted" {
			t.Errorf("Namespace %s: pod-security %s %q, want restricted", namespace, mode, got)
		}
	}
	for _, o := range r.objs {
		if o.kind != "Namespace" && o.meta.GetNamespace() != namespace {
			t.Errorf("%s %s is in namespace %q, want %s", o.kind, o.meta.GetName(), o.meta.GetNamespace(), namespace)
		}
	}
	if n := len(ofKind(r, "ClusterRole")) + len(ofKind(r, "ClusterRoleBinding")); n > 0 {
		t.Errorf("%d cluster-wide RBAC objects; the dispatcher needs none", n)
	}

	// RBAC: exactly the dispatcher's calls, bound to its service account.
	roles := ofKind(r, "Role")
	if len(roles) != 1 {
		t.Fatalf("%d Roles, want 1", len(roles))
	}
	role := roles[0].obj.(*rbacv1.Role)
	got := map[string][]string{}
	for _, rule := range role.Rules {
		if len(rule.ResourceNames) > 0 || len(rule.NonResourceURLs) > 0 {
			t.Errorf("Role rule %+v: resourceNames or nonResourceURLs are not expected", rule)
		}
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				got[g+"/"+res] = append(got[g+"/"+res], rule.Verbs...)
			}
		}
	}
	for k := range got {
		slices.Sort(got[k])
	}
	if fmt.Sprint(got) != fmt.Sprint(wantRules) {
		t.Errorf("Role %s grants %v, want exactly %v", role.Name, got, wantRules)
	}
	rb := must[rbacv1.RoleBinding](t, r, "RoleBinding", dispatcherApp)
	if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != role.Name ||
		len(rb.Subjects) != 1 || rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Name != dispatcherSA || rb.Subjects[0].Namespace != namespace {
		t.Errorf("RoleBinding %s: roleRef %+v, subjects %+v: want Role %s for ServiceAccount %s/%s", rb.Name, rb.RoleRef, rb.Subjects, role.Name, namespace, dispatcherSA)
	}
	must[corev1.ServiceAccount](t, r, "ServiceAccount", dispatcherSA)
	if sa := must[corev1.ServiceAccount](t, r, "ServiceAccount", runnerSA); sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("ServiceAccount %s mounts an API token; the runner never calls the API", runnerSA)
	}

	// The watch Deployment.
	d := must[appsv1.Deployment](t, r, "Deployment", dispatcherApp)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("Deployment %s: replicas %v, want 2", d.Name, d.Spec.Replicas)
	}
	ps := &d.Spec.Template.Spec
	if ps.ServiceAccountName != dispatcherSA {
		t.Errorf("Deployment %s: service account %q, want %s", d.Name, ps.ServiceAccountName, dispatcherSA)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("Deployment %s: %d containers, want 1", d.Name, len(ps.Containers))
	}
	c := &ps.Containers[0]
	if env := envVar(c, "GUESTKIT_LEADER_ELECT"); env == nil || env.Value != "true" {
		t.Errorf("Deployment %s: GUESTKIT_LEADER_ELECT is not \"true\"", d.Name)
	}
	if env := envVar(c, "POD_NAME"); env == nil || env.ValueFrom == nil || env.ValueFrom.FieldRef == nil || env.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("Deployment %s: POD_NAME (the Lease identity) is not the downward API's metadata.name", d.Name)
	}
	port := containerPort(c, "metrics")
	if port != 8080 {
		t.Errorf("Deployment %s: port metrics is %d, want 8080", d.Name, port)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "metrics" {
			t.Errorf("Deployment %s: %s probe %+v, want GET %s on port metrics", d.Name, p.name, p.probe, p.path)
		}
	}
	var secretRef *corev1.SecretEnvSource
	for _, ef := range c.EnvFrom {
		if ef.SecretRef != nil {
			secretRef = ef.SecretRef
		}
	}
	if secretRef == nil || secretRef.Name != credentials || secretRef.Optional == nil || !*secretRef.Optional {
		t.Errorf("Deployment %s: envFrom secretRef %+v, want the optional Secret %s", d.Name, secretRef, credentials)
	}

	// The Service selects the dispatcher's pods, on the metrics port.
	svc := must[corev1.Service](t, r, "Service", dispatcherApp)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Service %s: selector %v does not select the Deployment's pods %v", svc.Name, svc.Spec.Selector, d.Spec.Template.Labels)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("Service %s: ports %+v, want 8080 to metrics", svc.Name, svc.Spec.Ports)
	}
	pdb := must[policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget", dispatcherApp)
	if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("PodDisruptionBudget %s does not select the Deployment's pods (%v)", pdb.Name, err)
	}

	// The nightly sweep.
	cj := must[batchv1.CronJob](t, r, "CronJob", sweepCronJob)
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("CronJob %s: concurrencyPolicy %q, want Forbid", cj.Name, cj.Spec.ConcurrencyPolicy)
	}
	tz := "(none)"
	if cj.Spec.TimeZone != nil {
		tz = *cj.Spec.TimeZone
	}
	if tz != "Etc/UTC" {
		t.Errorf("CronJob %s: timeZone %s, want Etc/UTC", cj.Name, tz)
	}
	if len(strings.Fields(cj.Spec.Schedule)) != 5 {
		t.Errorf("CronJob %s: schedule %q is not a 5-field cron schedule", cj.Name, cj.Spec.Schedule)
	}
	if cj.Spec.StartingDeadlineSeconds == nil {
		t.Errorf("CronJob %s: no startingDeadlineSeconds", cj.Name)
	}
	for name, limit := range map[string]*int32{"successful": cj.Spec.SuccessfulJobsHistoryLimit, "failed": cj.Spec.FailedJobsHistoryLimit} {
		if limit == nil || *limit < 1 || *limit > 5 {
			t.Errorf("CronJob %s: %sJobsHistoryLimit %v, want 1 to 5", cj.Name, name, limit)
		}
	}
	cps := &cj.Spec.JobTemplate.Spec.Template.Spec
	if cps.ServiceAccountName != dispatcherSA || cps.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("CronJob %s: service account %q, restartPolicy %q; want %s, Never", cj.Name, cps.ServiceAccountName, cps.RestartPolicy, dispatcherSA)
	}
	if len(cps.Containers) != 1 || !slices.Equal(cps.Containers[0].Args, []string{"sweep", "--executor", "kubernetes"}) {
		t.Errorf("CronJob %s: want one container with args sweep --executor kubernetes", cj.Name)
	}
	if p := cj.Spec.JobTemplate.Spec.PodFailurePolicy; p != nil && len(cps.Containers) == 1 {
		for _, rule := range p.Rules {
			if e := rule.OnExitCodes; e != nil && e.ContainerName != nil && *e.ContainerName != cps.Containers[0].Name {
				t.Errorf("CronJob %s: podFailurePolicy names container %q, not %q", cj.Name, *e.ContainerName, cps.Containers[0].Name)
			}
		}
	}

	// Every pod: non-root, no privilege, read-only root, nothing from the host.
	for _, pt := range podTemplates(r) {
		checkPodSecurity(t, pt.where, &pt.tmpl.Spec)
	}

	// Every setting is one of the dispatcher's, for watch or sweep.
	known := dispatcherEnvVars(t)
	for k := range dispatcherConfig(t, r).Data {
		cmds := known[k]
		if !slices.Contains(cmds, "") && !slices.Contains(cmds, "watch") && !slices.Contains(cmds, "sweep") {
			t.Errorf("ConfigMap %s: %s is not a setting of guestkit-dispatcher watch or sweep", dispatcherApp, k)
		}
	}
}

func checkPodSecurity(t *testing.T, where string, ps *corev1.PodSpec) {
	t.Helper()
	if ps.HostNetwork || ps.HostPID || ps.HostIPC {
		t.Errorf("%s: uses a host namespace", where)
	}
	for _, v := range ps.Volumes {
		if v.HostPath != nil {
			t.Errorf("%s: hostPath volume %s", where, v.Name)
		}
	}
	sc := ps.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("%s: the pod is not runAsNonRoot with a non-zero runAsUser", where)
	}
	if sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: the pod's seccomp profile is not RuntimeDefault", where)
	}
	for _, c := range slices.Concat(ps.InitContainers, ps.Containers) {
		where := where + " container " + c.Name
		csc := c.SecurityContext
		if csc == nil {
			t.Errorf("%s: no securityContext", where)
			continue
		}
		if csc.Privileged != nil && *csc.Privileged {
			t.Errorf("%s: privileged", where)
		}
		if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation is not false", where)
		}
		if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem is not true", where)
		}
		if csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") || len(csc.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities %+v, want drop ALL and nothing added", where, csc.Capabilities)
		}
		if csc.RunAsUser != nil && *csc.RunAsUser == 0 {
			t.Errorf("%s: runs as root", where)
		}
		if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
			t.Errorf("%s: no memory limit", where)
		}
		if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
			t.Errorf("%s: no CPU request", where)
		}
	}
}

func checkBase(t *testing.T, r *rendering) {
	if n := len(ofKind(r, "Secret")); n > 0 {
		t.Errorf("base ships %d Secrets; credentials belong to overlays", n)
	}
}

func checkKind(t *testing.T, r *rendering) {
	cm := dispatcherConfig(t, r)
	d := must[appsv1.Deployment](t, r, "Deployment", dispatcherApp)
	cj := must[batchv1.CronJob](t, r, "CronJob", sweepCronJob)
	for _, c := range []corev1.Container{d.Spec.Template.Spec.Containers[0], cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]} {
		if c.Image != "guestkit-dispatcher:dev" || c.ImagePullPolicy != corev1.PullNever {
			t.Errorf("container %s: image %s (%s), want guestkit-dispatcher:dev, Never (kind load)", c.Name, c.Image, c.ImagePullPolicy)
		}
	}
	if cm.Data["GUESTKIT_RUNNER_IMAGE"] != "guestkit-runner:dev" || cm.Data["GUESTKIT_IMAGE_PULL_POLICY"] != "Never" {
		t.Errorf("runner image %q (%s), want guestkit-runner:dev, Never", cm.Data["GUESTKIT_RUNNER_IMAGE"], cm.Data["GUESTKIT_IMAGE_PULL_POLICY"])
	}

	// MinIO, pinned, behind the Service the bucket URL names.
	m := must[appsv1.Deployment](t, r, "Deployment", "minio")
	mc := &m.Spec.Template.Spec.Containers[0]
	if !regexp.MustCompile(`^quay\.io/minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$`).MatchString(mc.Image) {
		t.Errorf("MinIO image %q is not quay.io/minio/minio pinned to a release", mc.Image)
	}
	svc := must[corev1.Service](t, r, "Service", "minio")
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(m.Spec.Template.Labels)) {
		t.Errorf("Service minio does not select MinIO's pods")
	}
	bucket, err := url.Parse(cm.Data["GUESTKIT_BUCKET"])
	if err != nil || bucket.Scheme != "s3" {
		t.Fatalf("GUESTKIT_BUCKET %q: want s3://BUCKET?endpoint=...: %v", cm.Data["GUESTKIT_BUCKET"], err)
	}
	endpoint, err := url.Parse(bucket.Query().Get("endpoint"))
	if err != nil || endpoint.Hostname() != "minio."+namespace+".svc" || endpoint.Port() != fmt.Sprint(servicePort(svc, "api")) {
		t.Errorf("the bucket endpoint %q is not the minio Service's api port (%d)", bucket.Query().Get("endpoint"), servicePort(svc, "api"))
	}
	if bucket.Query().Get("path-style") != "true" {
		t.Errorf("GUESTKIT_BUCKET %q: MinIO by Service name needs path-style=true", bucket)
	}

	// MinIO's webhook target posts to the dispatcher's Service, with the
	// token the dispatcher checks.
	dsvc := must[corev1.Service](t, r, "Service", dispatcherApp)
	wantHook := fmt.Sprintf("http://%s.%s.svc:%d%s", dsvc.Name, namespace, dsvc.Spec.Ports[0].Port, notify.Path)
	if env := envVar(mc, "MINIO_NOTIFY_WEBHOOK_ENDPOINT_GK"); env == nil || env.Value != wantHook {
		t.Errorf("MinIO's webhook endpoint %+v, want %s", env, wantHook)
	}
	if env := envVar(mc, "MINIO_NOTIFY_WEBHOOK_ENABLE_GK"); env == nil || env.Value != "on" {
		t.Errorf("MinIO's webhook target GK is not enabled")
	}
	tok := envVar(mc, "MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_GK")
	if tok == nil || tok.ValueFrom == nil || tok.ValueFrom.SecretKeyRef == nil ||
		tok.ValueFrom.SecretKeyRef.Name != credentials || tok.ValueFrom.SecretKeyRef.Key != "GUESTKIT_NOTIFY_TOKEN" {
		t.Errorf("MinIO's webhook token %+v, want GUESTKIT_NOTIFY_TOKEN of Secret %s (the dispatcher's)", tok, credentials)
	}
	sec := must[corev1.Secret](t, r, "Secret", credentials)
	for _, key := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GUESTKIT_NOTIFY_TOKEN"} {
		if secretValue(sec, key) == "" {
			t.Errorf("Secret %s has no %s", credentials, key)
		}
	}

	// The set-up Job makes the bucket of the URL and its event rule.
	job := must[batchv1.Job](t, r, "Job", "minio-bucket")
	script := strings.Join(slices.Concat(job.Spec.Template.Spec.Containers[0].Command, job.Spec.Template.Spec.Containers[0].Args), " ")
	for _, want := range []string{"mc mb --ignore-existing gk/" + bucket.Host, "arn:minio:sqs::GK:webhook", "--prefix jobs/", "http://minio." + namespace + ".svc:9000"} {
		if !strings.Contains(script, want) {
			t.Errorf("Job minio-bucket: the script lacks %q:\n%s", want, script)
		}
	}
}

func checkAWS(t *testing.T, r *rendering) {
	cm := dispatcherConfig(t, r)
	if n := len(ofKind(r, "Secret")); n > 0 {
		t.Errorf("%d Secrets: the aws overlay uses IRSA", n)
	}
	arn := regexp.MustCompile(`^arn:aws:iam::\d{12}:role/\S+$`)
	for _, name := range []string{dispatcherSA, runnerSA} {
		sa := must[corev1.ServiceAccount](t, r, "ServiceAccount", name)
		if a := sa.Annotations["eks.amazonaws.com/role-arn"]; !arn.MatchString(a) {
			t.Errorf("ServiceAccount %s: eks.amazonaws.com/role-arn %q is not an IAM role ARN", name, a)
		}
	}
	if b := cm.Data["GUESTKIT_BUCKET"]; !strings.HasPrefix(b, "s3://") || strings.Contains(b, "endpoint=") {
		t.Errorf("GUESTKIT_BUCKET %q: want AWS S3 (s3://, no endpoint)", b)
	}
	if cm.Data["GUESTKIT_CREDENTIALS"] != "presigned" || cm.Data["GUESTKIT_KVM"] != "device-plugin" {
		t.Errorf("credentials %q, kvm %q: want presigned, device-plugin", cm.Data["GUESTKIT_CREDENTIALS"], cm.Data["GUESTKIT_KVM"])
	}
}

// dispatcherConfig is the ConfigMap the Deployment reads (its name has
// kustomize's hash suffix).
func dispatcherConfig(t *testing.T, r *rendering) *corev1.ConfigMap {
	t.Helper()
	d := must[appsv1.Deployment](t, r, "Deployment", dispatcherApp)
	for _, ef := range d.Spec.Template.Spec.Containers[0].EnvFrom {
		if ef.ConfigMapRef != nil && strings.HasPrefix(ef.ConfigMapRef.Name, dispatcherApp) {
			return must[corev1.ConfigMap](t, r, "ConfigMap", ef.ConfigMapRef.Name)
		}
	}
	t.Fatalf("Deployment %s reads no ConfigMap %s", dispatcherApp, dispatcherApp)
	return nil
}

func envVar(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func containerPort(c *corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func servicePort(s *corev1.Service, name string) int32 {
	for _, p := range s.Spec.Ports {
		if p.Name == name {
			return p.Port
		}
	}
	return 0
}

func secretValue(s *corev1.Secret, key string) string {
	if v, ok := s.StringData[key]; ok {
		return v
	}
	return string(s.Data[key])
}

// ---- network policies ------------------------------------------------------------

// The runner's DNS rule, in every rendering: CoreDNS's pods in kube-system,
// on port 53 over UDP and TCP (describeEgress).
const dnsRule = "to [namespace{kubernetes.io/metadata.name=kube-system} & pod{k8s-app=kube-dns}] ports [TCP/53 UDP/53]"

// The aws overlay's bucket rule: S3 over HTTPS, at any address but the
// private, link-local (instance metadata) and carrier-grade NAT ones.
const s3Rule = "to [ipBlock{0.0.0.0/0 except 10.0.0.0/8,100.64.0.0/10,169.254.0.0/16,172.16.0.0/12,192.168.0.0/16}] ports [TCP/443]"

// checkNetworkPolicies checks who may talk to whom: runner pods (runner is
// a Job rendered by the dispatcher's builder) get no ingress and egress to
// DNS and the overlay's bucket only; the dispatcher's pods take connections
// on their container ports only; the sweep's pods take none.
func checkNetworkPolicies(t *testing.T, r *rendering, runner *batchv1.Job) {
	t.Helper()
	var pols []*networkingv1.NetworkPolicy
	for _, o := range ofKind(r, "NetworkPolicy") {
		pols = append(pols, o.obj.(*networkingv1.NetworkPolicy))
	}

	// Each pod of ours is selected by its own policy and no other (another
	// policy would widen what it allows); other pods (MinIO, its set-up
	// Job) by none.
	own := map[string]string{
		"runner Job":                  "guestkit-runner",
		"Deployment " + dispatcherApp: dispatcherApp,
		"CronJob " + sweepCronJob:     sweepCronJob,
	}
	pods := append(podTemplates(r), podTemplate{"runner Job", &runner.Spec.Template})
	for _, pt := range pods {
		var got, want []string
		for _, p := range pols {
			sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
			if err != nil {
				t.Fatalf("NetworkPolicy %s: podSelector: %v", p.Name, err)
			}
			if sel.Matches(labels.Set(pt.tmpl.Labels)) {
				got = append(got, p.Name)
			}
		}
		if name, ok := own[pt.where]; ok {
			want = []string{name}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s (labels %v): selected by NetworkPolicies %q, want %q", pt.where, pt.tmpl.Labels, got, want)
		}
	}
	if n := len(pols); n != len(own) {
		t.Errorf("%d NetworkPolicies, want %d (%v)", n, len(own), slices.Sorted(maps.Values(own)))
	}

	// Runner pods: selected by the labels every runner pod carries, whatever
	// its spec and the dispatcher's instance; no ingress; DNS and the bucket.
	rp := must[networkingv1.NetworkPolicy](t, r, "NetworkPolicy", "guestkit-runner")
	runnerLabels := map[string]string{
		kubejob.LabelName:      kubejob.LabelNameValue,
		kubejob.LabelComponent: kubejob.LabelComponentValue,
		kubejob.LabelManagedBy: kubejob.LabelManagedByValue,
	}
	if !maps.Equal(rp.Spec.PodSelector.MatchLabels, runnerLabels) || len(rp.Spec.PodSelector.MatchExpressions) > 0 {
		t.Errorf("NetworkPolicy %s: podSelector %s, want %v", rp.Name, metav1.FormatLabelSelector(&rp.Spec.PodSelector), runnerLabels)
	}
	checkPolicyTypes(t, rp, networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)
	if len(rp.Spec.Ingress) > 0 {
		t.Errorf("NetworkPolicy %s: %d ingress rules, want none", rp.Name, len(rp.Spec.Ingress))
	}
	dns := 0
	var bucket []networkingv1.NetworkPolicyEgressRule
	for _, e := range rp.Spec.Egress {
		if describeEgress(e) == dnsRule {
			dns++
		} else {
			bucket = append(bucket, e)
		}
	}
	if dns != 1 {
		t.Errorf("NetworkPolicy %s: %d egress rules %s, want 1", rp.Name, dns, dnsRule)
	}
	var bucketRules []string
	for _, e := range bucket {
		bucketRules = append(bucketRules, describeEgress(e))
	}
	switch r.dir {
	case "base":
		if len(bucket) > 0 {
			t.Errorf("NetworkPolicy %s: egress %q besides DNS; the bucket's rule is an overlay's", rp.Name, bucketRules)
		}
	case "overlays/kind":
		if len(bucket) != 1 {
			t.Errorf("NetworkPolicy %s: egress %q besides DNS, want one rule for MinIO", rp.Name, bucketRules)
		} else {
			checkMinIOEgress(t, r, bucket[0])
		}
	case "overlays/aws":
		if len(bucket) != 1 || bucketRules[0] != s3Rule {
			t.Errorf("NetworkPolicy %s: egress %q besides DNS, want %s", rp.Name, bucketRules, s3Rule)
		}
	default:
		t.Errorf("%s: no expectation for the runner's bucket egress: add one", r.dir)
	}

	// The dispatcher: connections from anywhere (the webhook has its bearer
	// token), on exactly the ports its container declares.
	dp := must[networkingv1.NetworkPolicy](t, r, "NetworkPolicy", dispatcherApp)
	checkPolicyTypes(t, dp, networkingv1.PolicyTypeIngress)
	c := &must[appsv1.Deployment](t, r, "Deployment", dispatcherApp).Spec.Template.Spec.Containers[0]
	var got, want []string
	for _, p := range c.Ports {
		want = append(want, fmt.Sprintf("%s %s/%d", p.Name, protocolOf(p.Protocol), p.ContainerPort))
	}
	for _, rule := range dp.Spec.Ingress {
		if len(rule.From) > 0 {
			t.Errorf("NetworkPolicy %s: ingress only from %v; MinIO and Prometheus may be anywhere", dp.Name, describePeers(rule.From))
		}
		if len(rule.Ports) == 0 {
			t.Errorf("NetworkPolicy %s: an ingress rule without ports allows every port", dp.Name)
		}
		for _, p := range rule.Ports {
			got = append(got, resolvePort(c, p))
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("NetworkPolicy %s: ingress on %q, want the container's ports %q", dp.Name, got, want)
	}

	// The sweep serves nothing.
	sp := must[networkingv1.NetworkPolicy](t, r, "NetworkPolicy", sweepCronJob)
	checkPolicyTypes(t, sp, networkingv1.PolicyTypeIngress)
	if len(sp.Spec.Ingress) > 0 {
		t.Errorf("NetworkPolicy %s: %d ingress rules, want none", sp.Name, len(sp.Spec.Ingress))
	}
}

func checkPolicyTypes(t *testing.T, p *networkingv1.NetworkPolicy, want ...networkingv1.PolicyType) {
	t.Helper()
	if !slices.Equal(p.Spec.PolicyTypes, want) {
		t.Errorf("NetworkPolicy %s: policyTypes %v, want %v", p.Name, p.Spec.PolicyTypes, want)
	}
	if !slices.Contains(want, networkingv1.PolicyTypeEgress) && len(p.Spec.Egress) > 0 {
		t.Errorf("NetworkPolicy %s: egress rules without policy type Egress", p.Name)
	}
}

// checkMinIOEgress checks the kind overlay's bucket rule: MinIO's pods, in
// the namespace, on the port behind the bucket URL's endpoint.
func checkMinIOEgress(t *testing.T, r *rendering, rule networkingv1.NetworkPolicyEgressRule) {
	t.Helper()
	m := must[appsv1.Deployment](t, r, "Deployment", "minio")
	if len(rule.To) != 1 || rule.To[0].PodSelector == nil || rule.To[0].NamespaceSelector != nil || rule.To[0].IPBlock != nil {
		t.Errorf("runner egress %s: want one podSelector, for MinIO's pods in %s", describeEgress(rule), namespace)
	} else {
		sel, err := metav1.LabelSelectorAsSelector(rule.To[0].PodSelector)
		if err != nil {
			t.Fatal(err)
		}
		for _, pt := range podTemplates(r) {
			if minio := pt.tmpl == &m.Spec.Template; sel.Matches(labels.Set(pt.tmpl.Labels)) != minio {
				t.Errorf("runner egress to pods %s: selects %s: %v, want %v", sel, pt.where, !minio, minio)
			}
		}
	}
	// The bucket URL names the Service's api port (checkKind); the policy
	// sees the pod's port it forwards to.
	api := containerPort(&m.Spec.Template.Spec.Containers[0], "api")
	for _, sp := range must[corev1.Service](t, r, "Service", "minio").Spec.Ports {
		if sp.Name == "api" && sp.TargetPort.String() != "api" && sp.TargetPort.String() != fmt.Sprint(api) {
			t.Errorf("Service minio: port api forwards to %s, not MinIO's api port %d", sp.TargetPort.String(), api)
		}
	}
	if got, want := describePorts(rule.Ports), fmt.Sprintf("[TCP/%d]", api); got != want {
		t.Errorf("runner egress %s: want the ports %s (MinIO's api port)", describeEgress(rule), want)
	}
}

// describeEgress writes a rule with its peers and ports sorted, e.g.
// "to [pod{app=x}] ports [TCP/9000]".
func describeEgress(rule networkingv1.NetworkPolicyEgressRule) string {
	return fmt.Sprintf("to %s ports %s", describePeers(rule.To), describePorts(rule.Ports))
}

// describePeers writes peers sorted, and the selectors of one peer (which
// must all match) joined by "&", e.g. "[namespace{a=b} & pod{c=d},
// pod{app=x}]".
func describePeers(peers []networkingv1.NetworkPolicyPeer) string {
	out := []string{}
	for _, p := range peers {
		var parts []string
		if b := p.IPBlock; b != nil {
			parts = append(parts, "ipBlock{"+b.CIDR+" except "+strings.Join(slices.Sorted(slices.Values(b.Except)), ",")+"}")
		}
		if s := p.NamespaceSelector; s != nil {
			parts = append(parts, "namespace{"+metav1.FormatLabelSelector(s)+"}")
		}
		if s := p.PodSelector; s != nil {
			parts = append(parts, "pod{"+metav1.FormatLabelSelector(s)+"}")
		}
		out = append(out, strings.Join(parts, " & "))
	}
	slices.Sort(out)
	return "[" + strings.Join(out, ", ") + "]"
}

// describePorts writes ports sorted, e.g. "[TCP/53 UDP/53]".
func describePorts(ports []networkingv1.NetworkPolicyPort) string {
	out := []string{}
	for _, p := range ports {
		port := "all"
		if p.Port != nil {
			port = p.Port.String()
		}
		if p.EndPort != nil {
			port += fmt.Sprintf("-%d", *p.EndPort)
		}
		out = append(out, fmt.Sprintf("%s/%s", protocolOf(ptrValue(p.Protocol)), port))
	}
	slices.Sort(out)
	return fmt.Sprint(out)
}

// resolvePort is the container port a NetworkPolicy port names, as
// "NAME PROTOCOL/NUMBER", or what is wrong with it.
func resolvePort(c *corev1.Container, p networkingv1.NetworkPolicyPort) string {
	proto := protocolOf(ptrValue(p.Protocol))
	if p.Port == nil || p.EndPort != nil {
		return "not one port: " + describePorts([]networkingv1.NetworkPolicyPort{p})
	}
	for _, cp := range c.Ports {
		if (cp.Name == p.Port.String() || fmt.Sprint(cp.ContainerPort) == p.Port.String()) && protocolOf(cp.Protocol) == proto {
			return fmt.Sprintf("%s %s/%d", cp.Name, proto, cp.ContainerPort)
		}
	}
	return fmt.Sprintf("%s/%s: not a port of container %s", proto, p.Port, c.Name)
}

// protocolOf is a port's protocol, TCP when unset.
func protocolOf(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// ---- the dispatcher's view -----------------------------------------------------

// dispatcherEnvVars maps each environment variable of guestkit-dispatcher's
// flags to the commands that read it ("" for the global flags).
func dispatcherEnvVars(t *testing.T) map[string][]string {
	t.Helper()
	p, err := kong.New(&cli.CLI{}, kong.Name("guestkit-dispatcher"), cli.Vars())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	var walk func(n *kong.Node, cmd string)
	walk = func(n *kong.Node, cmd string) {
		for _, f := range n.Flags {
			for _, e := range f.Envs {
				out[e] = append(out[e], cmd)
			}
		}
		for _, c := range n.Children {
			walk(c, strings.TrimSpace(cmd+" "+c.Name))
		}
	}
	walk(p.Model.Node, "")
	if len(out) < 40 {
		t.Fatalf("found %d dispatcher env vars; the walk is broken", len(out))
	}
	return out
}

// parseDispatcher parses the command line and environment the kubelet would
// give the dispatcher container of a Deployment or CronJob, with the
// dispatcher's own parser: every setting must be a flag's variable for that
// command, and every value must parse.
func parseDispatcher(t *testing.T, r *rendering, kind, name string) *cli.CLI {
	t.Helper()
	var ps *corev1.PodSpec
	switch kind {
	case "Deployment":
		ps = &must[appsv1.Deployment](t, r, kind, name).Spec.Template.Spec
	case "CronJob":
		ps = &must[batchv1.CronJob](t, r, kind, name).Spec.JobTemplate.Spec.Template.Spec
	}
	c := &ps.Containers[0]
	if !slices.Equal(c.Command, []string{"guestkit-dispatcher"}) || len(c.Args) == 0 {
		t.Fatalf("%s %s: command %q args %q, want guestkit-dispatcher COMMAND", kind, name, c.Command, c.Args)
	}
	cmd := c.Args[0]
	known := dispatcherEnvVars(t)
	// The container's own variables are for its command, or Go's runtime.
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			if _, err := resource.ParseQuantity(strings.TrimSuffix(e.Value, "B")); err != nil {
				t.Errorf("%s %s: GOMEMLIMIT %q: %v", kind, name, e.Value, err)
			}
			continue
		}
		if cmds := known[e.Name]; !slices.Contains(cmds, "") && !slices.Contains(cmds, cmd) {
			t.Errorf("%s %s: %s is not a setting of guestkit-dispatcher %s", kind, name, e.Name, cmd)
		}
	}
	env := containerEnv(t, r, c, map[string]string{"metadata.namespace": namespace, "metadata.name": name + "-7d4b9c-x2x4z"})
	// The container's environment only: none of this process's.
	for k := range known {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out cli.CLI
	p, err := kong.New(&out, kong.Name("guestkit-dispatcher"), cli.Vars(), kong.Exit(func(code int) { t.Errorf("exit %d", code) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Parse(c.Args); err != nil {
		t.Fatalf("%s %s: guestkit-dispatcher %s with its environment: %v", kind, name, strings.Join(c.Args, " "), err)
	}
	if out.Bucket == "" || out.Bucket == "guestkit-bucket" {
		t.Errorf("%s %s: no bucket (%q)", kind, name, out.Bucket)
	}
	return &out
}

// containerEnv is the environment the kubelet would give c: its envFrom
// ConfigMaps and Secrets from the rendering, then env, with downward API
// fields from fields.
func containerEnv(t *testing.T, r *rendering, c *corev1.Container, fields map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	secret := func(name string, optional *bool) *corev1.Secret {
		s := find[corev1.Secret](r, "Secret", name)
		if s == nil && (optional == nil || !*optional) {
			t.Errorf("container %s: Secret %s is not in the manifests and not optional", c.Name, name)
		}
		return s
	}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			for k, v := range must[corev1.ConfigMap](t, r, "ConfigMap", ef.ConfigMapRef.Name).Data {
				env[ef.Prefix+k] = v
			}
		case ef.SecretRef != nil:
			if s := secret(ef.SecretRef.Name, ef.SecretRef.Optional); s != nil {
				for k := range s.Data {
					env[ef.Prefix+k] = secretValue(s, k)
				}
				for k, v := range s.StringData {
					env[ef.Prefix+k] = v
				}
			}
		}
	}
	for _, e := range c.Env {
		switch vf := e.ValueFrom; {
		case vf == nil:
			env[e.Name] = e.Value
		case vf.FieldRef != nil:
			v, ok := fields[vf.FieldRef.FieldPath]
			if !ok {
				t.Fatalf("container %s: %s from field %s: not simulated", c.Name, e.Name, vf.FieldRef.FieldPath)
			}
			env[e.Name] = v
		case vf.SecretKeyRef != nil:
			if s := secret(vf.SecretKeyRef.Name, vf.SecretKeyRef.Optional); s != nil {
				env[e.Name] = secretValue(s, vf.SecretKeyRef.Key)
			}
		default:
			t.Fatalf("container %s: %s: valueFrom %+v not simulated", c.Name, e.Name, vf)
		}
	}
	return env
}

func checkWatch(t *testing.T, r *rendering, c *cli.CLI) {
	t.Helper()
	w := &c.Watch
	if w.Executor != "kubernetes" || !w.LeaderElect || w.Namespace != namespace {
		t.Errorf("watch: executor %q, leader election %v, namespace %q; want kubernetes, true, %s", w.Executor, w.LeaderElect, w.Namespace, namespace)
	}
	if !strings.HasPrefix(w.Identity, dispatcherApp+"-") {
		t.Errorf("watch: identity %q is not the pod name", w.Identity)
	}
	d := must[appsv1.Deployment](t, r, "Deployment", dispatcherApp)
	_, port, err := net.SplitHostPort(w.MetricsAddr)
	if err != nil || port != fmt.Sprint(containerPort(&d.Spec.Template.Spec.Containers[0], "metrics")) {
		t.Errorf("watch: --metrics-addr %q is not the container's metrics port", w.MetricsAddr)
	}
	if w.ServiceAccount != "" && find[corev1.ServiceAccount](r, "ServiceAccount", w.ServiceAccount) == nil {
		t.Errorf("watch: runner service account %q is not in the manifests", w.ServiceAccount)
	}
	if w.SecretRef != "" && find[corev1.Secret](r, "Secret", w.SecretRef) == nil {
		t.Errorf("watch: --secret-ref %q is not in the manifests", w.SecretRef)
	}

	// Nothing shipped may look like one of the dispatcher's Jobs: it would
	// count it as active, settle it and delete it.
	own := labels.SelectorFromSet(labels.Set{kubejob.LabelManagedBy: kubejob.LabelManagedByValue, kubejob.LabelInstance: w.Instance})
	for _, o := range r.objs {
		if own.Matches(labels.Set(o.meta.GetLabels())) {
			t.Errorf("%s %s carries the dispatcher's Job labels %s", o.kind, o.meta.GetName(), own)
		}
		if cj, ok := o.obj.(*batchv1.CronJob); ok && own.Matches(labels.Set(cj.Spec.JobTemplate.Labels)) {
			t.Errorf("CronJob %s makes Jobs with the dispatcher's Job labels %s", cj.Name, own)
		}
	}
}

// runnerJob renders the Job the dispatcher would make for a bucket image
// with these settings (as `watch` does; see dispatcher/cli/executor.go).
func runnerJob(t *testing.T, r *rendering, f *cli.ExecutorFlags, bucket string) *batchv1.Job {
	t.Helper()
	bc, err := f.BuilderConfig()
	if err != nil {
		t.Fatalf("the dispatcher would not start: %v", err)
	}
	b, err := kubejob.NewBuilder(bc)
	if err != nil {
		t.Fatalf("the dispatcher would not start: %v", err)
	}
	j, _, err := spec.Load([]byte(`{"version":"1.0","job_id":"manifests-check","operation":"guestkit.inspect",
		"payload":{"type":"guestkit.inspect.v1","data":{"image":{"uri":"s3://guestkit/images/disk.qcow2"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	presigned := func(key string) string { return "https://bucket.example/" + key + "?X-Amz-Signature=0" }
	job, err := b.NewJob(kubejob.JobInput{
		Job: j, Bucket: bucket, SpecKey: "jobs/manifests-check.json", ResultKey: "results/manifests-check.json",
		SpecURI: presigned("jobs/manifests-check.json"), ResultURI: presigned("results/manifests-check.json"),
		ImageURL: presigned("images/disk.qcow2"), Now: time.Now(),
	})
	if err != nil {
		t.Fatalf("runner Job: %v", err)
	}
	job.APIVersion, job.Kind = "batch/v1", "Job"

	ps := &job.Spec.Template.Spec
	if ps.ServiceAccountName != "" && find[corev1.ServiceAccount](r, "ServiceAccount", ps.ServiceAccountName) == nil {
		t.Errorf("runner pods use service account %q, which is not in the manifests", ps.ServiceAccountName)
	}
	for _, svc := range ofKind(r, "Service") {
		sel := svc.obj.(*corev1.Service).Spec.Selector
		if len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(job.Spec.Template.Labels)) {
			t.Errorf("Service %s selects runner pods", svc.meta.GetName())
		}
	}
	if f.KVM == string(kubejob.KVMDevicePlugin) {
		if _, ok := ps.Containers[0].Resources.Limits[corev1.ResourceName(f.KVMResource)]; !ok {
			t.Errorf("runner pods do not request %s", f.KVMResource)
		}
	}
	return job
}

// ---- the API server's view -------------------------------------------------------

// checkWarningsAreSeen makes sure a Pod Security violation does come back
// as a warning, so that a clean dry run means something.
func checkWarningsAreSeen(t *testing.T, kc *kubectl, r *rendering) {
	t.Helper()
	d := must[appsv1.Deployment](t, r, "Deployment", dispatcherApp).DeepCopy()
	d.APIVersion, d.Kind = "apps/v1", "Deployment"
	d.Name += "-privileged"
	d.Spec.Template.Spec.HostNetwork = true
	doc, err := yaml.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, err := kc.run(t, doc, "apply", "--server-side", "--dry-run=server", "--field-manager="+fieldManager, "-f", "-")
	if err != nil || !strings.Contains(stderr, "would violate PodSecurity") {
		t.Errorf("a hostNetwork Deployment: %v, stderr %q; want a PodSecurity warning", err, stderr)
	}
}

// checkAccess asks the API server's authorizer what the service accounts
// may do: exactly the dispatcher's calls in its namespace, nothing for the
// runner.
func checkAccess(t *testing.T, k *testenv.Kube) {
	t.Helper()
	type access struct {
		sa, ns, group, resource, sub, verb string
		allowed                            bool
	}
	var checks []access
	for gr, verbs := range wantRules {
		group, res, _ := strings.Cut(gr, "/")
		res, sub, _ := strings.Cut(res, "/")
		for _, v := range []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"} {
			checks = append(checks, access{dispatcherSA, namespace, group, res, sub, v, slices.Contains(verbs, v)})
		}
		checks = append(checks, access{dispatcherSA, "default", group, res, sub, verbs[0], false})
		checks = append(checks, access{runnerSA, namespace, group, res, sub, verbs[0], false})
	}
	for _, res := range []string{"secrets", "configmaps", "serviceaccounts"} {
		checks = append(checks, access{dispatcherSA, namespace, "", res, "", "get", false})
	}
	checks = append(checks,
		access{dispatcherSA, namespace, "", "pods", "exec", "create", false},
		access{dispatcherSA, namespace, "rbac.authorization.k8s.io", "rolebindings", "", "create", false},
		access{dispatcherSA, "", "", "nodes", "", "list", false},
		access{dispatcherSA, "", "batch", "jobs", "", "list", false}, // all namespaces
	)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The authorizer's cache takes a moment to see new bindings.
	deadline := time.Now().Add(10 * time.Second)
	var wrong []string
	for {
		wrong = wrong[:0]
		for _, a := range checks {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   "system:serviceaccount:" + namespace + ":" + a.sa,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: a.ns, Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.sub,
				},
			}}
			got, err := k.Client().AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("SubjectAccessReview: %v", err)
			}
			if got.Status.Allowed != a.allowed {
				wrong = append(wrong, fmt.Sprintf("%s may %s %s/%s/%s in %q: %v, want %v", a.sa, a.verb, a.group, a.resource, a.sub, a.ns, got.Status.Allowed, a.allowed))
			}
		}
		if len(wrong) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, w := range wrong {
		t.Error(w)
	}
}
