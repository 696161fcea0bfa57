package block

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// The server side of the protocol, beyond what the client uses (nbd.go).
const (
	nbdOptExportName       = 1
	nbdOptAbort            = 2
	nbdOptList             = 3
	nbdOptInfo             = 6
	nbdRepServer           = 2
	nbdRepErrUnsup         = nbdRepErr | 1
	nbdRepErrInvalid       = nbdRepErr | 3
	nbdRepErrUnknown       = nbdRepErr | 6
	nbdInfoName            = 1
	nbdTransSendFlush      = 1 << 2
	nbdTransCanMultiConn   = 1 << 8
	nbdCmdWrite            = 1
	nbdCmdFlush            = 3
	nbdCmdTrim             = 4
	nbdCmdWriteZeroes      = 6
	nbdEPERM               = 1
	nbdEIO                 = 5
	nbdEINVAL              = 22
	nbdMaxString           = 4096 // the protocol's limit on names and messages
	nbdMaxOptionData       = 4 + nbdMaxString + 2 + 2*64
	nbdMaxOptions          = 256 // per connection: a real client sends a handful
	nbdServerPreferredSize = 64 << 10
)

// ExportOptions tune Export. The zero value is good.
type ExportOptions struct {
	// Name is the export's name (default "disk"). A client may also ask
	// for the default export, "".
	Name string
	// MaxConnections bounds the connections served at once (default 8);
	// more wait in the listen backlog until one ends.
	MaxConnections int
	// MaxInFlight bounds the requests of one connection handled at once
	// (default 16): a slow device (HTTP) serves a pipelining client's
	// reads in parallel.
	MaxInFlight int
	// MaxInFlightBytes bounds the read buffers of all connections
	// together (default 64 MiB; at least one 32 MiB request).
	MaxInFlightBytes int64
	// HandshakeTimeout bounds a connection's negotiation (default 10 s).
	HandshakeTimeout time.Duration
	// WriteTimeout bounds sending one reply: a client that stops reading
	// is dropped (default 60 s).
	WriteTimeout time.Duration
	// Logger gets a line per connection (default: none).
	Logger *logrus.Entry
}

// ExportStats count what an export served since Export.
type ExportStats struct {
	Connections int64 // connections accepted
	Requests    int64 // commands received after the handshake
	Reads       int64 // read commands answered with data
	BytesRead   int64 // bytes those replies carried
	Errors      int64 // commands answered with an error
}

