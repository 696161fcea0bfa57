package sweep

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"guestkit.io/batch/internal/store/storetest"
)

func TestHistory(t *testing.T) {
	st, _ := storetest.Folder(t)
	for _, d := range []string{"2026-02-25", "2026-02-26", "2026-02-28", "2026-03-01", "2026-03-02", "2026-03-03"} {
		putReport(t, st, d, d, "images/")
	}
	// One corrupt night, one misdated, and keys that are no report.
	storetest.Put(t, st, ReportKey("2026-02-27"), "{not json")
	putReport(t, st, "2026-02-24", "2026-01-01", "images/")
	storetest.Put(t, st, "sweeps/2026-02-23/report.md", "# no json")
	storetest.Put(t, st, "sweeps/jobs/2026-02-26/x.json", "{}")
	storetest.Put(t, st, "sweeps/latest/report.json", "{}")

	nights, unread, err := History(context.Background(), st, "2026-03-02", 5)
	if err != nil {
		t.Fatal(err)
	}
	var dates []string
	for _, n := range nights {
		dates = append(dates, n.Date)
	}
	// The five latest before 2026-03-02, of which 2026-02-27 is unreadable.
	if want := []string{"2026-02-25", "2026-02-26", "2026-02-28", "2026-03-01"}; !reflect.DeepEqual(dates, want) {
		t.Errorf("nights %v, want %v", dates, want)
	}
	if len(unread) != 1 || unread[0].Key != "sweeps/2026-02-27/report.json" || !strings.Contains(unread[0].Reason, "corrupt sweep report") {
		t.Errorf("unread %+v", unread)
	}

	nights, unread, err = History(context.Background(), st, "2026-03-02", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(nights) != 4 || len(unread) != 2 || !strings.Contains(unread[0].Reason, `dated "2026-01-01"`) {
		t.Errorf("all nights: %d nights, unread %+v", len(nights), unread)
	}
	if nights, _, _ := History(context.Background(), st, "2026-03-02", 0); len(nights) != 0 {
		t.Errorf("n=0: %d nights", len(nights))
	}
	if _, _, err := History(context.Background(), st, "March", 5); err == nil {
		t.Error("bad date: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := History(ctx, st, "2026-03-02", 5); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestHistoryCounts(t *testing.T) {
	st, _ := storetest.Folder(t)
	in := htmlFixture(t)
	data, err := Encode(in.Report)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Put(t, st, ReportKey(in.Report.Date), data)
	nights, unread, err := History(context.Background(), st, "2026-03-03", MaxHistory)
	if err != nil || len(unread) != 0 {
		t.Fatal(err, unread)
	}
	want := []Night{{Date: "2026-03-02", Images: 4, Compliant: 1, Noncompliant: 2, NoProfile: 1}}
	if !reflect.DeepEqual(nights, want) {
		t.Errorf("nights %+v, want %+v", nights, want)
	}
}
