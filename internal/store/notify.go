package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/minio/minio-go/v7/pkg/notification"
)

// Notifier is a store that can stream change notifications.
type Notifier interface {
	// Listen calls fn for every object created under prefix until ctx ends
	// or the stream fails (the caller reconnects; polling stays the
	// backstop for anything missed in between).
	Listen(ctx context.Context, prefix string, fn func(key string)) error
}

// ErrNoNotifications: the store cannot stream notifications.
var ErrNoNotifications = errors.New("bucket notifications not supported")

// Listen uses MinIO's ListenBucketNotification extension (not part of S3:
// an S3 bucket notifies through SQS/SNS/EventBridge instead).
func (m *minioStore) Listen(ctx context.Context, prefix string, fn func(key string)) error {
	full := joinKey(m.prefix, prefix)
	strip := ""
	if m.prefix != "" {
		strip = m.prefix + "/"
	}
	events := m.client.ListenBucketNotification(ctx, m.bucket, full, "", []string{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"})
	for info := range events {
		if info.Err != nil {
			return fmt.Errorf("minio notifications on %s: %w", m.URI(prefix), info.Err)
		}
		for _, rec := range info.Records {
			fn(keyOf(rec, strip))
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("minio notifications on %s: stream ended", m.URI(prefix))
}

func keyOf(rec notification.Event, strip string) string {
	k := rec.S3.Object.Key
	if u, err := url.QueryUnescape(k); err == nil { // S3 events escape keys
		k = u
	}
	if len(k) >= len(strip) && k[:len(strip)] == strip {
		k = k[len(strip):]
	}
	return k
}
