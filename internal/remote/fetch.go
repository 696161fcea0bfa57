package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/netguard"
	"guestkit.io/batch/internal/redact"
)

var (
	errHeaderTimeout = errors.New("no response headers in time")
	errStall         = errors.New("no body bytes in time (a slow server)")
)

// transient marks an error worth another attempt, with the server's
// Retry-After.
type transient struct {
	err   error
	after time.Duration
}

func (t *transient) Error() string { return t.err.Error() }
func (t *transient) Unwrap() error { return t.err }

func retry(err error) error { return &transient{err: err} }

// fetch fills buf with the object's bytes at off, retrying transient
// faults and resuming a body cut short at the byte reached. With first
// (Open), nothing is pinned yet: the first response sets the identity and
// buf is cut to the object's size; n is the bytes filled.
func (o *Object) fetch(ctx context.Context, off int64, buf []byte, first bool) (int, error) {
	got, failures, refreshes := 0, 0, 0
	var last error
	for {
		if first && o.pinned.Load() {
			buf = buf[:min(int64(len(buf)), o.id.Size-off)]
		}
		if got == len(buf) && (!first || o.pinned.Load()) {
			return got, nil
		}
		if err := ctx.Err(); err != nil {
			return got, err
		}
		_, gen := o.currentURL()
		n, err := o.attempt(ctx, off+int64(got), buf[got:], first && !o.pinned.Load())
		got += n
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return got, ctx.Err()
		}
		var t *transient
		switch {
		case errors.Is(err, ErrExpired) && o.opts.Refresh != nil && refreshes < maxRefreshes:
			refreshes++
			if rerr := o.refresh(ctx, gen); rerr != nil {
				return got, fmt.Errorf("%w; refresh: %w", err, rerr)
			}
			o.st.retries.Add(1)
			continue
		case !errors.As(err, &t):
			return got, err
		}
		refreshes = 0
		last = err
		failures++
		if failures >= o.opts.Attempts {
			return got, fmt.Errorf("%w after %d attempts: %w", ErrUnavailable, failures, last)
		}
		o.log.WithFields(logrus.Fields{"offset": off + int64(got), "length": len(buf) - got, "attempt": failures, "error": err}).
			Warn("remote read failed; retrying")
		if err := o.backoff(ctx, failures, t.after); err != nil {
			return got, err
		}
		o.st.retries.Add(1)
	}
}

// backoff waits before retry number failures: Backoff doubled each time,
// capped, with jitter, or the server's Retry-After if longer.
func (o *Object) backoff(ctx context.Context, failures int, after time.Duration) error {
	d := o.opts.Backoff
	for i := 1; i < failures && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	d = d/2 + rand.N(d/2+1)
	d = max(d, min(after, maxRetryAfter))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refresh asks for a new URL, unless another reader already renewed the
// one that failed (generation gen).
func (o *Object) refresh(ctx context.Context, gen int) error {
	o.urlMu.Lock()
	defer o.urlMu.Unlock()
	if o.gen != gen {
		return nil
	}
	u, err := o.opts.Refresh(ctx)
	if err != nil {
		return err
	}
	if _, err := url.Parse(u); err != nil {
		return fmt.Errorf("refreshed URL: %w", bareURLError(err))
	}
	o.url, o.gen = u, o.gen+1
	o.st.refreshes.Add(1)
	o.log.Info("presigned URL expired; renewed")
	return nil
}

// attempt sends one ranged GET for buf's bytes at off and reads its body
// into buf. It returns the bytes read even on error (a body cut short).
func (o *Object) attempt(ctx context.Context, off int64, buf []byte, first bool) (int, error) {
	body, want, err := o.request(ctx, off, int64(len(buf)), first)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	n, err := io.ReadFull(body, buf[:want])
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return n, retry(fmt.Errorf("body ended after %d of %d bytes at %d: %w", n, want, off, err))
	}
	var extra [1]byte
	if k, _ := io.ReadFull(body, extra[:]); k > 0 {
		// None of it is trusted: a longer body is not the range asked.
		return 0, retry(fmt.Errorf("%w: body longer than the %d bytes of Content-Range", ErrProtocol, want))
	}
	return int(want), nil
}