// Exported is a Device served read-only over NBD on a unix socket in a
// private directory (mode 0700), for qemu's format drivers, qemu-img and
// the libguestfs appliance. Every connection may pipeline its requests;
// they are read from the device concurrently, a bounded number at a time.
//
// The server speaks the fixed newstyle handshake (NBD_OPT_GO, INFO,
// EXPORT_NAME, LIST, ABORT; anything else, structured replies included,
// is answered NBD_REP_ERR_UNSUP) and simple replies. It advertises
// READ_ONLY, SEND_FLUSH and CAN_MULTI_CONN, and block sizes 1 / 64 KiB /
// 32 MiB. Writes and trims get EPERM, other commands EINVAL, a request
// past the end or over 32 MiB EINVAL, a failed device read EIO; a bad
// request magic ends the connection.
type Exported struct {
	dev  Device
	size int64
	name string
	dir  string
	sock string
	opts ExportOptions
	ln   *net.UnixListener
	log  *logrus.Entry

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	stop   func() bool // the caller's ctx watch
	budget *byteBudget

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	first error // the device's first read error
	wg    sync.WaitGroup

	connections, requests, reads, bytesRead, errs atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// Export serves dev read-only over NBD on a unix socket in a fresh private
// directory until Close or the end of ctx. The device's reads are not
// interrupted by Close: a read under way finishes (the device's own
// timeouts bound it) and its reply is dropped.
func Export(ctx context.Context, dev Device, opts ExportOptions) (*Exported, error) {
	size := dev.Size()
	if size < 0 || size > nbdMaxSize {
		return nil, fmt.Errorf("nbd export: device size %d out of range", size)
	}
	opts.Name = cmp.Or(opts.Name, exportName)
	if len(opts.Name) > nbdMaxString {
		return nil, fmt.Errorf("nbd export: name of %d bytes, more than %d", len(opts.Name), nbdMaxString)
	}
	opts.MaxConnections = cmp.Or(max(opts.MaxConnections, 0), 8)
	opts.MaxInFlight = cmp.Or(max(opts.MaxInFlight, 0), 16)
	opts.MaxInFlightBytes = max(opts.MaxInFlightBytes, 0)
	if opts.MaxInFlightBytes == 0 {
		opts.MaxInFlightBytes = 64 << 20
	}
	opts.MaxInFlightBytes = max(opts.MaxInFlightBytes, nbdMaxRequest)
	opts.HandshakeTimeout = cmp.Or(max(opts.HandshakeTimeout, 0), 10*time.Second)
	opts.WriteTimeout = cmp.Or(max(opts.WriteTimeout, 0), 60*time.Second)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "guestkit-nbd-") // mode 0700: the socket is ours alone
	if err != nil {
		return nil, fmt.Errorf("nbd export: %w", err)
	}
	sock := filepath.Join(dir, "nbd.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("nbd export: %w", err)
	}
	e := &Exported{
		dev: dev, size: size, name: opts.Name, dir: dir, sock: sock, opts: opts, ln: ln,
		budget: &byteBudget{free: opts.MaxInFlightBytes},
		conns:  map[net.Conn]struct{}{},
	}
	if opts.Logger != nil {
		e.log = opts.Logger.WithField("socket", sock)
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.stop = context.AfterFunc(ctx, func() { _ = e.Close() })
	e.wg.Add(1)
	go e.accept()
	return e, nil
}

// Socket is the path of the unix socket.
func (e *Exported) Socket() string { return e.sock }

// Name is the export's name.
func (e *Exported) Name() string { return e.name }

// URI is the export's NBD URI, as qemu and libnbd take it.
func (e *Exported) URI() string {
	return "nbd+unix:///" + url.PathEscape(e.name) + "?socket=" + url.QueryEscape(e.sock)
}

// Err is the first error a read of the device returned (the client got
// EIO), or nil: the real cause behind a client's "Input/output error".
func (e *Exported) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.first
}

// Stats returns the counters so far.
func (e *Exported) Stats() ExportStats {
	return ExportStats{
		Connections: e.connections.Load(),
		Requests:    e.requests.Load(),
		Reads:       e.reads.Load(),
		BytesRead:   e.bytesRead.Load(),
		Errors:      e.errs.Load(),
	}
}

// Close stops listening, closes every connection and removes the socket's
// directory. It is safe to call twice.
func (e *Exported) Close() error {
	e.closeOnce.Do(func() {
		e.stop()
		e.cancel()
		e.closeErr = e.ln.Close()
		e.mu.Lock()
		for c := range e.conns {
			c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
		if err := os.RemoveAll(e.dir); err != nil && e.closeErr == nil {
			e.closeErr = err
		}
		if errors.Is(e.closeErr, net.ErrClosed) {
			e.closeErr = nil
		}
	})
	return e.closeErr
}

func (e *Exported) logf(format string, args ...any) {
	if e.log != nil {
		e.log.Debugf(format, args...)
	}
}

func (e *Exported) accept() {
	defer e.wg.Done()
	slots := make(chan struct{}, e.opts.MaxConnections)
	for {
		// A slot first: clients over the cap wait in the backlog.
		select {
		case slots <- struct{}{}:
		case <-e.ctx.Done():
			return
		}
		conn, err := e.ln.Accept()
		if err != nil {
			if e.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				e.logf("nbd export: accept: %v", err)
			}
			return
		}
		e.mu.Lock()
		if e.ctx.Err() != nil {
			e.mu.Unlock()
			conn.Close()
			return
		}
		e.conns[conn] = struct{}{}
		e.wg.Add(1)
		e.mu.Unlock()
		e.connections.Add(1)
		go func() {
			defer e.wg.Done()
			defer func() { <-slots }()
			e.serve(conn)
			e.mu.Lock()
			delete(e.conns, conn)
			e.mu.Unlock()
		}()
	}
}

