package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const objectSize = 4<<20 + 12345 // not a multiple of the block size

func testOptions() Options {
	return Options{BlockSize: 64 << 10, ReadaheadMax: 512 << 10, Attempts: 4, Backoff: 5 * time.Millisecond,
		HeaderTimeout: time.Second, StallTimeout: 200 * time.Millisecond}
}

func openT(t *testing.T, url string, opts Options) *Object {
	t.Helper()
	o, err := Open(t.Context(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// readCheck reads n bytes at off and compares them with data.
func readCheck(t *testing.T, o *Object, data []byte, off, n int64) {
	t.Helper()
	p := make([]byte, n)
	got, err := o.ReadAt(p, off)
	if err != nil && !(err == io.EOF && off+n >= int64(len(data))) {
		t.Fatalf("ReadAt(%d, %d): %v", n, off, err)
	}
	want := data[off:min(off+n, int64(len(data)))]
	if got != len(want) || !bytes.Equal(p[:got], want) {
		t.Fatalf("ReadAt(%d, %d): %d bytes, differ from the object's %d", n, off, got, len(want))
	}
}

// TestRecoverable: each transient fault, on the first read after Open and
// on Open itself, is survived with the object's exact bytes and retries
// counted.
func TestRecoverable(t *testing.T) {
	data := randomBytes(objectSize, 1)
	for _, f := range []fault{reset, truncated, stall, status500, slowDown, tooMany, wrongStart, longLength,
		longChunked, slowHeaders, chunked206, halfThenSlow} {
		for _, at := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s@%d", f, at), func(t *testing.T) {
				s := newFaultServer(t, data)
				s.faults[at] = f
				o := openT(t, s.URL+"/disk.raw?X-Amz-Signature=secret", testOptions())
				if o.Size() != int64(len(data)) {
					t.Fatalf("Size = %d, want %d", o.Size(), len(data))
				}
				readCheck(t, o, data, 1<<20+7, 300<<10)
				readCheck(t, o, data, 0, 100)
				readCheck(t, o, data, int64(len(data))-5000, 5000)
				st := o.Stats()
				wantRetries := f != chunked206 && f != halfThenSlow
				if (st.Retries > 0) != wantRetries {
					t.Errorf("Retries = %d, want retries: %v", st.Retries, wantRetries)
				}
				if st.Requests != int64(s.requests()) {
					t.Errorf("Stats.Requests = %d, the server saw %d", st.Requests, s.requests())
				}
				// Every request after the first 206 is pinned.
				for i, m := range s.ifMatch[at:] {
					if m != `"`+s.etag+`"` && !(i == 0 && at == 1 && st.Retries > 0) {
						t.Errorf("request %d: If-Match %q, want the pinned ETag", i+at+1, m)
					}
				}
			})
		}
	}
}

