package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"guestkit.io/batch/internal/result"
)

// Facts is what Probe learned about an image.
type Facts struct {
	Path           string
	Format         string // detected
	DeclaredFormat string
	Signature      string // for raw images: what made them recognisable
	VirtualSize    int64
	FileSize       int64
}

// ProbeOptions bound the probe.
type ProbeOptions struct {
	// DeclaredFormat is the spec's format; a mismatch with the bytes is refused.
	DeclaredFormat string
	// MaxVirtualSize refuses larger disks (0: no limit).
	MaxVirtualSize int64
	// QemuImg is the qemu-img binary (default "qemu-img").
	QemuImg string
	// Timeout bounds each qemu-img call (default 2 minutes).
	Timeout time.Duration
}

// maxToolOutput bounds what is kept of a qemu-img run: a hostile image can
// make `qemu-img check` print a line per cluster.
const maxToolOutput = 1 << 20

// Probe identifies the image at path and refuses unsafe or broken images.
// qemu-img always gets the detected format explicitly, never probes itself.
func Probe(ctx context.Context, path string, opts ProbeOptions) (*Facts, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &Error{Code: result.CodeImageNotFound, Path: path, Msg: "no such file", Err: err}
		}
		return nil, &Error{Code: result.CodeImageUnreadable, Path: path, Msg: "open", Err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &Error{Code: result.CodeImageUnreadable, Path: path, Msg: "stat", Err: err}
	}
	if !st.Mode().IsRegular() {
		return nil, newErr(result.CodeImageUnreadable, path, "not a regular file (%s)", st.Mode().Type())
	}
	self, _ := filepath.Abs(path)
	return probe(ctx, f, st.Size(), path, func(context.Context) (string, string, error) { return path, self, nil }, false, opts)
}

// Target is where qemu-img finds an image that is not a local file: an NBD
// URI (nbd+unix:///NAME?socket=PATH) that serves the object's bytes, and
// what qemu calls that file in its extents list. It is called only when
// qemu-img is needed.
type Target func(ctx context.Context) (filename, self string, err error)

// ProbeRemote is Probe for an image read where it lies (a bucket object
// read by range requests): r and size are its bytes, name is what errors
// call it (a URI without secrets). A raw image needs no qemu-img (its
// virtual size is its size); the other formats are checked by qemu-img
// through target, exactly as a file would be.
func ProbeRemote(ctx context.Context, r io.ReaderAt, size int64, name string, target Target, opts ProbeOptions) (*Facts, error) {
	return probe(ctx, r, size, name, target, true, opts)
}

func probe(ctx context.Context, r io.ReaderAt, size int64, path string, target Target, remote bool, opts ProbeOptions) (*Facts, error) {
	if opts.QemuImg == "" {
		opts.QemuImg = "qemu-img"
	}
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Minute
	}
	declared := strings.ToLower(strings.TrimSpace(opts.DeclaredFormat))
	if declared == "vhd" {
		declared = FormatVPC
	}
	hdr, err := Sniff(r, size, path)
	facts := &Facts{Path: path, Format: hdr.Format, DeclaredFormat: declared, Signature: hdr.Signature, FileSize: size}
	if err != nil {
		// A user who says "raw" may hand us a raw disk we do not recognise;
		// libguestfs will still be told raw, and find out.
		if !(declared == FormatRaw && hdr.Format == FormatRaw && CodeOf(err) == result.CodeImageFormat) {
			return facts, err
		}
	}
	if declared != "" && declared != hdr.Format {
		return facts, newErr(result.CodeImageFormatMismatch, path, "spec declares format %q but the image is %s", declared, hdr.Format)
	}
	if remote && hdr.Format == FormatRaw {
		// Nothing for qemu to check in raw bytes, and starting an NBD
		// export only to be told the size would cost a round trip.
		facts.VirtualSize = size
		if opts.MaxVirtualSize > 0 && size > opts.MaxVirtualSize {
			return facts, newErr(result.CodeImageTooLarge, path, "virtual size %d bytes exceeds the limit of %d", size, opts.MaxVirtualSize)
		}
		return facts, nil
	}
	filename, self, err := target(ctx)
	if err != nil {
		return facts, err
	}
	info, err := qemuInfo(ctx, opts, path, filename, hdr.Format)
	if err != nil {
		return facts, err
	}
	facts.VirtualSize = info.VirtualSize
	if err := info.check(path, self); err != nil {
		return facts, err
	}
	if opts.MaxVirtualSize > 0 && info.VirtualSize > opts.MaxVirtualSize {
		return facts, newErr(result.CodeImageTooLarge, path, "virtual size %d bytes exceeds the limit of %d", info.VirtualSize, opts.MaxVirtualSize)
	}
	if err := qemuCheck(ctx, opts, path, filename, hdr.Format); err != nil {
		return facts, err
	}
	return facts, nil
}

type qemuInfoJSON struct {
	VirtualSize         int64  `json:"virtual-size"`
	Format              string `json:"format"`
	BackingFilename     string `json:"backing-filename"`
	FullBackingFilename string `json:"full-backing-filename"`
	FormatSpecific      struct {
		Type string `json:"type"`
		Data struct {
			DataFile string `json:"data-file"`
			Corrupt  bool   `json:"corrupt"`
			Extents  []struct {
				Filename string `json:"filename"`
			} `json:"extents"`
		} `json:"data"`
	} `json:"format-specific"`
}

