package btrfs

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"os/exec"
	"strings"
	"testing"
)

// lzopBlocks splits an lzop file into its blocks: each block's bytes and
// its uncompressed size (the same for a stored block).
func lzopBlocks(t *testing.T, b []byte) (blocks [][]byte, sizes []int) {
	t.Helper()
	be := binary.BigEndian
	if len(b) < 9 || !bytes.Equal(b[:9], []byte("\x89LZO\x00\r\n\x1a\n")) {
		t.Fatal("lzop: no magic")
	}
	p := 9
	version := be.Uint16(b[p:])
	p += 4 // version, library version
	if version >= 0x0940 {
		p += 2 // version needed
	}
	p++ // method
	if version >= 0x0940 {
		p++ // level
	}
	flags := be.Uint32(b[p:])
	p += 4
	if flags&0x800 != 0 {
		p += 4 // filter
	}
	p += 8 // mode, mtime
	if version >= 0x0940 {
		p += 4
	}
	p += 1 + int(b[p]) + 4 // name, header checksum
	if flags&0x40 != 0 {
		t.Fatal("lzop: extra field")
	}
	for {
		dst := int(be.Uint32(b[p:]))
		p += 4
		if dst == 0 {
			return blocks, sizes
		}
		src := int(be.Uint32(b[p:]))
		p += 4
		if flags&1 != 0 { // adler32 of the data
			p += 4
		}
		if flags&0x100 != 0 { // crc32 of the data
			p += 4
		}
		if src < dst {
			if flags&2 != 0 {
				p += 4
			}
			if flags&0x200 != 0 {
				p += 4
			}
		}
		blocks, sizes = append(blocks, b[p:p+src]), append(sizes, dst)
		p += src
	}
}

// TestLZO1XAgainstLzop decompresses what lzop (liblzo2's LZO1X-1 and
// LZO1X-999) wrote and compares it with the input.
func TestLZO1XAgainstLzop(t *testing.T) {
	needTools(t, "lzop")
	rnd := rand.New(rand.NewSource(2))
	var mixed bytes.Buffer
	for mixed.Len() < 600<<10 {
		if rnd.Intn(3) == 0 {
			b := make([]byte, rnd.Intn(300))
			rnd.Read(b)
			mixed.Write(b)
		} else {
			mixed.WriteString(strings.Repeat("abcdefgh"[:1+rnd.Intn(8)], 1+rnd.Intn(40)))
		}
	}
	inputs := map[string][]byte{
		"text":  []byte(strings.Repeat("lorem ipsum dolor sit amet, consectetur\n", 20000)),
		"zeros": make([]byte, 700<<10),
		"mixed": mixed.Bytes(),
		"short": []byte("abcabcabcabcabcabcabcabcabcabcX"),
	}
	for name, in := range inputs {
		for _, level := range []string{"-1", "-9"} {
			cmd := exec.Command("lzop", level, "-c", "-n")
			cmd.Stdin = bytes.NewReader(in)
			z, err := cmd.Output()
			if err != nil {
				t.Fatalf("lzop: %v", err)
			}
			blocks, sizes := lzopBlocks(t, z)
			var got []byte
			for i, b := range blocks {
				if len(b) == sizes[i] {
					got = append(got, b...) // stored
					continue
				}
				out := make([]byte, sizes[i])
				n, err := lzo1x(b, out)
				if err != nil || n != sizes[i] {
					t.Fatalf("%s %s block %d: %d bytes, %v", name, level, i, n, err)
				}
				got = append(got, out...)
				// Every shorter output buffer and every truncated input
				// fails cleanly.
				if _, err := lzo1x(b, out[:n-1]); err == nil {
					t.Errorf("%s %s block %d: no error with a short output", name, level, i)
				}
				if _, err := lzo1x(b[:len(b)-1], out); err == nil {
					t.Errorf("%s %s block %d: no error with a truncated input", name, level, i)
				}
			}
			if !bytes.Equal(in, got) {
				t.Errorf("%s %s: decompressed bytes differ from the input", name, level)
			}
		}
	}
}

// FuzzLZO1X checks that no input makes the decompressor panic or write
// past its buffer.
func FuzzLZO1X(f *testing.F) {
	f.Add([]byte("\x11\x00\x00"))
	f.Add([]byte("\x1aabcdefghi\x11\x00\x00"))
	f.Add([]byte("\x00\x00\x05abcdefghijklmnopqrstuvwxyz\x20\x00\x00\x11\x00\x00"))
	f.Add([]byte("\x11\x01\x18\xff\xff\x05\x11\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := make([]byte, 4096)
		n, err := lzo1x(in, out)
		if err == nil && (n < 0 || n > len(out)) {
			t.Fatalf("wrote %d bytes", n)
		}
		_ = unlzoSegments(in, out, 4096)
	})
}
