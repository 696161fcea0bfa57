package spec

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"guestkit.io/batch/internal/result"
)

// decoder fills a struct from a decoded JSON tree by its json tags, like
// encoding/json, but it matches keys exactly (encoding/json ignores case),
// reports every unknown key as a warning and every type mismatch as a
// problem instead of stopping at the first.
type decoder struct {
	opaque   map[string]bool // paths left uninterpreted
	warnings []Warning
	problems []result.FieldError
}

// decode sets rv from v and reports whether v had the right type.
func (d *decoder) decode(v any, rv reflect.Value, path string) bool {
	if v == nil || d.opaque[path] {
		return true // null leaves the zero value, as in encoding/json
	}
	t := rv.Type()
	if t.Kind() == reflect.Pointer {
		p := reflect.New(t.Elem())
		if !d.decode(v, p.Elem(), path) {
			return false
		}
		rv.Set(p)
		return true
	}
	if u, ok := rv.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return d.decodeText(v, u, t, path)
	}
	switch t.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return d.mismatch(path, v, "a string")
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return d.mismatch(path, v, "true or false")
		}
		rv.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return d.decodeInt(v, rv, path)
	case reflect.Slice:
		return d.decodeSlice(v, rv, path)
	case reflect.Map:
		return d.decodeMap(v, rv, path)
	case reflect.Struct:
		return d.decodeStruct(v, rv, path)
	default:
		// The spec types use none of the others; a new field of another
		// kind must extend this switch.
		panic(fmt.Sprintf("spec: cannot decode into %s at %s", t, path))
	}
	return true
}

// decodeText decodes a string into a TextUnmarshaler of type t.
func (d *decoder) decodeText(v any, u encoding.TextUnmarshaler, t reflect.Type, path string) bool {
	s, ok := v.(string)
	if !ok {
		return d.mismatch(path, v, "a string")
	}
	if err := u.UnmarshalText([]byte(s)); err != nil {
		msg := "invalid value: " + err.Error()
		if t == reflect.TypeFor[time.Time]() {
			msg = "must be an RFC 3339 time such as 2026-01-30T10:00:00Z"
		}
		d.problem(path, s, msg)
		return false
	}
	return true
}

// decodeInt decodes a JSON number that must be an integer fitting rv.
func (d *decoder) decodeInt(v any, rv reflect.Value, path string) bool {
	n, ok := v.(json.Number)
	if !ok {
		return d.mismatch(path, v, "an integer")
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if errors.Is(err, strconv.ErrRange) || err == nil && rv.OverflowInt(i) {
		d.problem(path, string(n), "integer out of range")
		return false
	}
	if err != nil {
		d.problem(path, string(n), "must be an integer")
		return false
	}
	rv.SetInt(i)
	return true
}

// decodeSlice decodes an array; a bad element is reported, not fatal.
func (d *decoder) decodeSlice(v any, rv reflect.Value, path string) bool {
	a, ok := v.([]any)
	if !ok {
		return d.mismatch(path, v, "an array")
	}
	s := reflect.MakeSlice(rv.Type(), len(a), len(a))
	for i, e := range a {
		d.decode(e, s.Index(i), path+"["+strconv.Itoa(i)+"]")
	}
	rv.Set(s)
	return true
}

// decodeMap decodes an object into a map, leaving out bad values.
func (d *decoder) decodeMap(v any, rv reflect.Value, path string) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return d.mismatch(path, v, "an object")
	}
	t := rv.Type()
	out := reflect.MakeMapWithSize(t, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		e := reflect.New(t.Elem()).Elem()
		if d.decode(m[k], e, join(path, k)) {
			out.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), e)
		}
	}
	rv.Set(out)
	return true
}

// decodeStruct decodes an object into a struct by exact json names; keys
// it does not know are warnings unless their path is opaque.
func (d *decoder) decodeStruct(v any, rv reflect.Value, path string) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return d.mismatch(path, v, "an object")
	}
	t := rv.Type()
	fields := map[string]int{}
	for i := range t.NumField() {
		if name, ok := jsonName(t.Field(i)); ok {
			fields[name] = i
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p := join(path, k)
		if i, ok := fields[k]; ok {
			d.decode(m[k], rv.Field(i), p)
		} else if !d.opaque[p] {
			d.warnings = append(d.warnings, Warning{Field: p, Message: "unknown field; ignored"})
		}
	}
	return true
}

func (d *decoder) mismatch(path string, v any, want string) bool {
	msg := fmt.Sprintf("must be %s, not %s", want, kindOf(v))
	if want == "a string" {
		if _, ok := v.(map[string]any); !ok {
			if _, ok := v.([]any); !ok {
				msg += " (in YAML, quote it)"
			}
		}
	}
	d.problem(path, shortValue(v), msg)
	return false
}

func (d *decoder) problem(path, value, msg string) {
	d.problems = append(d.problems, result.FieldError{Field: path, Value: value, Message: msg})
}

// jsonName is the key a struct field is read from, and false for fields
// that are not read.
func jsonName(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	switch name {
	case "-":
		return "", false
	case "":
		return f.Name, true
	}
	return name, true
}

// join extends a field path: "payload.data", `metadata.labels["a/b"]`.
func join(parent, key string) string {
	simple := key != ""
	for _, c := range key {
		if !(c == '_' || c == '-' || c == '$' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			simple = false
			break
		}
	}
	switch {
	case !simple:
		return parent + "[" + strconv.Quote(key) + "]"
	case parent == "":
		return key
	}
	return parent + "." + key
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// shortValue renders a bad value for a FieldError, bounded in size.
func shortValue(v any) string {
	switch v := v.(type) {
	case string:
		return truncate(v)
	case json.Number:
		return truncate(string(v))
	case bool:
		return strconv.FormatBool(v)
	case []any:
		return "[...]"
	case map[string]any:
		return "{...}"
	}
	return ""
}

const maxValue = 100

func truncate(s string) string {
	if len(s) <= maxValue {
		return s
	}
	cut := maxValue
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
