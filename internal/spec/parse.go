package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// ErrTooLarge is returned (wrapped) for a spec larger than MaxSize.
var ErrTooLarge = errors.New("spec too large")

// maxDepth bounds nesting: the spec itself is 5 levels deep, and a deep
// unknown field must not cost stack.
const maxDepth = 64

// maxReports bounds warnings and problems, so that a hostile spec with
// 100,000 unknown fields does not produce a result of the same size.
const maxReports = 100

// Warning is something a job runs despite: an unknown or ignored field, or
// a value that will make a later step fail.
type Warning struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (w Warning) String() string {
	if w.Field == "" {
		return w.Message
	}
	return w.Field + ": " + w.Message
}

// SyntaxError reports a spec that is not one well-formed JSON or YAML
// object.
type SyntaxError struct {
	Format string // "json" or "yaml"
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based; 0 when unknown
	Msg    string
}

func (e *SyntaxError) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("spec: %s: line %d, column %d: %s", e.Format, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("spec: %s: line %d: %s", e.Format, e.Line, e.Msg)
	}
	return fmt.Sprintf("spec: %s: %s", e.Format, e.Msg)
}

// Parse reads a JSON or YAML spec. A document whose first character (after
// a byte order mark and white space) is '{' or '[' is JSON; anything else
// is YAML.
//
// Parse fails only when the document cannot be read at all: too large
// (ErrTooLarge), malformed or with duplicate keys (*SyntaxError), or not an
// object. Anything else, wrong field types and unsupported operations
// included, is reported by Validate, so that a caller holding a Job can
// always name it in a rejected result. The warnings name unknown fields and
// fields that are accepted but ignored. The payload data of an unsupported
// operation is not interpreted.
func Parse(data []byte) (*Job, []Warning, error) {
	if len(data) > MaxSize {
		return nil, nil, fmt.Errorf("spec is %d bytes, over the %d-byte (1 MiB) limit: %w", len(data), MaxSize, ErrTooLarge)
	}
	tree, format, err := parseTree(data)
	if err != nil {
		return nil, nil, err
	}
	obj, ok := tree.(map[string]any)
	if !ok {
		return nil, nil, &SyntaxError{Format: format, Msg: "a spec must be an object, not " + kindOf(tree)}
	}

	j := &Job{Raw: bytes.Clone(data), digest: digestOf(tree)}
	d := decoder{opaque: map[string]bool{}}
	if op, _ := obj["operation"].(string); !slices.Contains(SupportedOperations(), op) {
		d.opaque["payload.data"] = true
	}
	d.decode(obj, reflect.ValueOf(j).Elem(), "")
	j.problems = d.problems
	return j, capWarnings(append(d.warnings, j.lint()...)), nil
}

// Load is Parse followed by Validate. The Job is returned whenever Parse
// succeeded, also with a validation error.
func Load(data []byte) (*Job, []Warning, error) {
	j, w, err := Parse(data)
	if err != nil {
		return nil, nil, err
	}
	return j, w, j.Validate()
}

// Digest identifies the content of a job: "sha256:" and the hex SHA-256 of
// the document as canonical JSON (keys sorted, no insignificant space,
// numbers in shortest form), unknown fields included. The same job in JSON
// and YAML has the same digest, so a dispatcher can tell a resubmission
// from a different job under the same job_id.
func (j *Job) Digest() string {
	if j.digest != "" {
		return j.digest
	}
	// A Job built in Go: digest what it would marshal to.
	b, err := json.Marshal(j)
	if err != nil {
		return ""
	}
	tree, err := jsonTree(b)
	if err != nil {
		return ""
	}
	return digestOf(tree)
}

