package sweep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"guestkit.io/batch/internal/store"
)

// MaxReportSize bounds an encoded report: a sweep of 10,000 images with
// their failed rules stays well under it.
const MaxReportSize = 64 << 20

// ErrCorruptReport is matched (errors.Is) by the errors of Decode, and of
// Previous for a report that cannot be read.
var ErrCorruptReport = errors.New("corrupt sweep report")

// sweepsPrefix holds one folder per sweep date (the bucket layout).
const sweepsPrefix = store.SweepsPrefix

// ReportKey is the key of date's report.
func ReportKey(date string) string { return sweepsPrefix + date + "/report.json" }

// MarkdownKey is the key of date's Markdown summary.
func MarkdownKey(date string) string { return sweepsPrefix + date + "/report.md" }

// Encode writes r as indented JSON. It refuses what Decode would refuse.
func Encode(r *Report) ([]byte, error) {
	if r.APIVersion != APIVersion {
		return nil, fmt.Errorf("encode sweep report: api_version %q, want %q", r.APIVersion, APIVersion)
	}
	if err := checkDate(r.Date); err != nil {
		return nil, fmt.Errorf("encode sweep report: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode sweep report %s: %w", r.Date, err)
	}
	data = append(data, '\n')
	if len(data) > MaxReportSize {
		return nil, fmt.Errorf("encode sweep report %s: %d bytes, over the %d-byte limit", r.Date, len(data), MaxReportSize)
	}
	return data, nil
}

// Decode reads a report strictly: one JSON object of at most MaxReportSize
// bytes, api_version APIVersion, no unknown fields, a valid date.
func Decode(data []byte) (*Report, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorruptReport, fmt.Sprintf(format, args...))
	}
	if len(data) > MaxReportSize {
		return nil, bad("%d bytes, over the %d-byte limit", len(data), MaxReportSize)
	}
	// The version first: a newer report is "unsupported", not "unknown
	// field".
	var head struct {
		APIVersion string `json:"api_version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, bad("%v", err)
	}
	if head.APIVersion != APIVersion {
		return nil, bad("api_version %q, want %q", head.APIVersion, APIVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return nil, bad("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("data after the report")
	}
	if err := checkDate(r.Date); err != nil {
		return nil, bad("%v", err)
	}
	return &r, nil
}

// Previous returns the report of the latest sweep before date, or nil
// when there is none. Only keys sweeps/<YYYY-MM-DD>/report.json count: a
// date whose sweep wrote no report (it crashed) is passed over. The latest
// report that exists must be readable: a corrupt one is an error
// (ErrCorruptReport) naming its key rather than a reason to diff against
// an older sweep, which would show two nights' changes as one. A caller
// that prefers a report without changes can match ErrCorruptReport and go
// on with nil.
func Previous(ctx context.Context, st store.Store, date string) (*Report, error) {
	if err := checkDate(date); err != nil {
		return nil, err
	}
	dates, err := reportDates(ctx, st, date)
	if err != nil {
		return nil, err
	}
	if len(dates) == 0 {
		return nil, nil
	}
	r, err := Load(ctx, st, dates[len(dates)-1])
	if err != nil {
		return nil, fmt.Errorf("previous %w", err)
	}
	return r, nil
}

// reportDates lists the dates that have a report (sweeps/<date>/report.json),
// sorted, only those before before unless it is "".
func reportDates(ctx context.Context, st store.Store, before string) ([]string, error) {
	var dates []string
	err := st.List(ctx, sweepsPrefix, func(o store.Object) error {
		d, ok := strings.CutPrefix(o.Key, sweepsPrefix)
		if !ok {
			return nil
		}
		d, ok = strings.CutSuffix(d, "/report.json")
		if ok && checkDate(d) == nil && (before == "" || d < before) {
			dates = append(dates, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list sweep reports: %w", err)
	}
	slices.Sort(dates)
	return slices.Compact(dates), nil
}
