package block

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"guestkit.io/batch/internal/prereq"
)

// memDevice is a Device in memory.
type memDevice []byte

func (m memDevice) Size() int64 { return int64(len(m)) }

func (m memDevice) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(m)) {
		return 0, errors.New("memDevice: offset out of range")
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fileDevice is an image file seen only as a Device (as a remote object
// would be), never as a path.
type fileDevice struct {
	f     *os.File
	size  int64
	reads atomic.Int64
}

func openFileDevice(t testing.TB, path string) *fileDevice {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return &fileDevice{f: f, size: st.Size()}
}

func (d *fileDevice) Size() int64 { return d.size }

func (d *fileDevice) ReadAt(p []byte, off int64) (int, error) {
	d.reads.Add(1)
	return d.f.ReadAt(p, off)
}

// faultyDevice fails every read that touches [from, to) with err, and
// delays every read by delay.
type faultyDevice struct {
	Device
	err      error
	from, to int64
	delay    time.Duration
}

func (d *faultyDevice) ReadAt(p []byte, off int64) (int, error) {
	time.Sleep(d.delay)
	if off < d.to && off+int64(len(p)) > d.from {
		return 0, d.err
	}
	return d.Device.ReadAt(p, off)
}

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b
}

func export(t testing.TB, dev Device, opts ExportOptions) *Exported {
	t.Helper()
	e, err := Export(t.Context(), dev, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func dialExport(t testing.TB, e *Exported) *nbdClient {
	t.Helper()
	conn, err := net.Dial("unix", e.Socket())
	if err != nil {
		t.Fatal(err)
	}
	c, err := nbdHandshake(conn, e.Name(), time.Now().Add(5*time.Second), 5*time.Second)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.close() })
	return c
}

// sendRequest writes one raw request (and payload) on conn.
func sendRequest(t testing.TB, conn net.Conn, typ uint16, handle, off uint64, n uint32, payload []byte) {
	t.Helper()
	b := binary.BigEndian.AppendUint32(nil, nbdRequestMagic)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint64(b, handle)
	b = binary.BigEndian.AppendUint64(b, off)
	b = binary.BigEndian.AppendUint32(b, n)
	if _, err := conn.Write(append(b, payload...)); err != nil {
		t.Fatal(err)
	}
}

// readReply reads one simple reply header.
func readReply(t testing.TB, conn net.Conn) (errno uint32, handle uint64) {
	t.Helper()
	var b [16]byte
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		t.Fatalf("read reply: %v", err)
	}
	if m := binary.BigEndian.Uint32(b[:]); m != nbdSimpleMagic {
		t.Fatalf("reply magic %#x", m)
	}
	return binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint64(b[8:])
}

// TestExportReads: our client reads random ranges of a device whose size
// is no multiple of anything, pieces at the end included.
func TestExportReads(t *testing.T) {
	data := randomBytes(5<<20+123, 1)
	e := export(t, memDevice(data), ExportOptions{Name: "a disk/1"})
	c := dialExport(t, e)
	if c.size != int64(len(data)) || c.align != 1 || c.maxReq != nbdMaxRequest {
		t.Fatalf("client sees size %d, align %d, max request %d", c.size, c.align, c.maxReq)
	}
	rng := rand.New(rand.NewPCG(2, 3))
	var bytesRead int64
	for i := range 300 {
		off := rng.Int64N(int64(len(data)))
		n := 1 + rng.Int64N(min(int64(len(data))-off, 200_000))
		if i%50 == 0 {
			off = int64(len(data)) - n // the end
		}
		p := make([]byte, n)
		if err := c.readAt(p, off); err != nil {
			t.Fatalf("read %d at %d: %v", n, off, err)
		}
		if !bytes.Equal(p, data[off:off+n]) {
			t.Fatalf("read %d at %d: bytes differ", n, off)
		}
		bytesRead += n
	}
	st := e.Stats()
	if st.Connections != 1 || st.Requests != 300 || st.Reads != 300 || st.BytesRead != bytesRead || st.Errors != 0 {
		t.Errorf("stats %+v, want 1 connection, 300 reads of %d bytes", st, bytesRead)
	}
	if e.Err() != nil {
		t.Errorf("Err() = %v", e.Err())
	}
	if got, want := e.URI(), "nbd+unix:///a%20disk%2F1?socket="; !strings.HasPrefix(got, want) {
		t.Errorf("URI %s", got)
	}
	fi, err := os.Stat(filepath.Dir(e.Socket()))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("socket directory: %v, %v", fi.Mode(), err)
	}
}

