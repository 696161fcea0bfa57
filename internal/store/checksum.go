package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"path"
	"strings"
	"time"

	"guestkit.io/batch/internal/redact"
)

// fullObjectSHA256 turns a store's x-amz-checksum-sha256 (base64) into hex,
// only when it is the sha256 of the whole object: type FULL_OBJECT, or no
// type and no "-N" part count. A COMPOSITE checksum (multipart: the sha256
// of the parts' sha256s, "...-N") is no file's sha256. Anything that does
// not decode to 32 bytes is a server's garbage, not an attestation.
//
// MinIO (the 2026-02 build the tests pin) returns a single PUT's
// x-amz-checksum-sha256 on HEAD with x-amz-checksum-mode: ENABLED, with type
// FULL_OBJECT (TestUploadAttests).
func fullObjectSHA256(b64, typ string) string {
	switch {
	case b64 == "":
		return ""
	case typ != "" && !strings.EqualFold(typ, "FULL_OBJECT"):
		return ""
	case strings.Contains(b64, "-"):
		return ""
	}
	sum, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sum) != sha256.Size {
		return ""
	}
	return hex.EncodeToString(sum)
}

// crc64NVME is the CRC-64/NVME table (reflected polynomial), S3's
// CRC64NVME checksum: hash/crc64 applies its init and final xor of ~0.
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

const (
	// SidecarSuffix names the checksum object written next to an image:
	// KEY.sha256, in sha256sum's format.
	SidecarSuffix = ".sha256"
	// MaxSidecar bounds what ReadSidecar reads.
	MaxSidecar = 4 << 10
	// DefaultMaxSinglePut is S3's largest single PUT (5 GiB): up to it an
	// upload is one PUT, whose sha256 the store checks and keeps as a
	// full-object checksum.
	DefaultMaxSinglePut = 5 << 30
	// DefaultPartSize is the part size of larger uploads; it grows to keep
	// under S3's 10,000 parts. Each part is held in memory once.
	DefaultPartSize = 64 << 20
	// minPartSize and maxParts are S3's multipart limits.
	minPartSize = 5 << 20
	maxParts    = 10000
)

// UploadOptions tune Upload. The zero value is the default.
type UploadOptions struct {
	// SHA256 is the content's sha256 in hex when the caller knows it.
	// Empty: Upload hashes the reader first, which must then be an
	// io.ReadSeeker (a local file: a first pass on the uploader's machine).
	SHA256 string
	// MaxSinglePut: content up to this size goes up in one PUT carrying
	// its sha256, which the store verifies and keeps (0:
	// DefaultMaxSinglePut). Larger content is a multipart upload with a
	// full-object CRC64NVME: the store then attests no sha256, and only
	// the sidecar carries it.
	MaxSinglePut int64
	// PartSize of multipart uploads (0: DefaultPartSize; at least 5 MiB).
	PartSize int64
}

// upload is what Upload hands a backend: the content, which hashes and
// counts what the backend reads, and the sha256 it must carry.
type upload struct {
	r      io.Reader // hashing; read it to the end
	size   int64
	sum    [sha256.Size]byte
	single bool  // one PUT with the sha256; else multipart with CRC64NVME
	part   int64 // multipart part size

	h    hash.Hash
	crc  hash.Hash64
	read int64
}

func (u *upload) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	u.h.Write(p[:n])
	u.crc.Write(p[:n])
	u.read += int64(n)
	return n, err
}

// sha256Base64 is the sum in the form of x-amz-checksum-sha256.
func (u *upload) sha256Base64() string { return base64.StdEncoding.EncodeToString(u.sum[:]) }

// verify says whether what was read is the content announced: its size and
// sha256. A backend calls it before it commits what it read (renames a
// temporary file, completes a multipart upload).
func (u *upload) verify() error {
	if u.read != u.size {
		return fmt.Errorf("read %d bytes, want %d (the file changed during the upload?)", u.read, u.size)
	}
	if got := u.h.Sum(nil); !bytes.Equal(got, u.sum[:]) {
		return fmt.Errorf("sha256 of the bytes sent is %x, want %x (the file changed during the upload?)", got, u.sum)
	}
	return nil
}

