package squashfs

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz/lzma"

	"guestkit.io/batch/internal/filesystem"
)

// Squashfs compressor ids.
const (
	compGzip = 1
	compLZMA = 2
	compLZO  = 3
	compXZ   = 4
	compLZ4  = 5
	compZstd = 6
)

var compNames = map[uint16]string{compGzip: "gzip", compLZMA: "lzma", compLZO: "lzo", compXZ: "xz", compLZ4: "lz4", compZstd: "zstd"}

// decompressor decompresses one block into at most limit bytes; more is
// corrupt (a block never holds more than the block size, a metadata
// block more than 8 KiB).
type decompressor func(in []byte, limit int) ([]byte, error)

var errTooLong = errors.New("decompresses to more than its bound")

func newDecompressor(id uint16, opts []byte) (decompressor, error) {
	switch id {
	case compGzip:
		return inflate, nil
	case compXZ:
		if len(opts) >= 8 && binary.LittleEndian.Uint32(opts[4:]) != 0 {
			return nil, fmt.Errorf("xz with branch/call/jump filters %#x: %w", binary.LittleEndian.Uint32(opts[4:]), filesystem.ErrUnsupported)
		}
		return unxz, nil
	case compLZ4:
		if len(opts) >= 4 && binary.LittleEndian.Uint32(opts) != 1 {
			return nil, fmt.Errorf("lz4 format version %d: %w", binary.LittleEndian.Uint32(opts), filesystem.ErrUnsupported)
		}
		return unlz4, nil
	case compZstd:
		// The window a frame may ask for is bounded, as the output is:
		// squashfs compresses each block alone, so no legitimate frame
		// needs a window larger than the largest block.
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(2<<20), zstd.WithDecoderMaxMemory(4<<20))
		if err != nil {
			return nil, err
		}
		return func(in []byte, limit int) ([]byte, error) {
			out, err := d.DecodeAll(in, make([]byte, 0, limit))
			if err != nil {
				return nil, err
			}
			if len(out) > limit {
				return nil, errTooLong
			}
			return out, nil
		}, nil
	case compLZO:
		return func(in []byte, limit int) ([]byte, error) {
			out := make([]byte, limit)
			n, err := lzo1x(in, out)
			return out[:n], err
		}, nil
	}
	name := compNames[id]
	if name == "" {
		name = fmt.Sprint(id)
	}
	return nil, fmt.Errorf("compressor %s: %w", name, filesystem.ErrUnsupported)
}

func readBounded(r io.Reader, limit int) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(out) > limit {
		return nil, errTooLong
	}
	return out, nil
}

// inflate is squashfs's "gzip": a zlib stream.
func inflate(in []byte, limit int) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(in))
	if err != nil {
		return nil, err
	}
	return readBounded(zr, limit)
}

func unlz4(in []byte, limit int) ([]byte, error) {
	out := make([]byte, limit)
	n, err := lz4.UncompressBlock(in, out)
	if err != nil {
		return nil, err
	}
	return out[:n], nil
}

// unxz reads the xz stream of one block. The xz container is parsed here
// so that the LZMA2 dictionary is allocated at the block's bound rather
// than at whatever size the stream's header claims: no match can reach
// further back than the output, which the bound caps.
func unxz(in []byte, limit int) ([]byte, error) {
	if len(in) < 12 || string(in[:6]) != "\xfd7zXZ\x00" {
		return nil, errors.New("xz: bad stream header")
	}
	b := in[12:]
	if len(b) < 1 || b[0] == 0 {
		return nil, errors.New("xz: no block")
	}
	hsize := (int(b[0]) + 1) * 4
	if len(b) < hsize {
		return nil, errors.New("xz: short block header")
	}
	h := b[1 : hsize-4]
	flags := h[0]
	h = h[1:]
	if flags&0x3 != 0 {
		return nil, fmt.Errorf("xz: %d filters: %w", flags&3+1, filesystem.ErrUnsupported)
	}
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} {
		if present {
			if _, n := binary.Uvarint(h); n <= 0 {
				return nil, errors.New("xz: bad block size field")
			} else {
				h = h[n:]
			}
		}
	}
	id, n := binary.Uvarint(h)
	if n <= 0 || id != 0x21 {
		return nil, fmt.Errorf("xz: filter %#x: %w", id, filesystem.ErrUnsupported)
	}
	zr, err := lzma.Reader2Config{DictCap: max(limit, lzma.MinDictCap)}.NewReader2(bytes.NewReader(b[hsize:]))
	if err != nil {
		return nil, err
	}
	return readBounded(zr, limit)
}