// TestExportRequestErrors: what a read-only export refuses, each answered
// without ending the connection; a bad magic ends it.
func TestExportRequestErrors(t *testing.T) {
	data := randomBytes(1<<20, 4)
	e := export(t, memDevice(data), ExportOptions{})
	c := dialExport(t, e)
	conn := c.conn
	for _, tc := range []struct {
		name    string
		typ     uint16
		off     uint64
		n       uint32
		payload []byte
		errno   uint32
	}{
		{"past the end", nbdCmdRead, 1<<20 - 10, 11, nil, nbdEINVAL},
		{"offset past the end", nbdCmdRead, 1<<20 + 1, 0, nil, nbdEINVAL},
		{"offset overflows", nbdCmdRead, 1<<64 - 1, 2, nil, nbdEINVAL},
		{"too long", nbdCmdRead, 0, nbdMaxRequest + 1, nil, nbdEINVAL},
		{"write", nbdCmdWrite, 0, 5, []byte("hello"), nbdEPERM},
		{"trim", nbdCmdTrim, 0, 512, nil, nbdEPERM},
		{"write zeroes", nbdCmdWriteZeroes, 0, 512, nil, nbdEPERM},
		{"cache", 5, 0, 512, nil, nbdEINVAL},
		{"block status", 7, 0, 512, nil, nbdEINVAL},
		{"unknown", 99, 0, 512, nil, nbdEINVAL},
		{"flush", nbdCmdFlush, 0, 0, nil, 0},
		{"empty read at the end", nbdCmdRead, 1 << 20, 0, nil, 0},
	} {
		sendRequest(t, conn, tc.typ, 1000, tc.off, tc.n, tc.payload)
		errno, h := readReply(t, conn)
		if errno != tc.errno || h != 1000 {
			t.Errorf("%s: errno %d handle %d, want errno %d", tc.name, errno, h, tc.errno)
		}
		// The connection is still in step.
		p := make([]byte, 100)
		if err := c.readAt(p, 1000); err != nil || !bytes.Equal(p, data[1000:1100]) {
			t.Fatalf("read after %s: %v", tc.name, err)
		}
	}
	if e.Err() != nil {
		t.Errorf("Err() = %v after refusals", e.Err())
	}
	if st := e.Stats(); st.Errors != 10 {
		t.Errorf("stats %+v, want 10 errors", st)
	}
	// A bad request magic ends the connection.
	if _, err := conn.Write(make([]byte, 28)); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after a bad magic: %d bytes, %v; want the connection closed", n, err)
	}
	// A write larger than any request ends it too (its payload cannot be
	// skipped cheaply).
	c = dialExport(t, e)
	sendRequest(t, c.conn, nbdCmdWrite, 1, 0, nbdMaxRequest+1, nil)
	if err := c.conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.conn.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after a huge write: %d bytes, %v; want the connection closed", n, err)
	}
	// The server still serves.
	c = dialExport(t, e)
	p := make([]byte, 4096)
	if err := c.readAt(p, 0); err != nil || !bytes.Equal(p, data[:4096]) {
		t.Errorf("a new connection: %v", err)
	}
}

// rawHandshake sends the client flags and returns the connection after
// the greeting.
func rawHandshake(t testing.TB, e *Exported, cflags uint32) net.Conn {
	t.Helper()
	conn, err := net.Dial("unix", e.Socket())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	g := make([]byte, 18)
	if _, err := io.ReadFull(conn, g); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, greeting(nbdFlagFixedNewstyle|nbdFlagNoZeroes)) {
		t.Fatalf("greeting %x", g)
	}
	if _, err := conn.Write(binary.BigEndian.AppendUint32(nil, cflags)); err != nil {
		t.Fatal(err)
	}
	return conn
}

