package store

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash/crc64"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"guestkit.io/batch/internal/testenv"
)

// TestUploadAttests uploads files through Upload to the three backends
// (s3:// and minio:// on a real MinIO) and checks what Stat reports: the
// size, the ETag, the sha256 the store attests (a single PUT) or does not
// (multipart, file store), the sidecar, and ReadSidecar on good,
// malformed, oversized, stale and missing sidecars.
func TestUploadAttests(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO")
	}
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	kinds := []struct {
		kind string
		url  func(t *testing.T) string
	}{
		{"s3", func(t *testing.T) string { return "s3://" + m.NewBucket(t) }},
		{"minio", func(t *testing.T) string { return "minio://" + m.NewBucket(t) }},
		{"file", func(t *testing.T) string { return "file://" + t.TempDir() }},
	}
	cases := []struct {
		name string
		fn   func(*testing.T, *fixture)
	}{
		{"Single", testUploadSingle},
		{"Multipart", testUploadMultipart},
		{"Mismatch", testUploadMismatch},
		{"KnownSum", testUploadKnownSum},
		{"PlainPut", testPlainPutNoSHA},
		{"Sidecars", testSidecars},
	}
	for _, k := range kinds {
		t.Run(k.kind, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
					defer cancel()
					f := &fixture{kind: k.kind, url: k.url(t), ctx: ctx}
					f.st = mustOpen(t, ctx, f.url)
					c.fn(t, f)
				})
			}
		})
	}
}

// tempImage writes size random bytes to a file and returns it open, with
// its sha256 and MD5 in hex.
func tempImage(t *testing.T, size int) (*os.File, []byte, string, string) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	p := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fl, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Close() })
	sum, m5 := sha256.Sum256(data), md5.Sum(data)
	return fl, data, hex.EncodeToString(sum[:]), hex.EncodeToString(m5[:])
}

func wantSidecar(t *testing.T, f *fixture, key, sum string) {
	t.Helper()
	wantContent(t, f, f.st, key+".sha256", []byte(sum+"  "+filepath.Base(key)+"\n"))
	// What sha256sum writes is what sha256sum -c reads: the format is the tool's.
	if sha, err := exec.LookPath("sha256sum"); err == nil {
		out, err := exec.Command(sha, "/dev/null").Output()
		if err != nil || !strings.HasSuffix(string(out), "  /dev/null\n") {
			t.Fatalf("sha256sum /dev/null = %q, %v: the sidecar format drifted from the tool's", out, err)
		}
	}
}

func testUploadSingle(t *testing.T, f *fixture) {
	fl, data, sum, m5 := tempImage(t, 3<<20+17)
	o, err := Upload(f.ctx, f.st, "images/disk.raw", fl, int64(len(data)), UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Key != "images/disk.raw" || o.Size != int64(len(data)) {
		t.Fatalf("Upload = %+v, want size %d", o, len(data))
	}
	if f.bucket() {
		// One PUT: the ETag is the MD5, and MinIO attests the sha256.
		if o.ETag != m5 || o.SHA256 != sum {
			t.Fatalf("Upload = %+v, want ETag %s and SHA256 %s", o, m5, sum)
		}
	} else if o.SHA256 != "" || o.ETag != "" {
		t.Fatalf("file Upload = %+v: a folder attests nothing", o)
	}
	st, err := f.st.Stat(f.ctx, "images/disk.raw")
	if err != nil || st != o {
		t.Fatalf("Stat = %+v, %v; Upload returned %+v", st, err, o)
	}
	if got, err := f.st.Get(f.ctx, "images/disk.raw", 4<<20); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %d bytes, %v; want the %d uploaded", len(got), err, len(data))
	}
	wantSidecar(t, f, "images/disk.raw", sum)
	got, err := ReadSidecar(f.ctx, f.st, "images/disk.raw", o)
	if err != nil || got != sum {
		t.Fatalf("ReadSidecar = %q, %v, want %s", got, err, sum)
	}
}

