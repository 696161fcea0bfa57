// Package notify receives bucket notifications: S3 event records posted
// by a bucket's webhook target (MinIO's notify_webhook; S3 itself through
// SNS/EventBridge to an HTTP endpoint). A notification only makes the
// dispatcher scan sooner: polling stays the backstop for anything lost,
// so a missed or forged event cannot lose or invent a job.
package notify

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// MaxBody bounds one notification request.
const MaxBody = 1 << 20

// Path is where guestkit-dispatcher serves the webhook.
const Path = "/minio/events"

// event is the part of an S3 event notification the dispatcher reads.
type event struct {
	Records []struct {
		EventName string `json:"eventName"`
		S3        struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key string `json:"key"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
}

// Webhook returns the handler of Path. With a token, requests must carry
// "Authorization: Bearer TOKEN" (MinIO's auth_token). fn is called with
// each object key under prefix (keys arrive URL-encoded, as S3 sends them).
func Webhook(token, prefix string, fn func(key string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" {
			got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return // MinIO checks that the target is reachable
		case http.MethodPost:
		default:
			http.Error(w, "POST S3 event notifications here", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
		if err != nil || len(body) > MaxBody {
			http.Error(w, "body unreadable or over 1 MiB", http.StatusRequestEntityTooLarge)
			return
		}
		var ev event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "not an S3 event notification: "+err.Error(), http.StatusBadRequest)
			return
		}
		for _, rec := range ev.Records {
			key := rec.S3.Object.Key
			if u, err := url.QueryUnescape(key); err == nil {
				key = u
			}
			if strings.HasPrefix(key, prefix) {
				fn(key)
			}
		}
	})
}