func sendOption(t testing.TB, conn net.Conn, opt uint32, data []byte) {
	t.Helper()
	b := binary.BigEndian.AppendUint64(nil, nbdOptMagic)
	b = binary.BigEndian.AppendUint32(b, opt)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	if _, err := conn.Write(append(b, data...)); err != nil {
		t.Fatal(err)
	}
}

// readOptReply reads one option reply: its option, type and data.
func readOptReply(t testing.TB, conn net.Conn) (opt, typ uint32, data []byte) {
	t.Helper()
	var b [20]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		t.Fatalf("read option reply: %v", err)
	}
	if m := binary.BigEndian.Uint64(b[:]); m != nbdOptReplyMag {
		t.Fatalf("option reply magic %#x", m)
	}
	data = make([]byte, binary.BigEndian.Uint32(b[16:]))
	if _, err := io.ReadFull(conn, data); err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.Uint32(b[8:]), binary.BigEndian.Uint32(b[12:]), data
}

func goData(name string, infos ...uint16) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(infos)))
	for _, i := range infos {
		b = binary.BigEndian.AppendUint16(b, i)
	}
	return b
}

// TestExportOptions: the handshake's options, one by one, as the
// protocol says a server answers them.
func TestExportOptions(t *testing.T) {
	data := randomBytes(3000, 5)
	e := export(t, memDevice(data), ExportOptions{Name: "img"})
	conn := rawHandshake(t, e, nbdFlagFixedNewstyle|nbdFlagNoZeroes)

	// Unsupported: structured replies, STARTTLS, meta contexts, unknown.
	for _, opt := range []uint32{8, 5, 9, 10, 11, 0x1234} {
		sendOption(t, conn, opt, []byte("xyz"))
		if o, typ, _ := readOptReply(t, conn); o != opt || typ != nbdRepErrUnsup {
			t.Errorf("option %d: reply for %d type %#x, want NBD_REP_ERR_UNSUP", opt, o, typ)
		}
	}
	// LIST names the export.
	sendOption(t, conn, nbdOptList, nil)
	if _, typ, d := readOptReply(t, conn); typ != nbdRepServer || string(d) != "\x00\x00\x00\x03img" {
		t.Errorf("NBD_OPT_LIST: type %#x %q", typ, d)
	}
	if _, typ, _ := readOptReply(t, conn); typ != nbdRepAck {
		t.Errorf("NBD_OPT_LIST: then type %#x, want ACK", typ)
	}
	sendOption(t, conn, nbdOptList, []byte{1})
	if _, typ, _ := readOptReply(t, conn); typ != nbdRepErrInvalid {
		t.Errorf("NBD_OPT_LIST with data: type %#x", typ)
	}
	// INFO and GO: malformed, unknown name, then good.
	for _, bad := range [][]byte{{0, 0}, goData("img")[:8], append(goData("img", 3), 0), binary.BigEndian.AppendUint32(nil, 1<<31)} {
		sendOption(t, conn, nbdOptInfo, bad)
		if _, typ, _ := readOptReply(t, conn); typ != nbdRepErrInvalid {
			t.Errorf("NBD_OPT_INFO %x: type %#x, want NBD_REP_ERR_INVALID", bad, typ)
		}
	}
	sendOption(t, conn, nbdOptGo, goData("other"))
	if _, typ, _ := readOptReply(t, conn); typ != nbdRepErrUnknown {
		t.Errorf("NBD_OPT_GO other: type %#x, want NBD_REP_ERR_UNKNOWN", typ)
	}
	sendOption(t, conn, nbdOptInfo, goData("img", nbdInfoName, nbdInfoBlockSize))
	var infos []string
	for {
		_, typ, d := readOptReply(t, conn)
		if typ == nbdRepAck {
			break
		}
		if typ != nbdRepInfo {
			t.Fatalf("NBD_OPT_INFO: type %#x", typ)
		}
		infos = append(infos, string(d))
	}
	want := []string{
		string(infoExport(3000, roFlags|nbdTransSendFlush|nbdTransCanMultiConn)[20:]),
		string(infoBlockSize(1, 64<<10, 32<<20)[20:]),
		"\x00\x01img",
	}
	if strings.Join(infos, "|") != strings.Join(want, "|") {
		t.Errorf("NBD_OPT_INFO: %q, want %q", infos, want)
	}
	// GO on the default export, then a read.
	sendOption(t, conn, nbdOptGo, goData(""))
	for {
		_, typ, _ := readOptReply(t, conn)
		if typ == nbdRepAck {
			break
		}
	}
	sendRequest(t, conn, nbdCmdRead, 7, 10, 20, nil)
	if errno, h := readReply(t, conn); errno != 0 || h != 7 {
		t.Fatalf("read: errno %d handle %d", errno, h)
	}
	p := make([]byte, 20)
	if _, err := io.ReadFull(conn, p); err != nil || !bytes.Equal(p, data[10:30]) {
		t.Fatalf("read data: %v", err)
	}
	// DISC: the server closes.
	sendRequest(t, conn, nbdCmdDisc, 8, 0, 0, nil)
	if n, err := conn.Read(p); err != io.EOF {
		t.Errorf("after NBD_CMD_DISC: %d bytes, %v", n, err)
	}

	// EXPORT_NAME: the old way in, with and without the zeroes.
	for _, noZeroes := range []bool{false, true} {
		cflags := uint32(nbdFlagFixedNewstyle)
		if noZeroes {
			cflags |= nbdFlagNoZeroes
		}
		conn := rawHandshake(t, e, cflags)
		sendOption(t, conn, nbdOptExportName, []byte("img"))
		reply := make([]byte, 10)
		if !noZeroes {
			reply = make([]byte, 134)
		}
		if _, err := io.ReadFull(conn, reply); err != nil {
			t.Fatal(err)
		}
		if binary.BigEndian.Uint64(reply) != 3000 || binary.BigEndian.Uint16(reply[8:]) != roFlags|nbdTransSendFlush|nbdTransCanMultiConn {
			t.Errorf("NBD_OPT_EXPORT_NAME reply %x", reply[:10])
		}
		sendRequest(t, conn, nbdCmdRead, 1, 2990, 10, nil)
		if errno, _ := readReply(t, conn); errno != 0 {
			t.Errorf("read after NBD_OPT_EXPORT_NAME: errno %d", errno)
		}
	}
	// EXPORT_NAME of another export, unknown client flags, ABORT: closed.
	for name, conn := range map[string]net.Conn{
		"export name": func() net.Conn {
			c := rawHandshake(t, e, nbdFlagFixedNewstyle)
			sendOption(t, c, nbdOptExportName, []byte("other"))
			return c
		}(),
		"client flags": rawHandshake(t, e, nbdFlagFixedNewstyle|4),
		"not fixed":    rawHandshake(t, e, 0),
		"abort": func() net.Conn {
			c := rawHandshake(t, e, nbdFlagFixedNewstyle)
			sendOption(t, c, nbdOptAbort, nil)
			if _, typ, _ := readOptReply(t, c); typ != nbdRepAck {
				t.Errorf("NBD_OPT_ABORT: type %#x", typ)
			}
			return c
		}(),
		"option too long": func() net.Conn {
			c := rawHandshake(t, e, nbdFlagFixedNewstyle)
			sendOption(t, c, nbdOptGo, make([]byte, 10_000))
			return c
		}(),
		"option magic": func() net.Conn {
			c := rawHandshake(t, e, nbdFlagFixedNewstyle)
			if _, err := c.Write(make([]byte, 16)); err != nil {
				t.Fatal(err)
			}
			return c
		}(),
	} {
		if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("%s: %d bytes, %v; want the connection closed", name, n, err)
		}
	}
}