func parseTree(data []byte) (any, string, error) {
	body := bytes.TrimPrefix(data, []byte("\uFEFF"))
	rest := bytes.TrimLeft(body, " \t\r\n")
	format := "yaml"
	if len(rest) > 0 && (rest[0] == '{' || rest[0] == '[') {
		format = "json"
	}
	if !utf8.Valid(body) {
		off := 0
		for off < len(body) {
			r, n := utf8.DecodeRune(body[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		line, col := lineCol(body, off)
		return nil, format, &SyntaxError{Format: format, Line: line, Column: col, Msg: "invalid UTF-8"}
	}
	if len(rest) == 0 {
		return nil, format, &SyntaxError{Format: format, Msg: "empty document"}
	}
	if format == "json" {
		v, err := jsonTree(body)
		return v, format, err
	}
	v, err := yamlTree(body)
	return v, format, err
}

// jsonTree decodes one JSON value into maps, slices, strings, json.Number,
// bools and nils, rejecting duplicate keys (which parsers resolve
// differently) and trailing data.
func jsonTree(data []byte) (any, error) {
	p := &jsonParser{data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	end := p.skipSpace(p.dec.InputOffset())
	if _, err := p.dec.Token(); err != io.EOF {
		return nil, p.errAt(end, "unexpected data after the top-level value")
	}
	return v, nil
}

type jsonParser struct {
	data []byte
	dec  *json.Decoder
}

func (p *jsonParser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.errAt(p.skipSpace(p.dec.InputOffset()), fmt.Sprintf("nested more than %d levels deep", maxDepth))
	}
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.err(err)
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch delim {
	case '{':
		m := map[string]any{}
		for p.dec.More() {
			start := p.skipSpace(p.dec.InputOffset())
			kt, err := p.dec.Token()
			if err != nil {
				return nil, p.err(err)
			}
			k, _ := kt.(string) // the decoder allows only strings here
			if _, dup := m[k]; dup {
				return nil, p.errAt(start, fmt.Sprintf("duplicate key %q", k))
			}
			if m[k], err = p.value(depth + 1); err != nil {
				return nil, err
			}
		}
		_, err = p.dec.Token()
		return m, p.err(err)
	case '[':
		a := []any{}
		for p.dec.More() {
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err = p.dec.Token()
		return a, p.err(err)
	}
	return nil, p.errAt(p.dec.InputOffset(), fmt.Sprintf("unexpected %q", delim))
}

// skipSpace moves off past white space and separators to the next token.
func (p *jsonParser) skipSpace(off int64) int64 {
	for off < int64(len(p.data)) && strings.IndexByte(" \t\r\n,:", p.data[off]) >= 0 {
		off++
	}
	return off
}

func (p *jsonParser) err(err error) error {
	var se *json.SyntaxError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return p.errAt(se.Offset, se.Error())
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return p.errAt(int64(len(p.data)), "unexpected end of document")
	}
	return p.errAt(p.dec.InputOffset(), err.Error())
}

func (p *jsonParser) errAt(off int64, msg string) error {
	line, col := lineCol(p.data, int(min(max(off, 0), int64(len(p.data)))))
	return &SyntaxError{Format: "json", Line: line, Column: col, Msg: msg}
}

func lineCol(data []byte, off int) (line, col int) {
	before := data[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = 1 + utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:])
	return line, col
}

// yamlLine finds the line number in go-yaml's messages ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`line (\d+): `)

// yamlTree converts YAML with sigs.k8s.io/yaml, as Kubernetes does, in
// strict mode (duplicate keys are errors), then reads the JSON.
func yamlTree(data []byte) (v any, err error) {
	if line := secondDocument(data); line > 0 {
		return nil, &SyntaxError{Format: "yaml", Line: line, Msg: "a second YAML document; a spec is exactly one document"}
	}
	defer func() {
		// go-yaml has panicked on hostile input before; a spec is untrusted.
		if r := recover(); r != nil {
			v, err = nil, &SyntaxError{Format: "yaml", Msg: fmt.Sprintf("unreadable YAML (%v)", r)}
		}
	}()
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
		msg = strings.TrimPrefix(msg, "yaml: ")
		msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
		line := 0
		if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
			line, _ = strconv.Atoi(msg[m[2]:m[3]])
			msg = msg[:m[0]] + msg[m[1]:]
		}
		msg = strings.Join(strings.Fields(msg), " ")
		return nil, &SyntaxError{Format: "yaml", Line: line, Msg: msg}
	}
	if len(js) > 4*MaxSize {
		// Anchors and aliases can expand a small document.
		return nil, &SyntaxError{Format: "yaml", Msg: "document expands to more than 4 MiB (aliases?)"}
	}
	v, err = jsonTree(js)
	var se *SyntaxError
	if errors.As(err, &se) {
		// Positions would point into the converted JSON, not the YAML.
		return nil, &SyntaxError{Format: "yaml", Msg: se.Msg}
	}
	return v, err
}

// secondDocument returns the 1-based line where a second YAML document
// starts, or 0. go-yaml would silently read only the first one.
func secondDocument(data []byte) int {
	content, ended := false, false
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		marker := line == "---" || line == "..." ||
			strings.HasPrefix(line, "--- ") || strings.HasPrefix(line, "---\t") ||
			strings.HasPrefix(line, "... ") || strings.HasPrefix(line, "...\t")
		if marker {
			if content {
				ended = true
			}
			line = line[3:]
		}
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' || (!content && !marker && t[0] == '%') {
			continue
		}
		if ended {
			return i + 1
		}
		content = true
	}
	return 0
}

func digestOf(tree any) string {
	b, err := json.Marshal(canonical(tree))
	if err != nil {
		return "" // cannot happen for a decoded tree
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// canonical rewrites numbers so that 1, 1.0 and 1e0 digest alike;
// encoding/json already sorts map keys.
func canonical(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = canonical(e)
		}
		return m
	case []any:
		a := make([]any, len(v))
		for i, e := range v {
			a[i] = canonical(e)
		}
		return a
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return json.Number(strconv.FormatInt(i, 10))
		}
		if f, err := strconv.ParseFloat(string(v), 64); err == nil && !math.IsInf(f, 0) {
			if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
				return json.Number(strconv.FormatInt(int64(f), 10))
			}
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
		}
		return v
	}
	return v
}

func capWarnings(w []Warning) []Warning {
	if len(w) <= maxReports {
		return w
	}
	n := len(w) - maxReports
	return append(w[:maxReports:maxReports], Warning{Field: "", Message: fmt.Sprintf("and %d more warnings", n)})
}
