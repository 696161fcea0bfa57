package runner_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"guestkit.io/batch/internal/inspect/inspecttest"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runner"
	"guestkit.io/batch/internal/runnerenv"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/testenv"
)

// bucket is a real MinIO bucket holding test images, as the runner's store
// sees it.
type bucket struct {
	m    *testenv.MinIO
	name string
	st   store.Store
}

func newBucket(t *testing.T) *bucket {
	t.Helper()
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	b := &bucket{m: m, name: m.NewBucket(t)}
	st, err := store.Open(context.Background(), "minio://"+b.name)
	if err != nil {
		t.Fatal(err)
	}
	b.st = st
	return b
}

// put uploads a file as key, without a checksum or sidecar.
func (b *bucket) put(t *testing.T, key, path string) {
	t.Helper()
	ctx := context.Background()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if _, err := b.m.Client(t).PutObject(ctx, b.name, key, f, st.Size(), minio.PutObjectOptions{DisableContentSha256: true}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func (b *bucket) presign(t *testing.T, key string) string {
	t.Helper()
	u, err := b.st.PresignGet(context.Background(), key, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// streamJob is inspectJob for the bucket object key, which the runner
// reads through url (a presigned GET, as the dispatcher grants it).
func streamJob(img testImage, bucketName, key string) *spec.Job {
	j := inspectJob(img, 600)
	j.Payload.Data.Image = &spec.Image{URI: "s3://" + bucketName + "/" + key, Format: img.Format}
	return j
}

func byName(t *testing.T, name string) testImage {
	t.Helper()
	for _, img := range images(t) {
		if img.Name == name {
			return img
		}
	}
	t.Fatalf("no test image %s", name)
	return testImage{}
}

// TestStreamMatchesLocal streams every test image from a real MinIO and
// requires the report of a local read, field by field, from a fraction of
// the bytes: the direct backend on every image, the appliance (through the
// runner's NBD export) on a few formats and layouts.
func TestStreamMatchesLocal(t *testing.T) {
	imgs := images(t)
	b := newBucket(t)
	appliance := map[string]bool{"debian": true, "lvm": true, "debian-vmdk": true}
	for _, img := range imgs {
		t.Run(img.Name, func(t *testing.T) {
			key := "images/" + img.File
			b.put(t, key, img.Path)
			local := runnerExecute(t, img, 600, spec.BackendDirect)
			cfg := runner.Config{Version: "test", Accel: "auto", Backend: spec.BackendDirect, ImageURL: b.presign(t, key), ScratchDir: t.TempDir()}
			streamed := runner.Execute(context.Background(), streamJob(img, b.name, key), nil, cfg)
			sameReport(t, local, streamed)
			checkStreamed(t, img, streamed)
			if appliance[img.Name] {
				cfg.Backend = spec.BackendAppliance
				app := runner.Execute(context.Background(), streamJob(img, b.name, key), nil, cfg)
				if app.Backend == nil || app.Backend.Used != spec.BackendAppliance {
					t.Errorf("appliance run: backend %+v", app.Backend)
				}
				sameReport(t, local, app)
				checkStreamed(t, img, app)
			}
		})
	}
}

// sameReport requires the same verdict and the same data.
func sameReport(t *testing.T, want, got *result.Result) {
	t.Helper()
	if got.Status != want.Status || got.ExitCode != want.ExitCode || codeOf(got) != codeOf(want) {
		t.Fatalf("streamed: %s exit %d %s (%v); local: %s exit %d %s", got.Status, got.ExitCode, codeOf(got), got.Error,
			want.Status, want.ExitCode, codeOf(want))
	}
	diffs, err := inspecttest.Diff(want.Data, got.Data, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range diffs {
		t.Errorf("streamed report differs from the local one (local | streamed): %s", p)
	}
}

// checkStreamed requires a streamed read that says what it fetched: some
// bytes, and for an inspected image a small part of it.
func checkStreamed(t *testing.T, img testImage, res *result.Result) {
	t.Helper()
	st, err := os.Stat(img.Path)
	if err != nil {
		t.Fatal(err)
	}
	if res.Image == nil || res.Image.Access != result.AccessStream || res.Image.Fetch == nil {
		t.Fatalf("image block %+v: want access stream with fetch counts", res.Image)
	}
	f := res.Image.Fetch
	if st.Size() > 0 && (f.Requests == 0 || f.Bytes == 0) {
		t.Errorf("fetch %+v: nothing fetched of a %d-byte image", f, st.Size())
	}
	if res.Image.ETag == "" && st.Size() > 0 {
		t.Errorf("no ETag recorded")
	}
	if res.Status == result.StatusCompleted && st.Size() > 32<<20 && f.Fraction > 0.25 {
		t.Errorf("fetched %d of %d bytes (%.1f%%) to inspect; streaming should read a small part", f.Bytes, st.Size(), 100*f.Fraction)
	}
	t.Logf("%s: %s, fetched %d bytes of %d (%.2f%%) in %d requests", img.Name, res.Status, f.Bytes, st.Size(), 100*f.Fraction, f.Requests)
}

// faultProxy forwards to MinIO, calling before(n) ahead of the n-th
// request (from 1), which may answer it itself.
func faultProxy(t *testing.T, b *bucket, before func(n int64, w http.ResponseWriter, r *http.Request) bool) *httptest.Server {
	t.Helper()
	target, _ := url.Parse(b.m.Endpoint)
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target) // and its Host: the presigned signature covers MinIO's host
	}}
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if before != nil && before(n.Add(1), w, r) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// viaProxy points a presigned URL at the proxy; the signature covers the
// host, so the proxy keeps MinIO's Host header.
func viaProxy(t *testing.T, presigned string, srv *httptest.Server) string {
	t.Helper()
	u, _ := url.Parse(presigned)
	p, _ := url.Parse(srv.URL)
	u.Host = p.Host
	return u.String()
}

// TestStreamImageChanged replaces the object while the runner reads it:
// the runner's range reads are pinned to the first ETag, MinIO answers
// 412, and the job fails as image_changed, retryable, with no report.
func TestStreamImageChanged(t *testing.T) {
	// Over the size read whole at open, so that reads follow the change.
	img := byName(t, "rpm")
	other := byName(t, "debian")
	b := newBucket(t)
	key := "images/changing.qcow2"
	b.put(t, key, img.Path)
	var once sync.Once
	srv := faultProxy(t, b, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		if n == 4 {
			once.Do(func() { b.put(t, key, other.Path) })
		}
		return false
	})
	cfg := runner.Config{Version: "test", Backend: spec.BackendDirect, ScratchDir: t.TempDir()}
	cfg.ImageURL = viaProxyHost(t, b, key, srv)
	res := runner.Execute(context.Background(), streamJob(img, b.name, key), nil, cfg)
	if res.Status != result.StatusFailed || codeOf(res) != string(result.CodeImageChanged) || !res.Error.Retryable || res.ExitCode != result.ExitInfra {
		t.Fatalf("got %s %s exit %d (%+v), want failed image_changed, retryable, exit %d", res.Status, codeOf(res), res.ExitCode, res.Error, result.ExitInfra)
	}
	if res.Data != nil {
		t.Errorf("a report of a changed image was kept: %s", clip(string(res.Data)))
	}
	if !strings.Contains(res.Error.Message, "changed") {
		t.Errorf("message %q does not say the image changed", res.Error.Message)
	}
}

// viaProxyHost presigns key for MinIO and sends it through srv, which
// must present MinIO's host to it.
func viaProxyHost(t *testing.T, b *bucket, key string, srv *httptest.Server) string {
	t.Helper()
	return viaProxy(t, b.presign(t, key), srv)
}

// TestStreamSurvivesFaults injects 503 SlowDown and connection resets into
// the stream between the runner and MinIO: the job completes with the
// same report, and the result counts the retries.
func TestStreamSurvivesFaults(t *testing.T) {
	img := byName(t, "rpm")
	b := newBucket(t)
	key := "images/" + img.File
	b.put(t, key, img.Path)
	srv := faultProxy(t, b, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		switch n % 5 {
		case 2:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
			return true
		case 4:
			hj, ok := w.(http.Hijacker)
			if !ok {
				t.Error("no hijacker")
				return false
			}
			c, _, _ := hj.Hijack()
			c.Close() // a reset before any header
			return true
		}
		return false
	})
	local := runnerExecute(t, img, 600, spec.BackendDirect)
	cfg := runner.Config{Version: "test", Backend: spec.BackendDirect, ScratchDir: t.TempDir(), ImageURL: viaProxyHost(t, b, key, srv)}
	res := runner.Execute(context.Background(), streamJob(img, b.name, key), nil, cfg)
	sameReport(t, local, res)
	if res.Image.Fetch == nil || res.Image.Fetch.Retries == 0 {
		t.Errorf("fetch %+v: want the retries counted", res.Image.Fetch)
	}
}

// TestStreamFallsBackToDownload serves the image from a server that
// ignores Range: auto downloads it (saying why), stream refuses.
func TestStreamFallsBackToDownload(t *testing.T) {
	img := byName(t, "debian")
	data, err := os.ReadFile(img.Path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"whole"`)
		w.Write(data) // 200, whole body, whatever the Range
	}))
	defer srv.Close()
	job := inspectJob(img, 600)
	job.Payload.Data.Image = &spec.Image{URI: srv.URL + "/debian.qcow2", Format: img.Format}
	local := runnerExecute(t, img, 600, spec.BackendDirect)

	scratch := t.TempDir()
	res := runner.Execute(context.Background(), job, nil, runner.Config{Version: "test", Backend: spec.BackendDirect, ScratchDir: scratch})
	sameReport(t, local, res)
	if res.Image.Access != result.AccessDownload || !strings.Contains(res.Image.AccessReason, "200") {
		t.Errorf("access %q (%q): want download, with the server's 200 as the reason", res.Image.Access, res.Image.AccessReason)
	}
	if f := res.Image.Fetch; f == nil || f.Bytes != int64(len(data)) || f.Requests != 2 {
		t.Errorf("fetch %+v: want the whole %d bytes in 2 requests (the ranged try, the download)", f, len(data))
	}
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("the download was left in scratch: %v", left)
	}

	res = runner.Execute(context.Background(), job, nil, runner.Config{Version: "test", Backend: spec.BackendDirect, ScratchDir: scratch, ImageAccess: runnerenv.AccessStream})
	if res.Status != result.StatusFailed || codeOf(res) != string(result.CodeImageUnreadable) || !strings.Contains(res.Error.Message, "range") {
		t.Errorf("stream only from a server without ranges: %s %s %+v", res.Status, codeOf(res), res.Error)
	}
	res = runner.Execute(context.Background(), job, nil, runner.Config{Version: "test", Backend: spec.BackendDirect, ScratchDir: scratch, DownloadLimit: 4096})
	if res.Status != result.StatusRejected || codeOf(res) != string(result.CodeImageTooLarge) {
		t.Errorf("download over --download-limit: %s %s %+v", res.Status, codeOf(res), res.Error)
	}
}

// TestStreamChecksum checks each way a streamed image's checksum is
// verified, and that the result never claims a check not done.
func TestStreamChecksum(t *testing.T) {
	img := byName(t, "debian-raw")
	data, err := os.ReadFile(img.Path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	b := newBucket(t)
	ctx := context.Background()

	plain := "images/plain.raw"
	b.put(t, plain, img.Path)
	f, _ := os.Open(img.Path)
	uploaded, err := store.Upload(ctx, b.st, "images/uploaded.raw", f, int64(len(data)), store.UploadOptions{})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	wantAttested := result.VerifiedSidecar
	if uploaded.SHA256 != "" {
		wantAttested = result.VerifiedStoreChecksum
	}

	run := func(key, checksum string, mutate func(*runner.Config)) *result.Result {
		t.Helper()
		job := streamJob(img, b.name, key)
		job.Payload.Data.Image.URI = "minio://" + b.name + "/" + key // the runner's own credentials: it signs and stats
		job.Payload.Data.Image.Checksum = checksum
		cfg := runner.Config{Version: "test", Backend: spec.BackendDirect, ScratchDir: t.TempDir()}
		if mutate != nil {
			mutate(&cfg)
		}
		return runner.Execute(ctx, job, nil, cfg)
	}
	size := float64(len(data))

	res := run("images/uploaded.raw", "sha256:"+digest, nil)
	if res.Status != result.StatusCompleted || res.Image.Verification == nil || res.Image.Verification.Method != wantAttested || res.Image.SHA256 != digest {
		t.Fatalf("attested: %s %+v %+v", res.Status, res.Image.Verification, res.Error)
	}
	if float64(res.Image.Fetch.Bytes) > size/4 {
		t.Errorf("attested checksum, yet %d of %d bytes fetched", res.Image.Fetch.Bytes, len(data))
	}

	res = run("images/plain.raw", "sha256:"+digest, nil)
	if res.Status != result.StatusCompleted || res.Image.Verification == nil || res.Image.Verification.Method != result.VerifiedWholeObject || res.Image.SHA256 != digest {
		t.Fatalf("nothing attested: %s %+v %+v", res.Status, res.Image.Verification, res.Error)
	}
	if float64(res.Image.Fetch.Bytes) < size {
		t.Errorf("whole-object hash claimed with %d of %d bytes fetched", res.Image.Fetch.Bytes, len(data))
	}

	bad := strings.Repeat("ab", 32)
	for _, key := range []string{"images/uploaded.raw", "images/plain.raw"} {
		res = run(key, "sha256:"+bad, nil)
		if res.Status != result.StatusRejected || codeOf(res) != string(result.CodeImageChecksum) || res.Image.SHA256 != "" {
			t.Errorf("%s with a wrong checksum: %s %s sha256 %q", key, res.Status, codeOf(res), res.Image.SHA256)
		}
	}

	res = run("images/plain.raw", "sha256:"+digest, func(c *runner.Config) { c.Verify = runnerenv.VerifyAttested })
	if res.Status != result.StatusCompleted || res.Image.Verification == nil || res.Image.Verification.Method != result.NotVerified || res.Image.SHA256 != "" || len(res.Warnings) == 0 {
		t.Errorf("attested only, nothing attested: %s %+v sha256 %q warnings %q", res.Status, res.Image.Verification, res.Image.SHA256, res.Warnings)
	}
	res = run("images/uploaded.raw", "sha256:"+digest, func(c *runner.Config) { c.Verify = runnerenv.VerifyFull })
	if res.Status != result.StatusCompleted || res.Image.Verification == nil || res.Image.Verification.Method != result.VerifiedWholeObject {
		t.Errorf("full: %s %+v", res.Status, res.Image.Verification)
	}

	// The dispatcher's attestation, handed over with a presigned URL.
	res = runner.Execute(ctx, func() *spec.Job {
		j := streamJob(img, b.name, plain)
		j.Payload.Data.Image.Checksum = "sha256:" + digest
		return j
	}(), nil, runner.Config{Version: "test", Backend: spec.BackendDirect, ScratchDir: t.TempDir(), ImageURL: b.presign(t, plain),
		Attested: store.Attestation{SHA256: digest, Method: result.VerifiedSidecar, Source: "test"}})
	if res.Status != result.StatusCompleted || res.Image.Verification.Method != result.VerifiedSidecar {
		t.Errorf("dispatcher's attestation: %s %+v", res.Status, res.Image.Verification)
	}
}

// TestStreamWritesNoImageCopy runs the appliance on a streamed raw image
// and watches the scratch folder and TMPDIR: nothing the size of the
// image is ever written.
func TestStreamWritesNoImageCopy(t *testing.T) {
	img := byName(t, "debian-raw")
	st, err := os.Stat(img.Path)
	if err != nil {
		t.Fatal(err)
	}
	b := newBucket(t)
	key := "images/" + img.File
	b.put(t, key, img.Path)
	scratch, tmp := t.TempDir(), t.TempDir()
	t.Setenv("TMPDIR", tmp)
	// The appliance cache (supermin's sparse root, GBs long) stays where
	// the Job template puts it: apart from scratch, in /var/tmp.
	if os.Getenv("LIBGUESTFS_CACHEDIR") == "" {
		t.Setenv("LIBGUESTFS_CACHEDIR", "/var/tmp")
	}
	var peak, largest atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			// Allocated bytes in all, and the longest file (a sparse copy
			// of the image would be as long as it).
			var total int64
			for _, dir := range []string{scratch, tmp} {
				filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
					if err == nil && d.Type().IsRegular() {
						if i, err := d.Info(); err == nil {
							if sys, ok := i.Sys().(*syscall.Stat_t); ok {
								total += sys.Blocks * 512
							}
							if i.Size() > largest.Load() {
								largest.Store(i.Size())
							}
						}
					}
					return nil
				})
			}
			if total > peak.Load() {
				peak.Store(total)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	res := runner.Execute(context.Background(), streamJob(img, b.name, key), nil,
		runner.Config{Version: "test", Accel: "auto", Backend: spec.BackendAppliance, ScratchDir: scratch, ImageURL: b.presign(t, key)})
	close(stop)
	<-done
	if res.Status != result.StatusCompleted {
		t.Fatalf("%s %+v", res.Status, res.Error)
	}
	checkStreamed(t, img, res)
	if p := peak.Load(); p > st.Size()/8 || p > 32<<20 {
		t.Errorf("the runner wrote up to %d bytes to scratch and TMPDIR for a %d-byte image", p, st.Size())
	}
	if l := largest.Load(); l >= st.Size()/2 {
		t.Errorf("a %d-byte file appeared in scratch or TMPDIR for a %d-byte image", l, st.Size())
	}
	t.Logf("peak scratch+TMPDIR: %d bytes allocated, longest file %d bytes", peak.Load(), largest.Load())
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// TestStreamURLExpired: MinIO starts answering the presigned URL with its
// "Request has expired" after the probe; a runner without credentials
// cannot sign another, and says so with image_url_expired.
func TestStreamURLExpired(t *testing.T) {
	img := byName(t, "rpm")
	b := newBucket(t)
	key := "images/" + img.File
	b.put(t, key, img.Path)
	srv := faultProxy(t, b, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		if n < 3 {
			return false
		}
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>AccessDenied</Code><Message>Request has expired</Message><Key>`+key+`</Key><BucketName>`+b.name+`</BucketName><Resource>/`+b.name+`/`+key+`</Resource></Error>`)
		return true
	})
	cfg := runner.Config{Version: "test", Backend: spec.BackendDirect, ScratchDir: t.TempDir(), ImageURL: viaProxyHost(t, b, key, srv)}
	res := runner.Execute(context.Background(), streamJob(img, b.name, key), nil, cfg)
	if res.Status != result.StatusFailed || codeOf(res) != string(result.CodeImageURLExpired) || !strings.Contains(res.Error.Message, "expired") {
		t.Fatalf("got %s %s (%+v), want failed image_url_expired", res.Status, codeOf(res), res.Error)
	}
	if strings.Contains(res.Error.Message, "X-Amz-Signature") {
		t.Errorf("the message leaks the signature: %s", res.Error.Message)
	}
}