// TestUnrecoverable: faults that persist, or that no retry can mend, fail
// with their error kind, a message that names the fault, and no bytes.
func TestUnrecoverable(t *testing.T) {
	data := randomBytes(objectSize, 2)
	cases := []struct {
		f      fault
		from   int // persistent from this request
		kind   error
		also   error
		inText string
	}{
		{status500, 2, ErrUnavailable, nil, "HTTP 500 Internal Server Error"},
		{reset, 2, ErrUnavailable, nil, "connection reset"},
		{truncated, 2, ErrUnavailable, nil, "unexpected EOF"},
		{stall, 2, ErrUnavailable, nil, "no body bytes in time"},
		{slowHeaders, 2, ErrUnavailable, nil, "no response headers in time"},
		{wrongStart, 2, ErrUnavailable, ErrProtocol, "Content-Range bytes 1048577-1376255/4206649 to a GET of bytes 1048576-1376255"},
		{longLength, 2, ErrUnavailable, ErrProtocol, "Content-Length 327690"},
		{longChunked, 2, ErrUnavailable, ErrProtocol, "body longer than"},
		{wrongTotal, 2, ErrChanged, nil, fmt.Sprintf("now %d bytes, was %d", objectSize+1, objectSize)},
		{expired, 2, ErrExpired, nil, "AccessDenied (Request has expired)"},
		{denied, 2, ErrDenied, nil, "SignatureDoesNotMatch"},
		{notFound, 2, ErrNotFound, nil, "not found"},
		{noRange, 2, ErrNoRange, nil, "HTTP 200 OK instead of 206"},
		{redirectTo, 2, ErrProtocol, nil, "307 Temporary Redirect to /elsewhere?<redacted> not followed"},
	}
	for _, c := range cases {
		t.Run(string(c.f), func(t *testing.T) {
			s := newFaultServer(t, data)
			s.from, s.always = c.from, c.f
			o := openT(t, s.URL+"/disk.raw?X-Amz-Signature=secret", testOptions())
			p := make([]byte, 300<<10)
			n, err := o.ReadAt(p, 1<<20+1)
			if n != 0 || !errors.Is(err, c.kind) || (c.also != nil && !errors.Is(err, c.also)) {
				t.Fatalf("ReadAt = %d, %v; want 0 and %v", n, err, c.kind)
			}
			msg := err.Error()
			for _, want := range []string{c.inText, s.URL + "/disk.raw?<redacted>", "at 1048577"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			if strings.Contains(msg, "secret") {
				t.Errorf("error %q shows the signature", msg)
			}
			if !bytes.Equal(p, make([]byte, len(p))) {
				t.Errorf("bytes written to p on failure")
			}
			wantReq := 2
			if errors.Is(err, ErrUnavailable) {
				wantReq = 1 + testOptions().Attempts
			}
			if s.requests() != wantReq {
				t.Errorf("%d requests, want %d", s.requests(), wantReq)
			}
		})
	}
}

// TestOpenRefused: servers that cannot stream, and other first-response
// failures, fail Open with the kind and what the server did.
func TestOpenRefused(t *testing.T) {
	data := randomBytes(objectSize, 3)
	for _, c := range []struct {
		f      fault
		kind   error
		inText string
	}{
		{noRange, ErrNoRange, "HTTP 200 OK instead of 206 Partial Content to a ranged GET (Content-Length: 4206649)"},
		{chunked200, ErrNoRange, "HTTP 200 OK instead of 206 Partial Content to a ranged GET (Transfer-Encoding: chunked)"},
		{notFound, ErrNotFound, "object not found"},
		{expired, ErrExpired, "Request has expired"},
	} {
		t.Run(string(c.f), func(t *testing.T) {
			s := newFaultServer(t, data)
			s.from, s.always = 1, c.f
			_, err := Open(t.Context(), s.URL+"/disk.raw?sig=secret", testOptions())
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.inText) || strings.Contains(err.Error(), "secret") {
				t.Fatalf("Open: %v; want %v saying %q", err, c.kind, c.inText)
			}
			if s.requests() != 1 {
				t.Errorf("%d requests, want 1", s.requests())
			}
		})
	}
	// A lying total caught against the dispatcher's Stat.
	s := newFaultServer(t, data)
	s.from, s.always = 1, wrongTotal
	opts := testOptions()
	opts.Pin.Size = int64(len(data))
	if _, err := Open(t.Context(), s.URL, opts); !errors.Is(err, ErrChanged) {
		t.Errorf("Open, total+1 against Pin.Size: %v, want ErrChanged", err)
	}
}

// TestPin: Options.Pin and MaxSize against the first response.
func TestPin(t *testing.T) {
	data := randomBytes(objectSize, 4)
	s := newFaultServer(t, data)
	for _, c := range []struct {
		name string
		opts func(*Options)
		kind error
	}{
		{"etag", func(o *Options) { o.Pin.ETag = `"` + s.etag + `"` }, nil},
		{"etag+size", func(o *Options) { o.Pin = Identity{ETag: s.etag, Size: int64(len(data))} }, nil},
		{"other etag", func(o *Options) { o.Pin.ETag = "0123" }, ErrChanged},
		{"other size", func(o *Options) { o.Pin.Size = 1 << 20 }, ErrChanged},
		{"max size", func(o *Options) { o.MaxSize = 4 << 20 }, ErrTooLarge},
		{"max size ok", func(o *Options) { o.MaxSize = int64(len(data)) }, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := testOptions()
			c.opts(&opts)
			o, err := Open(t.Context(), s.URL, opts)
			if !errors.Is(err, c.kind) || (c.kind == nil) != (err == nil) {
				t.Fatalf("Open: %v, want %v", err, c.kind)
			}
			if err != nil {
				return
			}
			defer o.Close()
			id := o.Identity()
			if id.ETag != s.etag || id.Size != int64(len(data)) || !id.LastModified.Equal(s.modTime) {
				t.Errorf("Identity = %+v, want ETag %s size %d modified %s", id, s.etag, len(data), s.modTime)
			}
			readCheck(t, o, data, 12345, 200000)
		})
	}
}

