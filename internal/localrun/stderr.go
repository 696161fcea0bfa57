package localrun

import (
	"bytes"

	"guestkit.io/batch/internal/result"
)

// Bounds of what is kept of a runner's stderr.
const (
	// TailSize is how much of the end of stderr is kept (the result's
	// log_tail takes the last result.MaxDetail bytes of it).
	TailSize = 64 << 10
	// resultProbe is how far into a line the result marker must appear
	// for the line to be kept whole: the runner's JSON starts with it.
	resultProbe = 256
)

// resultMarker starts every result v1 document the runner prints: its
// first field.
var resultMarker = []byte(`"api_version":"` + result.APIVersion + `"`)

// stderrCapture keeps a runner's stderr within bounds: the last TailSize
// bytes, and the last line holding a result v1 document, which after
// exit 7 is the runner's only copy of its result and can be megabytes
// (a completed inspect), far more than the tail. Other lines are never
// held past resultProbe bytes. Writes come from one goroutine.
type stderrCapture struct {
	tail []byte // its last TailSize bytes are the tail

	line     []byte // the current line while it may be a result
	dropLine bool   // the current line is not a result, or too large
	result   []byte // the last complete result line
}

func (c *stderrCapture) Write(p []byte) (int, error) {
	c.keepTail(p)
	rest := p
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		chunk := rest
		if i >= 0 {
			chunk = rest[:i]
		}
		c.addToLine(chunk)
		if i < 0 {
			break
		}
		switch {
		case !c.dropLine && bytes.Contains(c.line, resultMarker):
			c.result, c.line = c.line, nil
		case cap(c.line) > 4*resultProbe:
			c.line = nil // only result lines may hold much memory
		}
		c.line, c.dropLine = c.line[:0], false
		rest = rest[i+1:]
	}
	return len(p), nil
}

// keepTail appends p in a buffer of 2*TailSize bytes, moving the last
// bytes to the front when it is full: it is never reallocated.
func (c *stderrCapture) keepTail(p []byte) {
	if c.tail == nil {
		c.tail = make([]byte, 0, 2*TailSize)
	}
	if len(p) >= TailSize {
		c.tail = append(c.tail[:0], p[len(p)-TailSize:]...)
		return
	}
	if len(c.tail)+len(p) > cap(c.tail) {
		keep := min(len(c.tail), TailSize-len(p))
		n := copy(c.tail, c.tail[len(c.tail)-keep:])
		c.tail = c.tail[:n]
	}
	c.tail = append(c.tail, p...)
}

// addToLine holds chunk while the line may still be a result.
func (c *stderrCapture) addToLine(chunk []byte) {
	if c.dropLine || len(chunk) == 0 {
		return
	}
	c.line = append(c.line, chunk...)
	switch {
	case len(c.line) > result.MaxSize:
		c.dropLine = true
	case len(c.line) >= resultProbe+len(resultMarker) && !bytes.Contains(c.line[:resultProbe+len(resultMarker)], resultMarker):
		c.dropLine = true
	}
	if c.dropLine {
		c.line = c.line[:0]
		if cap(c.line) > 4*resultProbe {
			c.line = nil // a dropped result-sized line gives its memory back
		}
	}
}

// Tail is the end of stderr: at most TailSize bytes.
func (c *stderrCapture) Tail() string {
	if len(c.tail) > TailSize {
		return string(c.tail[len(c.tail)-TailSize:])
	}
	return string(c.tail)
}

// ResultLine is the last complete line that held a result marker near its
// start; "" if none. A result printed without a final newline is taken
// too: the runner exited after it.
func (c *stderrCapture) ResultLine() string {
	if !c.dropLine && bytes.Contains(c.line, resultMarker) {
		return string(c.line)
	}
	return string(c.result)
}
