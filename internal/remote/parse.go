package remote

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// contentRange is a parsed Content-Range header: bytes START-END/TOTAL, or
// bytes */TOTAL (a 416's) with Unsatisfied set.
type contentRange struct {
	Start, End, Total int64
	Unsatisfied       bool
}

// maxHeaderValue bounds the header values kept or parsed: an ETag or a
// Content-Range is far shorter from any honest server.
const maxHeaderValue = 1024

// parseContentRange parses exactly `bytes START-END/TOTAL` (RFC 9110
// 14.4) with START <= END < TOTAL, or `bytes */TOTAL`. No signs, spaces
// or other units; an unknown total ("*") is refused because the size of
// the object is what pins it.
func parseContentRange(s string) (contentRange, error) {
	var cr contentRange
	if len(s) > maxHeaderValue {
		return cr, fmt.Errorf("Content-Range of %d bytes", len(s))
	}
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return cr, fmt.Errorf("Content-Range %q: not in bytes", printable(s))
	}
	rng, total, ok := strings.Cut(rest, "/")
	if !ok {
		return cr, fmt.Errorf("Content-Range %q: no total", printable(s))
	}
	var err error
	if cr.Total, err = parseDecimal(total); err != nil {
		return cr, fmt.Errorf("Content-Range %q: total: %v", printable(s), err)
	}
	if rng == "*" {
		cr.Unsatisfied = true
		return cr, nil
	}
	first, last, ok := strings.Cut(rng, "-")
	if !ok {
		return cr, fmt.Errorf("Content-Range %q: no range", printable(s))
	}
	if cr.Start, err = parseDecimal(first); err != nil {
		return cr, fmt.Errorf("Content-Range %q: start: %v", printable(s), err)
	}
	if cr.End, err = parseDecimal(last); err != nil {
		return cr, fmt.Errorf("Content-Range %q: end: %v", printable(s), err)
	}
	if cr.Start > cr.End || cr.End >= cr.Total {
		return cr, fmt.Errorf("Content-Range %q: not START <= END < TOTAL", printable(s))
	}
	return cr, nil
}

// parseDecimal parses a non-negative decimal that fits an int64, digits
// only (strconv alone would take a sign).
func parseDecimal(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, errors.New("not a decimal of 1-19 digits")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a decimal")
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// s3Error is the XML error body of S3 and MinIO (and GCS's XML API).
type s3Error struct {
	Code, Message string
}

// maxErrorBody bounds the error body read from a server.
const maxErrorBody = 64 << 10

// parseS3Error reads the Code and Message of an S3 XML error body. ok is
// false for anything else (an HTML page, an empty body). The body must
// already be bounded; the values are cut to 256 printable bytes.
func parseS3Error(body []byte) (e s3Error, ok bool) {
	if len(body) > maxErrorBody {
		body = body[:maxErrorBody]
	}
	var doc struct {
		XMLName xml.Name `xml:"Error"`
		Code    string   `xml:"Code"`
		Message string   `xml:"Message"`
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	if err := d.Decode(&doc); err != nil || doc.Code == "" {
		return e, false
	}
	return s3Error{Code: clip(doc.Code, 256), Message: clip(doc.Message, 256)}, true
}

// expired reports whether a 400 or 403 says the presigned URL (or the
// credentials it was signed with) expired. signedURL is the URL the
// request used: an AccessDenied past its own X-Amz-Date + X-Amz-Expires
// is an expiry whatever the message says.
func (e s3Error) expired(signedURL string, now time.Time) bool {
	switch e.Code {
	case "ExpiredToken", "RequestExpired", "TokenRefreshRequired":
		return true
	case "AccessDenied":
		if strings.Contains(strings.ToLower(e.Message), "request has expired") {
			return true
		}
		if exp, ok := signatureExpiry(signedURL); ok && !now.Before(exp) {
			return true
		}
	}
	return false
}

// signatureExpiry is the end of a SigV4 presigned URL's validity.
func signatureExpiry(raw string) (time.Time, bool) {
	u, err := url.Parse(raw)
	if err != nil {
		return time.Time{}, false
	}
	q := u.Query()
	date, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		return time.Time{}, false
	}
	secs, err := parseDecimal(q.Get("X-Amz-Expires"))
	if err != nil || secs > 7*24*3600 {
		return time.Time{}, false
	}
	return date.Add(time.Duration(secs) * time.Second), true
}

// retryAfter parses a Retry-After header (seconds or an HTTP date),
// bounded by limit; 0 when absent or unparseable.
func retryAfter(h string, now time.Time, limit time.Duration) time.Duration {
	if h == "" || len(h) > 64 {
		return 0
	}
	var d time.Duration
	if secs, err := parseDecimal(h); err == nil {
		if secs > int64(limit/time.Second) {
			return limit
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, limit))
}

// clip cuts s to n bytes and replaces what is not printable UTF-8: values
// from a server end up in errors and logs.
func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return printable(s)
}

func printable(s string) string {
	if len(s) > maxHeaderValue {
		s = s[:maxHeaderValue]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
}
