package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"guestkit.io/batch/internal/store"
)

// MaxHistory bounds the nights of the HTML report's compliance chart,
// the report's own night included.
const MaxHistory = 30

// Night is one sweep's image counts, a point of the compliance chart.
type Night struct {
	Date         string `json:"date"`
	Images       int    `json:"images"`
	Compliant    int    `json:"compliant"`
	Noncompliant int    `json:"noncompliant"`
	// NoProfile counts failed, timeout, rejected, missing and invalid
	// images: those the sweep could not judge.
	NoProfile int `json:"no_profile"`
}

// NightOf is r's point of the chart.
func NightOf(r *Report) Night {
	return nightOf(r.Date, r.Totals)
}

func nightOf(date string, t Totals) Night {
	c := t.ByStatus
	return Night{
		Date: date, Images: t.Images, Compliant: c.Completed, Noncompliant: c.Noncompliant,
		NoProfile: c.Failed + c.Timeout + c.Rejected + c.Missing + c.Invalid,
	}
}

// UnreadNight is an earlier report History could not use, with the reason.
type UnreadNight struct {
	Key    string
	Reason string
}

// History reads the totals of the latest n sweeps before date (at most
// MaxHistory), oldest first. A report that cannot be read is left out
// and listed in the second value, so that one corrupt night does not
// hide the chart; only listing the bucket (or ctx) fails History.
func History(ctx context.Context, st store.Store, date string, n int) ([]Night, []UnreadNight, error) {
	if err := checkDate(date); err != nil {
		return nil, nil, err
	}
	n = min(max(n, 0), MaxHistory)
	dates, err := reportDates(ctx, st, date)
	if err != nil {
		return nil, nil, fmt.Errorf("sweep history: %w", err)
	}
	dates = dates[max(len(dates)-n, 0):]
	nights := []Night{}
	var unread []UnreadNight
	for _, d := range dates {
		night, err := readNight(ctx, st, d)
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("read sweep history: %w", ctx.Err())
		}
		if err != nil {
			unread = append(unread, UnreadNight{Key: ReportKey(d), Reason: err.Error()})
			continue
		}
		nights = append(nights, night)
	}
	return nights, unread, nil
}

// readNight reads only a report's version, date and totals: the chart
// needs no more, and a strict Decode of 30 full reports would hold each
// one's images in memory in turn for nothing.
func readNight(ctx context.Context, st store.Store, date string) (Night, error) {
	data, err := st.Get(ctx, ReportKey(date), MaxReportSize)
	if err != nil {
		if errors.Is(err, store.ErrTooLarge) {
			return Night{}, fmt.Errorf("%w: %w", ErrCorruptReport, err)
		}
		return Night{}, err
	}
	var head struct {
		APIVersion string  `json:"api_version"`
		Date       string  `json:"date"`
		Totals     *Totals `json:"totals"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Night{}, fmt.Errorf("%w: %v", ErrCorruptReport, err)
	}
	switch {
	case head.APIVersion != APIVersion:
		return Night{}, fmt.Errorf("%w: api_version %q, want %q", ErrCorruptReport, head.APIVersion, APIVersion)
	case head.Date != date:
		return Night{}, fmt.Errorf("%w: it is dated %q", ErrCorruptReport, head.Date)
	case head.Totals == nil:
		return Night{}, fmt.Errorf("%w: no totals", ErrCorruptReport)
	}
	t := *head.Totals
	c := t.ByStatus
	for _, v := range []int{t.Images, c.Completed, c.Noncompliant, c.Failed, c.Timeout, c.Rejected, c.Missing, c.Invalid} {
		if v < 0 {
			return Night{}, fmt.Errorf("%w: negative totals", ErrCorruptReport)
		}
	}
	return nightOf(date, t), nil
}