// request sends one ranged GET for n bytes at off and checks the
// response's headers; body yields the range's want bytes, guarded against
// stalls. With first, the response sets the pinned identity.
func (o *Object) request(ctx context.Context, off, n int64, first bool) (io.ReadCloser, int64, error) {
	rawURL, _ := o.currentURL()
	actx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(actx, http.MethodGet, rawURL, nil)
	if err != nil {
		cancel(nil)
		return nil, 0, fmt.Errorf("bad URL: %w", bareURLError(err))
	}
	end := off + n - 1
	if first {
		if o.opts.Pin.Size > 0 {
			end = min(end, o.opts.Pin.Size-1)
		}
	} else {
		end = min(end, o.id.Size-1)
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end))
	req.Header.Set("Accept-Encoding", "identity")
	if etag := o.pinETag(first); etag != "" {
		req.Header.Set("If-Match", `"`+etag+`"`)
	}
	o.st.requests.Add(1)
	headers := time.AfterFunc(o.opts.HeaderTimeout, func() { cancel(errHeaderTimeout) })
	resp, err := o.client.Do(req)
	headers.Stop()
	if err != nil {
		cancel(nil)
		if cause := context.Cause(actx); errors.Is(cause, errHeaderTimeout) {
			return nil, 0, retry(fmt.Errorf("%w (%s)", errHeaderTimeout, o.opts.HeaderTimeout))
		}
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		// A client's own ResponseHeaderTimeout (netguard's) can fire
		// before ours: the same failure, so the same words.
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, 0, retry(fmt.Errorf("%w: %v", errHeaderTimeout, bareURLError(err)))
		}
		if errors.Is(err, netguard.ErrRefused) || errors.Is(err, netguard.ErrRedirect) {
			// The client's policy, not the network: no retry changes it.
			return nil, 0, bareURLError(err)
		}
		return nil, 0, retry(bareURLError(err))
	}
	body := &guardedBody{body: resp.Body, cancel: cancel, actx: actx, stall: o.opts.StallTimeout, o: o}
	body.timer = time.AfterFunc(time.Hour, func() { cancel(errStall) })
	body.timer.Stop()
	want, err := o.check(resp, body, off, end, first)
	if err == nil && resp.StatusCode != http.StatusPartialContent {
		body.eof = true // an empty object's 416 or 200: no bytes
	}
	if err != nil {
		body.Close()
		return nil, 0, err
	}
	return body, want, nil
}

// pinETag is the ETag for If-Match: the pinned one, or Options.Pin's on
// the first request. A weak ETag cannot be matched, only compared.
func (o *Object) pinETag(first bool) string {
	if first {
		if strings.HasPrefix(o.opts.Pin.ETag, "W/") {
			return ""
		}
		return strings.Trim(o.opts.Pin.ETag, `"`)
	}
	if o.weakETag {
		return ""
	}
	return o.id.ETag
}

