package squashfs

import (
	"encoding/binary"
	"errors"
)

var (
	errLZOInput  = errors.New("lzo: input overrun")
	errLZOOutput = errors.New("lzo: output overrun")
	errLZOBehind = errors.New("lzo: match before the start of the output")
	errLZOEnd    = errors.New("lzo: bad end of stream")
)

// lzo1x decompresses an LZO1X stream (what squashfs's lzo compressor
// writes, whatever the LZO1X level) into out, which bounds the output,
// and returns the number of bytes written. It follows the format of the
// kernel's lzo1x_decompress_safe, checking every read and write.
func lzo1x(in, out []byte) (int, error) {
	ip, op := 0, 0
	get := func() (int, error) {
		if ip >= len(in) {
			return 0, errLZOInput
		}
		ip++
		return int(in[ip-1]), nil
	}
	// extend adds a length's extension: zero bytes count 255 each, then
	// one byte and base.
	extend := func(t, base int) (int, error) {
		for ip < len(in) && in[ip] == 0 {
			t += 255
			ip++
		}
		b, err := get()
		return t + base + b, err
	}
	literals := func(n int) error {
		if n > len(in)-ip {
			return errLZOInput
		}
		if n > len(out)-op {
			return errLZOOutput
		}
		copy(out[op:], in[ip:ip+n])
		ip += n
		op += n
		return nil
	}
	match := func(dist, n int) error {
		if dist > op {
			return errLZOBehind
		}
		if n > len(out)-op {
			return errLZOOutput
		}
		// Byte by byte: a match may overlap what it writes.
		for i := 0; i < n; i++ {
			out[op] = out[op-dist]
			op++
		}
		return nil
	}
	if len(in) < 3 {
		return 0, errLZOInput
	}
	state := 0
	if in[0] > 17 {
		t := int(in[0]) - 17
		ip = 1
		if err := literals(t); err != nil {
			return op, err
		}
		state = 4
		if t < 4 {
			state = t
		}
	}
	for {
		t, err := get()
		if err != nil {
			return op, err
		}
		var dist, length, next int
		switch {
		case t < 16 && state == 0:
			if t == 0 {
				if t, err = extend(0, 15); err != nil {
					return op, err
				}
			}
			if err := literals(t + 3); err != nil {
				return op, err
			}
			state = 4
			continue
		case t < 16 && state != 4:
			b, err := get()
			if err != nil {
				return op, err
			}
			next, dist, length = t&3, 1+t>>2+b<<2, 2
		case t < 16:
			b, err := get()
			if err != nil {
				return op, err
			}
			next, dist, length = t&3, 1+0x800+t>>2+b<<2, 3
		case t >= 64:
			b, err := get()
			if err != nil {
				return op, err
			}
			next, dist, length = t&3, 1+(t>>2)&7+b<<3, t>>5+1
		case t >= 32:
			length = t&31 + 2
			if length == 2 {
				if length, err = extend(2, 31); err != nil {
					return op, err
				}
			}
			if len(in)-ip < 2 {
				return op, errLZOInput
			}
			v := int(binary.LittleEndian.Uint16(in[ip:]))
			ip += 2
			dist, next = 1+v>>2, v&3
		default: // 16..31
			high := (t & 8) << 11
			length = t&7 + 2
			if length == 2 {
				if length, err = extend(2, 7); err != nil {
					return op, err
				}
			}
			if len(in)-ip < 2 {
				return op, errLZOInput
			}
			v := int(binary.LittleEndian.Uint16(in[ip:]))
			ip += 2
			dist, next = high+v>>2, v&3
			if dist == 0 {
				if length != 3 || ip != len(in) {
					return op, errLZOEnd
				}
				return op, nil
			}
			dist += 0x4000
		}
		if err := match(dist, length); err != nil {
			return op, err
		}
		if err := literals(next); err != nil {
			return op, err
		}
		state = next
	}
}
