package block

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// What a server sends, piece by piece.

func greeting(flags uint16) []byte {
	b := binary.BigEndian.AppendUint64(nil, nbdMagic)
	b = binary.BigEndian.AppendUint64(b, nbdOptMagic)
	return binary.BigEndian.AppendUint16(b, flags)
}

func optReply(typ uint32, data []byte) []byte {
	b := binary.BigEndian.AppendUint64(nil, nbdOptReplyMag)
	b = binary.BigEndian.AppendUint32(b, nbdOptGo)
	b = binary.BigEndian.AppendUint32(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

func infoExport(size uint64, flags uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, nbdInfoExport)
	b = binary.BigEndian.AppendUint64(b, size)
	return optReply(nbdRepInfo, binary.BigEndian.AppendUint16(b, flags))
}

func infoBlockSize(minimum, pref, maximum uint32) []byte {
	b := binary.BigEndian.AppendUint16(nil, nbdInfoBlockSize)
	b = binary.BigEndian.AppendUint32(b, minimum)
	b = binary.BigEndian.AppendUint32(b, pref)
	return optReply(nbdRepInfo, binary.BigEndian.AppendUint32(b, maximum))
}

func simpleReply(errno uint32, handle uint64, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, nbdSimpleMagic)
	b = binary.BigEndian.AppendUint32(b, errno)
	b = binary.BigEndian.AppendUint64(b, handle)
	return append(b, data...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

const roFlags = nbdTransHasFlags | nbdTransReadOnly

// goodHandshake is qemu's answer: greeting, export info, block sizes, ack.
func goodHandshake(size uint64) []byte {
	return cat(greeting(nbdFlagFixedNewstyle|nbdFlagNoZeroes), infoExport(size, roFlags), infoBlockSize(1, 4096, 32<<20), optReply(nbdRepAck, nil))
}

// scripted plays script as the server and discards what the client
// sends; with hold, the connection stays open after the script.
func scripted(t testing.TB, script []byte, hold bool) net.Conn {
	cli, srv := net.Pipe()
	go io.Copy(io.Discard, srv)
	go func() {
		if _, err := srv.Write(script); err == nil && !hold {
			srv.Close()
		}
	}()
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return cli
}

func handshake(conn net.Conn) (*nbdClient, error) {
	return nbdHandshake(conn, exportName, time.Now().Add(2*time.Second), 2*time.Second)
}

func TestNBDHandshakeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		script     []byte
	}{
		{"empty", "read greeting", nil},
		{"old style", "IHAVEOPT", cat(binary.BigEndian.AppendUint64(nil, nbdMagic), binary.BigEndian.AppendUint64(nil, 0x00420281861253), make([]byte, 2))},
		{"bad magic", "NBDMAGIC", cat([]byte("NBDMAGIX"), greeting(1)[8:])},
		{"not fixed", "fixed newstyle", greeting(0)},
		{"refused", `refuses export "disk": error 0x80000006: no such export\x07`, cat(greeting(1), optReply(nbdRepErr|6, []byte("no such export\x07")))},
		{"ack first", "no NBD_INFO_EXPORT", cat(greeting(1), optReply(nbdRepAck, nil))},
		{"ack with data", "NBD_REP_ACK with 1 bytes", cat(greeting(1), infoExport(512, roFlags), optReply(nbdRepAck, []byte{0}))},
		{"writable", "not read-only", cat(greeting(1), infoExport(512, nbdTransHasFlags), optReply(nbdRepAck, nil))},
		{"no flags", "not read-only", cat(greeting(1), infoExport(512, nbdTransReadOnly), optReply(nbdRepAck, nil))},
		{"huge", "export size", cat(greeting(1), infoExport(1<<63, roFlags))},
		{"short info", "NBD_INFO_EXPORT of 4 bytes", cat(greeting(1), optReply(nbdRepInfo, []byte{0, 0, 1, 2}))},
		{"tiny info", "NBD_REP_INFO of 1 bytes", cat(greeting(1), optReply(nbdRepInfo, []byte{0}))},
		{"block size zero", "block sizes", cat(greeting(1), infoBlockSize(0, 512, 512))},
		{"block size odd", "block sizes", cat(greeting(1), infoBlockSize(3, 512, 512))},
		{"block size big", "block sizes", cat(greeting(1), infoBlockSize(1<<20, 1<<20, 1<<20))},
		{"block max small", "block sizes", cat(greeting(1), infoBlockSize(512, 512, 256))},
		{"other option", "for option 1", cat(greeting(1), func() []byte { b := optReply(nbdRepAck, nil); b[11] = 1; return b }())},
		{"reply magic", "option reply 0: magic", cat(greeting(1), make([]byte, 20))},
		{"long reply", "more than 65536", cat(greeting(1), optReply(nbdRepInfo, nil)[:16], binary.BigEndian.AppendUint32(nil, 1<<30))},
		{"unknown reply", "unexpected option reply type 0x2", cat(greeting(1), optReply(2, nil))},
		{"endless", "more than 64 replies", cat(greeting(1), bytes.Repeat(optReply(nbdRepInfo, []byte{0, 9}), 65))},
		{"cut", "read reply 1 data", cat(greeting(1), infoExport(512, roFlags), optReply(nbdRepInfo, []byte{0, 9, 9})[:22])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := handshake(scripted(t, tc.script, false))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("handshake: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestNBDReads(t *testing.T) {
	data := []byte("0123456789abcdef")
	c, err := handshake(scripted(t, cat(goodHandshake(16),
		simpleReply(0, 1, data[4:12]),
		simpleReply(5, 2, nil),         // EIO: the connection stays usable
		simpleReply(0, 3, data[0:4]),   //
		simpleReply(0, 99, data[0:4])), // a wrong handle breaks it
		false))
	if err != nil {
		t.Fatal(err)
	}
	if c.size != 16 || c.align != 1 || c.maxReq != 32<<20 {
		t.Fatalf("client %+v", c)
	}
	p := make([]byte, 8)
	if err := c.readAt(p, 4); err != nil || string(p) != "456789ab" {
		t.Fatalf("read: %q, %v", p, err)
	}
	var se *nbdServerError
	if err := c.readAt(p[:4], 0); !errors.As(err, &se) || se.Errno != 5 || !strings.Contains(err.Error(), "EIO") {
		t.Fatalf("read: %v, want EIO", err)
	}
	if err := c.readAt(p[:4], 0); err != nil || string(p[:4]) != "0123" {
		t.Fatalf("read after EIO: %q, %v", p[:4], err)
	}
	err = c.readAt(p[:4], 0)
	if !errors.Is(err, errNBDProtocol) || !strings.Contains(err.Error(), "handle 99, want 4") {
		t.Fatalf("read: %v, want a wrong handle", err)
	}
	if err2 := c.readAt(p[:4], 0); err2 != err {
		t.Errorf("read on a broken connection: %v, want %v", err2, err)
	}
	for _, bad := range [][2]int64{{-1, 1}, {15, 2}, {17, 0}} {
		c.broken = nil
		if err := c.readAt(make([]byte, bad[1]), bad[0]); err == nil || !strings.Contains(err.Error(), "outside") {
			t.Errorf("read of %d at %d: %v", bad[1], bad[0], err)
		}
	}
}

func TestNBDReplyErrors(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		reply      []byte
	}{
		{"structured", "structured reply", cat(binary.BigEndian.AppendUint32(nil, nbdStructMagic), make([]byte, 12))},
		{"magic", "reply magic 0x1", cat([]byte{0, 0, 0, 1}, make([]byte, 12))},
		{"short data", "data: unexpected EOF", simpleReply(0, 1, []byte("abc"))},
		{"short header", "reply: unexpected EOF", simpleReply(0, 1, nil)[:10]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := handshake(scripted(t, cat(goodHandshake(16), tc.reply), false))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.readAt(make([]byte, 8), 0); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("read: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestNBDSilentServer: a server that stops answering costs one timeout,
// not a hang, in the handshake and in a read.
func TestNBDSilentServer(t *testing.T) {
	start := time.Now()
	_, err := nbdHandshake(scripted(t, greeting(1), true), exportName, time.Now().Add(200*time.Millisecond), time.Second)
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("handshake with a silent server: %v after %s", err, time.Since(start))
	}
	c, err := nbdHandshake(scripted(t, goodHandshake(16), true), exportName, time.Now().Add(time.Second), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := c.readAt(make([]byte, 8), 0); !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("read from a silent server: %v after %s", err, time.Since(start))
	}
}

// fakeServer answers NBD requests from data and records them.
type fakeServer struct {
	mu       sync.Mutex
	lengths  []uint32
	sawDisc  bool
	finished chan struct{}
}

func serve(t testing.TB, data []byte, blockSizes []byte) (*fakeServer, net.Conn) {
	cli, srv := net.Pipe()
	f := &fakeServer{finished: make(chan struct{})}
	t.Cleanup(func() { cli.Close(); srv.Close() })
	go func() {
		defer close(f.finished)
		if _, err := srv.Write(greeting(3)); err != nil {
			return
		}
		// Client flags, then NBD_OPT_GO for the export and two infos.
		if _, err := io.ReadFull(srv, make([]byte, 4+8+4+4+4+len(exportName)+2+2+2)); err != nil {
			return
		}
		if _, err := srv.Write(cat(infoExport(uint64(len(data)), roFlags), blockSizes, optReply(nbdRepAck, nil))); err != nil {
			return
		}
		req := make([]byte, 28)
		for {
			if _, err := io.ReadFull(srv, req); err != nil {
				return
			}
			typ, h := binary.BigEndian.Uint16(req[6:]), binary.BigEndian.Uint64(req[8:])
			off, n := binary.BigEndian.Uint64(req[16:]), binary.BigEndian.Uint32(req[24:])
			f.mu.Lock()
			if typ == nbdCmdDisc {
				f.sawDisc = true
				f.mu.Unlock()
				return
			}
			f.lengths = append(f.lengths, n)
			f.mu.Unlock()
			if _, err := srv.Write(simpleReply(0, h, data[off:off+uint64(n)])); err != nil {
				return
			}
		}
	}()
	return f, cli
}

// TestNBDSplitsAndDisconnects: a read larger than 32 MiB (or the server's
// maximum) is split; Close sends NBD_CMD_DISC.
func TestNBDSplitsAndDisconnects(t *testing.T) {
	data := make([]byte, 40<<20)
	for i := range data {
		data[i] = byte(i * 7 / 4096)
	}
	srv, conn := serve(t, data, nil)
	c, err := handshake(conn)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, len(data))
	if err := c.readAt(p, 0); err != nil || !bytes.Equal(p, data) {
		t.Fatalf("read: %v", err)
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	<-srv.finished
	if want := []uint32{32 << 20, 8 << 20}; !slicesEqual(srv.lengths, want) || !srv.sawDisc {
		t.Errorf("requests %v (disc %v), want %v then a disconnect", srv.lengths, srv.sawDisc, want)
	}

	srv, conn = serve(t, data[:1<<20], infoBlockSize(512, 4096, 100_000))
	c, err = handshake(conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.readAt(p[:1<<20], 0); err != nil || !bytes.Equal(p[:1<<20], data[:1<<20]) {
		t.Fatalf("read: %v", err)
	}
	if err := c.readAt(p[:100], 512); err == nil || !strings.Contains(err.Error(), "aligned to 512") {
		t.Errorf("unaligned read: %v", err)
	}
	c.close()
	<-srv.finished
	// 100000 rounded down to 512: 99840.
	if srv.lengths[0] != 99840 || len(srv.lengths) != 11 {
		t.Errorf("requests %v, want pieces of 99840", srv.lengths)
	}
}

func slicesEqual(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzNBDClient feeds the fuzzer's bytes to the client as everything the
// server says: the handshake must fail cleanly or give a client whose reads
// fail cleanly or return exactly what was asked; nothing panics or hangs.
func FuzzNBDClient(f *testing.F) {
	good := goodHandshake(4096)
	f.Add(good)
	f.Add(cat(good, simpleReply(0, 1, make([]byte, 512)), simpleReply(0, 2, bytes.Repeat([]byte{1}, 4096))))
	f.Add(cat(good, simpleReply(5, 1, nil), simpleReply(0, 2, make([]byte, 4096))))
	f.Add(cat(greeting(1), infoBlockSize(512, 512, 1024), infoExport(1024, roFlags), optReply(nbdRepAck, nil), simpleReply(0, 1, make([]byte, 512))))
	f.Add(cat(greeting(1), optReply(nbdRepErr|1, []byte("unknown export"))))
	f.Fuzz(func(t *testing.T, script []byte) {
		tm := time.AfterFunc(20*time.Second, func() { panic(fmt.Sprintf("hangs on %q", script)) })
		defer tm.Stop()
		cli, srv := net.Pipe()
		defer srv.Close()
		defer cli.Close()
		go io.Copy(io.Discard, srv)
		go func() {
			srv.Write(script)
			srv.Close()
		}()
		c, err := nbdHandshake(cli, exportName, time.Now().Add(5*time.Second), 5*time.Second)
		if err != nil {
			return
		}
		if c.size < 0 || c.size > nbdMaxSize || c.align < 1 || c.align > chunkSize || c.maxReq < c.align {
			t.Fatalf("client %+v", c)
		}
		for _, n := range []int64{512, 4096} {
			n = min(n, c.size) &^ (c.align - 1)
			p := make([]byte, n)
			if err := c.readAt(p, 0); err != nil {
				break
			}
		}
		c.close()
	})
}