// check validates a response to a GET of [off, end].
func (o *Object) check(resp *http.Response, body io.Reader, off, end int64, first bool) (int64, error) {
	code := resp.StatusCode
	status := fmt.Sprintf("HTTP %d %s", code, http.StatusText(code))
	switch {
	case code == http.StatusPartialContent:
		return o.checkRange(resp, off, end, first)
	case code == http.StatusOK && first && resp.ContentLength == 0 && len(resp.TransferEncoding) == 0:
		return 0, o.pin(resp, 0) // an empty object: nothing to range over
	case code == http.StatusOK:
		te := "Transfer-Encoding: " + strings.Join(resp.TransferEncoding, ", ")
		if len(resp.TransferEncoding) == 0 {
			te = fmt.Sprintf("Content-Length: %d", resp.ContentLength)
		}
		return 0, fmt.Errorf("%w: %s instead of 206 Partial Content to a ranged GET (%s)", ErrNoRange, status, te)
	case code == http.StatusRequestedRangeNotSatisfiable:
		cr, err := parseContentRange(resp.Header.Get("Content-Range"))
		if off == 0 && first && (err == nil && cr.Unsatisfied && cr.Total == 0 || resp.Header.Get("Content-Range") == "") {
			// A range from byte 0 is unsatisfiable only for an empty
			// object (RFC 9110, 14.1.1), whether or not the server says
			// "bytes */0" (MinIO does not).
			return 0, o.pin(resp, 0)
		}
		if err == nil && cr.Unsatisfied && o.pinned.Load() && cr.Total != o.id.Size {
			return 0, fmt.Errorf("%w: %s, now %d bytes, was %d", ErrChanged, status, cr.Total, o.id.Size)
		}
		return 0, fmt.Errorf("%w: %s for bytes %d-%d", ErrProtocol, status, off, end)
	case code == http.StatusPreconditionFailed:
		return 0, fmt.Errorf("%w: %s to If-Match %q", ErrChanged, status, o.pinETag(first))
	case code == http.StatusNotFound:
		return 0, ErrNotFound
	case code == http.StatusForbidden || code == http.StatusBadRequest:
		e, ok := parseS3Error(readErrorBody(body))
		rawURL, _ := o.currentURL()
		switch {
		case ok && e.expired(rawURL, time.Now()):
			return 0, fmt.Errorf("%w: %s %s (%s)", ErrExpired, status, e.Code, e.Message)
		case ok && code == http.StatusForbidden:
			return 0, fmt.Errorf("%w: %s %s (%s)", ErrDenied, status, e.Code, e.Message)
		case code == http.StatusForbidden:
			return 0, fmt.Errorf("%w: %s", ErrDenied, status)
		case ok:
			return 0, fmt.Errorf("%w: %s %s (%s)", ErrProtocol, status, e.Code, e.Message)
		}
		return 0, fmt.Errorf("%w: %s", ErrProtocol, status)
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		msg := status
		if e, ok := parseS3Error(readErrorBody(body)); ok {
			msg = fmt.Sprintf("%s %s (%s)", status, e.Code, e.Message)
		}
		return 0, &transient{err: errors.New(msg), after: retryAfter(resp.Header.Get("Retry-After"), time.Now(), maxRetryAfter)}
	case code >= 300 && code < 400:
		return 0, fmt.Errorf("%w: %s to %s not followed", ErrProtocol, status, redact.URL(resp.Header.Get("Location")))
	}
	return 0, fmt.Errorf("%w: unexpected %s", ErrProtocol, status)
}

// checkRange validates a 206 to a GET of [off, end] and returns its body
// length.
func (o *Object) checkRange(resp *http.Response, off, end int64, first bool) (int64, error) {
	cr, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err == nil && cr.Unsatisfied {
		err = errors.New("Content-Range without a range in a 206")
	}
	if err != nil {
		return 0, retry(fmt.Errorf("%w: %v", ErrProtocol, err))
	}
	if first {
		if err := o.pin(resp, cr.Total); err != nil {
			return 0, err
		}
	} else if err := o.same(resp, cr.Total); err != nil {
		return 0, err
	}
	end = min(end, o.id.Size-1)
	if cr.Start != off || cr.End != end {
		return 0, retry(fmt.Errorf("%w: Content-Range bytes %d-%d/%d to a GET of bytes %d-%d",
			ErrProtocol, cr.Start, cr.End, cr.Total, off, end))
	}
	want := end - off + 1
	if resp.ContentLength >= 0 && resp.ContentLength != want {
		return 0, retry(fmt.Errorf("%w: Content-Length %d for Content-Range bytes %d-%d (%d bytes)",
			ErrProtocol, resp.ContentLength, cr.Start, cr.End, want))
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return 0, retry(fmt.Errorf("%w: Content-Encoding %q on a byte range", ErrProtocol, printable(ce)))
	}
	return want, nil
}

