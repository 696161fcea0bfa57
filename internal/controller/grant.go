package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// MaxGrantTTL is S3's limit on a presigned URL's life.
const MaxGrantTTL = 7 * 24 * time.Hour

// Grant is what a runner gets to reach one job's objects: the spec to
// read, the result and report to write, and a bucket image to read. Both
// executors give runners grants, never the dispatcher's credentials.
type Grant struct {
	Spec, Result string
	// Report is where the first SARIF, JUnit or SBOM report goes; "" when the
	// spec asks for none.
	Report string
	// ImageURL is the bucket image's URL; "" for other image sources.
	ImageURL string
	// Image is what the dispatcher saw of a presigned bucket image; the
	// runner pins its reads to it.
	Image ImageFacts
}

// ImageFacts is a bucket image as the dispatcher saw it when it granted
// it: its identity, and the digest its store attests (store.Attestation's
// String form, "" when none).
type ImageFacts struct {
	ETag string
	// VersionID is the object's version in a versioned bucket; the
	// ImageURL then names that version, so a key overwritten during the
	// run keeps serving what was admitted.
	VersionID string
	Size      int64
	Attested  string
}

// reportKey is the first report's key beside the result, as the runner
// names it; "" when the spec asks for none.
func reportKey(e *intake.Entry) string {
	if f := e.Job.OutputFormat(); result.IsReport(f) {
		return result.ReportName(strings.TrimSuffix(e.ResultKey, ".json"), f, 0)
	}
	return ""
}

// Presign grants an admitted job's objects for ttl (at most MaxGrantTTL):
// presigned GET and PUT URLs in a remote bucket, file URIs in a folder.
func Presign(ctx context.Context, st store.Store, stores *store.Stores, e *intake.Entry, ttl time.Duration) (Grant, error) {
	ttl = min(ttl, MaxGrantTTL)
	var g Grant
	var err error
	if g.Spec, err = st.PresignGet(ctx, e.Key, ttl); err != nil {
		return g, fmt.Errorf("presign spec %s: %w", e.Key, err)
	}
	if g.Result, err = st.PresignPut(ctx, e.ResultKey, ttl); err != nil {
		return g, fmt.Errorf("presign result %s: %w", e.ResultKey, err)
	}
	if k := reportKey(e); k != "" {
		if g.Report, err = st.PresignPut(ctx, k, ttl); err != nil {
			return g, fmt.Errorf("presign report %s: %w", k, err)
		}
	}
	img := e.Admission.Image
	if img.Kind != spec.ImageBucket {
		return g, nil
	}
	ist, err := stores.Open(ctx, img.Bucket)
	if err != nil {
		return g, fmt.Errorf("image bucket %s: %w", redact.URL(img.Bucket), err)
	}
	if g.ImageURL, err = ist.PresignGet(ctx, img.Key, ttl); err != nil {
		return g, fmt.Errorf("presign image %s: %w", redact.URL(img.URI), err)
	}
	if strings.HasPrefix(g.ImageURL, "file://") {
		return g, nil // read in place: nothing to pin
	}
	o, err := ist.Stat(ctx, img.Key)
	if err != nil {
		return g, fmt.Errorf("image %s: %w", redact.URL(img.URI), err)
	}
	if o.VersionID != "" {
		if g.ImageURL, err = store.PresignGetVersion(ctx, ist, img.Key, o.VersionID, ttl); err != nil {
			return g, fmt.Errorf("presign image %s version %s: %w", redact.URL(img.URI), o.VersionID, err)
		}
	}
	g.Image = ImageFacts{ETag: o.ETag, VersionID: o.VersionID, Size: o.Size}
	if e.Job.Image().Checksum != "" {
		g.Image.Attested = store.Attest(ctx, ist, img.Key, o).String()
	}
	return g, nil
}

// StoreURIs grants an admitted job's objects by their store URIs, for
// runners that bring credentials of their own (a pod's workload identity).
// A bucket image the spec names by URI is left to the runner; one named
// by its key alone gets its URI.
func StoreURIs(ctx context.Context, st store.Store, stores *store.Stores, e *intake.Entry) (Grant, error) {
	g := Grant{Spec: st.URI(e.Key), Result: st.URI(e.ResultKey)}
	if k := reportKey(e); k != "" {
		g.Report = st.URI(k)
	}
	img := e.Admission.Image
	if img.Kind == spec.ImageBucket && !store.IsBucketURI(img.URI) {
		ist, err := stores.Open(ctx, img.Bucket)
		if err != nil {
			return g, fmt.Errorf("image bucket %s: %w", redact.URL(img.Bucket), err)
		}
		g.ImageURL = ist.URI(img.Key)
	}
	return g, nil
}
