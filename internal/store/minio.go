package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// minioStore uses minio-go, which also receives MinIO bucket notifications.
type minioStore struct {
	client *minio.Client
	// up sends x-amz-checksum-* headers, which minio-go allows only on a
	// client with TrailingHeaders; that client also adds a CRC32C to every
	// PUT, so it serves Upload only and the other writes stay as they were.
	up     *minio.Client
	bucket string
	prefix string
	seen   bucketSeen
}

func init() {
	register(backend{scheme: "minio", remote: true, split: splitRemote,
		open: func(_ context.Context, u *url.URL) (Store, error) { return asStore(openMinio(u)) }})
}

// openMinio takes minio://BUCKET[/PREFIX]. The endpoint (host:port, or a
// URL whose scheme sets TLS) comes from ?endpoint= or MINIO_ENDPOINT, then
// AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, so one spec works against any
// MinIO.
func openMinio(u *url.URL) (*minioStore, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("minio URL %q: want minio://BUCKET[/PREFIX]", u.String())
	}
	q := u.Query()
	endpoint := q.Get("endpoint")
	if endpoint == "" {
		endpoint = firstEnv("MINIO_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	}
	if endpoint == "" {
		return nil, fmt.Errorf("minio URL %q: no endpoint (set ?endpoint= or MINIO_ENDPOINT)", u.String())
	}
	secure := false
	if e, err := url.Parse(endpoint); err == nil && (e.Scheme == "http" || e.Scheme == "https") {
		secure, endpoint = e.Scheme == "https", e.Host
	}
	if v := q.Get("secure"); v != "" {
		secure, _ = strconv.ParseBool(v)
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvMinio{}, &credentials.EnvAWS{}, &credentials.IAM{},
	})
	opts := &minio.Options{Creds: creds, Secure: secure, Region: q.Get("region")}
	c, err := minio.New(endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("minio %s: %w", endpoint, err)
	}
	upOpts := *opts
	upOpts.TrailingHeaders = true
	up, err := minio.New(endpoint, &upOpts)
	if err != nil {
		return nil, fmt.Errorf("minio %s: %w", endpoint, err)
	}
	return &minioStore{client: c, up: up, bucket: u.Host, prefix: strings.Trim(u.Path, "/")}, nil
}

// Client exposes the minio client for bucket notifications.
func (m *minioStore) Client() *minio.Client { return m.client }

// Bucket is the bucket name.
func (m *minioStore) Bucket() string { return m.bucket }

func (m *minioStore) URI(key string) string {
	return "minio://" + m.bucket + "/" + escapePath(joinKey(m.prefix, key))
}

func (m *minioStore) full(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return joinKey(m.prefix, key), nil
}

func (m *minioStore) mapErr(op, key string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey" || resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket":
		return fmt.Errorf("%s %s: %w", op, m.URI(key), ErrNotFound)
	case resp.StatusCode == http.StatusPreconditionFailed || resp.Code == "PreconditionFailed":
		return fmt.Errorf("%s %s: %w", op, m.URI(key), ErrExists)
	case resp.Code == "NoSuchBucket":
		return fmt.Errorf("%s %s: bucket %s does not exist: %w", op, m.URI(key), m.bucket, err)
	}
	return fmt.Errorf("%s %s: %w", op, m.URI(key), err)
}

