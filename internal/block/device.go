package block

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// OpenDevice is Open for an image that is not a file: its bytes are read
// from dev (a remote object read by ranges, for example), never copied
// whole. A raw image is dev itself, with no cache unless
// opts.CacheBytes asks for one (a remote device has its own). Any other
// format gets the same checks as a file, then dev is exported over NBD
// on a private unix socket (Export) and qemu-storage-daemon reads the
// format from that export, as a file's from the file; the Disk reads the
// daemon's export. Close stops both; dev stays open.
//
// A failed read of dev reaches qemu as EIO; the Disk's read error then
// wraps dev's error (errors.Is finds it) rather than ErrCorrupt.
func OpenDevice(ctx context.Context, dev Device, format string, opts Options) (*Disk, error) {
	return open(ctx, format, opts, "open device", func() (*Disk, error) { return rawDevice(dev), nil },
		func(opts Options) (*Disk, error) {
			if err := checkImage(dev, dev.Size(), format); err != nil {
				return nil, fmt.Errorf("open device (%s): %w", format, err)
			}
			return openDeviceDaemon(ctx, dev, format, opts)
		})
}

func rawDevice(dev Device) *Disk {
	return &Disk{
		size:  dev.Size(),
		align: 1,
		src: func(p []byte, off int64) error {
			n, err := dev.ReadAt(p, off)
			if n == len(p) {
				return nil
			}
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF // the device shrank
			}
			return fmt.Errorf("read device: %d bytes at %d: %w", len(p), off, err)
		},
		closeFn: func() error { return nil },
	}
}

func openDeviceDaemon(ctx context.Context, dev Device, format string, opts Options) (*Disk, error) {
	exp, err := Export(ctx, dev, ExportOptions{Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	node, err := formatNode(format, map[string]any{
		"driver":    "nbd",
		"server":    map[string]any{"type": "unix", "path": exp.Socket()},
		"export":    exp.Name(),
		"read-only": true,
	})
	if err != nil {
		exp.Close()
		return nil, err
	}
	d, err := startDaemon(ctx, "device ("+format+")", format, node, exp.Err, opts)
	if err != nil {
		exp.Close()
		return nil, err
	}
	d.export = exp
	stop := d.closeFn
	d.closeFn = func() error {
		return errors.Join(stop(), exp.Close())
	}
	return d, nil
}

// Export is the NBD export of the device a Disk from OpenDevice reads
// through qemu, or nil: its Stats count what qemu read from the device.
func (d *Disk) Export() *Exported { return d.export }
