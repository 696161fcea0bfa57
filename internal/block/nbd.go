package block

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// The subset of the NBD protocol (https://github.com/NetworkBlockDevice/nbd/
// blob/master/doc/proto.md) a read-only client needs: the fixed newstyle
// handshake, NBD_OPT_GO, simple replies, NBD_CMD_READ and NBD_CMD_DISC.
const (
	nbdMagic        = 0x4e42444d41474943 // "NBDMAGIC"
	nbdOptMagic     = 0x49484156454f5054 // "IHAVEOPT"
	nbdOptReplyMag  = 0x0003e889045565a9
	nbdRequestMagic = 0x25609513
	nbdSimpleMagic  = 0x67446698
	nbdStructMagic  = 0x668e33ef

	nbdFlagFixedNewstyle = 1 << 0
	nbdFlagNoZeroes      = 1 << 1

	nbdOptGo = 7

	nbdRepAck  = 1
	nbdRepInfo = 3
	nbdRepErr  = 1 << 31

	nbdInfoExport    = 0
	nbdInfoBlockSize = 3

	nbdTransHasFlags = 1 << 0
	nbdTransReadOnly = 1 << 1

	nbdCmdRead = 0
	nbdCmdDisc = 2

	// nbdMaxRequest is the largest read sent in one request: 32 MiB is
	// what the protocol says every server accepts.
	nbdMaxRequest = 32 << 20
	// nbdMaxOptReply bounds the data of one option reply (an error
	// message, an export description) and nbdMaxOptReplies their number.
	nbdMaxOptReply   = 64 << 10
	nbdMaxOptReplies = 64
	// nbdMaxSize bounds the export size (qemu's own limit is 2^63-1 rounded
	// to sectors; anything near it would overflow offset arithmetic).
	nbdMaxSize = 1 << 62
)

// nbdClient reads one export over one connection, one request at a time.
type nbdClient struct {
	mu      sync.Mutex
	conn    net.Conn
	timeout time.Duration
	size    int64
	align   int64 // the server's minimum block size, a power of two
	maxReq  int64
	handle  uint64
	broken  error // after a protocol error or a timeout the stream is unusable
	hdr     [28]byte
}

// nbdServerError is an error the server reported for one request; the
// connection stays usable.
type nbdServerError struct {
	Errno uint32
}

func (e *nbdServerError) Error() string {
	return "server error " + nbdErrnoName(e.Errno)
}

func nbdErrnoName(n uint32) string {
	switch n {
	case 1:
		return "EPERM"
	case 5:
		return "EIO"
	case 12:
		return "ENOMEM"
	case 22:
		return "EINVAL"
	case 28:
		return "ENOSPC"
	case 75:
		return "EOVERFLOW"
	case 95:
		return "ENOTSUP"
	case 108:
		return "ESHUTDOWN"
	}
	return fmt.Sprintf("errno %d", n)
}

var errNBDProtocol = errors.New("nbd protocol error")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errNBDProtocol}, args...)...)
}