func (m *minioStore) List(ctx context.Context, prefix string, fn func(Object) error) error {
	strip := ""
	if m.prefix != "" {
		strip = m.prefix + "/"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when fn fails
	for o := range m.client.ListObjects(ctx, m.bucket, minio.ListObjectsOptions{Prefix: joinKey(m.prefix, prefix), Recursive: true}) {
		if o.Err != nil {
			return m.mapErr("list", prefix, o.Err)
		}
		if err := fn(Object{Key: strings.TrimPrefix(o.Key, strip), Size: o.Size, ETag: o.ETag, LastModified: o.LastModified}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (m *minioStore) Open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	k, err := m.full(key)
	if err != nil {
		return nil, 0, err
	}
	obj, err := m.client.GetObject(ctx, m.bucket, k, minio.GetObjectOptions{})
	if err != nil {
		return nil, 0, m.mapErr("get", key, err)
	}
	st, err := obj.Stat() // GetObject is lazy; Stat makes the request
	if err != nil {
		obj.Close()
		return nil, 0, m.mapErr("get", key, err)
	}
	return obj, st.Size, nil
}

func (m *minioStore) Get(ctx context.Context, key string, max int64) ([]byte, error) {
	r, size, err := m.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if size > max {
		return nil, fmt.Errorf("get %s: %d bytes > %d: %w", m.URI(key), size, max, ErrTooLarge)
	}
	return readBounded(r, m.URI(key), max)
}

func (m *minioStore) Stat(ctx context.Context, key string) (Object, error) {
	k, err := m.full(key)
	if err != nil {
		return Object{}, err
	}
	// Checksum asks for the additional checksums (x-amz-checksum-mode).
	st, err := m.client.StatObject(ctx, m.bucket, k, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		err = m.mapErr("stat", key, err)
		// A HEAD's 404 has no body to tell a missing bucket from a missing
		// object (MinIO says in a header; S3 does not).
		if errors.Is(err, ErrNotFound) && !m.seen.recent() {
			ok, berr := m.client.BucketExists(ctx, m.bucket)
			switch {
			case berr == nil && !ok:
				err = fmt.Errorf("stat %s: bucket %s does not exist", m.URI(key), m.bucket)
			case berr == nil:
				m.seen.see()
			}
		}
		return Object{}, err
	}
	return Object{Key: key, Size: st.Size, ETag: st.ETag, LastModified: st.LastModified,
		VersionID: st.VersionID, SHA256: fullObjectSHA256(st.ChecksumSHA256, st.ChecksumMode)}, nil
}

func (m *minioStore) put(ctx context.Context, op, key string, data []byte, once bool) error {
	k, err := m.full(key)
	if err != nil {
		return err
	}
	opts := minio.PutObjectOptions{ContentType: contentType(key)}
	if once {
		opts.SetMatchETagExcept("*")
	}
	if _, err := m.client.PutObject(ctx, m.bucket, k, bytes.NewReader(data), int64(len(data)), opts); err != nil {
		return m.mapErr(op, key, err)
	}
	return nil
}

func (m *minioStore) Put(ctx context.Context, key string, data []byte) error {
	return m.put(ctx, "put", key, data, false)
}

func (m *minioStore) Create(ctx context.Context, key string, data []byte) error {
	return m.put(ctx, "create", key, data, true)
}

func (m *minioStore) Delete(ctx context.Context, key string) error {
	k, err := m.full(key)
	if err != nil {
		return err
	}
	if err := m.client.RemoveObject(ctx, m.bucket, k, minio.RemoveObjectOptions{}); err != nil {
		if err := m.mapErr("delete", key, err); !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

func (m *minioStore) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	k, err := m.full(key)
	if err != nil {
		return "", err
	}
	u, err := m.client.PresignedGetObject(ctx, m.bucket, k, ttl, nil)
	if err != nil {
		return "", m.mapErr("presign get", key, err)
	}
	return u.String(), nil
}

func (m *minioStore) PresignPut(ctx context.Context, key string, ttl time.Duration) (string, error) {
	k, err := m.full(key)
	if err != nil {
		return "", err
	}
	u, err := m.client.PresignedPutObject(ctx, m.bucket, k, ttl)
	if err != nil {
		return "", m.mapErr("presign put", key, err)
	}
	return u.String(), nil
}

// upload is one PUT carrying x-amz-checksum-sha256 up to u.single's bound
// (multipart disabled: minio-go would otherwise split anything over 16 MiB,
// and a multipart SHA256 is only COMPOSITE); MinIO verifies it and keeps
// it as FULL_OBJECT. Larger content is minio-go's multipart upload with a
// full-object CRC64NVME; minio-go completes it itself, so Upload checks
// the sha256 of the bytes sent afterwards and deletes a mismatch.
func (m *minioStore) upload(ctx context.Context, key string, u *upload) error {
	k, err := m.full(key)
	if err != nil {
		return err
	}
	opts := minio.PutObjectOptions{ContentType: contentType(key)}
	if u.single {
		opts.DisableMultipart = true
		opts.UserMetadata = map[string]string{"x-amz-checksum-sha256": u.sha256Base64()}
	} else {
		opts.Checksum = minio.ChecksumCRC64NVME
		opts.PartSize = uint64(u.part)
	}
	if _, err := m.up.PutObject(ctx, m.bucket, k, u, u.size, opts); err != nil {
		return m.mapErr("upload", key, err)
	}
	return nil
}

// presignGetVersion is PresignGet of one version of key.
func (m *minioStore) presignGetVersion(ctx context.Context, key, version string, ttl time.Duration) (string, error) {
	k, err := m.full(key)
	if err != nil {
		return "", err
	}
	u, err := m.client.PresignedGetObject(ctx, m.bucket, k, ttl, url.Values{"versionId": {version}})
	if err != nil {
		return "", m.mapErr("presign get", key, err)
	}
	return u.String(), nil
}