// check is the second line of defence after Sniff: whatever qemu itself
// says would be opened besides the image is refused.
func (i *qemuInfoJSON) check(path, self string) error {
	if i.BackingFilename != "" || i.FullBackingFilename != "" {
		return newErr(result.CodeImageBackingFile, path, "image has a backing file %q; backing files are refused", printable(i.BackingFilename))
	}
	d := i.FormatSpecific.Data
	if d.DataFile != "" {
		return newErr(result.CodeImageBackingFile, path, "image uses an external data file %q; refused", printable(d.DataFile))
	}
	if d.Corrupt {
		return newErr(result.CodeImageCorrupt, path, "qemu reports the image as corrupt")
	}
	for _, e := range d.Extents {
		if e.Filename == "" {
			continue
		}
		if abs, _ := filepath.Abs(e.Filename); e.Filename != self && abs != self {
			return newErr(result.CodeImageBackingFile, path, "image has an extent in another file %q; refused", printable(e.Filename))
		}
	}
	if i.VirtualSize <= 0 {
		return newErr(result.CodeImageCorrupt, path, "virtual size %d", i.VirtualSize)
	}
	return nil
}

// qemuInfo runs `qemu-img info` on filename; path names the image in errors.
func qemuInfo(ctx context.Context, opts ProbeOptions, path, filename, format string) (*qemuInfoJSON, error) {
	out, errOut, _, err := runTool(ctx, opts, opts.QemuImg, "info", "-U", "-f", format, "--output=json", filename)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &Error{Code: result.CodeImageCorrupt, Path: path, Msg: fmt.Sprintf("qemu-img info -f %s: %s", format, lastLine(errOut)), Err: err}
	}
	var info qemuInfoJSON
	if err := json.Unmarshal(out, &info); err != nil {
		return nil, &Error{Code: result.CodeInfrastructure, Path: path, Msg: "parse qemu-img info output", Err: err}
	}
	return &info, nil
}

// qemuCheck runs `qemu-img check`, which reads every metadata table and so
// finds truncated and inconsistent images before the appliance does.
func qemuCheck(ctx context.Context, opts ProbeOptions, path, filename, format string) error {
	switch format {
	case FormatQCOW2, FormatVDI, FormatVHDX, FormatVMDK:
	default:
		return nil
	}
	out, errOut, code, err := runTool(ctx, opts, opts.QemuImg, "check", "-U", "-f", format, "--output=json", filename)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var res struct {
		Corruptions int `json:"corruptions"`
		CheckErrors int `json:"check-errors"`
	}
	_ = json.Unmarshal(out, &res)
	switch {
	case err == nil, code == 3: // 3: leaked clusters, harmless for reading
		if res.Corruptions > 0 || res.CheckErrors > 0 {
			return newErr(result.CodeImageCorrupt, path, "qemu-img check: %d corruptions, %d check errors", res.Corruptions, res.CheckErrors)
		}
		return nil
	case code == 63: // the format has no check
		return nil
	case code == 2:
		return newErr(result.CodeImageCorrupt, path, "qemu-img check: %d corruptions: %s", res.Corruptions, lastLine(errOut))
	default:
		return &Error{Code: result.CodeImageCorrupt, Path: path, Msg: "qemu-img check: " + lastLine(errOut), Err: err}
	}
}

func runTool(ctx context.Context, opts ProbeOptions, name string, args ...string) (stdout, stderr []byte, exitCode int, err error) {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var o, e boundedBuffer
	o.max, e.max = maxToolOutput, 64<<10
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	exitCode = -1
	if cmd.ProcessState != nil {
		exitCode = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() == context.DeadlineExceeded && err != nil {
		err = fmt.Errorf("%s timed out after %s: %w", name, opts.Timeout, err)
	}
	return o.Bytes(), e.Bytes(), exitCode, err
}

// boundedBuffer keeps the first max bytes and drops the rest.
type boundedBuffer struct {
	bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return printable(lines[len(lines)-1])
}

// ParseChecksum returns the hex digest of a "sha256:<hex>" checksum.
func ParseChecksum(s string) (string, error) {
	algo, digest, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || !strings.EqualFold(algo, "sha256") {
		return "", fmt.Errorf("checksum %q: want sha256:<64 hex digits>", printable(s))
	}
	digest = strings.ToLower(digest)
	if b, err := hex.DecodeString(digest); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("checksum %q: digest is not 64 hex digits", printable(s))
	}
	return digest, nil
}

// VerifySHA256 hashes the file and compares it with the checksum
// ("sha256:<hex>"). It returns the computed digest.
func VerifySHA256(ctx context.Context, path, checksum string) (string, error) {
	if _, err := ParseChecksum(checksum); err != nil {
		return "", &Error{Code: result.CodeImageChecksum, Path: path, Msg: "cannot verify", Err: err}
	}
	f, err := os.Open(path)
	if err != nil {
		return "", &Error{Code: result.CodeImageUnreadable, Path: path, Msg: "open for checksum", Err: err}
	}
	defer f.Close()
	return VerifySHA256Reader(ctx, f, path, checksum)
}

// VerifySHA256Reader is VerifySHA256 for the image's bytes read from r (a
// streamed object, read in order); name is the image in errors.
func VerifySHA256Reader(ctx context.Context, r io.Reader, name, checksum string) (string, error) {
	want, err := ParseChecksum(checksum)
	if err != nil {
		return "", &Error{Code: result.CodeImageChecksum, Path: name, Msg: "cannot verify", Err: err}
	}
	h := sha256.New()
	if _, err := io.Copy(h, &ctxReader{ctx: ctx, r: r}); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", &Error{Code: result.CodeImageUnreadable, Path: name, Msg: "read for checksum", Err: err}
	}
	got := hex.EncodeToString(h.Sum(nil))
	if got != want {
		return got, newErr(result.CodeImageChecksum, name, "sha256 is %s, spec says %s", got, want)
	}
	return got, nil
}

// ctxReader stops a long hash of a large image when the job is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
