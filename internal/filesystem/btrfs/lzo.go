package btrfs

import (
	"encoding/binary"
	"errors"
)

// No Go library of the field reads LZO1X with the kernel's checks, and the
// format is small: this follows lib/lzo/lzo1x_decompress_safe.c (with its
// LZO-RLE extension), checking every read and write against the buffers.

var (
	errLZOInput  = errors.New("lzo1x: input overrun")
	errLZOOutput = errors.New("lzo1x: output overrun")
	errLZOBehind = errors.New("lzo1x: match before the start of the output")
	errLZOEnd    = errors.New("lzo1x: bad end of stream")
)

// lzo1x decompresses in into out and returns the bytes written. The
// stream must end with its end marker exactly at the end of in.
func lzo1x(in, out []byte) (int, error) {
	ip, op := 0, 0
	version := 0
	if len(in) >= 5 && in[0] == 17 {
		version, ip = int(in[1]), 2
	}
	literals := func(n int) error {
		if len(in)-ip < n {
			return errLZOInput
		}
		if len(out)-op < n {
			return errLZOOutput
		}
		copy(out[op:], in[ip:ip+n])
		ip += n
		op += n
		return nil
	}
	// run reads a length extension: each zero byte adds 255, then the
	// next byte and base.
	run := func(base int) (int, error) {
		start := ip
		for ip < len(in) && in[ip] == 0 {
			ip++
		}
		if ip >= len(in) {
			return 0, errLZOInput
		}
		v := (ip-start)*255 + base + int(in[ip])
		ip++
		return v, nil
	}
	le16 := func() (int, error) {
		if len(in)-ip < 2 {
			return 0, errLZOInput
		}
		return int(binary.LittleEndian.Uint16(in[ip:])), nil
	}

	state := 0
	if ip >= len(in) {
		return 0, errLZOInput
	}
	if in[ip] > 17 {
		t := int(in[ip]) - 17
		ip++
		if err := literals(t); err != nil {
			return 0, err
		}
		state = 4
		if t < 4 {
			state = t
		}
	}
	for {
		if ip >= len(in) {
			return 0, errLZOInput
		}
		t := int(in[ip])
		ip++
		var mpos, length, next int
		switch {
		case t < 16 && state == 0:
			// A literal run.
			if t == 0 {
				v, err := run(15)
				if err != nil {
					return 0, err
				}
				t = v
			}
			if err := literals(t + 3); err != nil {
				return 0, err
			}
			state = 4
			continue
		case t < 16:
			if ip >= len(in) {
				return 0, errLZOInput
			}
			next = t & 3
			if state != 4 {
				mpos, length = op-1-t>>2-int(in[ip])<<2, 2
			} else {
				mpos, length = op-(1+0x0800)-t>>2-int(in[ip])<<2, 3
			}
			ip++
		case t >= 64:
			if ip >= len(in) {
				return 0, errLZOInput
			}
			next = t & 3
			mpos = op - 1 - (t>>2)&7 - int(in[ip])<<3
			length = t>>5 + 1
			ip++
		case t >= 32:
			length = t&31 + 2
			if length == 2 {
				v, err := run(31)
				if err != nil {
					return 0, err
				}
				length += v
			}
			v, err := le16()
			if err != nil {
				return 0, err
			}
			ip += 2
			mpos = op - 1 - v>>2
			next = v & 3
		default: // 16 to 31
			v, err := le16()
			if err != nil {
				return 0, err
			}
			if version != 0 && v&0xfffc == 0xfffc && t&0xf8 == 0x18 {
				// LZO-RLE: a run of zeroes.
				if len(in)-ip < 3 {
					return 0, errLZOInput
				}
				n := (t&7 | int(in[ip+2])<<3) + 4
				if len(out)-op < n {
					return 0, errLZOOutput
				}
				clear(out[op : op+n])
				op += n
				ip += 3
				state = v & 3
				if err := literals(state); err != nil {
					return 0, err
				}
				continue
			}
			mpos = op - (t&8)<<11
			length = t&7 + 2
			if length == 2 {
				r, err := run(7)
				if err != nil {
					return 0, err
				}
				length += r
				if v, err = le16(); err != nil {
					return 0, err
				}
			}
			ip += 2
			mpos -= v >> 2
			next = v & 3
			if mpos == op {
				if length != 3 || ip != len(in) {
					return 0, errLZOEnd
				}
				return op, nil
			}
			mpos -= 0x4000
		}
		if mpos < 0 {
			return 0, errLZOBehind
		}
		if len(out)-op < length {
			return 0, errLZOOutput
		}
		// Byte by byte: a match may overlap its own output.
		for i := 0; i < length; i++ {
			out[op+i] = out[mpos+i]
		}
		op += length
		state = next
		if err := literals(next); err != nil {
			return 0, err
		}
	}
}
