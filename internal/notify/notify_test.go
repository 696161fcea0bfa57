package notify

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWebhook(t *testing.T) {
	var got []string
	h := Webhook("tok", "jobs/", func(k string) { got = append(got, k) })
	do := func(method, token, body string) int {
		req := httptest.NewRequest(method, Path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	// MinIO's record, keys URL-encoded as S3 sends them.
	event := `{"EventName":"s3:ObjectCreated:Put","Key":"b/jobs/a b.json","Records":[
	 {"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"jobs/a+b%C3%A9.json"}}},
	 {"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"images/x.qcow2"}}}]}`
	if c := do(http.MethodPost, "tok", event); c != 200 {
		t.Fatalf("POST: %d", c)
	}
	if len(got) != 1 || got[0] != "jobs/a bé.json" {
		t.Errorf("keys = %q, want the decoded jobs/ key only", got)
	}
	for _, tc := range []struct {
		method, token, body string
		want                int
	}{
		{http.MethodPost, "", event, 401},
		{http.MethodPost, "toK", event, 401},
		{http.MethodPost, "tok", "not json", 400},
		{http.MethodPost, "tok", `{"Records":` + strings.Repeat(" ", MaxBody) + `[]}`, 413},
		{http.MethodPut, "tok", event, 405},
		{http.MethodGet, "tok", "", 200},
	} {
		if c := do(tc.method, tc.token, tc.body); c != tc.want {
			t.Errorf("%s token %q body %.20q: %d, want %d", tc.method, tc.token, tc.body, c, tc.want)
		}
	}
	if len(got) != 1 {
		t.Errorf("refused requests called fn: %q", got)
	}
}
