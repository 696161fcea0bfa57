package spec

import (
	"fmt"
	"net/url"
	"path"
	"strings"

	"guestkit.io/batch/internal/store"
)

// ImageKind says where a runner finds a spec's disk image.
type ImageKind string

const (
	ImageBucket   ImageKind = "bucket"   // a bucket URI (store.IsBucketURI) or a key in the dispatcher's bucket
	ImageHTTP     ImageKind = "http"     // http(s)://: the runner downloads it
	ImageHostPath ImageKind = "hostpath" // path or file://: a node directory mounted read-only
	ImagePVC      ImageKind = "pvc"      // pvc://CLAIM/PATH: the claim mounted read-only
)

// ImageMountRoot is where PVC images are mounted: /images/CLAIM.
const ImageMountRoot = "/images"

// ImageSource is where a runner finds a spec's image.
type ImageSource struct {
	Kind ImageKind
	// URI is the image as the spec names it (Image.Location()).
	URI string
	// LocalPath is the file the runner opens (GUESTKIT_IMAGE) for mounted
	// images; "" when the runner downloads the image.
	LocalPath string
	// Bucket and Key name a bucket image (ImageBucket): Bucket is the
	// bucket URL (scheme://BUCKET), "" for the dispatcher's own bucket when
	// the spec names the image by its key alone.
	Bucket, Key string
	// HostDir is the node directory mounted at the same path (ImageHostPath).
	HostDir string
	// Claim is the PersistentVolumeClaim (ImagePVC), mounted at MountPath.
	Claim     string
	MountPath string
}

func (s ImageSource) String() string {
	if s.LocalPath != "" {
		return fmt.Sprintf("%s %s at %s", s.Kind, s.URI, s.LocalPath)
	}
	return fmt.Sprintf("%s %s", s.Kind, s.URI)
}

// ImageSource says where the runner will find the job's image. Node
// paths are allowed only under hostPathRoots (clean absolute paths; see
// HostPathRootProblem). An image that cannot be served is a *Refused.
func (j *Job) ImageSource(hostPathRoots []string) (ImageSource, error) {
	img := j.Image()
	if img == nil || (img.Path == "") == (img.URI == "") {
		return ImageSource{}, Refuse("payload.data.image", "", "set exactly one of path and uri")
	}
	src := ImageSource{URI: img.Location()}
	if img.Path != "" {
		return j.hostPath(src, hostPathRoots, "payload.data.image.path", img.Path)
	}
	const field = "payload.data.image.uri"
	if isKey(img.URI) {
		if msg := keyProblem(img.URI); msg != "" {
			return ImageSource{}, Refuse(field, img.URI, "%s", msg)
		}
		src.Kind, src.Key = ImageBucket, img.URI
		return src, nil
	}
	u, err := url.Parse(img.URI)
	if err != nil {
		return ImageSource{}, Refuse(field, img.URI, "%v", err)
	}
	switch {
	case store.IsBucketScheme(u.Scheme):
		bucket, key, err := store.SplitURI(img.URI)
		if err != nil {
			return ImageSource{}, Refuse(field, img.URI, "%v", err)
		}
		src.Kind, src.Bucket, src.Key = ImageBucket, bucket, key
	case u.Scheme == "http" || u.Scheme == "https":
		src.Kind = ImageHTTP
	case u.Scheme == "file":
		if u.Host != "" && u.Host != "localhost" {
			return ImageSource{}, Refuse(field, img.URI, "file URIs must be local: file:///path")
		}
		return j.hostPath(src, hostPathRoots, field, u.Path)
	case u.Scheme == "pvc":
		claim := u.Host
		if u.Port() != "" || !isDNSSubdomain(claim) {
			return ImageSource{}, Refuse(field, img.URI, "must be pvc://CLAIM/PATH with a claim name that is a DNS-1123 subdomain")
		}
		if msg := cleanAbs(u.Path); msg != "" {
			return ImageSource{}, Refuse(field, img.URI, "path %s", msg)
		}
		src.Kind = ImagePVC
		src.Claim = claim
		src.MountPath = ImageMountRoot + "/" + claim
		src.LocalPath = src.MountPath + u.Path
	default:
		return ImageSource{}, Refuse(field, img.URI, "unsupported scheme %q", u.Scheme)
	}
	return src, nil
}

// hostPath resolves a node file: the directory to mount is
// routing.affinity.disk_locality, or else the longest root that holds the
// file; either way it must lie under a root.
func (j *Job) hostPath(src ImageSource, roots []string, field, p string) (ImageSource, error) {
	if msg := cleanAbs(p); msg != "" {
		return ImageSource{}, Refuse(field, p, "%s", msg)
	}
	if len(roots) == 0 {
		return ImageSource{}, refuseRoot(field, p, "images on host paths are disabled on this dispatcher (no host path roots)")
	}
	dir := ""
	if r := j.Routing; r != nil && r.Affinity != nil && r.Affinity.DiskLocality != "" {
		dir = r.Affinity.DiskLocality
		const dfield = "routing.affinity.disk_locality"
		if msg := cleanAbs(dir); msg != "" {
			return ImageSource{}, Refuse(dfield, dir, "%s", msg)
		}
		if !strings.HasPrefix(p, dir+"/") {
			return ImageSource{}, Refuse(field, p, "not under routing.affinity.disk_locality %s", dir)
		}
		if !UnderAny(dir, roots) {
			return ImageSource{}, refuseRoot(dfield, dir, "not under a host path root of this dispatcher")
		}
	} else {
		for _, r := range roots {
			if strings.HasPrefix(p, r+"/") && len(r) > len(dir) {
				dir = r
			}
		}
		if dir == "" {
			return ImageSource{}, refuseRoot(field, p, "not under a host path root of this dispatcher")
		}
	}
	src.Kind = ImageHostPath
	src.HostDir = dir
	src.MountPath = dir
	src.LocalPath = p
	return src, nil
}

// refuseRoot refuses a path outside the operator's host path roots, without
// listing them: spec writers learn the rule, not the host's layout.
func refuseRoot(field, value, msg string) *Refused {
	r := Refuse(field, value, "%s", msg)
	r.Rule = "host path roots"
	return r
}

// forbiddenRoots may not be host path roots, nor hold one: mounting them
// would hide the runner's own files or the node's devices.
var forbiddenRoots = []string{
	"/bin", "/dev", "/etc", ImageMountRoot, "/lib", "/lib64", "/proc", "/sbin",
	"/sys", "/tmp", "/usr", "/var/tmp", "/var/run", "/run",
}

// HostPathRootProblem says what is wrong with r as a host path root; ""
// when nothing is.
func HostPathRootProblem(r string) string {
	if !path.IsAbs(r) || path.Clean(r) != r {
		return "must be an absolute, clean path"
	}
	if r == "/" {
		return "must not be /"
	}
	for _, f := range forbiddenRoots {
		if within(r, f) || within(f, r) {
			return "must not be, hold or be under " + f
		}
	}
	return ""
}

// UnderAny says whether p is one of roots or under one; all clean and
// absolute.
func UnderAny(p string, roots []string) bool {
	for _, r := range roots {
		if within(p, r) {
			return true
		}
	}
	return false
}

// within says whether p is dir or under it; both clean and absolute.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
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
