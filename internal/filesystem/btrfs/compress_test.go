package btrfs

import (
	"bytes"
	"compress/zlib"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func testFS() *FS {
	return &FS{sb: &superblock{sectorSize: 4096}}
}

// TestDecompressPadding checks the kernel's rules at the end of a stream:
// bytes after a zstd frame or a zlib stream (sector padding) are not read,
// a stream shorter than the extent leaves zeroes, a longer one is cut.
func TestDecompressPadding(t *testing.T) {
	data := []byte(strings.Repeat("padding test ", 100))
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	zs := enc.EncodeAll(data, nil)
	var zl bytes.Buffer
	w := zlib.NewWriter(&zl)
	w.Write(data)
	w.Close()
	for name, tc := range map[string]struct {
		comp uint8
		src  []byte
	}{
		"zstd":         {compZstd, zs},
		"zstd+zeroes":  {compZstd, append(append([]byte{}, zs...), make([]byte, 4096-len(zs))...)},
		"zstd+garbage": {compZstd, append(append([]byte{}, zs...), "garbage after the frame"...)},
		"zlib+zeroes":  {compZlib, append(append([]byte{}, zl.Bytes()...), make([]byte, 100)...)},
	} {
		for _, ram := range []int{len(data), len(data) + 500, len(data) - 7} {
			out, err := testFS().decompress(tc.comp, tc.src, ram)
			if err != nil {
				t.Errorf("%s into %d: %v", name, ram, err)
				continue
			}
			want := make([]byte, ram)
			copy(want, data)
			if !bytes.Equal(out, want) {
				t.Errorf("%s into %d: wrong bytes", name, ram)
			}
		}
	}
	// btrfs LZO: total length, one segment (a literal run and the end).
	lzo := []byte("\x18\x00\x00\x00\x10\x00\x00\x00\x1dabcdefghijkl\x11\x00\x00")
	if out, err := testFS().decompress(compLZO, lzo, 14); err != nil || string(out) != "abcdefghijkl\x00\x00" {
		t.Errorf("lzo: %q, %v", out, err)
	}
	if _, err := testFS().decompress(compZstd, zs[:len(zs)-3], len(data)); err == nil {
		t.Error("a truncated zstd frame decompressed")
	}
}

// FuzzDecompress feeds the three decompressors arbitrary extents.
func FuzzDecompress(f *testing.F) {
	enc, _ := zstd.NewWriter(nil)
	data := []byte(strings.Repeat("fuzz me ", 300))
	f.Add(uint8(compZstd), enc.EncodeAll(data, nil), uint16(len(data)))
	var zl bytes.Buffer
	w := zlib.NewWriter(&zl)
	w.Write(data)
	w.Close()
	f.Add(uint8(compZlib), zl.Bytes(), uint16(len(data)))
	f.Add(uint8(compLZO), []byte("\x18\x00\x00\x00\x10\x00\x00\x00\x1dabcdefghijkl\x11\x00\x00"), uint16(12))
	f.Fuzz(func(t *testing.T, comp uint8, src []byte, ram uint16) {
		out, err := testFS().decompress(comp%4, src, int(ram))
		if err == nil && len(out) != int(ram) {
			t.Fatalf("%d bytes, want %d", len(out), ram)
		}
	})
}
