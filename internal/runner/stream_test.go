package runner_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
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
	"guestkit.io/batch/internal/remote"
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

// streamFault is what the proxy in front of MinIO does to one request
// instead of forwarding it, or to MinIO's real answer.
type streamFault string

const (
	faultSlowDown    streamFault = "slowdown"    // 503 SlowDown, S3's XML
	faultStatus500   streamFault = "500"         // an internal error
	faultResetEarly  streamFault = "reset-early" // the connection closed before any header
	faultResetMid    streamFault = "reset-mid"   // MinIO's headers, half its body, then a TCP RST
	faultTruncated   streamFault = "truncated"   // MinIO's headers, half its body, then a clean close
	faultStall       streamFault = "stall"       // MinIO's headers, half its body, then silence
	faultTrickle     streamFault = "trickle"     // MinIO's answer in slow pieces, each under the read timeout
	faultLongLength  streamFault = "long-length" // Content-Length and body 10 bytes past the range
	faultWrongRange  streamFault = "wrong-range" // Content-Range a byte later than asked, body to match
	faultWrongLength streamFault = "short-range" // Content-Range and Content-Length both a byte short
)

// inject does f to the request r: it answers r itself, from MinIO's real
// answer where it has one (rp forwards to MinIO).
func inject(t *testing.T, f streamFault, rp http.Handler, w http.ResponseWriter, r *http.Request) {
	switch f {
	case faultSlowDown:
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
		return
	case faultStatus500:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	case faultResetEarly:
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
		return
	}
	real := httptest.NewRecorder()
	rp.ServeHTTP(real, r)
	body := real.Body.Bytes()
	if real.Code != http.StatusPartialContent || len(body) < 2 {
		t.Errorf("MinIO answered %d with %d bytes to %s; the fault %s wants a 206", real.Code, len(body), r.Header.Get("Range"), f)
		return
	}
	crange, etag := real.Header().Get("Content-Range"), real.Header().Get("ETag")
	var first, last, total int64
	if _, err := fmt.Sscanf(crange, "bytes %d-%d/%d", &first, &last, &total); err != nil {
		t.Errorf("MinIO's Content-Range %q: %v", crange, err)
		return
	}
	// raw writes a response of its own on the bare connection: headers,
	// then body, then what end does to the connection.
	raw := func(crange string, length int, body []byte, end func(net.Conn)) {
		c, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		fmt.Fprintf(buf, "HTTP/1.1 206 Partial Content\r\nContent-Range: %s\r\nContent-Length: %d\r\nETag: %s\r\nConnection: close\r\n\r\n", crange, length, etag)
		buf.Write(body)
		buf.Flush()
		if end != nil {
			end(c)
		}
	}
	half := body[:len(body)/2]
	switch f {
	case faultResetMid:
		raw(crange, len(body), half, func(c net.Conn) { c.(*net.TCPConn).SetLinger(0) })
	case faultTruncated:
		raw(crange, len(body), half, nil)
	case faultStall:
		raw(crange, len(body), half, func(net.Conn) {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		})
	case faultTrickle:
		for k, v := range real.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(http.StatusPartialContent)
		for i := 0; i < 4; i++ {
			w.Write(body[i*len(body)/4 : (i+1)*len(body)/4])
			w.(http.Flusher).Flush()
			time.Sleep(300 * time.Millisecond)
		}
	case faultLongLength:
		raw(crange, len(body)+10, append(body, "0123456789"...), nil)
	case faultWrongRange:
		raw(fmt.Sprintf("bytes %d-%d/%d", first+1, last, total), len(body)-1, body[1:], nil)
	case faultWrongLength:
		raw(fmt.Sprintf("bytes %d-%d/%d", first, last-1, total), len(body)-1, body[:len(body)-1], nil)
	default:
		t.Errorf("unknown fault %q", f)
	}
}

// faultsAt is a proxy to MinIO that does f to the requests numbered
// (from 1) where at says so.
func faultsAt(t *testing.T, b *bucket, f streamFault, at func(n int64) bool) *httptest.Server {
	t.Helper()
	target, _ := url.Parse(b.m.Endpoint)
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	return faultProxy(t, b, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		if !at(n) {
			return false
		}
		inject(t, f, rp, w, r)
		return true
	})
}

