package kubejob

import (
	corev1 "k8s.io/api/core/v1"

	"guestkit.io/batch/internal/spec"
)

const imageVolume = "image"

// ImageSourceOf says where the runner will find a spec's image, with this
// Builder's host path roots. An image it does not serve is a *spec.Refused.
func (b *Builder) ImageSourceOf(j *spec.Job) (spec.ImageSource, error) {
	return j.ImageSource(b.cfg.HostPathRoots)
}

// imageOf is the admitted image source, or else the spec's resolved with
// this Builder's roots. A host directory is mounted only under those roots,
// whatever the admission says.
func (b *Builder) imageOf(in JobInput) (spec.ImageSource, error) {
	if in.Admission == nil {
		return b.ImageSourceOf(in.Job)
	}
	img := in.Admission.Image
	if img.Kind == spec.ImageHostPath && !spec.UnderAny(img.HostDir, b.cfg.HostPathRoots) {
		return spec.ImageSource{}, spec.Refuse("payload.data.image", img.URI, "not under a host path root of this dispatcher")
	}
	return img, nil
}

// imageVolumes returns the image's volume and mount, if it is mounted.
func imageVolumes(s spec.ImageSource) ([]corev1.Volume, []corev1.VolumeMount) {
	rro := corev1.RecursiveReadOnlyIfPossible
	mount := corev1.VolumeMount{Name: imageVolume, MountPath: s.MountPath, ReadOnly: true, RecursiveReadOnly: &rro}
	switch s.Kind {
	case spec.ImageHostPath:
		dir := corev1.HostPathDirectory
		return []corev1.Volume{{Name: imageVolume, VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: s.HostDir, Type: &dir}}}}, []corev1.VolumeMount{mount}
	case spec.ImagePVC:
		return []corev1.Volume{{Name: imageVolume, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: s.Claim, ReadOnly: true}}}}, []corev1.VolumeMount{mount}
	}
	return nil, nil
}