// serveConn is one client's connection.
type serveConn struct {
	e    *Exported
	conn net.Conn
	r    *bufio.Reader
	wmu  sync.Mutex // replies are written whole, one at a time
	werr error      // the first failed write: the connection is done
	ctx  context.Context
}

func (e *Exported) serve(conn net.Conn) {
	defer conn.Close()
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	c := &serveConn{e: e, conn: conn, r: bufio.NewReaderSize(conn, 64<<10), ctx: ctx}
	start := time.Now()
	before := e.Stats()
	if err := conn.SetDeadline(start.Add(e.opts.HandshakeTimeout)); err != nil {
		return
	}
	ok, err := c.handshake()
	if err != nil || !ok {
		if err != nil && ctx.Err() == nil {
			e.logf("nbd export: handshake: %v", err)
		}
		return
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return
	}
	err = c.transmit()
	after := e.Stats()
	if err != nil && ctx.Err() == nil {
		e.logf("nbd export: connection ends after %s: %v", time.Since(start).Round(time.Millisecond), err)
	} else {
		// Counters are the export's: with several connections at once
		// they include the others' requests.
		e.logf("nbd export: connection closed after %s (%d requests, %d bytes read)",
			time.Since(start).Round(time.Millisecond), after.Requests-before.Requests, after.BytesRead-before.BytesRead)
	}
}

