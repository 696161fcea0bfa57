package remote

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fault is what the test server does to one request instead of serving it.
type fault string

const (
	ok           fault = ""
	reset        fault = "reset"         // 206 headers, half the body, then a TCP RST
	truncated    fault = "truncated"     // Content-Length N, half the bytes, then a clean close
	stall        fault = "stall"         // 206 headers, half the body, then silence
	status500    fault = "500"           // an internal error
	slowDown     fault = "slowdown"      // 503 SlowDown with S3's XML and Retry-After: 1
	tooMany      fault = "429"           // 429 without a body
	wrongStart   fault = "wrongstart"    // Content-Range starting a byte later, body as announced
	wrongTotal   fault = "wrongtotal"    // Content-Range over a total one byte larger
	longLength   fault = "longlength"    // Content-Length and body 10 bytes longer than the range
	longChunked  fault = "longchunked"   // a chunked 206 whose body runs 10 bytes past the range
	noRange      fault = "norange"       // 200 and the whole object
	chunked200   fault = "chunked"       // 200 and the whole object, chunked
	expired      fault = "expired"       // MinIO's 403 for an expired presigned URL
	denied       fault = "denied"        // MinIO's 403 for a bad signature
	notFound     fault = "notfound"      // 404 NoSuchKey
	ignoreIfM    fault = "ignoreifmatch" // serve ignoring If-Match
	slowHeaders  fault = "slowheaders"   // no headers for 5 s
	redirectTo   fault = "redirect"      // 307 elsewhere
	chunked206   fault = "chunked206"    // a chunked 206 of the right length: fine
	noETag       fault = "noetag"        // no ETag header (a plain web server)
	halfThenSlow fault = "halfslow"      // half the body, then the rest after 50 ms (under StallTimeout)
)

// minioExpired is MinIO's response to an expired presigned GET, in its
// form; TestMinIO checks that the real server still answers this Code and
// Message.
const minioExpired = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AccessDenied</Code><Message>Request has expired</Message><Key>img/disk.raw</Key><BucketName>guestkit-test</BucketName><Resource>/guestkit-test/img/disk.raw</Resource><RequestId>1873D5D4A0F0E8B1</RequestId><HostId>dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8</HostId></Error>`

const minioDenied = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message><Key>img/disk.raw</Key><BucketName>guestkit-test</BucketName><Resource>/guestkit-test/img/disk.raw</Resource><RequestId>1873D5D4A0F0E8B2</RequestId><HostId>dd9025bab4ad464b</HostId></Error>`