// TestExportHandshakeTimeout: a client that says nothing is dropped.
func TestExportHandshakeTimeout(t *testing.T) {
	e := export(t, memDevice(make([]byte, 512)), ExportOptions{HandshakeTimeout: 200 * time.Millisecond})
	conn, err := net.Dial("unix", e.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, conn); err != nil || time.Since(start) > 3*time.Second {
		t.Errorf("silent client: %v after %s", err, time.Since(start))
	}
}

// TestExportDeviceError: a device that fails gives the client EIO, the
// connection goes on, and Err keeps the device's error.
func TestExportDeviceError(t *testing.T) {
	changed := errors.New("image changed")
	data := randomBytes(1<<20, 6)
	e := export(t, &faultyDevice{Device: memDevice(data), err: changed, from: 512 << 10, to: 513 << 10}, ExportOptions{})
	c := dialExport(t, e)
	var se *nbdServerError
	if err := c.readAt(make([]byte, 4096), 510<<10); !errors.As(err, &se) || se.Errno != nbdEIO {
		t.Errorf("read over the fault: %v, want EIO", err)
	}
	if err := e.Err(); !errors.Is(err, changed) || !strings.Contains(err.Error(), "4096 bytes at 522240") {
		t.Errorf("Err() = %v", err)
	}
	p := make([]byte, 4096)
	if err := c.readAt(p, 0); err != nil || !bytes.Equal(p, data[:4096]) {
		t.Errorf("read after EIO: %v", err)
	}
	// A short read without an error is a failure too.
	e2 := export(t, shortDevice{memDevice(data)}, ExportOptions{})
	if err := dialExport(t, e2).readAt(p, 0); !errors.As(err, &se) || !errors.Is(e2.Err(), io.ErrUnexpectedEOF) {
		t.Errorf("short read: %v, Err() %v", err, e2.Err())
	}
	// The first error is kept.
	other := errors.New("connection reset")
	e3 := export(t, &faultyDevice{Device: memDevice(data), err: other, from: 0, to: 1}, ExportOptions{})
	c3 := dialExport(t, e3)
	_ = c3.readAt(p, 0)
	e3.dev.(*faultyDevice).err = changed // no read is under way
	_ = c3.readAt(p, 0)
	if !errors.Is(e3.Err(), other) || errors.Is(e3.Err(), changed) {
		t.Errorf("Err() = %v, want the first error", e3.Err())
	}

	if testing.Short() {
		return
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		prereq.Missing(t, "qemu-img not installed (qemu-utils)")
	}
	out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "raw", e.URI(), filepath.Join(t.TempDir(), "out")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Input/output error") {
		t.Errorf("qemu-img convert over the fault: %v: %s", err, out)
	}
}