// pin records the first response's identity, checked against
// Options.Pin and MaxSize.
func (o *Object) pin(resp *http.Response, total int64) error {
	id, weak, err := identity(resp, total)
	if err != nil {
		return err
	}
	if o.opts.MaxSize > 0 && total > o.opts.MaxSize {
		return fmt.Errorf("%w: %d bytes > %d", ErrTooLarge, total, o.opts.MaxSize)
	}
	pin := o.opts.Pin
	if pin.Size > 0 && pin.Size != total {
		return fmt.Errorf("%w: %d bytes, expected %d", ErrChanged, total, pin.Size)
	}
	if want := strings.Trim(strings.TrimPrefix(pin.ETag, "W/"), `"`); want != "" && want != id.ETag {
		return fmt.Errorf("%w: ETag %q, expected %q", ErrChanged, id.ETag, want)
	}
	if pin.VersionID != "" && pin.VersionID != id.VersionID {
		return fmt.Errorf("%w: version %q, expected %q", ErrChanged, id.VersionID, pin.VersionID)
	}
	o.id, o.weakETag = id, weak
	if id.ETag == "" {
		o.log.Warn("the server sends no ETag: the image is pinned by its size and Last-Modified only")
	}
	o.pinned.Store(true)
	return nil
}

// same checks a later response against the pinned identity: a server
// that ignored If-Match still names the object it served.
func (o *Object) same(resp *http.Response, total int64) error {
	id, _, err := identity(resp, total)
	if err != nil {
		return err
	}
	switch {
	case id.Size != o.id.Size:
		return fmt.Errorf("%w: now %d bytes, was %d", ErrChanged, id.Size, o.id.Size)
	case o.id.ETag != "" && id.ETag != o.id.ETag:
		return fmt.Errorf("%w: ETag now %q, was %q", ErrChanged, id.ETag, o.id.ETag)
	case o.id.VersionID != "" && id.VersionID != o.id.VersionID:
		return fmt.Errorf("%w: version now %q, was %q", ErrChanged, id.VersionID, o.id.VersionID)
	case o.id.ETag == "" && !o.id.LastModified.IsZero() && !id.LastModified.Equal(o.id.LastModified):
		return fmt.Errorf("%w: Last-Modified now %s, was %s", ErrChanged,
			id.LastModified.Format(time.RFC3339), o.id.LastModified.Format(time.RFC3339))
	}
	return nil
}

// identity reads a response's ETag, version id and Last-Modified.
func identity(resp *http.Response, total int64) (Identity, bool, error) {
	etag := resp.Header.Get("ETag")
	version := resp.Header.Get("X-Amz-Version-Id")
	if len(etag) > maxHeaderValue || len(version) > maxHeaderValue {
		return Identity{}, false, fmt.Errorf("%w: ETag or version id longer than %d bytes", ErrProtocol, maxHeaderValue)
	}
	weak := strings.HasPrefix(etag, "W/")
	id := Identity{ETag: printable(strings.Trim(strings.TrimPrefix(etag, "W/"), `"`)), VersionID: printable(version), Size: total}
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		id.LastModified = lm
	}
	return id, weak, nil
}

// readErrorBody reads at most maxErrorBody bytes of an error response.
func readErrorBody(body io.Reader) []byte {
	b, _ := io.ReadAll(io.LimitReader(body, maxErrorBody))
	return b
}

// bareURLError drops url.Error's wrapping: it names the URL with its
// signature.
func bareURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// guardedBody counts body bytes and cancels its request when one Read
// waits longer than stall.
type guardedBody struct {
	body   io.ReadCloser
	cancel context.CancelCauseFunc
	actx   context.Context
	timer  *time.Timer
	stall  time.Duration
	o      *Object
	eof    bool
}

