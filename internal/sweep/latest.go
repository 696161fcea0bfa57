package sweep

import (
	"context"
	"errors"
	"fmt"

	"guestkit.io/batch/internal/store"
)

// ErrNoReport is matched (errors.Is) by Load's error when date has no
// report.
var ErrNoReport = errors.New("no sweep report")

// Latest returns the report of the latest sweep, or nil when no sweep has
// written one. As with Previous, a date whose sweep wrote no report is
// passed over, but the latest report that exists must be readable: a
// corrupt one is an error (ErrCorruptReport), not a reason to answer from
// an older night.
func Latest(ctx context.Context, st store.Store) (*Report, error) {
	dates, err := reportDates(ctx, st, "")
	if err != nil || len(dates) == 0 {
		return nil, err
	}
	return Load(ctx, st, dates[len(dates)-1])
}

// Load reads and decodes date's report (ReportKey). A missing report is
// ErrNoReport; one that cannot be read as date's report is
// ErrCorruptReport. Errors name the key.
func Load(ctx context.Context, st store.Store, date string) (*Report, error) {
	if err := checkDate(date); err != nil {
		return nil, err
	}
	key := ReportKey(date)
	data, err := st.Get(ctx, key, MaxReportSize)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("sweep report %s: %w: %w", key, ErrNoReport, err)
	case errors.Is(err, store.ErrTooLarge):
		return nil, fmt.Errorf("sweep report %s: %w: %w", key, ErrCorruptReport, err)
	case err != nil:
		return nil, fmt.Errorf("sweep report %s: %w", key, err)
	}
	r, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("sweep report %s: %w", key, err)
	}
	if r.Date != date {
		return nil, fmt.Errorf("sweep report %s: %w: it is dated %s", key, ErrCorruptReport, r.Date)
	}
	return r, nil
}
