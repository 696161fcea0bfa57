package sweep

import (
	"errors"
	"strings"
	"testing"

	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/store/storetest"
)

func TestLatestAndLoad(t *testing.T) {
	st, _ := storetest.Folder(t)
	if r, err := Latest(t.Context(), st); r != nil || err != nil {
		t.Fatalf("no sweep yet: %v, %v", r, err)
	}
	putReport(t, st, "2026-02-27", "2026-02-27", "p27")
	putReport(t, st, "2026-03-02", "2026-03-02", "p02")
	// Not reports: ignored.
	storetest.Put(t, st, MarkdownKey("2026-03-04"), []byte("# md only"))
	storetest.Put(t, st, "sweeps/2026-03-05/report.json.bak", []byte("{}"))
	storetest.Put(t, st, "sweeps/9999-99-99/report.json", []byte("{}"))

	r, err := Latest(t.Context(), st)
	if err != nil || r == nil || r.Date != "2026-03-02" || r.Prefix != "p02" {
		t.Fatalf("latest: %+v, %v", r, err)
	}
	r, err = Load(t.Context(), st, "2026-02-27")
	if err != nil || r.Prefix != "p27" {
		t.Fatalf("load 2026-02-27: %+v, %v", r, err)
	}
	if _, err := Load(t.Context(), st, "2026-02-28"); !errors.Is(err, ErrNoReport) || !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "sweeps/2026-02-28/report.json") {
		t.Errorf("no report: %v", err)
	}
	if _, err := Load(t.Context(), st, "2026-2-28"); err == nil || !strings.Contains(err.Error(), "want YYYY-MM-DD") {
		t.Errorf("bad date: %v", err)
	}

	// A corrupt latest report is an error naming it, not the older one.
	storetest.Put(t, st, ReportKey("2026-03-03"), []byte(`{"api_version":"guestkit.io/sweep-report/v1","date":`))
	if r, err := Latest(t.Context(), st); r != nil || !errors.Is(err, ErrCorruptReport) || !strings.Contains(err.Error(), "sweeps/2026-03-03/report.json") {
		t.Errorf("corrupt latest: %v, %v", r, err)
	}
	putReport(t, st, "2026-03-04", "2026-03-01", "")
	if _, err := Latest(t.Context(), st); !errors.Is(err, ErrCorruptReport) || !strings.Contains(err.Error(), "dated 2026-03-01") {
		t.Errorf("misdated latest: %v", err)
	}
}