// streamFaults are the faults a streamed read meets on the way from a
// bucket: each is survived once, and each ends the job when it persists.
var streamFaults = []streamFault{faultSlowDown, faultStatus500, faultResetEarly, faultResetMid, faultTruncated,
	faultStall, faultTrickle, faultLongLength, faultWrongRange, faultWrongLength}

// TestStreamSurvivesFaults injects each fault into the stream between the
// runner and a real MinIO, on one request after the image is open (every
// fault but the slow trickle then needs a retry): the job completes with
// the local read's report, and the result counts the retries.
func TestStreamSurvivesFaults(t *testing.T) {
	img := byName(t, "rpm") // over the size read whole at open
	b := newBucket(t)
	key := "images/" + img.File
	b.put(t, key, img.Path)
	local := runnerExecute(t, img, 600, spec.BackendDirect)
	for _, f := range streamFaults {
		t.Run(string(f), func(t *testing.T) {
			srv := faultsAt(t, b, f, func(n int64) bool { return n == 3 || n == 6 })
			cfg := runner.Config{Version: "test", Backend: spec.BackendDirect, ScratchDir: t.TempDir(),
				ImageURL: viaProxyHost(t, b, key, srv), ReadTimeout: time.Second}
			res := runner.Execute(context.Background(), streamJob(img, b.name, key), nil, cfg)
			sameReport(t, local, res)
			// Go's HTTP client re-sends by itself a GET whose reused
			// connection closed before any answer, unseen by the count.
			st := res.Image.Fetch
			if st == nil || (st.Retries == 0 && f != faultResetEarly) != (f == faultTrickle) {
				t.Errorf("fetch %+v: want retries counted after %s (none after a slow but whole answer)", st, f)
			}
			checkStreamed(t, img, res)
		})
	}
}