func testUploadMultipart(t *testing.T, f *fixture) {
	fl, data, sum, _ := tempImage(t, 11<<20+5)
	o, err := Upload(f.ctx, f.st, "big/disk.raw", fl, -1, UploadOptions{MaxSinglePut: 5 << 20, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if o.Size != int64(len(data)) || o.SHA256 != "" {
		t.Fatalf("Upload = %+v, want size %d and no attested sha256", o, len(data))
	}
	if f.bucket() {
		if !strings.HasSuffix(o.ETag, "-3") {
			t.Fatalf("ETag %q: want a 3-part multipart ETag", o.ETag)
		}
		// The store checked and keeps a full-object CRC64NVME of the parts.
		_, bucket, _ := strings.Cut(f.url, "://")
		s3st := mustOpen(t, f.ctx, "s3://"+bucket).(*s3Store)
		head, err := s3st.client.HeadObject(f.ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("big/disk.raw"), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		crc := crc64.Checksum(data, crc64NVME)
		want := base64.StdEncoding.EncodeToString([]byte{byte(crc >> 56), byte(crc >> 48), byte(crc >> 40), byte(crc >> 32), byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)})
		if aws.ToString(head.ChecksumCRC64NVME) != want || head.ChecksumType != types.ChecksumTypeFullObject {
			t.Fatalf("HEAD: CRC64NVME %q type %q, want %s FULL_OBJECT", aws.ToString(head.ChecksumCRC64NVME), head.ChecksumType, want)
		}
	}
	got, err := f.st.Get(f.ctx, "big/disk.raw", 12<<20)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %d bytes, %v; want the %d uploaded", len(got), err, len(data))
	}
	wantSidecar(t, f, "big/disk.raw", sum)
}

// testUploadMismatch: content that is not what its sha256 says never
// stays in the bucket, and gets no sidecar, single PUT or multipart.
func testUploadMismatch(t *testing.T, f *fixture) {
	for _, opts := range []UploadOptions{{}, {MaxSinglePut: 5 << 20, PartSize: 5 << 20}} {
		fl, data, _, _ := tempImage(t, 6<<20)
		bad := strings.Repeat("ab", 32)
		opts.SHA256 = bad
		_, err := Upload(f.ctx, f.st, "bad/disk.raw", fl, int64(len(data)), opts)
		if err == nil {
			t.Fatalf("Upload with a wrong sha256 (%+v) succeeded", opts)
		}
		if !strings.Contains(err.Error(), "bad/disk.raw") {
			t.Fatalf("Upload error %q does not name the key", err)
		}
		for _, k := range []string{"bad/disk.raw", "bad/disk.raw.sha256"} {
			if _, err := f.st.Stat(f.ctx, k); !errors.Is(err, ErrNotFound) {
				t.Fatalf("after a failed upload (%+v), Stat(%s) = %v, want ErrNotFound", opts, k, err)
			}
		}
	}
}

// testUploadKnownSum: a given sha256 skips the first pass, so a reader
// that cannot seek is enough; a short reader fails.
func testUploadKnownSum(t *testing.T, f *fixture) {
	_, data, sum, _ := tempImage(t, 1<<20)
	o, err := Upload(f.ctx, f.st, "k/disk.raw", io.MultiReader(bytes.NewReader(data)), int64(len(data)), UploadOptions{SHA256: strings.ToUpper(sum)})
	if err != nil {
		t.Fatal(err)
	}
	if f.bucket() && o.SHA256 != sum {
		t.Fatalf("SHA256 = %q, want %s", o.SHA256, sum)
	}
	wantSidecar(t, f, "k/disk.raw", sum)
	if _, err := Upload(f.ctx, f.st, "k/other.raw", io.MultiReader(bytes.NewReader(data)), int64(len(data)), UploadOptions{}); err == nil ||
		!strings.Contains(err.Error(), "cannot be read twice") {
		t.Fatalf("Upload of a stream without a sha256 = %v", err)
	}
	if _, err := Upload(f.ctx, f.st, "k/short.raw", bytes.NewReader(data[:100]), int64(len(data)), UploadOptions{}); err == nil ||
		!strings.Contains(err.Error(), "has 100 bytes, want") {
		t.Fatalf("Upload of a short file = %v", err)
	}
}

// testPlainPutNoSHA: an object written without a sha256 has none attested.
func testPlainPutNoSHA(t *testing.T, f *fixture) {
	mustPut(t, f, f.st, "plain.raw", []byte("no checksum"))
	o, err := f.st.Stat(f.ctx, "plain.raw")
	if err != nil || o.SHA256 != "" || o.Size != 11 {
		t.Fatalf("Stat = %+v, %v: want size 11, no SHA256", o, err)
	}
}

func testSidecars(t *testing.T, f *fixture) {
	fl, data, sum, _ := tempImage(t, 4096)
	img, err := Upload(f.ctx, f.st, "s/disk.raw", fl, int64(len(data)), UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	read := func() (string, error) { return ReadSidecar(f.ctx, f.st, "s/disk.raw", img) }
	if got, err := read(); err != nil || got != sum {
		t.Fatalf("ReadSidecar = %q, %v", got, err)
	}
	// A bare digest, as some tools write it, upper case.
	mustPut(t, f, f.st, "s/disk.raw.sha256", []byte(strings.ToUpper(sum)))
	if got, err := read(); err != nil || got != sum {
		t.Fatalf("ReadSidecar(bare) = %q, %v", got, err)
	}
	mustPut(t, f, f.st, "s/disk.raw.sha256", []byte("SHA256 (disk.raw) = "+sum+"\n"))
	if _, err := read(); err == nil || !strings.Contains(err.Error(), "s/disk.raw.sha256") || !strings.Contains(err.Error(), "64 hex digits") {
		t.Fatalf("ReadSidecar(BSD format) = %v, want a refusal naming the key", err)
	}
	mustPut(t, f, f.st, "s/disk.raw.sha256", bytes.Repeat([]byte(sum+"  disk.raw\n"), 70))
	if _, err := read(); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "s/disk.raw.sha256") {
		t.Fatalf("ReadSidecar(oversized) = %v, want ErrTooLarge naming the key", err)
	}
	mustPut(t, f, f.st, "s/disk.raw.sha256", []byte(sum+"  disk.raw\n"))
	// The image replaced after its sidecar: bucket times are whole seconds.
	time.Sleep(1100 * time.Millisecond)
	mustPut(t, f, f.st, "s/disk.raw", []byte("another image"))
	img2, err := f.st.Stat(f.ctx, "s/disk.raw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSidecar(f.ctx, f.st, "s/disk.raw", img2); err == nil || !strings.Contains(err.Error(), "older than the image") {
		t.Fatalf("ReadSidecar(stale) = %v, want 'older than the image'", err)
	}
	_, err = ReadSidecar(f.ctx, f.st, "s/none.raw", img2)
	wantErr(t, "ReadSidecar(missing)", err, ErrNotFound, "s/none.raw.sha256")
}

// TestCompositeChecksum: a multipart upload with SHA256 part checksums
// gets a COMPOSITE checksum (a sha256 of part sha256s); Stat must not take
// it for the file's sha256, through either bucket backend.
func TestCompositeChecksum(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO")
	}
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	bucket := m.NewBucket(t)
	st := mustOpen(t, ctx, "s3://"+bucket).(*s3Store)
	parts := [][]byte{bytes.Repeat([]byte("a"), 5<<20), []byte("tail")}
	mpu, err := st.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("c.raw"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256, ChecksumType: types.ChecksumTypeComposite})
	if err != nil {
		t.Fatal(err)
	}
	var done []types.CompletedPart
	for i, p := range parts {
		s := sha256.Sum256(p)
		b64 := base64.StdEncoding.EncodeToString(s[:])
		out, err := st.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String("c.raw"), UploadId: mpu.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p), ChecksumSHA256: aws.String(b64)})
		if err != nil {
			t.Fatal(err)
		}
		done = append(done, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag, ChecksumSHA256: aws.String(b64)})
	}
	if _, err := st.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("c.raw"),
		UploadId: mpu.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}); err != nil {
		t.Fatal(err)
	}
	head, err := st.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("c.raw"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.ChecksumSHA256) == "" || head.ChecksumType != types.ChecksumTypeComposite {
		t.Fatalf("MinIO HEAD: checksum %q type %q, want a COMPOSITE sha256", aws.ToString(head.ChecksumSHA256), head.ChecksumType)
	}
	for _, u := range []string{"s3://" + bucket, "minio://" + bucket} {
		o, err := mustOpen(t, ctx, u).Stat(ctx, "c.raw")
		if err != nil || o.SHA256 != "" || o.Size != 5<<20+4 {
			t.Fatalf("%s Stat = %+v, %v: a COMPOSITE checksum is no sha256", u, o, err)
		}
	}
}

