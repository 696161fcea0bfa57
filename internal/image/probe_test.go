package image

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"guestkit.io/batch/internal/result"
)

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("qemu-img", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
	}
}

// rawDisk writes a small raw disk with an MBR partition table and some data,
// so that converted images have allocated clusters.
func rawDisk(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "disk.raw")
	b := make([]byte, 4<<20)
	b[446+4] = 0x83 // one Linux partition
	b[446+8] = 1
	b[446+12] = 0x10
	b[510], b[511] = 0x55, 0xaa
	if _, err := rand.Read(b[1<<20 : 3<<20]); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProbe(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img is required (scripts/setup.sh installs it)")
	}
	dir := t.TempDir()
	raw := rawDisk(t, dir)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	conv := func(fmtName, name string, extra ...string) string {
		p := filepath.Join(dir, name)
		args := append([]string{"convert", "-f", "raw", "-O", fmtName}, extra...)
		qemuImg(t, append(args, raw, p)...)
		return p
	}
	qcow2 := conv("qcow2", "disk.qcow2")
	random := make([]byte, 1<<20)
	rand.Read(random)
	truncated := func() string {
		data, err := os.ReadFile(qcow2)
		if err != nil {
			t.Fatal(err)
		}
		return write("trunc.qcow2", data[:len(data)/2])
	}()
	backing := filepath.Join(dir, "backing.qcow2")
	qemuImg(t, "create", "-f", "qcow2", "-u", "-F", "raw", "-b", "/etc/shadow", backing, "1G")
	backingJSON := filepath.Join(dir, "backing-json.qcow2")
	qemuImg(t, "create", "-f", "qcow2", "-u", "-F", "raw", "-b", `json:{"file.driver":"file","file.filename":"/etc/shadow"}`, backingJSON, "1G")
	dataFile := filepath.Join(dir, "datafile.qcow2")
	qemuImg(t, "create", "-f", "qcow2", "-o", "data_file="+filepath.Join(dir, "data.raw")+",data_file_raw=on", dataFile, "10M")
	descriptor := write("desc.vmdk", []byte("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW 2048 FLAT \"/etc/shadow\" 0\n"))
	split := conv("vmdk", "split.vmdk", "-o", "subformat=twoGbMaxExtentSparse")

	tests := []struct {
		name, path, declared string
		wantFormat           string
		wantCode             result.Code
		wantMsg              string
	}{
		{"qcow2", qcow2, "qcow2", FormatQCOW2, "", ""},
		{"qcow2 undeclared", qcow2, "", FormatQCOW2, "", ""},
		{"raw mbr", raw, "", FormatRaw, "", ""},
		{"vmdk monolithic", conv("vmdk", "disk.vmdk"), "vmdk", FormatVMDK, "", ""},
		{"vmdk stream", conv("vmdk", "stream.vmdk", "-o", "subformat=streamOptimized"), "", FormatVMDK, "", ""},
		{"vdi", conv("vdi", "disk.vdi"), "vdi", FormatVDI, "", ""},
		{"vhdx", conv("vhdx", "disk.vhdx"), "vhdx", FormatVHDX, "", ""},
		{"vpc dynamic", conv("vpc", "disk.vhd"), "vhd", FormatVPC, "", ""},
		{"vpc fixed", conv("vpc", "fixed.vhd", "-o", "subformat=fixed"), "vpc", FormatVPC, "", ""},
		{"missing", filepath.Join(dir, "nope.qcow2"), "", "", result.CodeImageNotFound, "no such file"},
		{"empty", write("empty.img", nil), "", "", result.CodeImageEmpty, "0 bytes"},
		{"random", write("random.img", random), "", FormatRaw, result.CodeImageFormat, "unrecognised binary data"},
		{"text", write("text.img", []byte(strings.Repeat("hello world\n", 200))), "", FormatRaw, result.CodeImageFormat, "text file"},
		{"truncated qcow2", truncated, "qcow2", FormatQCOW2, result.CodeImageCorrupt, "qemu-img check"},
		{"backing file", backing, "qcow2", FormatQCOW2, result.CodeImageBackingFile, `"/etc/shadow"`},
		{"backing json", backingJSON, "qcow2", FormatQCOW2, result.CodeImageBackingFile, "json:"},
		{"external data file", dataFile, "qcow2", FormatQCOW2, result.CodeImageBackingFile, "external data file"},
		{"vmdk descriptor", descriptor, "vmdk", FormatVMDK, result.CodeImageBackingFile, "descriptor"},
		{"vmdk split", split, "vmdk", FormatVMDK, result.CodeImageBackingFile, "extents are other files"},
		{"declared mismatch", qcow2, "raw", FormatQCOW2, result.CodeImageFormatMismatch, `declares format "raw"`},
		{"declared raw, unknown content", write("unknown.img", random), "raw", FormatRaw, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			facts, err := Probe(context.Background(), tc.path, ProbeOptions{DeclaredFormat: tc.declared})
			if got := CodeOf(err); got != tc.wantCode {
				t.Fatalf("code = %q, want %q (err: %v)", got, tc.wantCode, err)
			}
			if tc.wantCode != "" {
				if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), tc.path) {
					t.Errorf("error %q should name the file and contain %q", err, tc.wantMsg)
				}
				if tc.wantFormat != "" && (facts == nil || facts.Format != tc.wantFormat) {
					t.Errorf("facts = %+v, want format %s", facts, tc.wantFormat)
				}
				return
			}
			if facts.Format != tc.wantFormat {
				t.Errorf("format = %q, want %q", facts.Format, tc.wantFormat)
			}
			if facts.VirtualSize < 1<<20 {
				t.Errorf("virtual size = %d, want >= 1 MiB", facts.VirtualSize)
			}
		})
	}
}

