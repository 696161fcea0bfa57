package result

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"guestkit.io/batch/internal/testenv"
)

func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	return testenv.CompileSchema(t, "result-v1.schema.json", Schema())
}

func check(t *testing.T, s *jsonschema.Schema, r any) error {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(inst)
}

func sample(status Status) Result {
	start := time.Date(2026, 1, 30, 10, 0, 0, 0, time.UTC)
	return Result{
		APIVersion: APIVersion, JobID: "job-1", Operation: "guestkit.inspect", Status: status,
		Attempt: 1, Runner: Runner{Name: "guestkit-runner", Version: "0.1.0", Host: "node-1"},
		StartedAt: start, FinishedAt: start.Add(90 * time.Second), DurationSeconds: 90,
	}
}

func TestResultsMatchSchema(t *testing.T) {
	s := compile(t)

	completed := sample(StatusCompleted)
	completed.Kubernetes = &Kubernetes{Namespace: "guestkit", Job: "gk-job-1", Pod: "gk-job-1-x7", Node: "n1"}
	completed.Image = &Image{URI: "s3://images/a.qcow2", Format: "qcow2", DeclaredFormat: "qcow2",
		VirtualSize: 10 << 30, FileSize: 3 << 30, SHA256: strings.Repeat("ab", 32)}
	completed.Accelerator = &Accelerator{Requested: "auto", Used: "tcg", Fallback: "/dev/kvm not present"}
	completed.Warnings = []string{"constraints.require_privileged: ignored"}
	completed.Data = json.RawMessage(`{"os": {"type": "linux"}}`)

	rejected := sample(StatusRejected)
	rejected.ExitCode = ExitBadSpec
	rejected.Error = &Error{Code: CodeSpecInvalid, Message: "invalid job spec: 2 problems", Phase: PhaseSpec,
		Fields: []FieldError{
			{Field: "payload.data.image.format", Value: "qcow3", Message: "must be one of qcow2, raw"},
			{Field: "payload.data.image.read_only", Value: "false", Message: "must be true or absent"},
		}}

	timeout := sample(StatusTimeout)
	timeout.ExitCode = ExitTimeout
	timeout.Error = &Error{Code: CodeTimeout, Message: "timeout_seconds (600) expired", Phase: PhaseInspect,
		Retryable: true, Details: map[string]string{"timeout_seconds": "600"}}

	for name, r := range map[string]Result{"completed": completed, "rejected": rejected, "timeout": timeout} {
		if err := check(t, s, r); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSchemaRejectsBadResults(t *testing.T) {
	s := compile(t)
	badStatus := sample("done")
	noError := sample(StatusFailed)
	badPhase := sample(StatusFailed)
	badPhase.Error = &Error{Code: CodeInternal, Message: "x", Phase: "thinking"}
	badCode := sample(StatusFailed)
	badCode.Error = &Error{Code: "Internal Error", Message: "x", Phase: PhaseLaunch}
	badVersion := sample(StatusCompleted)
	badVersion.APIVersion = "guestkit.io/result/v2"
	badSum := sample(StatusCompleted)
	badSum.Image = &Image{URI: "/a", SHA256: "sha256:abc"}
	for name, tc := range map[string]struct {
		r    Result
		path string
	}{
		"bad status":      {badStatus, "/status"},
		"failed no error": {noError, "error"},
		"bad phase":       {badPhase, "/error/phase"},
		"bad code":        {badCode, "/error/code"},
		"bad api version": {badVersion, "/api_version"},
		"prefixed sha256": {badSum, "/image/sha256"},
	} {
		err := check(t, s, tc.r)
		if err == nil || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: got %v, want an error at %s", name, err, tc.path)
		}
	}
}

// A zero Result marshals exactly the schema's required properties: what
// the struct always writes, the schema requires, and nothing more.
func TestZeroResultHasRequiredFields(t *testing.T) {
	var root map[string]any
	if err := json.Unmarshal(Schema(), &root); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(Result{})
	var zero map[string]any
	if err := json.Unmarshal(b, &zero); err != nil {
		t.Fatal(err)
	}
	if got, want := slices.Sorted(maps.Keys(zero)), sortedStrings(root["required"]); !slices.Equal(got, want) {
		t.Errorf("zero Result has %v, schema requires %v", got, want)
	}
}

// The schema describes every struct of result v1 field by field: the same
// properties, required exactly when not omitempty.
func TestSchemaMatchesStructs(t *testing.T) {
	var root map[string]any
	if err := json.Unmarshal(Schema(), &root); err != nil {
		t.Fatal(err)
	}
	compareStruct(t, root, root, reflect.TypeFor[Result](), "Result")
}

func compareStruct(t *testing.T, root, node map[string]any, typ reflect.Type, path string) {
	t.Helper()
	if ref, ok := node["$ref"].(string); ok {
		node = root["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
	}
	props, _ := node["properties"].(map[string]any)
	var names, required []string
	types := map[string]reflect.Type{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		names = append(names, name)
		types[name] = f.Type
		if !strings.Contains(opts, "omitempty") {
			required = append(required, name)
		}
	}
	slices.Sort(names)
	slices.Sort(required)
	if got := slices.Sorted(maps.Keys(props)); !slices.Equal(got, names) {
		t.Errorf("%s: schema properties %v, struct fields %v", path, got, names)
	}
	if got := sortedStrings(node["required"]); !slices.Equal(got, required) {
		t.Errorf("%s: schema requires %v, struct always writes %v", path, got, required)
	}
	for name, ft := range types {
		p, _ := props[name].(map[string]any)
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			p, _ = p["items"].(map[string]any)
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if p != nil && ft.Kind() == reflect.Struct && ft.PkgPath() == typ.PkgPath() {
			compareStruct(t, root, p, ft, path+"."+name)
		}
	}
}

// The enums of the schema are the constants of result.go.
func TestSchemaEnumsMatchConstants(t *testing.T) {
	consts := constantsByType(t)
	var root map[string]any
	if err := json.Unmarshal(Schema(), &root); err != nil {
		t.Fatal(err)
	}
	defs := root["$defs"].(map[string]any)
	status := root["properties"].(map[string]any)["status"].(map[string]any)["enum"]
	phase := defs["error"].(map[string]any)["properties"].(map[string]any)["phase"].(map[string]any)["enum"]
	if got, want := sortedStrings(status), consts["Status"]; !slices.Equal(got, want) {
		t.Errorf("status enum %v, constants %v", got, want)
	}
	if got, want := sortedStrings(phase), consts["Phase"]; !slices.Equal(got, want) {
		t.Errorf("phase enum %v, constants %v", got, want)
	}
	pattern := defs["error"].(map[string]any)["properties"].(map[string]any)["code"].(map[string]any)["pattern"].(string)
	re := regexp.MustCompile(pattern)
	if len(consts["Code"]) < 10 {
		t.Fatalf("found only %v codes", consts["Code"])
	}
	for _, c := range consts["Code"] {
		if !re.MatchString(c) {
			t.Errorf("code %q does not match the schema's pattern %s", c, pattern)
		}
	}
}

// constantsByType reads result.go: string constants grouped by their type.
func constantsByType(t *testing.T) map[string][]string {
	f, err := parser.ParseFile(token.NewFileSet(), "result.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			id, ok := vs.Type.(*ast.Ident)
			if !ok {
				continue
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					out[id.Name] = append(out[id.Name], s)
				}
			}
		}
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

func sortedStrings(v any) []string {
	var s []string
	list, _ := v.([]any) // absent: none
	for _, x := range list {
		s = append(s, x.(string))
	}
	slices.Sort(s)
	return s
}