// TestStreamFaultsPersist makes each fault permanent after the image is
// open: the job fails, retryably, as image_unreadable with a message that
// names the fault, after bounded retries, and keeps no report made from
// part of the image. The appliance, which reads through the runner's NBD
// export, is held to the same on two of them.
func TestStreamFaultsPersist(t *testing.T) {
	img := byName(t, "rpm")
	b := newBucket(t)
	key := "images/" + img.File
	b.put(t, key, img.Path)
	says := map[streamFault]string{
		faultSlowDown: "SlowDown", faultStatus500: "500", faultResetEarly: "EOF", faultResetMid: "reset",
		faultTruncated: "unexpected EOF", faultStall: "no body bytes in time", faultLongLength: "Content-Length",
		faultWrongRange: "Content-Range", faultWrongLength: "Content-Range",
	}
	run := func(t *testing.T, f streamFault, backend string) {
		srv := faultsAt(t, b, f, func(n int64) bool { return n >= 3 })
		cfg := runner.Config{Version: "test", Backend: backend, ScratchDir: t.TempDir(),
			ImageURL: viaProxyHost(t, b, key, srv), ReadTimeout: time.Second}
		start := time.Now()
		res := runner.Execute(context.Background(), streamJob(img, b.name, key), nil, cfg)
		if res.Status != result.StatusFailed || codeOf(res) != string(result.CodeImageUnreadable) || !res.Error.Retryable || res.ExitCode != result.ExitInfra {
			t.Fatalf("%s: %s %s exit %d (%+v), want failed image_unreadable, retryable, exit %d", f, res.Status, codeOf(res), res.ExitCode, res.Error, result.ExitInfra)
		}
		if !strings.Contains(res.Error.Message, says[f]) {
			t.Errorf("message %q does not name the fault (%q)", res.Error.Message, says[f])
		}
		if strings.Contains(res.Error.Message, "X-Amz-Signature") {
			t.Errorf("the message leaks the signature: %s", res.Error.Message)
		}
		if res.Data != nil {
			t.Errorf("a report built on a failed stream was kept: %s", clip(string(res.Data)))
		}
		if st := res.Image.Fetch; st == nil || st.Retries == 0 || st.Requests > 64 {
			t.Errorf("fetch %+v: want the retries counted, and bounded", st)
		}
		t.Logf("%s on %s: failed after %s, %+v", f, backend, time.Since(start).Round(time.Millisecond), res.Image.Fetch)
	}
	for _, f := range streamFaults {
		if f == faultTrickle {
			continue // slow is not a fault
		}
		t.Run(string(f), func(t *testing.T) {
			t.Parallel() // each waits out its backoff
			run(t, f, spec.BackendDirect)
		})
	}
	t.Run("appliance", func(t *testing.T) {
		for _, f := range []streamFault{faultStatus500, faultWrongRange} {
			t.Run(string(f), func(t *testing.T) { run(t, f, spec.BackendAppliance) })
		}
	})
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

// TestStreamVersionPinned: in a versioned bucket the image is read by its
// version, so a key overwritten during the run goes on serving the image
// admitted: the job completes with that image's report and records its
// version. Both the dispatcher's grant (a URL naming the version, and the
// version to pin) and a runner signing with its own credentials.
func TestStreamVersionPinned(t *testing.T) {
	img := byName(t, "rpm") // over the size read whole at open
	other := byName(t, "debian")
	b := newBucket(t)
	ctx := context.Background()
	if err := b.m.Client(t).EnableVersioning(ctx, b.name); err != nil {
		t.Fatal(err)
	}
	local := runnerExecute(t, img, 600, spec.BackendDirect)
	target, _ := url.Parse(b.m.Endpoint)

	// overwriting is a proxy to MinIO that replaces key with the other
	// image ahead of the fourth GET; keepHost forwards the Host the
	// client signed (the runner's own signatures name the proxy).
	overwriting := func(t *testing.T, key string, keepHost bool) *httptest.Server {
		rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			if keepHost {
				r.Out.Host = r.In.Host
			}
		}}
		var gets atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && gets.Add(1) == 4 {
				b.put(t, key, other.Path)
			}
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	// admit puts the image at key and returns the version admitted;
	// overwritten requires that the run saw the key replaced.
	admit := func(t *testing.T, key string) store.Object {
		b.put(t, key, img.Path)
		o, err := b.st.Stat(ctx, key)
		if err != nil || o.VersionID == "" {
			t.Fatalf("Stat = %+v, %v: want a version", o, err)
		}
		return o
	}
	overwritten := func(t *testing.T, key string, o store.Object) {
		if now, err := b.st.Stat(ctx, key); err != nil || now.VersionID == o.VersionID {
			t.Fatalf("the key was not overwritten during the run: %+v, %v", now, err)
		}
	}
	check := func(t *testing.T, res *result.Result, version string) {
		t.Helper()
		sameReport(t, local, res)
		if res.Image.VersionID != version {
			t.Errorf("image.version_id %q, want the version admitted, %q", res.Image.VersionID, version)
		}
		checkStreamed(t, img, res)
	}

	t.Run("grant", func(t *testing.T) {
		key := "images/granted.qcow2"
		o := admit(t, key)
		u, err := store.PresignGetVersion(ctx, b.st, key, o.VersionID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cfg := runner.Config{Version: "test", Backend: spec.BackendDirect, ScratchDir: t.TempDir(),
			ImageURL: viaProxy(t, u, overwriting(t, key, false)), ImageIdentity: remote.Identity{ETag: o.ETag, VersionID: o.VersionID, Size: o.Size}}
		check(t, runner.Execute(ctx, streamJob(img, b.name, key), nil, cfg), o.VersionID)
		overwritten(t, key, o)
	})

	t.Run("own-credentials", func(t *testing.T) {
		key := "images/own.qcow2"
		o := admit(t, key)
		srv := overwriting(t, key, true)
		t.Setenv("MINIO_ENDPOINT", strings.TrimPrefix(srv.URL, "http://"))
		job := streamJob(img, b.name, key)
		job.Payload.Data.Image.URI = "minio://" + b.name + "/" + key
		check(t, runner.Execute(ctx, job, nil, runner.Config{Version: "test", Backend: spec.BackendDirect, ScratchDir: t.TempDir()}), o.VersionID)
		overwritten(t, key, o)
	})
}
