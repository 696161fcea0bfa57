package block

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Errors Open wraps, so that the caller can name the image's problem.
var (
	// ErrCorrupt: the image breaks its format's rules (a table past the
	// end of the file, a bad header), or qemu says so.
	ErrCorrupt = errors.New("corrupt image")
	// ErrRefused: the image would make qemu open another file (a backing
	// file, an external data file, a vmdk descriptor's extents).
	ErrRefused = errors.New("image refers to other files")
	// ErrUnsupported: a format or a feature this layer does not read
	// (an encrypted qcow2, an unknown format name).
	ErrUnsupported = errors.New("unsupported image")
)

// Options tune Open. The zero value is good.
type Options struct {
	// CacheBytes bounds the read cache: default 32 MiB for images read
	// through the daemon, none for a raw file, whose reads the kernel's
	// page cache already serves faster than a miss of ours (see the
	// package comment); negative: none.
	CacheBytes int64
	// Timeout bounds the daemon's start and each read from it (default 30 s).
	Timeout time.Duration
	// Logger gets a line when the daemon starts and stops (default: none).
	Logger *logrus.Entry
	// Daemon is the qemu-storage-daemon binary (default: from $PATH).
	Daemon string

	// server picks the NBD server; the benchmarks compare both.
	server serverKind
}

// Stats count a Disk's reads since Open.
type Stats struct {
	Requests       int64 // ReadAt calls
	RequestedBytes int64 // bytes they asked for
	Reads          int64 // reads from the image file or the daemon (one NBD request each, up to 32 MiB)
	BytesRead      int64 // bytes those reads returned
	CacheHits      int64 // chunks served from the cache
	CacheMisses    int64 // chunks read, then cached
	Startup        time.Duration
}

// Disk is the guest disk of an image in raw form, read-only. It is safe for
// concurrent use; reads from a daemon are serialised on its one connection.
type Disk struct {
	size  int64
	align int64 // reads from src start and end on this boundary (or at size)
	src   func(p []byte, off int64) error
	cache *chunkCache // nil: none
	proc  *daemon     // nil for a raw file
	// export serves the device the daemon reads (OpenDevice), or nil.
	export *Exported

	requests, requestedBytes, reads, bytesRead, hits, misses atomic.Int64
	startup                                                  time.Duration

	closed    atomic.Bool
	closeOnce sync.Once
	closeFn   func() error
	closeErr  error
}

var _ Device = (*Disk)(nil)

// largeRead is the size from which a read bypasses the cache: a file's
// contents read in big pieces would only push metadata out of it.
const largeRead = 1 << 20

// Open returns the guest disk of the image at path in raw form, read-only.
// format is the qemu driver name the caller verified with image.Probe
// (raw, qcow2, vmdk, vdi, vhdx, vpc); it is never guessed. A raw image is
// read as a file; any other is exported by qemu-storage-daemon on a private
// unix socket and read over NBD. ctx bounds the Disk's whole life: when it
// ends, the daemon is killed and reads fail. Close the Disk to release it.
func Open(ctx context.Context, path, format string, opts Options) (*Disk, error) {
	return open(ctx, format, opts, "open "+path, func() (*Disk, error) { return openRaw(path) },
		func(opts Options) (*Disk, error) {
			if err := preflight(path, format); err != nil {
				return nil, err
			}
			return openDaemon(ctx, path, format, opts)
		})
}

