package spec

import (
	"bytes"
	"encoding/json"
	"maps"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/testenv"
)

func compileJobSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	return testenv.CompileSchema(t, "job-v1.schema.json", JobSchema())
}

func schemaErrors(t testing.TB, s *jsonschema.Schema, data []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(inst)
}

func TestSeedsMatchJobSchema(t *testing.T) {
	s := compileJobSchema(t)
	for name := range seedWarnings() {
		if err := schemaErrors(t, s, readSeed(t, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name := range seedUnsupported() {
		err := schemaErrors(t, s, readSeed(t, name))
		if err == nil || !strings.Contains(err.Error(), "/operation") {
			t.Errorf("%s: schema must reject the operation, got %v", name, err)
		}
	}
}

// The schema and Validate agree: every spec Validate accepts the schema
// accepts, and every spec Validate rejects the schema rejects too, except
// for rules a schema cannot express.
func TestJobSchemaAgreesWithValidate(t *testing.T) {
	s := compileJobSchema(t)
	for _, tc := range validationCases() {
		d := parseDoc(t, tc.base)
		if tc.edit != nil {
			tc.edit(d)
		}
		err := schemaErrors(t, s, d.bytes(t))
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: valid, but the schema rejects it: %v", tc.name, err)
		case tc.want != nil && !tc.schemaAccepts && err == nil:
			t.Errorf("%s: invalid (%s), but the schema accepts it", tc.name, tc.want[0].msg)
		case tc.want != nil && tc.schemaAccepts && err != nil:
			t.Errorf("%s: marked as beyond the schema, but it rejects it: %v", tc.name, err)
		}
	}
}

func TestJobSchemaRejectsBrokenSpecs(t *testing.T) {
	s := compileJobSchema(t)
	for name, in := range map[string]string{
		"no job_id":    `{"version":"1.0","operation":"guestkit.inspect","payload":{"type":"guestkit.inspect.v1","data":{"image":{"path":"/a"}}}}`,
		"wrong type":   `{"version":"1.0","job_id":"a","operation":"guestkit.inspect","payload":{"type":"guestkit.profile.v1","data":{"image":{"path":"/a"}}}}`,
		"no profiles":  `{"version":"1.0","job_id":"a","operation":"guestkit.profile","payload":{"type":"guestkit.profile.v1","data":{"image":{"path":"/a"}}}}`,
		"both sources": `{"version":"1.0","job_id":"a","operation":"guestkit.inspect","payload":{"type":"guestkit.inspect.v1","data":{"image":{"path":"/a","uri":"s3://bkt/a"}}}}`,
		"bad time":     `{"version":"1.0","job_id":"a","created_at":"yesterday","operation":"guestkit.inspect","payload":{"type":"guestkit.inspect.v1","data":{"image":{"path":"/a"}}}}`,
	} {
		if err := schemaErrors(t, s, []byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The schema describes exactly the fields of Job, so that neither drifts.
func TestJobSchemaMatchesStruct(t *testing.T) {
	var root map[string]any
	if err := json.Unmarshal(JobSchema(), &root); err != nil {
		t.Fatal(err)
	}
	var required []string
	for i := range reflect.TypeFor[Job]().NumField() {
		f := reflect.TypeFor[Job]().Field(i)
		if name, ok := jsonName(f); ok && !strings.Contains(f.Tag.Get("json"), "omitempty") {
			required = append(required, name)
		}
	}
	got := root["required"].([]any)
	if len(got) != len(required) {
		t.Errorf("required = %v, non-omitempty fields %v", got, required)
	}
	for _, r := range got {
		if !slices.Contains(required, r.(string)) {
			t.Errorf("required %q is omitempty in Job", r)
		}
	}
	compareProperties(t, root, root, reflect.TypeFor[Job](), "")
}

func compareProperties(t *testing.T, root, node map[string]any, typ reflect.Type, path string) {
	t.Helper()
	if ref, ok := node["$ref"].(string); ok {
		node = root["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
	}
	props, _ := node["properties"].(map[string]any)
	fields := map[string]reflect.Type{}
	for i := range typ.NumField() {
		if name, ok := jsonName(typ.Field(i)); ok {
			fields[name] = typ.Field(i).Type
		}
	}
	if a, b := slices.Sorted(maps.Keys(props)), slices.Sorted(maps.Keys(fields)); !slices.Equal(a, b) {
		t.Errorf("%s: schema properties %v, struct fields %v", path, a, b)
	}
	for name, ft := range fields {
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if p, ok := props[name].(map[string]any); ok && ft.Kind() == reflect.Struct && ft.PkgPath() == typ.PkgPath() {
			compareProperties(t, root, p, ft, path+"."+name)
		}
	}
}

func TestJobSchemaFileIsEmbedded(t *testing.T) {
	b, err := filepath.Glob("job-v1.schema.json")
	if err != nil || len(b) != 1 {
		t.Fatal("job-v1.schema.json missing")
	}
	var v map[string]any
	if err := json.Unmarshal(JobSchema(), &v); err != nil || v["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("schema: %v %v", err, v["$schema"])
	}
	// Callers get a copy.
	JobSchema()[0] = 'x'
	if JobSchema()[0] != '{' {
		t.Error("JobSchema shares its bytes")
	}
}

// The published schema names the bucket schemes in two patterns; a backend
// registered in internal/store without them there would be refused by
// consumers that check specs against the schema.
func TestSchemaNamesEveryBucketScheme(t *testing.T) {
	want := "(" + strings.Join(store.BucketSchemes(), "|") + ")://"
	text := string(JobSchema())
	for _, m := range regexp.MustCompile(`\^\(([a-z0-9|]+)\)://`).FindAllStringSubmatch(text, -1) {
		var got []string
		for _, s := range strings.Split(m[1], "|") {
			if store.IsBucketScheme(s) {
				got = append(got, s)
			}
		}
		slices.Sort(got)
		if g := "(" + strings.Join(got, "|") + ")://"; g != want {
			t.Errorf("schema pattern %s names bucket schemes %s, the store registers %s", m[0], g, want)
		}
	}
	if n := strings.Count(text, `"^(`); n < 2 {
		t.Errorf("found %d scheme patterns in the schema, want the bucket and the dot-segment ones", n)
	}
}

// The published schema is a static file and cannot read the profile
// registry: its enum of profile names must be names.All(), in order.
func TestSchemaNamesEveryProfile(t *testing.T) {
	var root map[string]any
	if err := json.Unmarshal(JobSchema(), &root); err != nil {
		t.Fatal(err)
	}
	var enums [][]string
	var walk func(v any)
	walk = func(v any) {
		switch n := v.(type) {
		case map[string]any:
			if p, ok := n["profiles"].(map[string]any); ok {
				if items, ok := p["items"].(map[string]any); ok {
					if e, ok := items["enum"].([]any); ok {
						var s []string
						for _, x := range e {
							s = append(s, x.(string))
						}
						enums = append(enums, s)
					}
				}
			}
			for _, c := range n {
				walk(c)
			}
		case []any:
			for _, c := range n {
				walk(c)
			}
		}
	}
	walk(root)
	if len(enums) == 0 {
		t.Fatal("no enum of profile names in the schema")
	}
	for _, e := range enums {
		if !slices.Equal(e, KnownProfiles()) {
			t.Errorf("schema lists profiles %v, the registry (names.All) %v", e, KnownProfiles())
		}
	}
}

// The schema's output formats are result.Formats(), the runner's list.
func TestSchemaNamesEveryOutputFormat(t *testing.T) {
	var found [][]string
	var walk func(v any)
	walk = func(v any) {
		switch n := v.(type) {
		case map[string]any:
			if o, ok := n["output"].(map[string]any); ok {
				if p, ok := o["properties"].(map[string]any); ok {
					if f, ok := p["format"].(map[string]any); ok {
						var s []string
						for _, x := range f["enum"].([]any) {
							s = append(s, x.(string))
						}
						found = append(found, s)
					}
				}
			}
			for _, c := range n {
				walk(c)
			}
		case []any:
			for _, c := range n {
				walk(c)
			}
		}
	}
	var all any
	if err := json.Unmarshal(JobSchema(), &all); err != nil {
		t.Fatal(err)
	}
	walk(all)
	if len(found) != 1 || !slices.Equal(found[0], result.Formats()) {
		t.Errorf("schema output.format enums %v, want %v", found, result.Formats())
	}
}