func TestProbeMaxVirtualSize(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big.qcow2")
	qemuImg(t, "create", "-f", "qcow2", p, "10G")
	_, err := Probe(context.Background(), p, ProbeOptions{MaxVirtualSize: 1 << 30})
	if CodeOf(err) != result.CodeImageTooLarge || !strings.Contains(err.Error(), "10737418240") {
		t.Fatalf("err = %v, want image_too_large naming the size", err)
	}
}

func TestVerifySHA256(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	data := []byte("disk bytes")
	os.WriteFile(p, data, 0o644)
	sum := sha256.Sum256(data)
	good := "sha256:" + hex.EncodeToString(sum[:])
	got, err := VerifySHA256(context.Background(), p, strings.ToUpper(good[:6])+good[6:])
	if err != nil || got != hex.EncodeToString(sum[:]) {
		t.Fatalf("good checksum: got %q, %v", got, err)
	}
	bad := "sha256:" + strings.Repeat("0", 64)
	if _, err := VerifySHA256(context.Background(), p, bad); CodeOf(err) != result.CodeImageChecksum || !strings.Contains(err.Error(), hex.EncodeToString(sum[:])) {
		t.Fatalf("mismatch: err = %v", err)
	}
	for _, c := range []string{"sha256:abc123...", "md5:d41d8cd98f00b204e9800998ecf8427e", "abc"} {
		if _, err := VerifySHA256(context.Background(), p, c); CodeOf(err) != result.CodeImageChecksum {
			t.Errorf("%q: err = %v, want checksum error", c, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := VerifySHA256(ctx, p, good); err != context.Canceled {
		t.Errorf("cancelled: err = %v", err)
	}
}

func FuzzSniff(f *testing.F) {
	f.Add([]byte("QFI\xfb\x00\x00\x00\x03"))
	f.Add([]byte("KDMV\x01\x00\x00\x00"))
	f.Add([]byte("# Disk DescriptorFile\ncreateType=\"monolithicFlat\"\n"))
	f.Add([]byte("conectix"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Sniff(bytesReaderAt(b), int64(len(b)), "fuzz")
	})
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, os.ErrClosed
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, nil
	}
	return n, nil
}
