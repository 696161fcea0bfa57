package remote

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzContentRange: the parser never panics, and what it accepts is a
// well-formed range that prints back to the same header.
func FuzzContentRange(f *testing.F) {
	for _, s := range []string{
		"bytes 0-65535/209715200", "bytes 1048576-1376255/4206649", "bytes */0", "bytes */4206649",
		"bytes 0-0/1", "bytes 5-4/10", "bytes 0-9/*", "bytes -1-5/10", "bytes +1-5/10", "bytes 0-9223372036854775807/9223372036854775807",
		"bytes=0-1/2", "items 0-1/2", "bytes 0-1 /2", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cr, err := parseContentRange(s)
		if err != nil {
			return
		}
		var back string
		if cr.Unsatisfied {
			back = fmt.Sprintf("bytes */%d", cr.Total)
		} else {
			if cr.Start < 0 || cr.Start > cr.End || cr.End >= cr.Total {
				t.Fatalf("%q accepted as %+v", s, cr)
			}
			back = fmt.Sprintf("bytes %d-%d/%d", cr.Start, cr.End, cr.Total)
		}
		if again, err := parseContentRange(back); err != nil || again != cr {
			t.Fatalf("%q accepted as %+v, which reads back as %+v, %v", s, cr, again, err)
		}
		if !strings.HasPrefix(s, "bytes ") || strings.ContainsAny(s, "+ \t") && strings.Count(s, " ") != 1 {
			t.Fatalf("%q accepted", s)
		}
	})
}

// FuzzS3Error: the XML error parser never panics and returns bounded,
// printable values; expiry detection never panics on any URL.
func FuzzS3Error(f *testing.F) {
	for _, s := range []string{minioExpired, minioDenied, s3SlowDown,
		`<?xml version="1.0" encoding="UTF-8"?><Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>`,
		`<Error><Code>AccessDenied</Code><Message>Request has expired</Message><X-Amz-Expires>1</X-Amz-Expires><Expires>2026-12-05T10:00:01Z</Expires><ServerTime>2026-12-05T10:00:05Z</ServerTime></Error>`,
		`<html><body>403</body></html>`, ``, `<Error><Code>`,
	} {
		f.Add([]byte(s), "https://h/b/k?X-Amz-Date=20261205T100000Z&X-Amz-Expires=1&X-Amz-Signature=s")
	}
	now := time.Date(2026, 12, 5, 10, 0, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte, u string) {
		e, ok := parseS3Error(body)
		if !ok {
			return
		}
		if e.Code == "" || len(e.Code) > 256 || len(e.Message) > 256 || strings.ContainsAny(e.Code+e.Message, "\x00\n\r") {
			t.Fatalf("parsed %+v", e)
		}
		e.expired(u, now)
	})
}
