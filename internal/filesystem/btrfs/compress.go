package btrfs

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// decompress expands one compressed extent to ram bytes. As in the
// kernel, a stream that ends cleanly before ram bytes leaves zeroes, and
// bytes past ram are not looked at.
func (f *FS) decompress(comp uint8, src []byte, ram int) ([]byte, error) {
	out := make([]byte, ram)
	var err error
	switch comp {
	case compZlib:
		err = inflate(src, out)
	case compZstd:
		err = f.unzstd(src, out)
	case compLZO:
		err = unlzoSegments(src, out, int(f.sb.sectorSize))
	default:
		err = fmt.Errorf("unknown compression %d", comp)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// fill reads r into out until out is full or r ends cleanly.
func fill(r io.Reader, out []byte) error {
	for n := 0; n < len(out); {
		m, err := r.Read(out[n:])
		n += m
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// inflate reads btrfs's zlib: a zlib header, then deflate, whose Adler-32
// trailer the kernel does not check either.
func inflate(src, out []byte) error {
	if len(src) > 2 && src[1]&0x20 == 0 && src[0]&0x0f == 8 && (uint(src[0])<<8|uint(src[1]))%31 == 0 {
		r := flate.NewReader(bytes.NewReader(src[2:]))
		defer r.Close()
		return fill(r, out)
	}
	r, err := zlib.NewReader(bytes.NewReader(src))
	if err != nil {
		return err
	}
	defer r.Close()
	return fill(r, out)
}

// zstdWindow bounds the decoder's memory: btrfs writes windows of at most
// 128 KiB (ZSTD_BTRFS_MAX_WINDOWLOG 17).
const zstdWindow = 1 << 20

func (f *FS) unzstd(src, out []byte) error {
	d, _ := f.zstd.Get().(*zstd.Decoder)
	if d == nil {
		var err error
		d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdWindow), zstd.WithDecoderMaxMemory(maxCompBytes*2))
		if err != nil {
			return err
		}
	}
	defer f.zstd.Put(d)
	// The kernel stops at the end of the first frame; what follows is
	// padding, which the decoder would take for a second frame.
	end, err := zstdFrameEnd(src)
	if err != nil {
		return err
	}
	if err := d.Reset(bytes.NewReader(src[:end])); err != nil {
		return err
	}
	return fill(d, out)
}

// zstdFrameEnd returns where the zstd frame at the start of src ends, by
// its header and block headers (RFC 8878 section 3.1.1).
func zstdFrameEnd(src []byte) (int, error) {
	le := binary.LittleEndian
	if len(src) < 5 || le.Uint32(src) != 0xfd2fb528 {
		return 0, errors.New("zstd: no frame")
	}
	fhd := src[4]
	p := 5
	if fhd&0x20 == 0 { // no single segment: a window descriptor
		p++
	}
	p += []int{0, 1, 2, 4}[fhd&3] // dictionary id
	switch fhd >> 6 {             // frame content size
	case 0:
		if fhd&0x20 != 0 {
			p++
		}
	case 1:
		p += 2
	case 2:
		p += 4
	case 3:
		p += 8
	}
	for {
		if len(src)-p < 3 {
			return 0, errors.New("zstd: block header past the data")
		}
		h := int(src[p]) | int(src[p+1])<<8 | int(src[p+2])<<16
		p += 3
		size := h >> 3
		switch (h >> 1) & 3 {
		case 1: // RLE: one byte
			size = 1
		case 3:
			return 0, errors.New("zstd: reserved block type")
		}
		if size > len(src)-p {
			return 0, errors.New("zstd: block past the data")
		}
		p += size
		if h&1 != 0 {
			break
		}
	}
	if fhd&4 != 0 { // content checksum
		p += 4
	}
	if p > len(src) {
		return 0, errors.New("zstd: checksum past the data")
	}
	return p, nil
}

// unlzoSegments reads btrfs's LZO: a 4-byte total length, then segments
// of a 4-byte length and LZO1X data decompressing to at most a sector;
// a segment header never straddles a sector boundary.
func unlzoSegments(src, out []byte, sector int) error {
	le := binary.LittleEndian
	if len(src) < 4 {
		return errors.New("lzo: no header")
	}
	total := int(le.Uint32(src))
	if total > len(src) || total < 4 {
		return fmt.Errorf("lzo: total length %d of %d bytes", total, len(src))
	}
	maxSeg := sector + sector/16 + 64 + 3 + 2 // lzo1x_worst_compress
	pos, n := 4, 0
	buf := make([]byte, sector)
	for pos < total && n < len(out) {
		if left := sector - pos%sector; left < 4 {
			pos += left
			if pos >= total {
				break
			}
		}
		if total-pos < 4 {
			return fmt.Errorf("lzo: segment header at %d truncated", pos)
		}
		seg := int(le.Uint32(src[pos:]))
		pos += 4
		if seg > maxSeg || seg > total-pos {
			return fmt.Errorf("lzo: segment of %d bytes at %d", seg, pos)
		}
		m, err := lzo1x(src[pos:pos+seg], buf)
		if err != nil {
			return fmt.Errorf("lzo: segment at %d: %w", pos, err)
		}
		n += copy(out[n:], buf[:m])
		pos += seg
	}
	return nil
}