// TestChanged: an object replaced mid-run fails every later read with
// ErrChanged, whether the server answers If-Match (412) or ignores it.
func TestChanged(t *testing.T) {
	data := randomBytes(objectSize, 5)
	other := randomBytes(objectSize, 6)
	for _, c := range []struct {
		name   string
		ignore bool
		newer  []byte
		inText string
	}{
		{"412", false, other, "412 Precondition Failed"},
		{"ignores If-Match", true, other, "ETag now"},
		{"ignores If-Match, other size", true, other[:objectSize-1], "now 4206648 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newFaultServer(t, data)
			s.changes[3] = c.newer
			if c.ignore {
				s.from, s.always = 2, ignoreIfM
			}
			o := openT(t, s.URL, testOptions())
			readCheck(t, o, data, 1<<20, 4096) // request 2: the old object
			p := make([]byte, 4096)
			for range 2 {
				n, err := o.ReadAt(p, 3<<20)
				if n != 0 || !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), c.inText) {
					t.Fatalf("ReadAt after the change = %d, %v; want ErrChanged saying %q", n, err, c.inText)
				}
			}
			readCheck(t, o, data, 1<<20, 4096) // cached: still the old object's bytes
		})
	}
}

// TestRefresh: an expired URL is renewed by Refresh, and the read goes on.
func TestRefresh(t *testing.T) {
	data := randomBytes(objectSize, 7)
	s := newFaultServer(t, data)
	s.expireQ = "sig=old"
	opts := testOptions()
	calls := 0
	opts.Refresh = func(ctx context.Context) (string, error) {
		calls++
		return s.URL + "/disk.raw?sig=new", nil
	}
	o := openT(t, s.URL+"/disk.raw?sig=old", opts)
	readCheck(t, o, data, 2<<20, 1<<20)
	readCheck(t, o, data, 3<<20, 1<<20)
	if st := o.Stats(); calls != 1 || st.Refreshes != 1 || st.Retries != 1 {
		t.Errorf("Refresh called %d times, Stats %+v; want 1 refresh and 1 retry", calls, st)
	}
	// A refresh that keeps returning expired URLs ends, with ErrExpired.
	s2 := newFaultServer(t, data)
	s2.expireQ = "sig="
	opts.Refresh = func(ctx context.Context) (string, error) { return s2.URL + "/disk.raw?sig=again", nil }
	o = openT(t, s2.URL+"/disk.raw?sig=old", opts)
	if _, err := o.ReadAt(make([]byte, 10), 1<<20); !errors.Is(err, ErrExpired) {
		t.Errorf("ReadAt with URLs that stay expired: %v, want ErrExpired", err)
	}
	if st := o.Stats(); st.Refreshes != maxRefreshes {
		t.Errorf("%d refreshes, want %d", st.Refreshes, maxRefreshes)
	}
	// A failing Refresh is reported.
	opts.Refresh = func(ctx context.Context) (string, error) { return "", errors.New("dispatcher unreachable") }
	s3 := newFaultServer(t, data)
	s3.expireQ = "sig="
	o = openT(t, s3.URL+"/disk.raw?sig=old", opts)
	if _, err := o.ReadAt(make([]byte, 10), 1<<20); !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "dispatcher unreachable") {
		t.Errorf("ReadAt with a failing Refresh: %v", err)
	}
}

