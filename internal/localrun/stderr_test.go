package localrun

import (
	"strings"
	"testing"
)

func TestStderrCaptureIsBounded(t *testing.T) {
	var c stderrCapture
	logLine := strings.Repeat("l", 100) + "\n"
	result := `{"api_version":"guestkit.io/result/v1","job_id":"j","status":"completed","data":"` + strings.Repeat("d", 5*TailSize) + `"}`
	long := strings.Repeat("n", 10*TailSize) // a long line that is not a result
	// Odd chunk sizes: lines and the marker straddle writes.
	in := strings.Repeat(logLine, 2000) + result + "\n" + long + "\n" + "last line\n"
	for len(in) > 0 {
		n := min(len(in), 777)
		c.Write([]byte(in[:n]))
		in = in[n:]
		if cap(c.tail) > 2*TailSize+777 {
			t.Fatalf("tail buffer grew to %d bytes", cap(c.tail))
		}
		if !strings.HasPrefix(string(c.line), `{"api_version"`) && cap(c.line) > 4*resultProbe+777 {
			t.Fatalf("a line that is not a result holds %d bytes", cap(c.line))
		}
	}
	tail := c.Tail()
	if len(tail) != TailSize || !strings.HasSuffix(tail, "n\nlast line\n") {
		t.Errorf("tail: %d bytes ending %q", len(tail), tail[len(tail)-20:])
	}
	if got := c.ResultLine(); got != result {
		t.Errorf("result line: %d bytes, want the %d-byte result", len(got), len(result))
	}
}

func TestStderrCaptureUnterminatedResult(t *testing.T) {
	var c stderrCapture
	c.Write([]byte("2026-01-01T00:00:00Z {\"api_version\":\"guestkit.io/result/v1\",\"job_id\":\"j\"}"))
	if got := c.ResultLine(); !strings.HasSuffix(got, `"job_id":"j"}`) {
		t.Errorf("result line = %q", got)
	}
	c.Write([]byte("\nplain line without a result\n"))
	if got := c.ResultLine(); !strings.HasSuffix(got, `"job_id":"j"}`) {
		t.Errorf("result line after more output = %q", got)
	}
}
