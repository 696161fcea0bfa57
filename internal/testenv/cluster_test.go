package testenv

import (
	"context"
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// A real pod on the real node: scheduled by kube-scheduler onto the node by
// its label, started by the kubelet through containerd and runc, given an
// address on the pod network, and removed by the kubelet when deleted.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kubernetes node")
	}
	start := time.Now()
	c := StartCluster(t, ClusterOptions{NodeLabels: map[string]string{"guestkit.io/disk-access": "true"}})
	t.Logf("cluster ready in %v", time.Since(start).Round(time.Millisecond))
	cs, ns := c.Client(), c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pause"},
		Spec: corev1.PodSpec{
			NodeSelector:                 map[string]string{"guestkit.io/disk-access": "true"},
			AutomountServiceAccountToken: new(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   new(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            "pause",
				Image:           PauseImage,
				ImagePullPolicy: corev1.PullNever,
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: new(false),
					ReadOnlyRootFilesystem:   new(true),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *corev1.Pod
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "pause", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = p
		return p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("pod not running: %v; status %+v", err, got.Status)
	}
	t.Logf("pod running %v after creation", time.Since(got.CreationTimestamp.Time).Round(time.Millisecond))
	if got.Spec.NodeName != c.Node {
		t.Errorf("pod on node %q, want %q", got.Spec.NodeName, c.Node)
	}
	_, subnet, _ := net.ParseCIDR(clusterSubnet)
	if ip := net.ParseIP(got.Status.PodIP); ip == nil || !subnet.Contains(ip) || got.Status.PodIP == c.HostIP {
		t.Errorf("pod IP %q, want one in %s", got.Status.PodIP, clusterSubnet)
	}

	if err := cs.CoreV1().Pods(ns).Delete(ctx, "pause", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, "pause", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("pod not removed by the kubelet: %v", err)
	}
}
