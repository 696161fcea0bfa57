package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
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
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: k, ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		err = s.mapErr("stat", key, err)
		if errors.Is(err, ErrNotFound) {
			err = s.checkBucket(ctx, key, err)
		}
		return Object{}, err
	}
	o := Object{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: strings.Trim(aws.ToString(out.ETag), `"`),
		VersionID: aws.ToString(out.VersionId), SHA256: fullObjectSHA256(aws.ToString(out.ChecksumSHA256), string(out.ChecksumType))}
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
	case strings.HasSuffix(key, ".html"):
		// A presigned link to a sweep's report.html opens as a page, not
		// a download.
		return "text/html; charset=utf-8"
	}
	return "application/octet-stream"
}

// upload is one PUT with x-amz-checksum-sha256 up to u.single's bound: S3
// verifies the sha256 and keeps it as a FULL_OBJECT checksum. Larger
// content is a multipart upload with a FULL_OBJECT CRC64NVME (S3 keeps a
// multipart SHA256 only as COMPOSITE, a hash of part hashes), completed
// only once the bytes sent hash to the announced sha256.
func (s *s3Store) upload(ctx context.Context, key string, u *upload) error {
	k, err := s.full(key)
	if err != nil {
		return err
	}
	if u.single {
		// The body is not seekable: without TLS the SDK cannot sign its
		// hash, so it goes unsigned, covered by the sha256 checksum.
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:         aws.String(s.bucket),
			Key:            k,
			Body:           u,
			ContentLength:  aws.Int64(u.size),
			ContentType:    aws.String(contentType(key)),
			ChecksumSHA256: aws.String(u.sha256Base64()),
		}, unsignedPayload)
		if err != nil {
			return s.mapErr("upload", key, err)
		}
		return nil
	}
	return s.uploadMultipart(ctx, key, k, u)
}

func (s *s3Store) uploadMultipart(ctx context.Context, key string, k *string, u *upload) (err error) {
	mpu, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(s.bucket),
		Key:               k,
		ContentType:       aws.String(contentType(key)),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme,
		ChecksumType:      types.ChecksumTypeFullObject,
	})
	if err != nil {
		return s.mapErr("upload", key, err)
	}
	defer func() {
		if err != nil {
			// A fresh context: an abort must run when ctx was cancelled.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: aws.String(s.bucket), Key: k, UploadId: mpu.UploadId})
		}
	}()
	buf := make([]byte, u.part)
	var parts []types.CompletedPart
	for n := int32(1); ; n++ {
		got, rerr := io.ReadFull(u, buf)
		if rerr == io.EOF && n > 1 {
			break
		}
		if rerr != nil && rerr != io.ErrUnexpectedEOF && rerr != io.EOF {
			return fmt.Errorf("upload %s: read part %d: %w", s.URI(key), n, rerr)
		}
		sum := crc64.Checksum(buf[:got], crc64NVME)
		crc := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, sum))
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:            aws.String(s.bucket),
			Key:               k,
			UploadId:          mpu.UploadId,
			PartNumber:        aws.Int32(n),
			Body:              bytes.NewReader(buf[:got]),
			ContentLength:     aws.Int64(int64(got)),
			ChecksumCRC64NVME: aws.String(crc),
		})
		if err != nil {
			return s.mapErr(fmt.Sprintf("upload part %d of", n), key, err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag, ChecksumCRC64NVME: aws.String(crc)})
		if rerr != nil { // short or empty: the last part
			break
		}
	}
	if err := u.verify(); err != nil {
		return fmt.Errorf("upload %s: %w", s.URI(key), err)
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:            aws.String(s.bucket),
		Key:               k,
		UploadId:          mpu.UploadId,
		MultipartUpload:   &types.CompletedMultipartUpload{Parts: parts},
		ChecksumCRC64NVME: aws.String(u.crc64Base64()),
		ChecksumType:      types.ChecksumTypeFullObject,
		MpuObjectSize:     aws.Int64(u.size),
	})
	if err != nil {
		return s.mapErr("upload (complete)", key, err)
	}
	return nil
}

// unsignedPayload signs a request without hashing its body (UNSIGNED-PAYLOAD),
// which an unseekable body needs on plain HTTP; the body's integrity rests
// on its x-amz-checksum.
func unsignedPayload(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

// presignGetVersion is PresignGet of one version of key.
func (s *s3Store) presignGetVersion(ctx context.Context, key, version string, ttl time.Duration) (string, error) {
	k, err := s.full(key)
	if err != nil {
		return "", err
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: k, VersionId: aws.String(version)}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", s.mapErr("presign get", key, err)
	}
	return req.URL, nil
}
