package sbom

import (
	"bytes"
	"fmt"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"guestkit.io/batch/internal/inspect"
)

// Property names of what CycloneDX has no field for.
const (
	propRoot     = "guestkit:root"
	propDistro   = "guestkit:distro" // libguestfs's name, when the family differs
	propArch     = "guestkit:arch"
	propHostname = "guestkit:hostname"
	propJob      = "guestkit:job_id"
	propSource   = "guestkit:source_package"
)

const imageRef = "image"

// CycloneDX writes one CycloneDX 1.6 JSON document per OS root of rep, in
// root order. ErrNoOS when rep has no root.
func CycloneDX(rep *inspect.Report, opts Options) ([][]byte, error) {
	rs, err := roots(rep)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(rs))
	for _, r := range rs {
		var buf bytes.Buffer
		enc := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON).SetPretty(true).SetEscapeHTML(false)
		if err := enc.EncodeVersion(cycloneDXBOM(r, opts), cdx.SpecVersion1_6); err != nil {
			return nil, fmt.Errorf("cyclonedx: root %s: %w", r.os.Root, err)
		}
		out = append(out, buf.Bytes())
	}
	return out, nil
}

func cycloneDXBOM(r root, opts Options) *cdx.BOM {
	bom := cdx.NewBOM()
	bom.SerialNumber = documentUUID("cyclonedx", opts, r).URN()
	tool, version := toolName(opts)
	image := cdx.Component{BOMRef: imageRef, Type: cdx.ComponentTypeContainer, Name: subjectName(opts)}
	if opts.Subject.SHA256 != "" {
		image.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: opts.Subject.SHA256}}
	}
	if opts.Subject.JobID != "" {
		image.Properties = &[]cdx.Property{{Name: propJob, Value: opts.Subject.JobID}}
	}
	bom.Metadata = &cdx.Metadata{
		Timestamp: created(opts),
		Tools:     &cdx.ToolsChoice{Components: &[]cdx.Component{{Type: cdx.ComponentTypeApplication, Name: tool, Version: version}}},
		Component: &image,
	}

	osRef := "os:" + r.os.Root
	osProps := []cdx.Property{{Name: propRoot, Value: r.os.Root}}
	if r.os.Distro != "" && r.os.Distro != r.family {
		osProps = append(osProps, cdx.Property{Name: propDistro, Value: r.os.Distro})
	}
	if r.os.Arch != "" {
		osProps = append(osProps, cdx.Property{Name: propArch, Value: r.os.Arch})
	}
	if r.os.Hostname != "" {
		osProps = append(osProps, cdx.Property{Name: propHostname, Value: r.os.Hostname})
	}
	components := []cdx.Component{{
		BOMRef: osRef, Type: cdx.ComponentTypeOS, Name: r.family, Version: r.version,
		Description: r.os.ProductName, Properties: &osProps,
	}}
	refs := make([]string, 0, len(r.packages))
	for _, p := range r.packages {
		c := cdx.Component{
			BOMRef: p.ref, Type: cdx.ComponentTypeLibrary, Name: p.app.Name, Version: p.version,
			PackageURL: p.purl, Description: p.app.Summary, Publisher: p.app.Publisher,
		}
		if p.app.URL != "" {
			c.ExternalReferences = &[]cdx.ExternalReference{{Type: cdx.ERTypeWebsite, URL: p.app.URL}}
		}
		if p.app.SourcePackage != "" {
			c.Properties = &[]cdx.Property{{Name: propSource, Value: p.app.SourcePackage}}
		}
		components = append(components, c)
		refs = append(refs, p.ref)
	}
	bom.Components = &components
	bom.Dependencies = &[]cdx.Dependency{
		{Ref: imageRef, Dependencies: &[]string{osRef}},
		{Ref: osRef, Dependencies: &refs},
	}
	return bom
}