// handshake negotiates the export; ok means transmission begins.
func (c *serveConn) handshake() (ok bool, err error) {
	g := binary.BigEndian.AppendUint64(nil, nbdMagic)
	g = binary.BigEndian.AppendUint64(g, nbdOptMagic)
	g = binary.BigEndian.AppendUint16(g, nbdFlagFixedNewstyle|nbdFlagNoZeroes)
	if _, err := c.conn.Write(g); err != nil {
		return false, fmt.Errorf("send greeting: %w", err)
	}
	var b [16]byte
	if _, err := io.ReadFull(c.r, b[:4]); err != nil {
		return false, fmt.Errorf("read client flags: %w", err)
	}
	cflags := binary.BigEndian.Uint32(b[:4])
	if cflags&^(nbdFlagFixedNewstyle|nbdFlagNoZeroes) != 0 || cflags&nbdFlagFixedNewstyle == 0 {
		return false, fmt.Errorf("client flags %#x: unknown, or not fixed newstyle", cflags)
	}
	noZeroes := cflags&nbdFlagNoZeroes != 0
	for range nbdMaxOptions {
		if _, err := io.ReadFull(c.r, b[:16]); err != nil {
			return false, fmt.Errorf("read option: %w", err)
		}
		if m := binary.BigEndian.Uint64(b[:]); m != nbdOptMagic {
			return false, fmt.Errorf("option magic %#x", m)
		}
		opt, n := binary.BigEndian.Uint32(b[8:]), binary.BigEndian.Uint32(b[12:])
		if n > nbdMaxOptionData {
			return false, fmt.Errorf("option %d with %d bytes of data, more than %d", opt, n, nbdMaxOptionData)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(c.r, data); err != nil {
			return false, fmt.Errorf("read option %d data: %w", opt, err)
		}
		switch opt {
		case nbdOptExportName:
			if !c.isOurs(data) {
				return false, fmt.Errorf("NBD_OPT_EXPORT_NAME %q: no such export", printable(string(data)))
			}
			msg := binary.BigEndian.AppendUint64(nil, uint64(c.e.size))
			msg = binary.BigEndian.AppendUint16(msg, c.transFlags())
			if !noZeroes {
				msg = append(msg, make([]byte, 124)...)
			}
			if _, err := c.conn.Write(msg); err != nil {
				return false, err
			}
			return true, nil
		case nbdOptAbort:
			_ = c.optReply(opt, nbdRepAck, nil) // best effort: the client may be gone
			return false, nil
		case nbdOptList:
			if n != 0 {
				err = c.optError(opt, nbdRepErrInvalid, "NBD_OPT_LIST takes no data")
				break
			}
			srv := binary.BigEndian.AppendUint32(nil, uint32(len(c.e.name)))
			if err = c.optReply(opt, nbdRepServer, append(srv, c.e.name...)); err == nil {
				err = c.optReply(opt, nbdRepAck, nil)
			}
		case nbdOptInfo, nbdOptGo:
			var done bool
			if done, err = c.infoGo(opt, data); done && err == nil {
				return true, nil
			}
		default:
			err = c.optError(opt, nbdRepErrUnsup, "option not supported")
		}
		if err != nil {
			return false, err
		}
	}
	return false, fmt.Errorf("more than %d options", nbdMaxOptions)
}

func (c *serveConn) isOurs(name []byte) bool {
	return len(name) == 0 || string(name) == c.e.name
}

func (c *serveConn) transFlags() uint16 {
	return nbdTransHasFlags | nbdTransReadOnly | nbdTransSendFlush | nbdTransCanMultiConn
}

// infoGo answers NBD_OPT_INFO and NBD_OPT_GO; done means GO succeeded.
func (c *serveConn) infoGo(opt uint32, data []byte) (done bool, err error) {
	be := binary.BigEndian
	if len(data) < 6 {
		return false, c.optError(opt, nbdRepErrInvalid, "short request")
	}
	nameLen := be.Uint32(data)
	if uint64(nameLen)+6 > uint64(len(data)) {
		return false, c.optError(opt, nbdRepErrInvalid, "name longer than the request")
	}
	name := data[4 : 4+nameLen]
	rest := data[4+nameLen:]
	nInfo := int(be.Uint16(rest))
	if len(rest) != 2+2*nInfo {
		return false, c.optError(opt, nbdRepErrInvalid, "information requests do not fill the request")
	}
	if !c.isOurs(name) {
		return false, c.optError(opt, nbdRepErrUnknown, "no such export")
	}
	info := be.AppendUint16(nil, nbdInfoExport)
	info = be.AppendUint64(info, uint64(c.e.size))
	info = be.AppendUint16(info, c.transFlags())
	if err := c.optReply(opt, nbdRepInfo, info); err != nil {
		return false, err
	}
	// Block sizes are sent unasked, as the protocol allows: any byte
	// range can be read, but 64 KiB pieces suit a remote device.
	bs := be.AppendUint16(nil, nbdInfoBlockSize)
	bs = be.AppendUint32(bs, 1)
	bs = be.AppendUint32(bs, nbdServerPreferredSize)
	bs = be.AppendUint32(bs, nbdMaxRequest)
	if err := c.optReply(opt, nbdRepInfo, bs); err != nil {
		return false, err
	}
	for i := range nInfo {
		if be.Uint16(rest[2+2*i:]) == nbdInfoName {
			if err := c.optReply(opt, nbdRepInfo, append(be.AppendUint16(nil, nbdInfoName), c.e.name...)); err != nil {
				return false, err
			}
			break
		}
	}
	if err := c.optReply(opt, nbdRepAck, nil); err != nil {
		return false, err
	}
	return opt == nbdOptGo, nil
}

func (c *serveConn) optReply(opt, typ uint32, data []byte) error {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 20+len(data)), nbdOptReplyMag)
	b = binary.BigEndian.AppendUint32(b, opt)
	b = binary.BigEndian.AppendUint32(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	_, err := c.conn.Write(append(b, data...))
	return err
}

func (c *serveConn) optError(opt, typ uint32, msg string) error {
	return c.optReply(opt, typ, []byte(msg))
}

