package block

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

type serverKind int

const (
	serverQSD     serverKind = iota // qemu-storage-daemon: the default, see the package comment
	serverQemuNBD                   // qemu-nbd: kept for the benchmarks' comparison
)

// exportName is the one export the daemon serves.
const exportName = "disk"

// maxStderr is how much of the daemon's stderr is kept: its last lines
// explain a failure.
const maxStderr = 16 << 10

// daemon is a running qemu NBD server and the one connection to it.
type daemon struct {
	cmd    *exec.Cmd
	name   string
	stderr *tailBuffer
	done   chan struct{} // closed once the process is reaped
	exit   error         // cmd.Wait's result, set before done closes
	nbd    *nbdClient
	stop   func() bool // stops the ctx watch
	log    func(format string, args ...any)
	// cause, when set, names what failed under qemu (the device behind
	// its NBD file node); an error qemu reports is then that, not a
	// corrupt image.
	cause func() error
}

// blockdev is the daemon's one node: the format given, on the file,
// read-only, with no backing file.
func blockdev(path, format string) ([]byte, error) {
	return formatNode(format, map[string]any{
		"driver":    "file",
		"filename":  path,
		"read-only": true,
	})
}

// formatNode is the format driver's node on the protocol node file,
// read-only, with no backing file.
func formatNode(format string, file map[string]any) ([]byte, error) {
	node := map[string]any{
		"driver":    format,
		"node-name": exportName,
		"read-only": true,
		"file":      file,
	}
	if format == "qcow2" || format == "vmdk" {
		node["backing"] = nil // the formats with backing files; the others refuse the option
	}
	return json.Marshal(node)
}

func openDaemon(ctx context.Context, path, format string, opts Options) (_ *Disk, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	node, err := blockdev(abs, format)
	if err != nil {
		return nil, err
	}
	return startDaemon(ctx, path, format, node, nil, opts)
}

// startDaemon runs the daemon on node; path names the image in messages
// and cause, if not nil, is daemon.cause.
func startDaemon(ctx context.Context, path, format string, node []byte, cause func() error, opts Options) (_ *Disk, err error) {
	deadline := time.Now().Add(opts.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	dir, err := os.MkdirTemp("", "guestkit-block-") // mode 0700: the socket is ours alone
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir) // once connected, the socket's name is no longer needed
	sock := filepath.Join(dir, "nbd.sock")

	d := &daemon{stderr: &tailBuffer{max: maxStderr}, done: make(chan struct{}), log: func(string, ...any) {}, cause: cause}
	if opts.Logger != nil {
		d.log = opts.Logger.WithField("image", path).Debugf
	}
	var listener *net.UnixListener
	var lf *os.File
	switch opts.server {
	case serverQSD:
		// The listening socket is made here and handed over as fd 3, so
		// that it exists before the daemon starts: no polling for it, and
		// the connection waits in the backlog until the daemon is ready.
		listener, err = net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			return nil, err
		}
		defer listener.Close()
		if lf, err = listener.File(); err != nil {
			return nil, err
		}
		defer lf.Close()
		d.name = cmp.Or(opts.Daemon, "qemu-storage-daemon")
		d.cmd = exec.Command(d.name, "--blockdev", string(node),
			"--nbd-server", "addr.type=fd,addr.str=3,max-connections=1",
			"--export", "type=nbd,id="+exportName+",node-name="+exportName+",name="+exportName+",writable=off")
		d.cmd.ExtraFiles = []*os.File{lf}
	case serverQemuNBD:
		d.name = cmp.Or(opts.Daemon, "qemu-nbd")
		d.cmd = exec.Command(d.name, "--read-only", "--shared=1", "--export-name="+exportName,
			"--socket="+sock, "json:"+string(node))
	}
	// The daemon dies with us, even if we are killed.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	er, ew, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	d.cmd.Stderr = ew
	start := time.Now()
	err = d.cmd.Start()
	ew.Close()
	if err != nil {
		er.Close()
		return nil, fmt.Errorf("start %s: %w", d.name, err)
	}
	go d.stderr.drain(er)
	go func() {
		d.exit = d.cmd.Wait()
		close(d.done)
	}()
	var conn net.Conn
	// From here every failure kills and reaps the daemon.
	defer func() {
		if err != nil {
			if conn != nil {
				conn.Close()
			}
			d.kill()
		}
	}()
	if lf != nil {
		lf.Close()
	}
	if conn, err = d.dial(ctx, sock, listener != nil, deadline); err != nil {
		return nil, err
	}
	if listener != nil {
		listener.Close() // the daemon has its own copy; no second client can come
	}
	d.stop = context.AfterFunc(ctx, func() {
		conn.Close() // interrupts a read under way
		d.kill()
	})
	d.nbd, err = nbdHandshake(conn, exportName, deadline, opts.Timeout)
	if err != nil {
		d.stop()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("start %s for %s: %w", d.name, path, ctx.Err())
		}
		return nil, d.explain(fmt.Errorf("start %s for %s: %w", d.name, path, err), time.Second)
	}
	d.log("%s pid %d exports %s (%s) in %s", d.name, d.cmd.Process.Pid, path, format, time.Since(start).Round(time.Microsecond))
	return &Disk{
		size:    d.nbd.size,
		align:   d.nbd.align,
		src:     d.readAt,
		closeFn: d.close,
		proc:    d,
	}, nil
}