// shortDevice returns one byte less than asked, without an error.
type shortDevice struct{ memDevice }

func (d shortDevice) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.memDevice.ReadAt(p[:len(p)-1], off)
	return n, err
}

// TestExportPipelining: requests sent together on one connection are read
// from a slow device at the same time, and the replies, in any order,
// carry the right bytes.
func TestExportPipelining(t *testing.T) {
	data := randomBytes(4<<20, 8)
	const delay = 100 * time.Millisecond
	e := export(t, &faultyDevice{Device: memDevice(data), delay: delay, from: -1, to: -1}, ExportOptions{MaxInFlight: 16})
	c := dialExport(t, e)
	start := time.Now()
	for i := range 16 {
		sendRequest(t, c.conn, nbdCmdRead, uint64(i), uint64(i)<<18, 1<<18, nil)
	}
	seen := map[uint64]bool{}
	for range 16 {
		errno, h := readReply(t, c.conn)
		p := make([]byte, 1<<18)
		if _, err := io.ReadFull(c.conn, p); err != nil {
			t.Fatal(err)
		}
		if errno != 0 || h >= 16 || seen[h] || !bytes.Equal(p, data[h<<18:(h+1)<<18]) {
			t.Fatalf("reply errno %d handle %d (seen %v): wrong", errno, h, seen[h])
		}
		seen[h] = true
	}
	// In sequence they would take 1.6 s.
	if el := time.Since(start); el > 8*delay {
		t.Errorf("16 pipelined reads of a %s device took %s", delay, el)
	}
	// The bound: one in flight at a time is sequential.
	e1 := export(t, &faultyDevice{Device: memDevice(data), delay: delay, from: -1, to: -1}, ExportOptions{MaxInFlight: 1})
	c1 := dialExport(t, e1)
	start = time.Now()
	for i := range 4 {
		sendRequest(t, c1.conn, nbdCmdRead, uint64(i), 0, 512, nil)
	}
	for i := range 4 {
		if errno, h := readReply(t, c1.conn); errno != 0 || h != uint64(i) {
			t.Fatalf("reply %d: errno %d handle %d", i, errno, h)
		}
		if _, err := io.ReadFull(c1.conn, make([]byte, 512)); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 4*delay {
		t.Errorf("4 reads, one at a time, took %s", el)
	}
}

// TestExportConnections: several clients read at once; past the cap, a
// client waits until one leaves.
func TestExportConnections(t *testing.T) {
	data := randomBytes(2<<20, 9)
	e := export(t, memDevice(data), ExportOptions{MaxConnections: 8})
	var wg sync.WaitGroup
	var clients [8]*nbdClient
	for i := range clients {
		clients[i] = dialExport(t, e)
	}
	errs := make(chan error, 8)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			p := make([]byte, 10000)
			for range 100 {
				off := rng.Int64N(int64(len(data) - len(p)))
				if err := c.readAt(p, off); err != nil || !bytes.Equal(p, data[off:off+int64(len(p))]) {
					errs <- errors.Join(err, errors.New("bytes differ"))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The ninth waits for its greeting.
	conn, err := net.Dial("unix", e.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Read(make([]byte, 18)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a ninth connection: %d bytes, %v; want to wait", n, err)
	}
	clients[0].close()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, 18)); err != nil {
		t.Fatalf("the ninth after one left: %v", err)
	}
	if st := e.Stats(); st.Connections != 9 || st.Reads != 800 {
		t.Errorf("stats %+v", st)
	}
}

// TestExportClose: Close ends connected clients at once, removes the
// socket's directory and can be called again; the end of ctx does the same.
func TestExportClose(t *testing.T) {
	data := randomBytes(1<<20, 10)
	e := export(t, memDevice(data), ExportOptions{})
	c := dialExport(t, e)
	idle, err := net.Dial("unix", e.Socket()) // in the handshake
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if err := c.readAt(make([]byte, 10), 0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := e.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("Close took %s", time.Since(start))
	}
	if err := c.readAt(make([]byte, 10), 0); err == nil {
		t.Error("a read after Close succeeds")
	}
	if _, err := os.Stat(filepath.Dir(e.Socket())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket directory after Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := net.Dial("unix", e.Socket()); err == nil {
		t.Error("dial after Close succeeds")
	}

	// A device read under way does not hold Close up; its reply is dropped.
	e = export(t, &faultyDevice{Device: memDevice(data), delay: 2 * time.Second, from: -1, to: -1}, ExportOptions{})
	c = dialExport(t, e)
	sendRequest(t, c.conn, nbdCmdRead, 1, 0, 512, nil)
	time.Sleep(50 * time.Millisecond)
	start = time.Now()
	if err := e.Close(); err != nil || time.Since(start) > time.Second {
		t.Errorf("Close during a slow read: %v after %s", err, time.Since(start))
	}

	ctx, cancel := context.WithCancel(t.Context())
	e, err = Export(ctx, memDevice(data), ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c = dialExport(t, e)
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(e.Socket()); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the socket outlives ctx")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.readAt(make([]byte, 10), 0); err == nil {
		t.Error("a read after ctx ended succeeds")
	}
	if err := e.Close(); err != nil {
		t.Errorf("Close after ctx: %v", err)
	}
	if _, err := Export(ctx, memDevice(data), ExportOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Export with an ended ctx: %v", err)
	}
}

// TestExportGarbage: clients that send random bytes neither crash nor
// block the server.
func TestExportGarbage(t *testing.T) {
	data := randomBytes(1<<20, 11)
	e := export(t, memDevice(data), ExportOptions{HandshakeTimeout: time.Second})
	rng := rand.New(rand.NewPCG(12, 13))
	for i := range 50 {
		conn, err := net.Dial("unix", e.Socket())
		if err != nil {
			t.Fatal(err)
		}
		junk := randomBytes(rng.IntN(5000), uint64(i))
		if i%2 == 1 {
			// A good start, then garbage in the transmission phase.
			junk = append(cat(binary.BigEndian.AppendUint32(nil, 3), binary.BigEndian.AppendUint64(nil, nbdOptMagic),
				binary.BigEndian.AppendUint32(nil, nbdOptGo), binary.BigEndian.AppendUint32(nil, 6), goData("")[:6]), junk...)
		}
		go io.Copy(io.Discard, conn)
		_, _ = conn.Write(junk)
		conn.Close()
	}
	c := dialExport(t, e)
	p := make([]byte, 1000)
	if err := c.readAt(p, 5000); err != nil || !bytes.Equal(p, data[5000:6000]) {
		t.Errorf("a good client after garbage: %v", err)
	}
}

// TestExportQemu: qemu-img reads an exported device as it reads the file.
func TestExportQemu(t *testing.T) {
	dir := testImages(t)
	tmp := t.TempDir()
	random := filepath.Join(tmp, "random.raw")
	if err := os.WriteFile(random, randomBytes(3<<20+512*7, 14), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "debian.raw"), random} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			dev := openFileDevice(t, path)
			e := export(t, dev, ExportOptions{})
			out := filepath.Join(t.TempDir(), "out.raw")
			start := time.Now()
			qemuImg(t, "convert", "-f", "raw", "-O", "raw", e.URI(), out)
			took := time.Since(start)
			if got, want := fileHash(t, out), fileHash(t, path); got != want {
				t.Errorf("qemu-img convert of the export: sha256 %x, the file %x", got, want)
			}
			st := e.Stats()
			if st.BytesRead < dev.size || st.Errors != 0 {
				t.Errorf("stats %+v for a %d-byte device", st, dev.size)
			}
			t.Logf("%s: %d bytes in %d reads, %s", filepath.Base(path), st.BytesRead, st.Reads, took)
		})
	}
	t.Run("qcow2 info", func(t *testing.T) {
		e := export(t, openFileDevice(t, filepath.Join(dir, "debian.qcow2")), ExportOptions{})
		out, err := exec.Command("qemu-img", "info", "-f", "qcow2", "--output=json", e.URI()).CombinedOutput()
		if err != nil {
			t.Fatalf("qemu-img info: %v\n%s", err, out)
		}
		var info struct {
			VirtualSize int64  `json:"virtual-size"`
			Format      string `json:"format"`
		}
		if err := json.Unmarshal(out, &info); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if info.VirtualSize != 209715200 || info.Format != "qcow2" {
			t.Errorf("qemu-img info: %+v", info)
		}
		// Then a check on a second connection, as image.Probe does.
		if out, err := exec.Command("qemu-img", "check", "-f", "qcow2", e.URI()).CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors were found") {
			t.Errorf("qemu-img check: %v\n%s", err, out)
		}
		if st := e.Stats(); st.Connections != 2 {
			t.Errorf("stats %+v, want 2 connections", st)
		}
	})
}

