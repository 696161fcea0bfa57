package runner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/result"
)

// ErrNoProfile means the result has no profile reports to render.
var ErrNoProfile = errors.New("result has no profile reports")

// RenderReports encodes a profile result's reports as SARIF 2.1.0 or JUnit
// XML: one document per OS root, in root order, so that a disk with two
// systems gives two reports and none is dropped.
func RenderReports(res *result.Result, format string) ([][]byte, error) {
	if format != result.FormatSARIF && format != result.FormatJUnit {
		return nil, fmt.Errorf("report format %q: want sarif or junit", format)
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
