package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// s3Store talks to AWS S3 or an S3-compatible server.
type s3Store struct {
	client  *s3.Client
	presign *s3.PresignClient
	bucket  string
	prefix  string
	seen    bucketSeen
}

func init() {
	register(backend{scheme: "s3", remote: true, split: splitRemote,
		open: func(ctx context.Context, u *url.URL) (Store, error) { return asStore(openS3(ctx, u)) }})
}

// openS3 builds a client from the default credential chain (env, shared
// config, IRSA web identity, instance role). A custom endpoint comes from
// ?endpoint= or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL; with one, path-style
// addressing is the default, as S3-compatible servers expect.
func openS3(ctx context.Context, u *url.URL) (*s3Store, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("s3 URL %q: no bucket", u.String())
	}
	q := u.Query()
	var opts []func(*config.LoadOptions) error
	if r := q.Get("region"); r != "" {
		opts = append(opts, config.WithRegion(r))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	endpoint := q.Get("endpoint")
	if endpoint == "" {
		endpoint = firstEnv("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	}
	pathStyle := endpoint != ""
	if v := q.Get("path-style"); v != "" {
		pathStyle, _ = strconv.ParseBool(v)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
		// Objects written without a checksum (presigned PUTs, minio-go)
		// made every Get log a warning to stderr.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return &s3Store{
		client:  client,
		presign: s3.NewPresignClient(client),
		bucket:  u.Host,
		prefix:  strings.Trim(u.Path, "/"),
	}, nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

func (s *s3Store) URI(key string) string {
	return "s3://" + s.bucket + "/" + escapePath(joinKey(s.prefix, key))
}

func (s *s3Store) full(key string) (*string, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	return aws.String(joinKey(s.prefix, key)), nil
}

func (s *s3Store) mapErr(op, key string, err error) error {
	// A 404 for the bucket is a configuration error: reported as
	// ErrNotFound, it made Put fail as if an object were missing and Delete
	// succeed.
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
		return fmt.Errorf("%s %s: bucket %s does not exist: %w", op, s.URI(key), s.bucket, err)
	}
	var nf *types.NoSuchKey
	var nf2 *types.NotFound
	var re *awshttp.ResponseError
	switch {
	case errors.As(err, &nf), errors.As(err, &nf2):
		return fmt.Errorf("%s %s: %w", op, s.URI(key), ErrNotFound)
	case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound:
		return fmt.Errorf("%s %s: %w", op, s.URI(key), ErrNotFound)
	case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed:
		return fmt.Errorf("%s %s: %w", op, s.URI(key), ErrExists)
	}
	if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict") {
		return fmt.Errorf("%s %s: %w", op, s.URI(key), ErrExists)
	}
	return fmt.Errorf("%s %s: %w", op, s.URI(key), err)
}

// checkBucket tells a missing bucket from a missing object after a HEAD,
// whose 404 has no body to say which. Anything but a clear 404 for the
// bucket (403 without s3:ListBucket, say) keeps notFound.
func (s *s3Store) checkBucket(ctx context.Context, key string, notFound error) error {
	if s.seen.recent() {
		return notFound
	}
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err == nil {
		s.seen.see()
	}
	var nf *types.NotFound
	var re *awshttp.ResponseError
	if errors.As(err, &nf) || errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return fmt.Errorf("stat %s: bucket %s does not exist: %w", s.URI(key), s.bucket, err)
	}
	return notFound
}

func (s *s3Store) List(ctx context.Context, prefix string, fn func(Object) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(joinKey(s.prefix, prefix)),
	})
	strip := ""
	if s.prefix != "" {
		strip = strings.TrimSuffix(s.prefix, "/") + "/"
	}
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.mapErr("list", prefix, err)
		}
		for _, o := range page.Contents {
			obj := Object{Key: strings.TrimPrefix(aws.ToString(o.Key), strip), Size: aws.ToInt64(o.Size), ETag: strings.Trim(aws.ToString(o.ETag), `"`)}
			if o.LastModified != nil {
				obj.LastModified = *o.LastModified
			}
			if err := fn(obj); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *s3Store) Open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	k, err := s.full(key)
	if err != nil {
		return nil, 0, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: k})
	if err != nil {
		return nil, 0, s.mapErr("get", key, err)
	}
	return out.Body, aws.ToInt64(out.ContentLength), nil
}

func (s *s3Store) Get(ctx context.Context, key string, max int64) ([]byte, error) {
	r, size, err := s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if size > max {
		return nil, fmt.Errorf("get %s: %d bytes > %d: %w", s.URI(key), size, max, ErrTooLarge)
	}
	return readBounded(r, s.URI(key), max)
}

func (s *s3Store) Stat(ctx context.Context, key string) (Object, error) {
	k, err := s.full(key)
	if err != nil {
		return Object{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: k})
	if err != nil {
		err = s.mapErr("stat", key, err)
		if errors.Is(err, ErrNotFound) {
			err = s.checkBucket(ctx, key, err)
		}
		return Object{}, err
	}
	o := Object{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: strings.Trim(aws.ToString(out.ETag), `"`)}
	if out.LastModified != nil {
		o.LastModified = *out.LastModified
	}
	return o, nil
}

func (s *s3Store) put(ctx context.Context, op, key string, data []byte, ifNoneMatch bool) error {
	k, err := s.full(key)
	if err != nil {
		return err
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           k,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String(contentType(key)),
	}
	if ifNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		return s.mapErr(op, key, err)
	}
	return nil
}

func (s *s3Store) Put(ctx context.Context, key string, data []byte) error {
	return s.put(ctx, "put", key, data, false)
}

func (s *s3Store) Create(ctx context.Context, key string, data []byte) error {
	return s.put(ctx, "create", key, data, true)
}

func (s *s3Store) Delete(ctx context.Context, key string) error {
	k, err := s.full(key)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: k}); err != nil {
		if err := s.mapErr("delete", key, err); !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

func (s *s3Store) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	k, err := s.full(key)
	if err != nil {
		return "", err
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: k}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", s.mapErr("presign get", key, err)
	}
	return req.URL, nil
}

func (s *s3Store) PresignPut(ctx context.Context, key string, ttl time.Duration) (string, error) {
	k, err := s.full(key)
	if err != nil {
		return "", err
	}
	req, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: k}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", s.mapErr("presign put", key, err)
	}
	return req.URL, nil
}

func contentType(key string) string {
	switch {
	case strings.HasSuffix(key, ".json"):
		return "application/json"
	case strings.HasSuffix(key, ".yaml"), strings.HasSuffix(key, ".yml"):
		return "application/yaml"
	case strings.HasSuffix(key, ".xml"):
		return "application/xml"
	case strings.HasSuffix(key, ".sarif"):
		return "application/sarif+json"
	}
	return "application/octet-stream"
}