// TestExportNbdinfo: libnbd, a second client written by others, sees the
// export as qemu does and copies it byte for byte.
func TestExportNbdinfo(t *testing.T) {
	if testing.Short() {
		t.Skip("needs libnbd-bin")
	}
	for _, tool := range []string{"nbdinfo", "nbdcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			prereq.Missing(t, "%s not installed (libnbd-bin)", tool)
		}
	}
	data := randomBytes(6<<20+1000, 15)
	e := export(t, memDevice(data), ExportOptions{Name: "img"})
	out, err := exec.Command("nbdinfo", "--json", e.URI()).CombinedOutput()
	if err != nil {
		t.Fatalf("nbdinfo: %v\n%s", err, out)
	}
	var info struct {
		Exports []struct {
			Name      string `json:"export-name"`
			Size      int64  `json:"export-size"`
			ReadOnly  bool   `json:"is_read_only"`
			MultiConn bool   `json:"can_multi_conn"`
			Flush     bool   `json:"can_flush"`
			Trim      bool   `json:"can_trim"`
			MinBlock  int64  `json:"block_size_minimum"`
			PrefBlock int64  `json:"block_size_preferred"`
			MaxBlock  int64  `json:"block_size_maximum"`
		} `json:"exports"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(info.Exports) != 1 {
		t.Fatalf("nbdinfo: %s", out)
	}
	x := info.Exports[0]
	if x.Name != "img" || x.Size != int64(len(data)) || !x.ReadOnly || !x.MultiConn || !x.Flush || x.Trim ||
		x.MinBlock != 1 || x.PrefBlock != 64<<10 || x.MaxBlock != 32<<20 {
		t.Errorf("nbdinfo: %+v", x)
	}
	if out, err := exec.Command("nbdinfo", "--list", e.URI()).CombinedOutput(); err != nil || !strings.Contains(string(out), "export=\"img\"") {
		t.Errorf("nbdinfo --list: %v\n%s", err, out)
	}
	// nbdcopy: several connections, many requests in flight on each.
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("nbdcopy", "--connections=4", "--requests=16", e.URI(), dst).CombinedOutput(); err != nil {
		t.Fatalf("nbdcopy: %v\n%s", err, out)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("nbdcopy's copy differs (%d bytes, %v)", len(got), err)
	}
	// nbdinfo reads the first few KiB to describe the content.
	if st := e.Stats(); st.BytesRead < int64(len(data)) || st.BytesRead > int64(len(data))+64<<10 || st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
}

func fileHash(t testing.TB, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// pipeConn is a client connection played from a byte string: reads
// return it then EOF, writes are discarded.
type pipeConn struct {
	net.Conn // nil: the methods used are all below
	r        *bytes.Reader
}

func (c *pipeConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *pipeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *pipeConn) Close() error                     { return nil }
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }
func (c *pipeConn) LocalAddr() net.Addr              { return nil }
func (c *pipeConn) RemoteAddr() net.Addr             { return nil }
func (c *pipeConn) readFrom(b []byte) *pipeConn      { c.r = bytes.NewReader(b); return c }

// FuzzExportServe feeds a connection's worth of client bytes to the
// server: it must neither panic nor hang, whatever they are.
func FuzzExportServe(f *testing.F) {
	opt := func(o uint32, data []byte) []byte {
		b := binary.BigEndian.AppendUint64(nil, nbdOptMagic)
		b = binary.BigEndian.AppendUint32(b, o)
		b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
		return append(b, data...)
	}
	req := func(typ uint16, off uint64, n uint32) []byte {
		b := binary.BigEndian.AppendUint32(nil, nbdRequestMagic)
		b = binary.BigEndian.AppendUint16(b, 0)
		b = binary.BigEndian.AppendUint16(b, typ)
		b = binary.BigEndian.AppendUint64(b, 1)
		b = binary.BigEndian.AppendUint64(b, off)
		return binary.BigEndian.AppendUint32(b, n)
	}
	flags := binary.BigEndian.AppendUint32(nil, 3)
	// What qemu 7.2 sends: structured replies, then GO, then reads.
	f.Add(cat(flags, opt(8, nil), opt(nbdOptGo, goData("disk", nbdInfoBlockSize)), req(nbdCmdRead, 0, 512), req(nbdCmdRead, 4000, 200), req(nbdCmdDisc, 0, 0)))
	f.Add(cat(flags, opt(nbdOptList, nil), opt(nbdOptInfo, goData("", 1, 3)), opt(nbdOptExportName, []byte("disk")), req(nbdCmdWrite, 0, 4), []byte("abcd"), req(nbdCmdFlush, 0, 0)))
	f.Add(cat(flags, opt(nbdOptGo, goData("disk")), req(nbdCmdRead, 4090, 100), req(7, 0, 1), req(nbdCmdTrim, 0, 1), []byte("junk")))
	f.Add(cat(flags, opt(nbdOptAbort, nil)))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, in []byte) {
		e := &Exported{
			dev: memDevice(make([]byte, 4096)), size: 4096, name: "disk",
			opts:   ExportOptions{MaxInFlight: 4, MaxInFlightBytes: nbdMaxRequest, HandshakeTimeout: time.Second, WriteTimeout: time.Second},
			budget: &byteBudget{free: nbdMaxRequest},
			conns:  map[net.Conn]struct{}{},
		}
		e.ctx, e.cancel = context.WithCancel(context.Background())
		defer e.cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.serve((&pipeConn{}).readFrom(in))
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("the server hangs on %x", in)
		}
	})
}