const s3SlowDown = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>K2H6N7ZGQT6WHCEG</RequestId><HostId>WWoZlnK4pTjKCYn6eeV7G8e8mB=</HostId></Error>`

// faultServer serves one object over real TCP with Range support from
// http.ServeContent, an ETag, and a fault per request number.
type faultServer struct {
	*httptest.Server
	mu      sync.Mutex
	data    []byte
	etag    string
	modTime time.Time
	n       int            // requests so far
	faults  map[int]fault  // by request number, from 1
	from    int            // with always: every request from this number
	always  fault          //
	expireQ string         // requests whose query holds this (after the first) get 403 expired
	ranges  []string       // Range of each request
	ifMatch []string       // If-Match of each request
	changes map[int][]byte // from request number: new content (and ETag)
}

func newFaultServer(t *testing.T, data []byte) *faultServer {
	s := &faultServer{data: data, etag: etagOf(data), modTime: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		faults: map[int]fault{}, changes: map[int][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func etagOf(data []byte) string {
	h := uint64(14695981039346656037)
	for _, b := range data {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return fmt.Sprintf("%016x-%d", h, len(data))
}

func (s *faultServer) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *faultServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.n++
	n := s.n
	f := s.faults[n]
	if s.from > 0 && n >= s.from {
		f = s.always
	}
	if d, ok := s.changes[n]; ok {
		s.data, s.etag = d, etagOf(d)
		s.modTime = s.modTime.Add(time.Minute)
	}
	if s.expireQ != "" && n > 1 && strings.Contains(r.URL.RawQuery, s.expireQ) {
		f = expired
	}
	data, etag, mod := s.data, s.etag, s.modTime
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.ifMatch = append(s.ifMatch, r.Header.Get("If-Match"))
	s.mu.Unlock()

	start, end, _ := parseRangeHeader(r.Header.Get("Range"), int64(len(data)))
	part := data[start : end+1]
	crange := fmt.Sprintf("bytes %d-%d/%d", start, end, len(data))
	switch f {
	case ok, chunked206, noETag, halfThenSlow, ignoreIfM:
		if f == ignoreIfM {
			r.Header.Del("If-Match")
		}
		if f == chunked206 || f == halfThenSlow {
			if m := r.Header.Get("If-Match"); m != "" && m != `"`+etag+`"` {
				w.WriteHeader(http.StatusPreconditionFailed)
				return
			}
			w.Header().Set("ETag", `"`+etag+`"`)
			w.Header().Set("Content-Range", crange)
			w.WriteHeader(http.StatusPartialContent)
			w.Write(part[:len(part)/2])
			w.(http.Flusher).Flush()
			if f == halfThenSlow {
				time.Sleep(50 * time.Millisecond)
			}
			w.Write(part[len(part)/2:])
			return
		}
		if f != noETag {
			w.Header().Set("ETag", `"`+etag+`"`)
		}
		http.ServeContent(w, r, "", mod, bytes.NewReader(data))
	case reset, truncated:
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		fmt.Fprintf(buf, "HTTP/1.1 206 Partial Content\r\nContent-Range: %s\r\nContent-Length: %d\r\nETag: \"%s\"\r\n\r\n", crange, len(part), etag)
		buf.Write(part[:len(part)/2])
		buf.Flush()
		if f == reset {
			conn.(*net.TCPConn).SetLinger(0)
		}
		conn.Close()
	case stall:
		w.Header().Set("ETag", `"`+etag+`"`)
		w.Header().Set("Content-Range", crange)
		w.Header().Set("Content-Length", strconv.Itoa(len(part)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(part[:len(part)/2])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	case slowHeaders:
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	case status500:
		http.Error(w, "internal error", http.StatusInternalServerError)
	case slowDown:
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(s3SlowDown))
	case tooMany:
		w.WriteHeader(http.StatusTooManyRequests)
	case wrongStart, wrongTotal:
		cr := fmt.Sprintf("bytes %d-%d/%d", start+1, end, len(data))
		body := part[1:]
		if f == wrongTotal {
			cr, body = fmt.Sprintf("bytes %d-%d/%d", start, end, len(data)+1), part
		}
		w.Header().Set("ETag", `"`+etag+`"`)
		w.Header().Set("Content-Range", cr)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(body)
	case longLength, longChunked:
		body := append(append([]byte(nil), part...), "0123456789"...)
		w.Header().Set("ETag", `"`+etag+`"`)
		w.Header().Set("Content-Range", crange)
		if f == longLength {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.WriteHeader(http.StatusPartialContent)
		w.Write(body)
	case noRange:
		w.Header().Set("ETag", `"`+etag+`"`)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
	case chunked200:
		w.Header().Set("ETag", `"`+etag+`"`)
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		w.Write(data)
	case expired, denied, notFound:
		code, body := http.StatusForbidden, minioExpired
		if f == denied {
			body = minioDenied
		}
		if f == notFound {
			code, body = http.StatusNotFound, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>`
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(code)
		w.Write([]byte(body))
	case redirectTo:
		http.Redirect(w, r, "/elsewhere?X-Amz-Signature=secret", http.StatusTemporaryRedirect)
	}
}

// parseRangeHeader parses the `bytes=A-B` the package sends (B clipped).
func parseRangeHeader(h string, size int64) (int64, int64, bool) {
	a, b, ok := strings.Cut(strings.TrimPrefix(h, "bytes="), "-")
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || start > end || start >= size {
		return 0, size - 1, false
	}
	return start, min(end, size-1), true
}

// randomBytes is a deterministic random object: any misplaced byte shows.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