func (g *guardedBody) Read(p []byte) (int, error) {
	if g.eof {
		return 0, io.EOF
	}
	g.timer.Reset(g.stall)
	n, err := g.body.Read(p)
	g.timer.Stop()
	g.o.st.bytes.Add(int64(n))
	if err != nil && err != io.EOF {
		if cause := context.Cause(g.actx); errors.Is(cause, errStall) {
			err = fmt.Errorf("%w (%s)", errStall, g.stall)
		} else {
			err = bareURLError(err)
		}
	}
	return n, err
}

func (g *guardedBody) Close() error {
	g.timer.Stop()
	err := g.body.Close()
	g.cancel(nil)
	return err
}

// Reader returns the whole object in order, not through the cache (a
// whole-object hash without a file), each request pinned; a fault resumes
// at the offset reached. Attempts bound the faults in a row without 1 MiB
// of progress.
// Read it to the end, or end ctx, to release its request.
func (o *Object) Reader(ctx context.Context) io.Reader {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(o.ctx, cancel)
	return &stream{o: o, ctx: ctx, done: func() { stop(); cancel() }}
}

type stream struct {
	o        *Object
	ctx      context.Context // the caller's and the Object's
	done     func()
	off      int64
	body     io.ReadCloser
	left     int64 // bytes the current body still owes
	progress int64 // bytes from the current body
	failures int
	err      error
}

func (s *stream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.read(p)
	if err != nil {
		if s.body != nil {
			s.body.Close()
			s.body = nil
		}
		if err != io.EOF {
			err = fmt.Errorf("remote %s: stream at %d: %w", s.o.name(), s.off, err)
		}
		s.err = err
		s.done()
	}
	return n, err
}

func (s *stream) read(p []byte) (int, error) {
	o, ctx := s.o, s.ctx
	refreshes := 0
	for {
		if s.off >= o.id.Size {
			return 0, io.EOF
		}
		if len(p) == 0 {
			return 0, nil
		}
		if ctx.Err() != nil {
			if o.ctx.Err() != nil {
				return 0, errClosed
			}
			return 0, ctx.Err()
		}
		var err error
		if s.body == nil {
			_, gen := o.currentURL()
			var want int64
			if s.body, want, err = o.request(ctx, s.off, o.id.Size-s.off, false); err == nil {
				s.left, s.progress = want, 0
			} else if errors.Is(err, ErrExpired) && o.opts.Refresh != nil && refreshes < maxRefreshes {
				refreshes++
				if rerr := o.refresh(ctx, gen); rerr != nil {
					return 0, fmt.Errorf("%w; refresh: %w", err, rerr)
				}
				o.st.retries.Add(1)
				continue
			}
		}
		if err == nil {
			n, rerr := s.body.Read(p[:min(int64(len(p)), s.left)])
			s.off, s.left, s.progress = s.off+int64(n), s.left-int64(n), s.progress+int64(n)
			o.st.stream.Add(int64(n))
			if s.left == 0 {
				var extra [1]byte
				k, _ := io.ReadFull(s.body, extra[:])
				s.body.Close()
				s.body = nil
				if k > 0 {
					return n, fmt.Errorf("%w: body longer than its Content-Range", ErrProtocol)
				}
				return n, nil
			}
			if n > 0 {
				return n, nil
			}
			if rerr == nil {
				continue
			}
			if rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			err = retry(fmt.Errorf("body ended %d bytes early: %w", s.left, rerr))
			s.body.Close()
			s.body = nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		var t *transient
		if !errors.As(err, &t) {
			return 0, err
		}
		if s.progress >= 1<<20 {
			s.failures = 0
		}
		s.progress = 0
		s.failures++
		if s.failures >= o.opts.Attempts {
			return 0, fmt.Errorf("%w after %d attempts: %w", ErrUnavailable, s.failures, err)
		}
		o.log.WithFields(logrus.Fields{"offset": s.off, "attempt": s.failures, "error": err}).Warn("remote stream failed; resuming")
		if err := o.backoff(ctx, s.failures, t.after); err != nil {
			return 0, err
		}
		o.st.retries.Add(1)
	}
}