// open is Open's and OpenDevice's common part: the defaults, the format's
// reader (raw, or a daemon for the others), the cache.
func open(ctx context.Context, format string, opts Options, what string, raw func() (*Disk, error), daemon func(Options) (*Disk, error)) (*Disk, error) {
	if opts.CacheBytes == 0 && format != "raw" {
		opts.CacheBytes = 32 << 20
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := time.Now()
	var d *Disk
	var err error
	switch format {
	case "raw":
		d, err = raw()
	case "qcow2", "vmdk", "vdi", "vhdx", "vpc":
		d, err = daemon(opts)
	default:
		return nil, fmt.Errorf("%s: format %q: %w", what, printable(format), ErrUnsupported)
	}
	if err != nil {
		return nil, err
	}
	if opts.CacheBytes > 0 {
		d.cache = newChunkCache(opts.CacheBytes)
	}
	d.startup = time.Since(start)
	return d, nil
}

func openRaw(path string) (*Disk, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open %s: not a regular file (%s): %w", path, st.Mode().Type(), ErrUnsupported)
	}
	return &Disk{
		size:  st.Size(),
		align: 1,
		src: func(p []byte, off int64) error {
			if _, err := f.ReadAt(p, off); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF // the file shrank since Open
				}
				return fmt.Errorf("read %s: %d bytes at %d: %w", path, len(p), off, err)
			}
			return nil
		},
		closeFn: f.Close,
	}, nil
}

// Size is the guest disk's size in bytes.
func (d *Disk) Size() int64 { return d.size }

// Stats returns the counters so far.
func (d *Disk) Stats() Stats {
	return Stats{
		Requests:       d.requests.Load(),
		RequestedBytes: d.requestedBytes.Load(),
		Reads:          d.reads.Load(),
		BytesRead:      d.bytesRead.Load(),
		CacheHits:      d.hits.Load(),
		CacheMisses:    d.misses.Load(),
		Startup:        d.startup,
	}
}

// Close releases the file or stops the daemon. It is safe to call twice.
func (d *Disk) Close() error {
	d.closeOnce.Do(func() {
		d.closed.Store(true)
		d.closeErr = d.closeFn()
	})
	return d.closeErr
}

// ReadAt reads len(p) bytes from off. A read that reaches past Size returns
// the bytes before it and io.EOF.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	if d.closed.Load() {
		return 0, os.ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	d.requests.Add(1)
	d.requestedBytes.Add(int64(len(p)))
	if off >= d.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), d.size-off))
	var err error
	if d.cache == nil || n >= largeRead {
		err = d.readDirect(p[:n], off)
	} else {
		err = d.readCached(p[:n], off)
	}
	if err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fetch reads [off, off+len(p)) from the source, which must be aligned.
func (d *Disk) fetch(p []byte, off int64) error {
	d.reads.Add(1)
	if err := d.src(p, off); err != nil {
		return err
	}
	d.bytesRead.Add(int64(len(p)))
	return nil
}

// readDirect widens the range to the source's alignment when needed.
func (d *Disk) readDirect(p []byte, off int64) error {
	a := d.align
	lo, hi := off&^(a-1), min((off+int64(len(p))+a-1)&^(a-1), d.size)
	if lo == off && hi == off+int64(len(p)) {
		return d.fetch(p, off)
	}
	buf := make([]byte, hi-lo)
	if err := d.fetch(buf, lo); err != nil {
		return err
	}
	copy(p, buf[off-lo:])
	return nil
}

// readCached serves p chunk by chunk from the cache; each run of missing
// chunks is one read from the source.
func (d *Disk) readCached(p []byte, off int64) error {
	end := off + int64(len(p))
	first, last := off/chunkSize, (end-1)/chunkSize
	for idx := first; idx <= last; {
		cOff := idx * chunkSize
		lo, hi := max(off, cOff), min(end, cOff+chunkSize)
		if d.cache.get(idx, int(lo-cOff), p[lo-off:hi-off]) {
			d.hits.Add(1)
			idx++
			continue
		}
		// Extend the run over the following missing chunks.
		runEnd := idx + 1
		for runEnd <= last && !d.cache.has(runEnd) {
			runEnd++
		}
		rOff, rEnd := cOff, min(runEnd*chunkSize, d.size)
		buf := make([]byte, rEnd-rOff)
		if err := d.fetch(buf, rOff); err != nil {
			return err
		}
		for i := idx; i < runEnd; i++ {
			c := buf[(i-idx)*chunkSize : min((i-idx+1)*chunkSize, int64(len(buf)))]
			d.cache.put(i, c)
			d.misses.Add(1)
		}
		copy(p[max(rOff, off)-off:min(rEnd, end)-off], buf[max(rOff, off)-rOff:])
		idx = runEnd
	}
	return nil
}
