package sweep

import (
	"context"
	"errors"
	"strings"
	"testing"

	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/store/storetest"
)

// putReport stores a minimal report dated date under the key of keyDate.
func putReport(t *testing.T, st store.Store, keyDate, date, prefix string) {
	t.Helper()
	data, err := Encode(Build(BuildInput{Date: date, Prefix: prefix}))
	if err != nil {
		t.Fatal(err)
	}
	storetest.Put(t, st, ReportKey(keyDate), data)
}

func TestKeys(t *testing.T) {
	if got := ReportKey("2026-03-02"); got != "sweeps/2026-03-02/report.json" {
		t.Errorf("ReportKey %q", got)
	}
	if got := MarkdownKey("2026-03-02"); got != "sweeps/2026-03-02/report.md" {
		t.Errorf("MarkdownKey %q", got)
	}
}

func TestPrevious(t *testing.T) {
	st, _ := storetest.Folder(t)
	// Prefix tells the reports apart.
	putReport(t, st, "2026-02-27", "2026-02-27", "p27")
	putReport(t, st, "2026-02-28", "2026-02-28", "p28")
	storetest.Put(t, st, ReportKey("2026-03-01"), []byte(`{"api_version":"guestkit.io/sweep-report/v1","date":`)) // cut short
	putReport(t, st, "2026-03-02", "2026-03-02", "p02")
	// Not reports: ignored.
	storetest.Put(t, st, MarkdownKey("2026-03-04"), []byte("# md only"))
	storetest.Put(t, st, "sweeps/latest/report.json", []byte("{}"))
	storetest.Put(t, st, "sweeps/2026-02-30/report.json", []byte("{}"))
	storetest.Put(t, st, "sweeps/2026-03-04/report.json.bak", []byte("{}"))
	storetest.Put(t, st, "sweeps/2026-03-04/old/report.json", []byte("{}"))

	tests := []struct {
		date, prefix string // prefix of the report found; "" for none
	}{
		{"2026-02-27", ""},
		{"2026-02-28", "p27"},
		{"2026-03-01", "p28"},
		{"2026-03-03", "p02"},
		{"2026-03-05", "p02"},
		{"2027-01-01", "p02"},
	}
	for _, tc := range tests {
		r, err := Previous(t.Context(), st, tc.date)
		if err != nil {
			t.Errorf("%s: %v", tc.date, err)
			continue
		}
		switch {
		case tc.prefix == "" && r != nil:
			t.Errorf("%s: got the report of %s, want none", tc.date, r.Date)
		case tc.prefix != "" && (r == nil || r.Prefix != tc.prefix):
			t.Errorf("%s: got %+v, want the report with prefix %s", tc.date, r, tc.prefix)
		}
	}

	// The latest earlier report is corrupt: an error naming it, not the
	// report of the night before.
	r, err := Previous(t.Context(), st, "2026-03-02")
	if r != nil || !errors.Is(err, ErrCorruptReport) || !strings.Contains(err.Error(), "sweeps/2026-03-01/report.json") {
		t.Errorf("corrupt previous: %v, %v", r, err)
	}

	if _, err := Previous(t.Context(), st, "03/02/2026"); err == nil || !strings.Contains(err.Error(), "want YYYY-MM-DD") {
		t.Errorf("bad date: %v", err)
	}
}

func TestPreviousMisdated(t *testing.T) {
	st, _ := storetest.Folder(t)
	putReport(t, st, "2026-02-25", "2026-02-20", "")
	_, err := Previous(t.Context(), st, "2026-03-01")
	if !errors.Is(err, ErrCorruptReport) || !strings.Contains(err.Error(), "sweeps/2026-02-25/report.json") || !strings.Contains(err.Error(), "dated 2026-02-20") {
		t.Errorf("misdated report: %v", err)
	}
}

func TestPreviousEmpty(t *testing.T) {
	// The file store's folder does not even exist yet.
	st, err := store.Open(t.Context(), t.TempDir()+"/bucket")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := Previous(t.Context(), st, "2026-03-01"); r != nil || err != nil {
		t.Errorf("empty bucket: %v, %v", r, err)
	}
}

func TestPreviousCancelled(t *testing.T) {
	st, _ := storetest.Folder(t)
	putReport(t, st, "2026-02-27", "2026-02-27", "")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Previous(ctx, st, "2026-03-01"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