// TestVersions: in a versioned bucket Stat reports the version, and
// PresignGetVersion keeps reading that version after the key is replaced.
func TestVersions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO")
	}
	m := testenv.StartMinIO(t)
	m.SetEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, scheme := range []string{"s3", "minio"} {
		t.Run(scheme, func(t *testing.T) {
			bucket := m.NewBucket(t)
			if err := m.Client(t).EnableVersioning(ctx, bucket); err != nil {
				t.Fatal(err)
			}
			st := mustOpen(t, ctx, scheme+"://"+bucket)
			if err := st.Put(ctx, "v.raw", []byte("version one")); err != nil {
				t.Fatal(err)
			}
			v1, err := st.Stat(ctx, "v.raw")
			if err != nil || v1.VersionID == "" {
				t.Fatalf("Stat = %+v, %v: want a version", v1, err)
			}
			if err := st.Put(ctx, "v.raw", []byte("version two")); err != nil {
				t.Fatal(err)
			}
			v2, err := st.Stat(ctx, "v.raw")
			if err != nil || v2.VersionID == "" || v2.VersionID == v1.VersionID {
				t.Fatalf("Stat after replace = %+v, %v; first %+v", v2, err, v1)
			}
			for _, c := range []struct{ version, want string }{{v1.VersionID, "version one"}, {"", "version two"}} {
				u, err := PresignGetVersion(ctx, st, "v.raw", c.version, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := http.Get(u)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || string(body) != c.want {
					t.Fatalf("GET version %q: %s %q, want %q", c.version, resp.Status, body, c.want)
				}
			}
		})
	}
	fst := mustOpen(t, ctx, "file://"+t.TempDir())
	if _, err := PresignGetVersion(ctx, fst, "v.raw", "abc", time.Minute); err == nil || !strings.Contains(err.Error(), "no versions") {
		t.Fatalf("file PresignGetVersion = %v", err)
	}
}

