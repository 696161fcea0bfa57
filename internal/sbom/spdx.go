package sbom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"guestkit.io/batch/internal/inspect"
)

const (
	noAssertion = "NOASSERTION"
	// Element ids: Trivy's reader tells the OS package by its
	// OperatingSystem- prefix.
	imageID   = "Image"
	osIDStart = "OperatingSystem-"
	pkgIDStem = "Package-"
)

// SPDX writes one SPDX 2.3 JSON document per OS root of rep, in root order.
// ErrNoOS when rep has no root.
func SPDX(rep *inspect.Report, opts Options) ([][]byte, error) {
	rs, err := roots(rep)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(rs))
	for _, r := range rs {
		var buf bytes.Buffer
		if err := spdxjson.Write(spdxDocument(r, opts), &buf, spdxjson.Indent("  "), spdxjson.EscapeHTML(false)); err != nil {
			return nil, fmt.Errorf("spdx: root %s: %w", r.os.Root, err)
		}
		out = append(out, buf.Bytes())
	}
	return out, nil
}

func spdxDocument(r root, opts Options) *spdx.Document {
	tool, version := toolName(opts)
	name := subjectName(opts)
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      name,
		DocumentNamespace: "https://guestkit.io/spdx/" + documentUUID("spdx", opts, r).String(),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: tool + "-" + version}},
			Created:  created(opts),
		},
	}
	image := &spdx.Package{
		PackageName: name, PackageSPDXIdentifier: imageID, PackageDownloadLocation: noAssertion,
		PrimaryPackagePurpose: "CONTAINER", PackageLicenseConcluded: noAssertion, PackageLicenseDeclared: noAssertion,
		PackageCopyrightText: noAssertion,
	}
	if opts.Subject.SHA256 != "" {
		image.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: opts.Subject.SHA256}}
	}
	if opts.Subject.JobID != "" {
		image.PackageComment = "guestkit job " + opts.Subject.JobID
	}
	osID := common.ElementID(fmt.Sprintf("%s%d", osIDStart, r.index))
	// The JSON schema spells the purpose OPERATING_SYSTEM (tag-value
	// writes OPERATING-SYSTEM; Trivy writes that in JSON too, which the
	// schema refuses).
	osPkg := &spdx.Package{
		PackageName: r.family, PackageSPDXIdentifier: osID, PackageVersion: r.version,
		PackageDownloadLocation: noAssertion, PrimaryPackagePurpose: "OPERATING_SYSTEM",
		PackageLicenseConcluded: noAssertion, PackageLicenseDeclared: noAssertion, PackageCopyrightText: noAssertion,
		PackageDescription: r.os.ProductName, PackageComment: "root " + r.os.Root,
	}
	doc.Packages = []*spdx.Package{image, osPkg}
	doc.Relationships = []*spdx.Relationship{
		{RefA: common.MakeDocElementID("", "DOCUMENT"), RefB: common.MakeDocElementID("", imageID), Relationship: common.TypeRelationshipDescribe},
		{RefA: common.MakeDocElementID("", imageID), RefB: common.MakeDocElementID("", string(osID)), Relationship: common.TypeRelationshipContains},
	}
	for _, p := range r.packages {
		sum := sha256.Sum256([]byte(p.ref))
		id := pkgIDStem + hex.EncodeToString(sum[:8])
		sp := &spdx.Package{
			PackageName: p.app.Name, PackageSPDXIdentifier: common.ElementID(id), PackageVersion: p.version,
			PackageDownloadLocation: noAssertion, PrimaryPackagePurpose: "LIBRARY",
			// The inspection reads no licences: see the package doc.
			PackageLicenseConcluded: noAssertion, PackageLicenseDeclared: noAssertion, PackageCopyrightText: noAssertion,
			PackageHomePage: p.app.URL, PackageSummary: p.app.Summary,
		}
		if p.app.SourcePackage != "" {
			// Trivy's reader takes the source package from this sentence.
			sp.PackageSourceInfo = "built package from: " + p.app.SourcePackage
		}
		if p.purl != "" {
			sp.PackageExternalReferences = []*spdx.PackageExternalReference{{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: p.purl}}
		}
		doc.Packages = append(doc.Packages, sp)
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", string(osID)), RefB: common.MakeDocElementID("", id), Relationship: common.TypeRelationshipContains,
		})
	}
	return doc
}
