// Package redact names a URL, URI or path in logs, errors and results
// without what grants access to it: the query of an http(s) URL (a
// presigned signature), userinfo, and fragments. Strangers write specs and
// servers write Location headers, so its input is untrusted: it never
// fails, and what it returns is printable and bounded.
package redact

import (
	"strings"
	"unicode/utf8"
)

// Redacted replaces a query that was dropped.
const Redacted = "<redacted>"

// maxLen bounds what is returned, in bytes, before "...".
const maxLen = 200

// URL returns s without userinfo or fragment, and with the query of an
// http(s) URL or of a relative reference (a Location) replaced by
// "?<redacted>". A bucket URI's query (endpoint=, region=) names no
// secret and stays. Control characters and invalid UTF-8 become '?'.
func URL(s string) string {
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	scheme, rest, absolute := splitScheme(s)
	if absolute {
		// The authority ends at the first '/', '?' (or the end); userinfo
		// is what precedes its last '@'.
		end := strings.IndexAny(rest, "/?")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
			rest = rest[at+1:]
		}
		s = scheme + "://" + rest
	}
	if i := strings.IndexByte(s, '?'); i >= 0 && (!absolute || scheme == "http" || scheme == "https") {
		s = s[:i] + "?" + Redacted
	}
	return Printable(s)
}

// splitScheme splits "scheme://rest"; absolute is false when s has no
// scheme (a path, a key, a relative reference).
func splitScheme(s string) (scheme, rest string, absolute bool) {
	i := strings.Index(s, "://")
	if i <= 0 {
		return "", s, false
	}
	for j, r := range s[:i] {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (j == 0 || !(r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')) {
			return "", s, false
		}
	}
	return strings.ToLower(s[:i]), s[i+3:], true
}

// Printable bounds s and replaces control characters (C1 included) and
// bytes that are not UTF-8, which must not reach a log or terminal raw.
func Printable(s string) string {
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
}
