package cli

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/sweep"
)

// checkReportLinkTTL refuses a link life that S3 would refuse, before the
// sweep runs rather than after.
func checkReportLinkTTL(ttl time.Duration) error {
	if ttl <= 0 || ttl > controller.MaxGrantTTL {
		return fmt.Errorf("--report-link-ttl %s: want more than 0 and at most %s", ttl, controller.MaxGrantTTL)
	}
	return nil
}

// storeHTMLReport renders rep's page, with the evidence of the results
// this sweep read and the chart of the last nights, stores it next to
// report.json, and returns the link to print.
func storeHTMLReport(ctx context.Context, st store.Store, rep *sweep.Report, results map[string]*result.Result, ttl time.Duration, log *logrus.Entry) (string, error) {
	nights, unread, err := sweep.History(ctx, st, rep.Date, sweep.MaxHistory-1)
	if err != nil {
		return "", err
	}
	for _, u := range unread {
		log.WithFields(logrus.Fields{"report": st.URI(u.Key), "reason": u.Reason}).Warn("an earlier sweep report is unreadable; the HTML report's chart leaves it out")
	}
	page, err := sweep.HTML(sweep.HTMLInput{Report: rep, Results: results, History: nights, Unread: unread})
	if err != nil {
		return "", err
	}
	key := sweep.HTMLKey(rep.Date)
	if err := st.Put(ctx, key, page); err != nil {
		return "", fmt.Errorf("store sweep report %s: %w", st.URI(key), err)
	}
	return reportLink(ctx, st, key, ttl)
}

// reportLink is a presigned GET URL of key in a remote bucket, valid for
// ttl, or the file's path in a local folder bucket (whose "presigned"
// URL is its file:// URI).
func reportLink(ctx context.Context, st store.Store, key string, ttl time.Duration) (string, error) {
	link, err := st.PresignGet(ctx, key, ttl)
	if err != nil {
		return "", fmt.Errorf("presign sweep report %s: %w", st.URI(key), err)
	}
	if u, err := url.Parse(link); err == nil && u.Scheme == "file" {
		return u.Path, nil
	}
	return link, nil
}
