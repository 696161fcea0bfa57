package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/netguard"
	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/remote"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runnerenv"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// source is the job's image where the runner reads it: a local file (on
// the node, mounted, or downloaded), or a remote object read by range
// requests as the inspection needs its blocks.
type source struct {
	name   string // the image in errors: a path, or a URI without secrets
	path   string // a local file, or a small streamed one in memory (/proc/self/fd); "" otherwise
	access string // result.Access*
	reason string // why a remote image was downloaded
	etag   string // of a downloaded object
	// downloaded counts a download's transfer: the object, and the
	// ranged request that found the server cannot stream.
	downloaded *result.Fetch

	obj      *remote.Object
	dev      *watchedDevice    // obj, with its first read error kept
	attested store.Attestation // what the store says the object's digest is

	mu     sync.Mutex
	export *block.Exported
	ctx    context.Context // the export's life

	closers []func()
}

// nbd exports the streamed image's bytes (in its own format, not
// decoded) over NBD on a private unix socket, once, for qemu-img and the
// appliance's qemu.
func (s *source) nbd(ctx context.Context) (*block.Exported, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.export != nil {
		return s.export, nil
	}
	e, err := block.Export(s.ctx, s.dev, block.ExportOptions{})
	if err != nil {
		return nil, fmt.Errorf("export %s over NBD: %w", s.name, err)
	}
	s.export = e
	return e, nil
}

// readErr is the first error a read of the streamed image met (a network
// failure, the object changed), which no report may hide: readers above
// may have taken it for a corrupt structure, and qemu reports it as EIO.
func (s *source) readErr() error {
	if s.dev == nil {
		return nil
	}
	return s.dev.Err()
}

// fetch records what was fetched of a remote image.
func (s *source) fetch(res *result.Result) {
	if res.Image == nil {
		return
	}
	if s.downloaded != nil {
		res.Image.Fetch = s.downloaded
	}
	if s.obj == nil {
		return
	}
	st := s.obj.Stats()
	f := &result.Fetch{Bytes: st.BytesFetched, Requests: st.Requests, Retries: st.Retries}
	if size := s.obj.Size(); size > 0 {
		f.Fraction = float64(st.BytesFetched) / float64(size)
	}
	res.Image.Fetch = f
}

