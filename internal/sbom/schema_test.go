package sbom

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"guestkit.io/batch/internal/inspect"
)

// schemas compiles the official CycloneDX 1.6 and SPDX 2.3 JSON schemas
// vendored in testdata/schema (see its README), formats asserted.
func schemas(t testing.TB) (cyclonedx, spdx *jsonschema.Schema) {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for file, id := range map[string]string{
		"bom-1.6.schema.json":  "http://cyclonedx.org/schema/bom-1.6.schema.json",
		"spdx.schema.json":     "http://cyclonedx.org/schema/spdx.schema.json",
		"jsf-0.82.schema.json": "http://cyclonedx.org/schema/jsf-0.82.schema.json",
		"spdx-2.3.schema.json": "http://spdx.org/rdf/terms/2.3",
	} {
		b, err := os.ReadFile(filepath.Join("testdata", "schema", file))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if err := c.AddResource(id, doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	var err error
	if cyclonedx, err = c.Compile("http://cyclonedx.org/schema/bom-1.6.schema.json"); err != nil {
		t.Fatal(err)
	}
	if spdx, err = c.Compile("http://spdx.org/rdf/terms/2.3"); err != nil {
		t.Fatal(err)
	}
	return cyclonedx, spdx
}

// validate checks every document of rep against its official schema.
func validate(t *testing.T, rep *inspect.Report, opts Options) {
	t.Helper()
	cs, ss := schemas(t)
	for name, c := range map[string]struct {
		write  func(*inspect.Report, Options) ([][]byte, error)
		schema *jsonschema.Schema
	}{"cyclonedx": {CycloneDX, cs}, "spdx": {SPDX, ss}} {
		docs, err := c.write(rep, opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, d := range docs {
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(d))
			if err != nil {
				t.Fatalf("%s %d: %v", name, i+1, err)
			}
			if err := c.schema.Validate(v); err != nil {
				t.Errorf("%s document %d is not valid: %v", name, i+1, err)
			}
		}
	}
}

func TestSchemas(t *testing.T) {
	validate(t, &inspect.Report{OperatingSystems: []inspect.OS{debianRoot(), rockyRoot(), alpineRoot("/dev/sdb")}}, testOpts)
	// Without a digest, a job id or a known OS version; a Windows root
	// whose applications have no purl.
	win := inspect.OS{Root: "/dev/sda2", Type: "windows", Distro: "windows", Applications: []inspect.Application{{Name: "Mozilla Firefox", Version: "120.0", Publisher: "Mozilla"}}}
	validate(t, &inspect.Report{OperatingSystems: []inspect.OS{{Root: "/dev/sda1", Type: "linux", Distro: "debian", PackageFormat: "deb"}, win}}, Options{})
}