// dial connects to the daemon's socket. With a listener made by us the
// socket already exists; otherwise it is polled for until the deadline.
func (d *daemon) dial(ctx context.Context, sock string, exists bool, deadline time.Time) (net.Conn, error) {
	wait := 500 * time.Microsecond
	for {
		conn, err := net.Dial("unix", sock)
		if err == nil || exists {
			return conn, err
		}
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, d.explain(fmt.Errorf("%s: no socket %s by the deadline", d.name, sock), 0)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-d.done:
			return nil, d.explain(fmt.Errorf("%s exited before it listened", d.name), time.Second)
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Millisecond)
	}
}

// readAt reads from the export; a failure says what qemu said about it.
func (d *daemon) readAt(p []byte, off int64) error {
	gen := d.stderr.generation()
	err := d.nbd.readAt(p, off)
	if err == nil {
		return nil
	}
	var se *nbdServerError
	if errors.As(err, &se) {
		if c := d.causeErr(); c != nil {
			return fmt.Errorf("%w: %w", err, c)
		}
		// qemu prints why (a corrupt table, a failed decompression)
		// before it replies; give the line a moment to arrive.
		for i := 0; i < 20 && d.stderr.generation() == gen; i++ {
			time.Sleep(5 * time.Millisecond)
		}
		if msg := d.stderr.last(); msg != "" && d.stderr.generation() != gen {
			return fmt.Errorf("%w: %s: %w", err, msg, ErrCorrupt)
		}
		return fmt.Errorf("%w: %w", err, ErrCorrupt)
	}
	return d.explain(err, 100*time.Millisecond)
}

// explain adds the daemon's exit status and last words to err, waiting up
// to grace for it to exit.
func (d *daemon) explain(err error, grace time.Duration) error {
	select {
	case <-d.done:
	case <-time.After(grace):
	}
	msg := d.stderr.last()
	select {
	case <-d.done:
		if msg == "" {
			msg = "no message"
		}
		if c := d.causeErr(); c != nil {
			return fmt.Errorf("%w (%s %v: %s): %w", err, d.name, d.exit, msg, c)
		}
		// A daemon that gives up on the image at start or mid-read found
		// it broken: the format was verified before.
		return fmt.Errorf("%w (%s %v: %s): %w", err, d.name, d.exit, msg, ErrCorrupt)
	default:
		if msg != "" {
			err = fmt.Errorf("%w (%s: %s)", err, d.name, msg)
		}
		if c := d.causeErr(); c != nil {
			return fmt.Errorf("%w: %w", err, c)
		}
		return err
	}
}

func (d *daemon) causeErr() error {
	if d.cause == nil {
		return nil
	}
	return d.cause()
}

func (d *daemon) kill() {
	_ = d.cmd.Process.Kill() // read-only: nothing to flush
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		// SIGKILL cannot be ignored; a process stuck in the kernel (an
		// NFS mount) is reaped by the goroutine when it dies.
	}
}

// close says goodbye, kills and reaps the daemon. A failure to close a
// read-only connection (already closed when ctx ended) changes nothing.
func (d *daemon) close() error {
	d.stop()
	_ = d.nbd.close()
	d.kill()
	d.log("%s pid %d stopped", d.name, d.cmd.Process.Pid)
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	gen uint64
	max int
}

func (t *tailBuffer) drain(f *os.File) {
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			t.mu.Lock()
			t.b = append(t.b, buf[:n]...)
			if len(t.b) > t.max {
				t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
			}
			t.gen++
			t.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

func (t *tailBuffer) generation() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.gen
}

// last returns the last three lines, made printable.
func (t *tailBuffer) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lines []string
	for _, l := range strings.Split(string(t.b), "\n") {
		// qemu repeats the option it failed on: the blockdev's JSON,
		// which says nothing new and would push the reason out.
		if i := strings.Index(l, " --blockdev {"); i >= 0 {
			if j := strings.LastIndex(l, "}: "); j > i {
				l = l[:i] + " --blockdev" + l[j+1:]
			}
		}
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, printable(l))
		}
	}
	return strings.Join(lines[max(0, len(lines)-3):], " / ")
}