// nbdHandshake negotiates the export named name on conn and returns a
// client for it. deadline bounds the whole handshake; timeout bounds each
// later request. The export must be read-only.
func nbdHandshake(conn net.Conn, name string, deadline time.Time, timeout time.Duration) (*nbdClient, error) {
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	var b [18]byte
	if _, err := io.ReadFull(conn, b[:18]); err != nil {
		return nil, fmt.Errorf("nbd handshake: read greeting: %w", err)
	}
	if m := binary.BigEndian.Uint64(b[0:]); m != nbdMagic {
		return nil, protoErr("greeting magic %#x, want NBDMAGIC", m)
	}
	if m := binary.BigEndian.Uint64(b[8:]); m != nbdOptMagic {
		return nil, protoErr("greeting magic %#x, want IHAVEOPT (fixed newstyle)", m)
	}
	sflags := binary.BigEndian.Uint16(b[16:])
	if sflags&nbdFlagFixedNewstyle == 0 {
		return nil, protoErr("server flags %#x lack fixed newstyle", sflags)
	}
	cflags := uint32(nbdFlagFixedNewstyle)
	if sflags&nbdFlagNoZeroes != 0 {
		cflags |= nbdFlagNoZeroes
	}
	// Client flags, then NBD_OPT_GO asking for the export's size and
	// flags and its block size constraints.
	msg := binary.BigEndian.AppendUint32(nil, cflags)
	data := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	data = append(data, name...)
	data = binary.BigEndian.AppendUint16(data, 2)
	data = binary.BigEndian.AppendUint16(data, nbdInfoExport)
	data = binary.BigEndian.AppendUint16(data, nbdInfoBlockSize)
	msg = binary.BigEndian.AppendUint64(msg, nbdOptMagic)
	msg = binary.BigEndian.AppendUint32(msg, nbdOptGo)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(data)))
	msg = append(msg, data...)
	if _, err := conn.Write(msg); err != nil {
		return nil, fmt.Errorf("nbd handshake: send NBD_OPT_GO: %w", err)
	}
	c := &nbdClient{conn: conn, timeout: timeout, size: -1, align: 1, maxReq: nbdMaxRequest}
	var rep [20]byte
	for i := 0; ; i++ {
		if i == nbdMaxOptReplies {
			return nil, protoErr("more than %d replies to NBD_OPT_GO", nbdMaxOptReplies)
		}
		if _, err := io.ReadFull(conn, rep[:]); err != nil {
			return nil, fmt.Errorf("nbd handshake: read reply %d to NBD_OPT_GO: %w", i, err)
		}
		if m := binary.BigEndian.Uint64(rep[0:]); m != nbdOptReplyMag {
			return nil, protoErr("option reply %d: magic %#x", i, m)
		}
		if o := binary.BigEndian.Uint32(rep[8:]); o != nbdOptGo {
			return nil, protoErr("option reply %d is for option %d, not NBD_OPT_GO", i, o)
		}
		typ, n := binary.BigEndian.Uint32(rep[12:]), binary.BigEndian.Uint32(rep[16:])
		if n > nbdMaxOptReply {
			return nil, protoErr("option reply %d (type %#x): %d bytes of data, more than %d", i, typ, n, nbdMaxOptReply)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(conn, payload); err != nil {
			return nil, fmt.Errorf("nbd handshake: read reply %d data: %w", i, err)
		}
		switch {
		case typ&nbdRepErr != 0:
			return nil, fmt.Errorf("%w: server refuses export %q: error %#x: %s", errNBDProtocol, printable(name), typ, printable(string(payload)))
		case typ == nbdRepAck:
			if n != 0 {
				return nil, protoErr("NBD_REP_ACK with %d bytes of data", n)
			}
			if c.size < 0 {
				return nil, protoErr("server sent no NBD_INFO_EXPORT")
			}
			if err := conn.SetDeadline(time.Time{}); err != nil {
				return nil, err
			}
			return c, nil
		case typ == nbdRepInfo:
			if err := c.info(payload); err != nil {
				return nil, err
			}
		default:
			return nil, protoErr("unexpected option reply type %#x", typ)
		}
	}
}

func (c *nbdClient) info(p []byte) error {
	if len(p) < 2 {
		return protoErr("NBD_REP_INFO of %d bytes", len(p))
	}
	switch typ := binary.BigEndian.Uint16(p); typ {
	case nbdInfoExport:
		if len(p) != 12 {
			return protoErr("NBD_INFO_EXPORT of %d bytes, want 12", len(p))
		}
		size, flags := binary.BigEndian.Uint64(p[2:]), binary.BigEndian.Uint16(p[10:])
		if size > nbdMaxSize {
			return protoErr("export size %d out of range", size)
		}
		if flags&nbdTransHasFlags == 0 || flags&nbdTransReadOnly == 0 {
			return protoErr("export flags %#x: not read-only", flags)
		}
		c.size = int64(size)
	case nbdInfoBlockSize:
		if len(p) != 14 {
			return protoErr("NBD_INFO_BLOCK_SIZE of %d bytes, want 14", len(p))
		}
		minimum, pref, maximum := binary.BigEndian.Uint32(p[2:]), binary.BigEndian.Uint32(p[6:]), binary.BigEndian.Uint32(p[10:])
		// The cache reads whole aligned chunks, so a minimum up to a
		// chunk is honoured by construction.
		if minimum == 0 || minimum&(minimum-1) != 0 || minimum > chunkSize || maximum < minimum || pref == 0 {
			return protoErr("block sizes min %d, preferred %d, max %d", minimum, pref, maximum)
		}
		c.align = int64(minimum)
		c.maxReq = min(nbdMaxRequest, int64(maximum)) &^ (c.align - 1)
	default:
		// NBD_INFO_NAME, NBD_INFO_DESCRIPTION: not needed.
	}
	return nil
}