// crc64Base64 is the CRC64NVME of what was read, as x-amz-checksum-crc64nvme.
func (u *upload) crc64Base64() string {
	return base64.StdEncoding.EncodeToString(u.crc.Sum(nil))
}

// uploader is a store that streams an object of any size with its
// checksum; the three backends implement it. A backend must not leave
// content that fails verify in place of key.
type uploader interface {
	upload(ctx context.Context, key string, u *upload) error
}

// Upload streams content of size bytes to key without holding it in
// memory, sends its sha256 so that the store verifies and keeps it, then
// writes the sidecar KEY.sha256 ("<hex>  <basename>\n", sha256sum's
// format). It returns the image's Stat: Object.SHA256 is set only when the
// store attests the sha256 (a single PUT to S3 or MinIO), never from
// Upload's own hashing. A size of -1 is allowed for an io.ReadSeeker
// without opts.SHA256: the first pass counts it.
func Upload(ctx context.Context, st Store, key string, r io.Reader, size int64, opts UploadOptions) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	if err := ValidateKey(key + SidecarSuffix); err != nil {
		return Object{}, err
	}
	up, ok := st.(uploader)
	if !ok {
		return Object{}, fmt.Errorf("upload %s: this store cannot stream uploads", st.URI(key))
	}
	u := &upload{size: size, h: sha256.New(), crc: crc64.New(crc64NVME)}
	if opts.SHA256 != "" {
		sum, err := hex.DecodeString(opts.SHA256)
		if err != nil || len(sum) != sha256.Size {
			return Object{}, fmt.Errorf("upload %s: sha256 %q: want 64 hex digits", st.URI(key), redact.Printable(opts.SHA256))
		}
		copy(u.sum[:], sum)
	} else {
		rs, ok := r.(io.ReadSeeker)
		if !ok {
			return Object{}, fmt.Errorf("upload %s: no sha256 given and the content cannot be read twice", st.URI(key))
		}
		n, err := hashPass(ctx, rs, u.sum[:])
		if err != nil {
			return Object{}, fmt.Errorf("upload %s: hash the content: %w", st.URI(key), err)
		}
		if size >= 0 && n != size {
			return Object{}, fmt.Errorf("upload %s: the content has %d bytes, want %d", st.URI(key), n, size)
		}
		u.size = n
	}
	if u.size < 0 {
		return Object{}, fmt.Errorf("upload %s: unknown size", st.URI(key))
	}
	// One byte past size would be an error anyway; it must not be sent.
	u.r = io.LimitReader(r, u.size)
	single := opts.MaxSinglePut
	if single <= 0 {
		single = DefaultMaxSinglePut
	}
	u.single = u.size <= single
	u.part = opts.PartSize
	if u.part <= 0 {
		u.part = DefaultPartSize
	}
	u.part = max(u.part, minPartSize, (u.size+maxParts-1)/maxParts)
	if err := up.upload(ctx, key, u); err != nil {
		return Object{}, err
	}
	// Backends that cannot check before committing (minio-go's multipart)
	// are checked here: content that is not what was announced goes.
	if err := u.verify(); err != nil {
		if derr := st.Delete(ctx, key); derr != nil {
			err = errors.Join(err, derr)
		}
		return Object{}, fmt.Errorf("upload %s: %w", st.URI(key), err)
	}
	line := fmt.Sprintf("%x  %s\n", u.sum, sidecarName(path.Base(key)))
	if err := st.Put(ctx, key+SidecarSuffix, []byte(line)); err != nil {
		return Object{}, fmt.Errorf("upload %s: sidecar: %w", st.URI(key), err)
	}
	o, err := st.Stat(ctx, key)
	if err != nil {
		return Object{}, fmt.Errorf("upload %s: %w", st.URI(key), err)
	}
	return o, nil
}

// sidecarName keeps the sidecar one line: sha256sum would escape a name
// with a newline or backslash; a name is informative only, so such
// characters become '?'.
func sidecarName(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\\' {
			return '?'
		}
		return r
	}, name)
}

// hashPass hashes rs from where it stands to its end, then seeks back.
func hashPass(ctx context.Context, rs io.ReadSeeker, sum []byte) (int64, error) {
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, rs})
	if err != nil {
		return n, err
	}
	copy(sum, h.Sum(nil))
	if _, err := rs.Seek(start, io.SeekStart); err != nil {
		return n, err
	}
	return n, nil
}

