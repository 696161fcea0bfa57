package cli

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/store/storetest"
	"guestkit.io/batch/internal/sweep"
	"guestkit.io/batch/internal/testenv"
)

// htmlReports stores an earlier night's report and returns tonight's.
func htmlReports(t *testing.T, ctx context.Context, st store.Store) *sweep.Report {
	t.Helper()
	prev := sweep.Build(sweep.BuildInput{Date: "2026-11-20", Prefix: "images/"})
	data, err := sweep.Encode(prev)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, sweep.ReportKey(prev.Date), data); err != nil {
		t.Fatal(err)
	}
	return sweep.Build(sweep.BuildInput{Date: "2026-11-21", Prefix: "images/", Previous: prev})
}

func TestSweepHTMLReportFolder(t *testing.T) {
	ctx := t.Context()
	st, dir := storetest.Folder(t)
	link, err := storeHTMLReport(ctx, st, htmlReports(t, ctx, st), nil, time.Hour, logrus.NewEntry(logrus.New()))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "sweeps", "2026-11-21", "report.html"); link != want {
		t.Errorf("link %q, want the file's path %q", link, want)
	}
	page, err := os.ReadFile(link)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(page), "<!DOCTYPE html>") || !strings.Contains(string(page), "(2 nights)") {
		t.Errorf("page %.300s", page)
	}
}

// TestSweepHTMLReportPresigned: in a remote bucket (real MinIO) the link
// is presigned, opens without credentials as an HTML page, and the page
// charts the earlier night too.
func TestSweepHTMLReportPresigned(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, "s3://"+m.NewBucket(t))
	if err != nil {
		t.Fatal(err)
	}
	link, err := storeHTMLReport(ctx, st, htmlReports(t, ctx, st), nil, 10*time.Minute, logrus.NewEntry(logrus.New()))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, m.Endpoint+"/") || !strings.Contains(link, "X-Amz-Signature=") || !strings.Contains(link, "X-Amz-Expires=600") {
		t.Fatalf("link %q is not a presigned URL of %s for 10 minutes", link, m.Endpoint)
	}
	get := func(u string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}
	resp, body := get(link)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("GET link: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(body, "<h1>Compliance sweep 2026-11-21</h1>") || !strings.Contains(body, "(2 nights)") {
		t.Errorf("page %.300s", body)
	}
	// The signature is what grants it.
	if resp, _ := get(strings.SplitN(link, "?", 2)[0]); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET without the signature: %s", resp.Status)
	}
}

func TestCheckReportLinkTTL(t *testing.T) {
	for _, ttl := range []time.Duration{0, -time.Hour, 8 * 24 * time.Hour} {
		if err := checkReportLinkTTL(ttl); err == nil {
			t.Errorf("ttl %s: no error", ttl)
		}
	}
	if err := checkReportLinkTTL(168 * time.Hour); err != nil {
		t.Error(err)
	}
}
