package result

import (
	"strings"
	"unicode/utf8"
)

// StatusOfExit is the status an exit code means under the runner's
// contract; "" for codes outside it.
func StatusOfExit(code int) Status {
	switch code {
	case ExitCompleted, ExitNoncompliant:
		return StatusCompleted
	case ExitInternal, ExitInfra, ExitUploadFailed, ExitUsage:
		return StatusFailed
	case ExitBadSpec, ExitBadImage:
		return StatusRejected
	case ExitTimeout:
		return StatusTimeout
	}
	return ""
}

// Tail returns the end of s, at most max bytes of valid UTF-8, from the
// start of a line when one starts in that window, without trailing newlines.
func Tail(s string, max int) string {
	s = strings.TrimRight(s, "\n")
	if len(s) > max {
		s = s[len(s)-max:]
		if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
			s = s[i+1:]
		}
		for len(s) > 0 && !utf8.RuneStart(s[0]) {
			s = s[1:]
		}
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// Head returns the start of s, at most max bytes of valid UTF-8.
func Head(s string, max int) string {
	if len(s) > max {
		s = s[:max]
		// Drop a rune cut in two.
		for range utf8.UTFMax - 1 {
			if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
				break
			}
			s = s[:len(s)-1]
		}
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