// readAt fills p from off. The range must lie inside the export and be
// aligned to c.align.
func (c *nbdClient) readAt(p []byte, off int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return c.broken
	}
	if off < 0 || int64(len(p)) > c.size-off || off%c.align != 0 || int64(len(p))%c.align != 0 && off+int64(len(p)) != c.size {
		return fmt.Errorf("nbd read of %d bytes at %d: outside the export's %d bytes or not aligned to %d", len(p), off, c.size, c.align)
	}
	for len(p) > 0 {
		n := min(int64(len(p)), c.maxReq)
		if err := c.read1(p[:n], off); err != nil {
			var se *nbdServerError
			if !errors.As(err, &se) {
				c.broken = err
			}
			return err
		}
		p, off = p[n:], off+n
	}
	return nil
}

func (c *nbdClient) read1(p []byte, off int64) error {
	c.handle++
	h := c.handle
	b := c.hdr[:28]
	binary.BigEndian.PutUint32(b[0:], nbdRequestMagic)
	binary.BigEndian.PutUint16(b[4:], 0)
	binary.BigEndian.PutUint16(b[6:], nbdCmdRead)
	binary.BigEndian.PutUint64(b[8:], h)
	binary.BigEndian.PutUint64(b[16:], uint64(off))
	binary.BigEndian.PutUint32(b[24:], uint32(len(p)))
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return err
	}
	if _, err := c.conn.Write(b); err != nil {
		return fmt.Errorf("nbd read of %d bytes at %d: send: %w", len(p), off, err)
	}
	b = c.hdr[:16]
	if _, err := io.ReadFull(c.conn, b); err != nil {
		return fmt.Errorf("nbd read of %d bytes at %d: reply: %w", len(p), off, err)
	}
	switch m := binary.BigEndian.Uint32(b); m {
	case nbdSimpleMagic:
	case nbdStructMagic:
		return protoErr("read at %d: structured reply, which was not negotiated", off)
	default:
		return protoErr("read at %d: reply magic %#x", off, m)
	}
	if got := binary.BigEndian.Uint64(b[8:]); got != h {
		return protoErr("read at %d: reply for handle %d, want %d", off, got, h)
	}
	if e := binary.BigEndian.Uint32(b[4:]); e != 0 {
		return fmt.Errorf("nbd read of %d bytes at %d: %w", len(p), off, &nbdServerError{Errno: e})
	}
	if _, err := io.ReadFull(c.conn, p); err != nil {
		return fmt.Errorf("nbd read of %d bytes at %d: data: %w", len(p), off, err)
	}
	return nil
}

// close tells the server goodbye (best effort, bounded) and closes the
// connection.
func (c *nbdClient) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken == nil {
		c.handle++
		b := c.hdr[:28]
		clear(b)
		binary.BigEndian.PutUint32(b[0:], nbdRequestMagic)
		binary.BigEndian.PutUint16(b[6:], nbdCmdDisc)
		binary.BigEndian.PutUint64(b[8:], c.handle)
		if c.conn.SetDeadline(time.Now().Add(time.Second)) == nil {
			_, _ = c.conn.Write(b)
		}
		c.broken = errors.New("nbd connection closed")
	}
	return c.conn.Close()
}

// printable keeps server-sent text safe to log: at most 200 runes, control
// characters escaped.
func printable(s string) string {
	if len(s) > 800 {
		s = s[:800]
	}
	var b strings.Builder
	for i, r := range s {
		if i >= 200 {
			b.WriteString("…")
			break
		}
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			fmt.Fprintf(&b, "\\x%02x", s[i])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
