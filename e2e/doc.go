// Package e2e holds the end-to-end tests of guestkit-batch (build tag e2e):
// the images and the manifests deployed on a real cluster, specs put in a
// real bucket, and every scenario judged by what lands in the bucket.
//
//	make e2e                                   # the local provider
//	GUESTKIT_E2E_PROVIDER=kind make e2e        # a kind cluster (Docker)
//	GUESTKIT_E2E_PROVIDER=kubeconfig KUBECONFIG=... make e2e
//
// Providers (e2e/README.md has the details):
//   - local: a one-node cluster of real processes on this machine
//     (internal/testenv.StartCluster: etcd, kube-apiserver,
//     kube-controller-manager, kube-scheduler, kubelet, containerd, runc,
//     CNI bridge), the image archives imported into its containerd,
//     MinIO on the host, manifests/base through e2e/overlays/local.
//   - kind: a cluster from kind-config.yaml, the archives loaded with
//     `kind load image-archive`, manifests/overlays/kind (MinIO in the
//     cluster), then as kubeconfig.
//   - kubeconfig: any cluster whose nodes already have the images;
//     manifests/overlays/kind is applied to it.
package e2e