// TestReader: the whole-object stream's hash equals the object's, through
// a reset and a stall mid-body, and it fails on a change.
func TestReader(t *testing.T) {
	data := randomBytes(objectSize, 8)
	want := sha256.Sum256(data)
	for _, f := range []fault{reset, stall, truncated, slowDown} {
		t.Run(string(f), func(t *testing.T) {
			s := newFaultServer(t, data)
			s.faults[2] = f
			o := openT(t, s.URL, testOptions())
			h := sha256.New()
			n, err := io.CopyBuffer(h, o.Reader(t.Context()), make([]byte, 32<<10))
			if err != nil || n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatalf("Reader: %d bytes, %v; hash equal: %v", n, err, bytes.Equal(h.Sum(nil), want[:]))
			}
			st := o.Stats()
			if st.Retries == 0 || st.StreamBytes != int64(len(data)) || st.CacheHits+st.CacheMisses != 0 {
				t.Errorf("Stats %+v: want retries, %d stream bytes, no cache use", st, len(data))
			}
			// The resumed request starts where the broken one stopped.
			if f != slowDown && len(s.ranges) != 3 || f != slowDown && s.ranges[2] == fmt.Sprintf("bytes=0-%d", len(data)-1) {
				t.Errorf("ranges %q: want a resume past 0", s.ranges)
			}
		})
	}
	s := newFaultServer(t, data)
	s.faults[2] = reset
	s.changes[3] = randomBytes(objectSize, 9)
	o := openT(t, s.URL, testOptions())
	if _, err := io.Copy(io.Discard, o.Reader(t.Context())); !errors.Is(err, ErrChanged) {
		t.Errorf("Reader over a changed object: %v, want ErrChanged", err)
	}
}