// ctxReader stops a long local read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ReadSidecar reads KEY.sha256, written next to image by Upload (or by
// hand with sha256sum), and returns its digest in lower-case hex. It
// refuses a sidecar over MaxSidecar bytes, one that is not sha256sum's
// format or a bare digest, and one last modified before the image: the
// image was then replaced after the sidecar was written, and the sidecar
// may describe another object. (Bucket times are whole seconds: a
// replacement within the second the sidecar was written is not seen.)
// ErrNotFound when there is no sidecar.
func ReadSidecar(ctx context.Context, st Store, key string, image Object) (string, error) {
	sk := key + SidecarSuffix
	o, err := st.Stat(ctx, sk)
	if err != nil {
		return "", fmt.Errorf("sidecar: %w", err)
	}
	if o.Size > MaxSidecar {
		return "", fmt.Errorf("sidecar %s: %d bytes, over %d: %w", st.URI(sk), o.Size, MaxSidecar, ErrTooLarge)
	}
	if !image.LastModified.IsZero() && o.LastModified.Before(image.LastModified) {
		return "", fmt.Errorf("sidecar %s is older than the image (%s < %s): the image was replaced after the sidecar was written",
			st.URI(sk), o.LastModified.UTC().Format(time.RFC3339), image.LastModified.UTC().Format(time.RFC3339))
	}
	data, err := st.Get(ctx, sk, MaxSidecar)
	if err != nil {
		return "", fmt.Errorf("sidecar: %w", err)
	}
	sum, err := ParseSHA256Sum(data)
	if err != nil {
		return "", fmt.Errorf("sidecar %s: %w", st.URI(sk), err)
	}
	return sum, nil
}

// ParseSHA256Sum parses a sha256sum line ("<64 hex>  NAME", "<64 hex>
// *NAME", or sha256sum's escaped "\<64 hex>  NAME") or a bare digest, with
// an optional line end, and returns the digest in lower-case hex. More
// than one line is refused: it would not say which is the image's.
func ParseSHA256Sum(data []byte) (string, error) {
	if len(data) > MaxSidecar {
		return "", fmt.Errorf("%d bytes, over %d: %w", len(data), MaxSidecar, ErrTooLarge)
	}
	line := bytes.TrimSuffix(data, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if bytes.ContainsAny(line, "\r\n") {
		return "", errors.New("more than one line: want one sha256sum line or a bare digest")
	}
	line = bytes.TrimPrefix(line, []byte(`\`))
	digest, rest := line, []byte(nil)
	if i := bytes.IndexAny(line, " \t"); i >= 0 {
		digest, rest = line[:i], line[i:]
	}
	if len(digest) != 2*sha256.Size {
		return "", fmt.Errorf("first field %q: want 64 hex digits", redact.Printable(string(digest)))
	}
	sum := make([]byte, sha256.Size)
	if _, err := hex.Decode(sum, digest); err != nil {
		return "", fmt.Errorf("first field %q: want 64 hex digits", redact.Printable(string(digest)))
	}
	if len(rest) > 0 && !(bytes.HasPrefix(rest, []byte("  ")) || bytes.HasPrefix(rest, []byte(" *"))) || len(rest) == 2 {
		return "", fmt.Errorf("after the digest %q: want two spaces (or \" *\") and a file name", redact.Printable(string(rest)))
	}
	return hex.EncodeToString(sum), nil
}

// versionPresigner is a store whose objects have versions.
type versionPresigner interface {
	presignGetVersion(ctx context.Context, key, version string, ttl time.Duration) (string, error)
}

// PresignGetVersion is PresignGet pinned to one version of key (an
// Object.VersionID from Stat): a URL that keeps reading that version after
// key is replaced. An empty version is PresignGet. A store without
// versions (the file store) refuses a version.
func PresignGetVersion(ctx context.Context, st Store, key, version string, ttl time.Duration) (string, error) {
	if version == "" {
		return st.PresignGet(ctx, key, ttl)
	}
	vp, ok := st.(versionPresigner)
	if !ok {
		return "", fmt.Errorf("presign get %s version %q: this store has no versions", st.URI(key), redact.Printable(version))
	}
	return vp.presignGetVersion(ctx, key, version, ttl)
}