func (s *source) close() {
	s.mu.Lock()
	if s.export != nil {
		s.export.Close()
	}
	s.mu.Unlock()
	if s.obj != nil {
		s.obj.Close()
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// watchedDevice keeps the first error a read returned, other than the EOF
// of a read past the end, and returns it to every later read: that error
// decides the job, and a reader or a guest kernel that goes on reading
// would otherwise spend a whole round of retries on each block.
type watchedDevice struct {
	block.Device
	mu  sync.Mutex
	err error
}

func (w *watchedDevice) ReadAt(p []byte, off int64) (int, error) {
	if err := w.Err(); err != nil {
		return 0, err
	}
	n, err := w.Device.ReadAt(p, off)
	if err != nil && !(errors.Is(err, io.EOF) && off+int64(n) >= w.Size()) {
		w.mu.Lock()
		if w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
	}
	return n, err
}

func (w *watchedDevice) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// openSource finds the job's image: a local path is used in place; a
// bucket or http(s) object is streamed (or downloaded, see ImageAccess).
func openSource(ctx context.Context, job *spec.Job, cfg *Config, log *logrus.Entry) (*source, error) {
	if cfg.ImagePath != "" {
		return &source{name: cfg.ImagePath, path: cfg.ImagePath, access: result.AccessLocal}, nil
	}
	img := job.Image()
	if img.Path != "" {
		return &source{name: img.Path, path: img.Path, access: result.AccessLocal}, nil
	}
	uri := img.URI
	switch {
	case strings.HasPrefix(uri, "file://"):
		p := strings.TrimPrefix(uri, "file://")
		return &source{name: p, path: p, access: result.AccessLocal}, nil
	case strings.HasPrefix(uri, "pvc://"):
		return nil, &failure{status: result.StatusRejected, code: result.CodeImageNotFound, phase: result.PhaseFetch,
			err: fmt.Errorf("image %s: a pvc:// image is mounted by the dispatcher; run with --image", uri)}
	}
	at := remoteAt{uri: uri, pin: cfg.ImageIdentity, attested: cfg.Attested}
	switch {
	case cfg.ImageURL != "":
		// The dispatcher's grant: a presigned GET (or, for runners with
		// credentials of their own, the object's URI), and what it saw
		// of the object when it admitted the spec.
		at.url = cfg.ImageURL
		if strings.HasPrefix(at.url, "file://") {
			p := strings.TrimPrefix(at.url, "file://")
			return &source{name: redact.URL(uri), path: p, access: result.AccessLocal}, nil
		}
	case !strings.Contains(uri, "://"):
		// A key of the dispatcher's bucket: only the dispatcher knows the
		// bucket. Never a path relative to this process's folder.
		return nil, &failure{status: result.StatusRejected, code: result.CodeImageNotFound, phase: result.PhaseFetch,
			err: fmt.Errorf("image %s: a key in the dispatcher's bucket; run with --image-url or --image", redact.URL(uri))}
	case isHTTP(uri):
		at.url, at.client, at.stranger = uri, cfg.HTTP, true
		at.pin, at.attested = remote.Identity{}, store.Attestation{}
	default:
		at.url = uri
	}
	if store.IsBucketURI(at.url) {
		// The runner's own credentials: it signs its own range reads,
		// and signs again when a URL expires.
		if err := at.sign(ctx, job, cfg); err != nil {
			return nil, err
		}
		if at.local != "" {
			return &source{name: redact.URL(uri), path: at.local, access: result.AccessLocal}, nil
		}
	}
	if cfg.ImageAccess == runnerenv.AccessDownload {
		return download(ctx, job, cfg, at, "--image-access download")
	}
	obj, err := remote.Open(ctx, at.url, remote.Options{
		Client:  at.client,
		Pin:     at.pin,
		Refresh: at.refresh,
		MaxSize: maxObjectSize(job, cfg),
		// A batch job can wait out a bucket's restart: about 16 s of
		// backoff before a read fails.
		Attempts: 8,
		// Small images cost fewer round trips read whole, in memory
		// (bench-stream: a 1-7 MiB image took 1.3-3.8 times the
		// download's time when read block by block).
		WholeBelow:    wholeBelow,
		HeaderTimeout: cfg.ReadTimeout,
		StallTimeout:  cfg.ReadTimeout,
		Log:           log,
	})
	if errors.Is(err, remote.ErrNoRange) && cfg.ImageAccess != runnerenv.AccessStream {
		log.WithField("reason", err.Error()).Warn("the image's server does not serve byte ranges; downloading the whole image to scratch")
		at.probes = 1 // the ranged GET whose body was closed unread
		return download(ctx, job, cfg, at, err.Error())
	}
	if err != nil {
		return nil, fetchFailure(at, err)
	}
	src := &source{name: redact.URL(uri), obj: obj, access: result.AccessStream, attested: at.attested, ctx: ctx}
	if size := obj.Size(); size > 0 && size <= wholeBelow {
		// Read whole at open: qemu and the readers get it as a file in
		// memory, which spares them the NBD hop a larger image needs.
		f, err := memoryFile(obj)
		if err != nil {
			obj.Close()
			return nil, fetchFailure(at, err)
		}
		src.path = fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
		src.closers = append(src.closers, func() { f.Close() })
	}
	// The appliance reads even a small one over NBD: libguestfs wants a
	// real path for a drive, and the export serves it from memory.
	src.dev = &watchedDevice{Device: obj}
	return src, nil
}

// memoryFile copies a small object, already in memory, to an anonymous
// memory file sealed against change: no file on any disk.
func memoryFile(obj *remote.Object) (*os.File, error) {
	fd, err := unix.MemfdCreate("guestkit-image", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "guestkit-image")
	if _, err := io.Copy(f, io.NewSectionReader(obj, 0, obj.Size())); err != nil {
		f.Close()
		return nil, fmt.Errorf("read the image: %w", err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal the memfd: %w", err)
	}
	return f, nil
}

// wholeBelow is the size up to which a streamed image is read whole, into
// memory: no more than a handful of round trips' worth of transfer.
const wholeBelow = 16 << 20

// remoteAt is where a remote image is read from, and with what.
type remoteAt struct {
	uri      string // the spec's
	url      string // what is fetched
	client   *http.Client
	stranger bool // the spec's own URL, not the dispatcher's grant
	pin      remote.Identity
	attested store.Attestation
	refresh  func(ctx context.Context) (string, error)
	local    string // a file store's object: read in place
	probes   int64  // requests of a stream attempt, before a download
}

// sign replaces a bucket URI with a presigned GET made with the runner's
// own credentials, after a Stat for the object's identity and what the
// store attests of it.
func (at *remoteAt) sign(ctx context.Context, job *spec.Job, cfg *Config) error {
	bucket, key, err := store.SplitURI(at.url)
	if err != nil {
		return &failure{status: result.StatusRejected, code: result.CodeSpecInvalid, phase: result.PhaseFetch, err: err}
	}
	st, err := store.Open(ctx, bucket)
	if err != nil {
		return &failure{status: result.StatusFailed, code: result.CodeInfrastructure, phase: result.PhaseFetch, retryable: true,
			err: fmt.Errorf("image bucket %s: %w", redact.URL(bucket), err)}
	}
	o, err := st.Stat(ctx, key)
	if err != nil {
		return fetchFailure(*at, fmt.Errorf("image %s: %w", redact.URL(at.uri), err))
	}
	at.pin = remote.Identity{ETag: o.ETag, VersionID: o.VersionID, Size: o.Size}
	if job.Image().Checksum != "" {
		at.attested = store.Attest(ctx, st, key, o)
	}
	// In a versioned bucket the URL names the version just seen: a key
	// overwritten during the run goes on serving the image admitted.
	const ttl = time.Hour
	u, err := store.PresignGetVersion(ctx, st, key, o.VersionID, ttl)
	if err != nil {
		return &failure{status: result.StatusFailed, code: result.CodeInfrastructure, phase: result.PhaseFetch, retryable: true,
			err: fmt.Errorf("sign image %s: %w", redact.URL(at.uri), err)}
	}
	if strings.HasPrefix(u, "file://") {
		at.local = strings.TrimPrefix(u, "file://")
		return nil
	}
	at.url = u
	at.refresh = func(ctx context.Context) (string, error) {
		return store.PresignGetVersion(ctx, st, key, o.VersionID, ttl)
	}
	return nil
}

// maxObjectSize bounds a remote image's size: no image file is larger
// than its disk by more than its metadata.
func maxObjectSize(job *spec.Job, cfg *Config) int64 {
	if m := maxVirtualSize(job, cfg); m > 0 {
		return m + m/16 + 64<<20
	}
	return 0
}

// download copies the whole object to scratch: the operator asked for it,
// or the server cannot serve ranges. It is bounded by DownloadLimit.
func download(ctx context.Context, job *spec.Job, cfg *Config, at remoteAt, why string) (*source, error) {
	uris := store.URIs{MaxBytes: maxObjectSize(job, cfg)}
	if at.stranger {
		uris.HTTP = at.client
	}
	if lim := cfg.DownloadLimit; lim > 0 && (uris.MaxBytes == 0 || lim < uris.MaxBytes) {
		uris.MaxBytes = lim
	}
	if cfg.DownloadLimit < 0 {
		return nil, &failure{status: result.StatusFailed, code: result.CodeImageUnreadable, phase: result.PhaseFetch,
			err: fmt.Errorf("image %s cannot be streamed (%s) and downloads are off (--download-limit -1)", redact.URL(at.uri), why)}
	}
	dst := filepath.Join(cfg.ScratchDir, "image-"+sanitize(job.JobID))
	src := &source{name: dst, path: dst, access: result.AccessDownload, reason: why}
	src.closers = append(src.closers, func() { os.Remove(dst) })
	o, err := uris.Fetch(ctx, at.url, dst)
	if err != nil {
		src.close()
		if errors.Is(err, store.ErrTooLarge) {
			return nil, &failure{status: result.StatusRejected, code: result.CodeImageTooLarge, phase: result.PhaseFetch,
				err: fmt.Errorf("%w (a download is bounded by --download-limit and the virtual size limit)", err)}
		}
		return nil, fetchFailure(at, err)
	}
	src.etag = o.ETag
	src.downloaded = &result.Fetch{Bytes: o.Size, Requests: 1 + at.probes, Fraction: 1}
	return src, nil
}

// fetchFailure classifies a failure to reach a remote image.
func fetchFailure(at remoteAt, err error) error {
	fail := func(st result.Status, code result.Code, retry bool) error {
		return &failure{status: st, code: code, phase: result.PhaseFetch, retryable: retry, err: err}
	}
	switch {
	case errors.Is(err, netguard.ErrRefused), errors.Is(err, netguard.ErrRedirect):
		// The spec names a URL this runner will not fetch; no retry
		// changes that.
		return &failure{status: result.StatusRejected, code: result.CodeSpecInvalid, phase: result.PhaseFetch,
			err: &spec.ValidationError{Problems: []result.FieldError{{Field: "payload.data.image.uri", Value: redact.URL(at.uri), Message: err.Error()}}}}
	case errors.Is(err, store.ErrNotFound), errors.Is(err, remote.ErrNotFound):
		return fail(result.StatusRejected, result.CodeImageNotFound, false)
	case errors.Is(err, store.ErrTooLarge), errors.Is(err, remote.ErrTooLarge):
		return fail(result.StatusRejected, result.CodeImageTooLarge, false)
	case errors.Is(err, remote.ErrDenied) && at.stranger:
		return fail(result.StatusRejected, result.CodeImageNotFound, false)
	case errors.Is(err, remote.ErrNoRange):
		return &failure{status: result.StatusFailed, code: result.CodeImageUnreadable, phase: result.PhaseFetch,
			err: fmt.Errorf("image %s: its server does not serve byte ranges, and --image-access stream never downloads: %w", redact.URL(at.uri), err)}
	}
	if f := remoteFailure(err, result.PhaseFetch); f != nil {
		return f
	}
	return fail(result.StatusFailed, result.CodeInfrastructure, true)
}

// remoteFailure classifies an error of a streamed image's reads, met
// during phase; nil when err is none of them.
func remoteFailure(err error, phase result.Phase) *failure {
	f := func(code result.Code, retry bool, e error) *failure {
		return &failure{status: result.StatusFailed, code: code, phase: phase, retryable: retry, err: e}
	}
	switch {
	case errors.Is(err, remote.ErrChanged):
		return f(result.CodeImageChanged, true, fmt.Errorf("the image changed while it was read; nothing read of it is reported, and a retry reads the new one: %w", err))
	case errors.Is(err, remote.ErrExpired):
		return f(result.CodeImageURLExpired, true, fmt.Errorf("the image's presigned URL expired during the run, and this runner has no credentials to sign another: %w", err))
	case errors.Is(err, remote.ErrUnavailable), errors.Is(err, remote.ErrProtocol), errors.Is(err, remote.ErrDenied):
		return f(result.CodeImageUnreadable, true, fmt.Errorf("reading the image failed: %w", err))
	}
	return nil
}

func isHTTP(uri string) bool {
	return strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://")
}