// TestConcurrent: concurrent readers of the same blocks fetch each once
// (no two requests overlap), and all get the object's bytes.
func TestConcurrent(t *testing.T) {
	data := randomBytes(objectSize, 10)
	s := newFaultServer(t, data)
	opts := testOptions()
	opts.ReadaheadMax = -1
	o := openT(t, s.URL, opts)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			r := randomBytes(64, uint64(g))
			for i := range 50 {
				off := (int64(r[i%64])<<14 + int64(i)*977) % int64(len(data)-70000)
				p := make([]byte, 1+int(r[(i+1)%64])<<8)
				if _, err := o.ReadAt(p, off); err != nil || !bytes.Equal(p, data[off:off+int64(len(p))]) {
					errs <- fmt.Errorf("ReadAt(%d, %d): %v or bytes differ", len(p), off, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[int64]bool{}
	for _, rg := range s.ranges {
		a, b, _ := parseRangeHeader(rg, int64(len(data)))
		for blk := a / opts.BlockSize; blk <= b/opts.BlockSize; blk++ {
			if seen[blk] {
				t.Fatalf("block %d fetched twice (ranges %q)", blk, s.ranges)
			}
			seen[blk] = true
		}
	}
}

// TestCancel: ending ctx stops a wait for a stalled server at once, and
// Close stops later reads.
func TestCancel(t *testing.T) {
	data := randomBytes(objectSize, 11)
	s := newFaultServer(t, data)
	s.from, s.always = 2, slowDown // Retry-After: 1 s
	opts := testOptions()
	o := openT(t, s.URL, opts)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := o.ReadAtContext(ctx, make([]byte, 10), 1<<20)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 600*time.Millisecond {
		t.Errorf("ReadAtContext: %v after %v; want the deadline at 100 ms", err, time.Since(start))
	}
	o.Close()
	if _, err := o.ReadAt(make([]byte, 10), 0); err == nil {
		t.Errorf("ReadAt after Close succeeded")
	}
}

// TestReadahead: sequential reads grow the requests up to ReadaheadMax; a
// seek drops back to single blocks.
func TestReadahead(t *testing.T) {
	data := randomBytes(objectSize, 12)
	s := newFaultServer(t, data)
	opts := testOptions() // 64 KiB blocks, 512 KiB readahead
	o := openT(t, s.URL, opts)
	for off := int64(0); off < 2<<20; off += 4096 {
		readCheck(t, o, data, off, 4096)
	}
	sizes := []int64{}
	for _, rg := range s.ranges[1:] {
		a, b, _ := parseRangeHeader(rg, int64(len(data)))
		sizes = append(sizes, (b-a+1)>>10)
	}
	// 64 KiB read at Open; then 64+64, 64+128, 64+256, then 64+512 (KiB).
	want := []int64{128, 192, 320, 576, 576}
	if len(sizes) < len(want) || fmt.Sprint(sizes[:len(want)]) != fmt.Sprint(want) {
		t.Errorf("request sizes (KiB) %v, want them to start %v", sizes, want)
	}
	n := len(s.ranges)
	readCheck(t, o, data, 3<<20+100, 100)
	if a, b, _ := parseRangeHeader(s.ranges[n], int64(len(data))); b-a+1 != opts.BlockSize {
		t.Errorf("after a seek: request of %d bytes, want one block", b-a+1)
	}
	st := o.Stats()
	if st.ReadAts != 513 || st.RequestedBytes != 2<<20+100 || st.BytesFetched < 2<<20 {
		t.Errorf("Stats %+v", st)
	}
}

// TestEmptyAndSmall: an empty object and one smaller than a block.
func TestEmptyAndSmall(t *testing.T) {
	s := newFaultServer(t, nil)
	o := openT(t, s.URL, testOptions())
	if n, err := o.ReadAt(make([]byte, 10), 0); o.Size() != 0 || n != 0 || err != io.EOF {
		t.Errorf("empty object: size %d, ReadAt = %d, %v", o.Size(), n, err)
	}
	// MinIO's 416 for an empty object has no Content-Range, only its XML.
	minio := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidRange</Code><Message>The requested range is not satisfiable</Message></Error>`)
	}))
	defer minio.Close()
	o = openT(t, minio.URL, testOptions())
	if o.Size() != 0 {
		t.Errorf("empty object behind a bare 416: size %d", o.Size())
	}
	data := randomBytes(1000, 13)
	s = newFaultServer(t, data)
	o = openT(t, s.URL, testOptions())
	p := make([]byte, 2000)
	n, err := o.ReadAt(p, 0)
	if o.Size() != 1000 || n != 1000 || err != io.EOF || !bytes.Equal(p[:n], data) || s.requests() != 1 {
		t.Errorf("small object: size %d, ReadAt = %d, %v, %d requests", o.Size(), n, err, s.requests())
	}
}

// TestBypass: a large read goes straight to the server and is right.
func TestBypass(t *testing.T) {
	data := randomBytes(3*BypassBytes, 14)
	s := newFaultServer(t, data)
	s.faults[2] = reset
	o := openT(t, s.URL, testOptions())
	readCheck(t, o, data, 5, BypassBytes+10)
	if st := o.Stats(); st.BypassReads != 1 || st.CachedBytes != 64<<10 || st.Retries != 1 {
		t.Errorf("Stats %+v: want 1 bypass, only the first block cached, 1 retry", st)
	}
}

// TestWholeBelow: a small object is read whole at Open, in one more
// request, and served from memory; a larger one is not, and a fault in
// the whole read is retried like any other.
func TestWholeBelow(t *testing.T) {
	data := randomBytes(1<<20+123, 21)
	s := newFaultServer(t, data)
	s.faults[2] = reset
	opts := testOptions()
	opts.WholeBelow = 2 << 20
	o := openT(t, s.URL, opts)
	if n := s.requests(); n != 3 {
		t.Errorf("Open made %d requests, want 3 (first block, whole rest after one reset)", n)
	}
	for _, r := range [][2]int64{{0, 4096}, {500000, 70000}, {int64(len(data)) - 100, 100}, {65536 * 7, 65536 * 3}} {
		readCheck(t, o, data, r[0], r[1])
	}
	if n := s.requests(); n != 3 {
		t.Errorf("%d requests after the reads, want none past Open", n)
	}
	// Its size known (the dispatcher's Stat), one request does.
	s = newFaultServer(t, data)
	opts.Pin.Size = int64(len(data))
	o = openT(t, s.URL, opts)
	readCheck(t, o, data, 300000, 5000)
	if n := s.requests(); n != 1 {
		t.Errorf("a small object of known size: %d requests, want 1", n)
	}
	s = newFaultServer(t, data)
	opts.WholeBelow, opts.Pin.Size = 1<<20, 0
	openT(t, s.URL, opts)
	if n := s.requests(); n != 1 {
		t.Errorf("an object over WholeBelow: Open made %d requests, want 1", n)
	}
}