// transmit serves commands until the client disconnects or breaks the
// protocol. Reads run concurrently; everything else is answered in order.
func (c *serveConn) transmit() error {
	var inflight sync.WaitGroup
	slots := make(chan struct{}, c.e.opts.MaxInFlight)
	var hdr [28]byte
	be := binary.BigEndian
	for {
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read request: %w", err)
		}
		if m := be.Uint32(hdr[:]); m != nbdRequestMagic {
			return fmt.Errorf("request magic %#x", m)
		}
		typ := be.Uint16(hdr[6:])
		handle := be.Uint64(hdr[8:])
		off, n := be.Uint64(hdr[16:]), be.Uint32(hdr[24:])
		c.e.requests.Add(1)
		switch typ {
		case nbdCmdRead:
			if n > nbdMaxRequest || off > uint64(c.e.size) || uint64(n) > uint64(c.e.size)-off {
				c.reply(handle, nbdEINVAL)
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-c.ctx.Done():
				return c.ctx.Err()
			}
			if err := c.e.budget.acquire(c.ctx, int64(n)); err != nil {
				<-slots
				return err
			}
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				defer func() { <-slots }()
				defer c.e.budget.release(int64(n))
				c.read(handle, int64(off), int(n))
			}()
		case nbdCmdDisc:
			// The requests under way are answered first.
			done := make(chan struct{})
			go func() { inflight.Wait(); close(done) }()
			select {
			case <-done:
			case <-c.ctx.Done():
			}
			return nil
		case nbdCmdFlush:
			c.reply(handle, 0) // nothing is ever written
		case nbdCmdWrite:
			// The payload follows the request; it is skipped to stay in
			// step, unless it is larger than any request may be.
			if n > nbdMaxRequest {
				return fmt.Errorf("write request of %d bytes", n)
			}
			if _, err := c.r.Discard(int(n)); err != nil {
				return fmt.Errorf("read write payload: %w", err)
			}
			c.reply(handle, nbdEPERM)
		case nbdCmdTrim, nbdCmdWriteZeroes:
			c.reply(handle, nbdEPERM)
		default: // CACHE, BLOCK_STATUS (not negotiated), unknown
			c.reply(handle, nbdEINVAL)
		}
		c.wmu.Lock()
		werr := c.werr
		c.wmu.Unlock()
		if werr != nil {
			return werr
		}
	}
}

// read answers one read command from the device.
func (c *serveConn) read(handle uint64, off int64, n int) {
	buf := make([]byte, 16+n)
	got, err := c.e.dev.ReadAt(buf[16:], off)
	if got == n {
		err = nil // io.EOF with the last byte is a full read
	} else if err == nil || err == io.EOF {
		err = fmt.Errorf("%w (%d of %d bytes)", io.ErrUnexpectedEOF, got, n)
	}
	if err != nil {
		c.e.setErr(fmt.Errorf("nbd export: read of %d bytes at %d: %w", n, off, err))
		c.reply(handle, nbdEIO)
		return
	}
	c.e.reads.Add(1)
	c.e.bytesRead.Add(int64(n))
	c.replyBuf(handle, buf)
}

func (e *Exported) setErr(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.first == nil {
		e.first = err
		e.logf("%v", err)
	}
}

// reply sends a simple reply without data.
func (c *serveConn) reply(handle uint64, errno uint32) {
	if errno != 0 {
		c.e.errs.Add(1)
	}
	b := make([]byte, 16)
	binary.BigEndian.PutUint32(b[4:], errno)
	c.replyBuf(handle, b)
}

// replyBuf sends b, whose first 16 bytes are filled with the reply header
// (the error field is left as it is).
func (c *serveConn) replyBuf(handle uint64, b []byte) {
	binary.BigEndian.PutUint32(b, nbdSimpleMagic)
	binary.BigEndian.PutUint64(b[8:], handle)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return
	}
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.e.opts.WriteTimeout)); err != nil {
		c.werr = err
		return
	}
	if _, err := c.conn.Write(b); err != nil {
		c.werr = fmt.Errorf("send reply: %w", err)
		c.conn.Close() // ends the request loop too
	}
}

// byteBudget bounds the bytes of read buffers held at once.
type byteBudget struct {
	mu   sync.Mutex
	free int64
	wake chan struct{} // closed when bytes are released
}

func (b *byteBudget) acquire(ctx context.Context, n int64) error {
	for {
		b.mu.Lock()
		if b.free >= n {
			b.free -= n
			b.mu.Unlock()
			return nil
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
}
