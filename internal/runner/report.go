package runner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"guestkit.io/batch/internal/inspect"
	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/sbom"
)

// ErrNoProfile means the result has no profile reports to render.
var ErrNoProfile = errors.New("result has no profile reports")

// ErrNoInventory means the result has no OS root whose packages an SBOM
// could list (a failed job, a disk without an OS).
var ErrNoInventory = sbom.ErrNoOS

// NothingToRender says whether RenderReports failed only because the result
// holds nothing of that kind: not an error to report, the result says why.
func NothingToRender(err error) bool {
	return errors.Is(err, ErrNoProfile) || errors.Is(err, ErrNoInventory)
}

// RenderReports encodes a result as one of the report formats beside it
// (result.IsReport): SARIF 2.1.0 or JUnit XML of a profile result's
// findings, or a CycloneDX 1.6 or SPDX 2.3 SBOM of any result's packages.
// One document per OS root, in root order, so that a disk with two systems
// gives two reports and none is dropped.
func RenderReports(res *result.Result, format string) ([][]byte, error) {
	if result.IsSBOM(format) {
		return renderSBOM(res, format)
	}
	if !result.IsFinding(format) {
		return nil, fmt.Errorf("report format %q: want sarif, junit, cyclonedx or spdx", format)
	}
	var data ProfileData
	if len(res.Data) == 0 || json.Unmarshal(res.Data, &data) != nil || len(data.Profiles) == 0 {
		return nil, fmt.Errorf("job %s: %w", res.JobID, ErrNoProfile)
	}
	var out [][]byte
	for _, rp := range data.Profiles {
		var buf bytes.Buffer
		var err error
		if format == result.FormatSARIF {
			err = profile.WriteSARIF(&buf, rp.Report, res.Runner.Version)
		} else {
			err = profile.WriteJUnit(&buf, rp.Report)
		}
		if err != nil {
			return nil, fmt.Errorf("job %s root %s: %s: %w", res.JobID, rp.Root, format, err)
		}
		out = append(out, buf.Bytes())
	}
	return out, nil
}

// renderSBOM writes the inspection's packages (an inspect result's data, or
// the report a profile result embeds) with the image as subject.
func renderSBOM(res *result.Result, format string) ([][]byte, error) {
	var rep inspect.Report
	if len(res.Data) == 0 || json.Unmarshal(res.Data, &rep) != nil {
		return nil, fmt.Errorf("job %s: %w", res.JobID, ErrNoInventory)
	}
	opts := sbom.Options{
		Subject: sbom.Subject{JobID: res.JobID},
		Tool:    sbom.Tool{Name: res.Runner.Name, Version: res.Runner.Version},
		// The result's own time: the same result gives the same bytes.
		Created: res.FinishedAt,
	}
	if res.Image != nil {
		opts.Subject.Name, opts.Subject.SHA256 = res.Image.URI, res.Image.SHA256
	}
	write := sbom.CycloneDX
	if format == result.FormatSPDX {
		write = sbom.SPDX
	}
	docs, err := write(&rep, opts)
	if err != nil {
		return nil, fmt.Errorf("job %s: %s: %w", res.JobID, format, err)
	}
	return docs, nil
}