func TestFullObjectSHA256(t *testing.T) {
	s := sha256.Sum256([]byte("x"))
	b64, hx := base64.StdEncoding.EncodeToString(s[:]), hex.EncodeToString(s[:])
	for _, c := range []struct{ b64, typ, want string }{
		{b64, "FULL_OBJECT", hx},
		{b64, "", hx},
		{b64, "COMPOSITE", ""},
		{b64 + "-3", "", ""},
		{b64 + "-3", "FULL_OBJECT", ""},
		{"", "FULL_OBJECT", ""},
		{"bm90IDMyIGJ5dGVz", "FULL_OBJECT", ""}, // "not 32 bytes"
		{"%%%", "", ""},
	} {
		if got := fullObjectSHA256(c.b64, c.typ); got != c.want {
			t.Errorf("fullObjectSHA256(%q, %q) = %q, want %q", c.b64, c.typ, got, c.want)
		}
	}
}

// TestCRC64NVME checks the table against CRC-64/NVME's check value.
func TestCRC64NVME(t *testing.T) {
	if got := crc64.Checksum([]byte("123456789"), crc64NVME); got != 0xae8b14860a799888 {
		t.Fatalf("CRC64NVME(123456789) = %#x, want 0xae8b14860a799888", got)
	}
}

func TestParseSHA256Sum(t *testing.T) {
	sum := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	ok := []string{
		sum + "  /dev/null\n", sum + " *disk.raw\n", sum + "  a name with  spaces", sum, sum + "\n", sum + "\r\n",
		strings.ToUpper(sum) + "  X\n", `\` + sum + `  a\nb` + "\n",
	}
	for _, in := range ok {
		if got, err := ParseSHA256Sum([]byte(in)); err != nil || got != sum {
			t.Errorf("ParseSHA256Sum(%q) = %q, %v", in, got, err)
		}
	}
	bad := []string{
		"", "\n", sum[:63], sum + "0", sum + " disk.raw", sum + "  ", sum + "\tdisk.raw", "SHA256 (x) = " + sum,
		sum + "  a\n" + sum + "  b\n", "z" + sum[1:] + "  x", " " + sum + "  x", sum + "\n\n",
		strings.Repeat("a", MaxSidecar+1),
	}
	for _, in := range bad {
		if got, err := ParseSHA256Sum([]byte(in)); err == nil {
			t.Errorf("ParseSHA256Sum(%q) = %q, want an error", in, got)
		}
	}
}

func FuzzParseSHA256Sum(f *testing.F) {
	// Seeds: what sha256sum writes, in its text, binary and escaped forms.
	f.Add([]byte("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  /dev/null\n"))
	f.Add([]byte("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 */dev/null\n"))
	f.Add([]byte("\\e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a\\nb\n"))
	f.Add([]byte("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"))
	f.Add([]byte("SHA256 (x) = e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseSHA256Sum(data)
		if err != nil {
			return
		}
		if len(got) != 64 || strings.ToLower(got) != got {
			t.Fatalf("ParseSHA256Sum(%q) = %q: not 64 lower-case hex digits", data, got)
		}
		d := bytes.TrimPrefix(data, []byte(`\`))
		if !strings.EqualFold(string(d[:64]), got) {
			t.Fatalf("ParseSHA256Sum(%q) = %q: not the first field", data, got)
		}
		if bytes.Count(data, []byte("\n")) > 1 {
			t.Fatalf("ParseSHA256Sum(%q) accepted more than one line", data)
		}
	})
}
