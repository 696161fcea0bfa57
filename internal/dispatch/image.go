package dispatch

import (
	"fmt"
	"net/url"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"guestkit.io/batch/internal/spec"
)

// ImageKind says where a runner finds a spec's disk image; see the package
// documentation.
type ImageKind string

const (
	ImageBucket   ImageKind = "bucket"   // s3://, minio://: the runner downloads it with the pod's credentials
	ImageHTTP     ImageKind = "http"     // http(s)://: the runner downloads it
	ImageHostPath ImageKind = "hostpath" // path or file://: a node directory mounted read-only
	ImagePVC      ImageKind = "pvc"      // pvc://CLAIM/PATH: the claim mounted read-only
)

// ImageSource is where a runner finds a spec's image.
type ImageSource struct {
	Kind ImageKind
	// URI is the image as the spec names it (Image.Location()).
	URI string
	// LocalPath is the file in the runner's container (GUESTKIT_IMAGE) for
	// mounted images; "" when the runner downloads the image.
	LocalPath string
	// HostDir is the node directory mounted at the same path (ImageHostPath).
	HostDir string
	// Claim is the PersistentVolumeClaim (ImagePVC), mounted at MountPath.
	Claim     string
	MountPath string
}

// ImageSourceOf says where the runner will find a spec's image. An image
// the configuration does not allow is a *SpecError.
func (b *Builder) ImageSourceOf(j *spec.Job) (ImageSource, error) {
	img := j.Image()
	if img == nil || (img.Path == "") == (img.URI == "") {
		return ImageSource{}, specErr("payload.data.image", "", "set exactly one of path and uri")
	}
	src := ImageSource{URI: img.Location()}
	if img.Path != "" {
		return b.hostPath(src, "payload.data.image.path", img.Path, j)
	}
	const field = "payload.data.image.uri"
	u, err := url.Parse(img.URI)
	if err != nil {
		return ImageSource{}, specErr(field, img.URI, "%v", err)
	}
	switch u.Scheme {
	case "s3", "minio":
		src.Kind = ImageBucket
	case "http", "https":
		src.Kind = ImageHTTP
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return ImageSource{}, specErr(field, img.URI, "file URIs must be local: file:///path")
		}
		return b.hostPath(src, field, u.Path, j)
	case "pvc":
		claim := u.Host
		if u.Port() != "" || len(validation.IsDNS1123Subdomain(claim)) > 0 {
			return ImageSource{}, specErr(field, img.URI, "must be pvc://CLAIM/PATH with a claim name that is a DNS-1123 subdomain")
		}
		if msg := cleanAbs(u.Path); msg != "" {
			return ImageSource{}, specErr(field, img.URI, "path %s", msg)
		}
		src.Kind = ImagePVC
		src.Claim = claim
		src.MountPath = ImageMountRoot + "/" + claim
		src.LocalPath = src.MountPath + u.Path
	default:
		return ImageSource{}, specErr(field, img.URI, "unsupported scheme %q", u.Scheme)
	}
	return src, nil
}

// hostPath resolves a node file: the directory to mount is
// routing.affinity.disk_locality, or else the longest HostPathRoots entry
// that holds the file; either way it must lie under a HostPathRoots entry.
func (b *Builder) hostPath(src ImageSource, field, p string, j *spec.Job) (ImageSource, error) {
	if msg := cleanAbs(p); msg != "" {
		return ImageSource{}, specErr(field, p, "%s", msg)
	}
	roots := b.cfg.HostPathRoots
	if len(roots) == 0 {
		return ImageSource{}, specErr(field, p, "images on node paths are disabled on this dispatcher (no host path roots); use a bucket, http or pvc:// URI")
	}
	dir := ""
	if r := j.Routing; r != nil && r.Affinity != nil && r.Affinity.DiskLocality != "" {
		dir = r.Affinity.DiskLocality
		const dfield = "routing.affinity.disk_locality"
		if msg := cleanAbs(dir); msg != "" {
			return ImageSource{}, specErr(dfield, dir, "%s", msg)
		}
		if !strings.HasPrefix(p, dir+"/") {
			return ImageSource{}, specErr(field, p, "not under routing.affinity.disk_locality %s", dir)
		}
		if !underAny(dir, roots) {
			return ImageSource{}, specErr(dfield, dir, "not under a host path root of this dispatcher (%s)", strings.Join(roots, ", "))
		}
	} else {
		for _, r := range roots {
			if strings.HasPrefix(p, r+"/") && len(r) > len(dir) {
				dir = r
			}
		}
		if dir == "" {
			return ImageSource{}, specErr(field, p, "not under a host path root of this dispatcher (%s)", strings.Join(roots, ", "))
		}
	}
	src.Kind = ImageHostPath
	src.HostDir = dir
	src.MountPath = dir
	src.LocalPath = p
	return src, nil
}

func underAny(p string, roots []string) bool {
	for _, r := range roots {
		if within(p, r) {
			return true
		}
	}
	return false
}

// cleanAbs checks a path: absolute, clean, not /, no control characters.
func cleanAbs(p string) string {
	switch {
	case !path.IsAbs(p):
		return "must be an absolute path"
	case p == "/":
		return "must name a file, not /"
	case path.Clean(p) != p || strings.Contains(p, "/../") || strings.HasSuffix(p, "/.."):
		return "must be clean (no //, /./, /../ or trailing /)"
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "must not contain control characters"
	}
	return ""
}

// volumes returns the image's volume and mount, if it is mounted.
func (s ImageSource) volumes() ([]corev1.Volume, []corev1.VolumeMount) {
	rro := corev1.RecursiveReadOnlyIfPossible
	mount := corev1.VolumeMount{Name: imageVolume, MountPath: s.MountPath, ReadOnly: true, RecursiveReadOnly: &rro}
	switch s.Kind {
	case ImageHostPath:
		dir := corev1.HostPathDirectory
		return []corev1.Volume{{Name: imageVolume, VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: s.HostDir, Type: &dir}}}}, []corev1.VolumeMount{mount}
	case ImagePVC:
		return []corev1.Volume{{Name: imageVolume, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: s.Claim, ReadOnly: true}}}}, []corev1.VolumeMount{mount}
	}
	return nil, nil
}

func (s ImageSource) String() string {
	if s.LocalPath != "" {
		return fmt.Sprintf("%s %s at %s", s.Kind, s.URI, s.LocalPath)
	}
	return fmt.Sprintf("%s %s", s.Kind, s.URI)
}
