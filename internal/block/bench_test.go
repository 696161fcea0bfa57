package block

import (
	"bufio"
	"context"
	"crypto/rand"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The figures behind the choice of server (see the package comment):
//
//	GUESTKIT_TEST_IMAGES=~/.cache/guestkit-batch/images go test -run='^$' -bench=. -count=5 ./internal/block
//
// A 64 MiB disk of random bytes, as raw and as qcow2: the raw file read
// directly is the ceiling for any reader of the formats in Go.

const benchDiskSize = 64 << 20

func benchImages(b *testing.B) (raw, qcow2 string) {
	testImages(b)
	dir := b.TempDir()
	raw, qcow2 = filepath.Join(dir, "disk.raw"), filepath.Join(dir, "disk.qcow2")
	data := make([]byte, benchDiskSize)
	rand.Read(data)
	if err := os.WriteFile(raw, data, 0o600); err != nil {
		b.Fatal(err)
	}
	qemuImg(b, "convert", "-f", "raw", "-O", "qcow2", raw, qcow2)
	return raw, qcow2
}

var servers = []struct {
	name string
	kind serverKind
}{{"qemu-storage-daemon", serverQSD}, {"qemu-nbd", serverQemuNBD}}

// BenchmarkOpen: from Open to the first 4 KiB read, then Close; the
// daemon's peak RSS after reading the whole disk.
func BenchmarkOpen(b *testing.B) {
	_, qcow2 := benchImages(b)
	for _, s := range servers {
		b.Run(s.name, func(b *testing.B) {
			// The daemon's peak RSS after it served the whole disk, before
			// the timed loop.
			d, err := Open(context.Background(), qcow2, "qcow2", Options{server: s.kind})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, io.NewSectionReader(d, 0, d.Size())); err != nil {
				b.Fatal(err)
			}
			rss := peakRSS(b, d.proc.cmd.Process.Pid)
			d.Close()
			p := make([]byte, 4096)
			for b.Loop() {
				d, err := Open(context.Background(), qcow2, "qcow2", Options{server: s.kind})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := d.ReadAt(p, 0); err != nil {
					b.Fatal(err)
				}
				d.Close()
			}
			b.ReportMetric(float64(rss), "daemon-peak-RSS-KiB")
		})
	}
}

func peakRSS(b *testing.B, pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkRead: random 4 KiB reads over the whole disk, random 4 KiB
// reads in an 8 MiB window (metadata: inode tables, directories), and
// sequential 1 MiB reads, with the 32 MiB cache and without.
func BenchmarkRead(b *testing.B) {
	raw, qcow2 := benchImages(b)
	type source struct {
		name string
		open func(cache int64) (io.ReaderAt, func())
	}
	sources := []source{{"file", func(int64) (io.ReaderAt, func()) {
		f, err := os.Open(raw)
		if err != nil {
			b.Fatal(err)
		}
		return f, func() { f.Close() }
	}}}
	for _, s := range append([]struct {
		name string
		kind serverKind
	}{{"raw", -1}}, servers...) {
		sources = append(sources, source{s.name, func(cache int64) (io.ReaderAt, func()) {
			path, format := qcow2, "qcow2"
			if s.kind < 0 {
				path, format = raw, "raw"
			}
			d, err := Open(context.Background(), path, format, Options{CacheBytes: cache, server: max(s.kind, 0)})
			if err != nil {
				b.Fatal(err)
			}
			return d, func() { d.Close() }
		}})
	}
	// The qcow2 as a Device (a remote image): qemu-storage-daemon reads it
	// from Export, one more NBD hop.
	sources = append(sources, source{"export", func(cache int64) (io.ReaderAt, func()) {
		d, err := OpenDevice(context.Background(), openFileDevice(b, qcow2), "qcow2", Options{CacheBytes: cache})
		if err != nil {
			b.Fatal(err)
		}
		return d, func() { d.Close() }
	}})
	patterns := []struct {
		name string
		size int
		next func(r *mrand.Rand, i int) int64
	}{
		{"random4k", 4096, func(r *mrand.Rand, _ int) int64 { return r.Int64N(benchDiskSize/4096) * 4096 }},
		{"local4k", 4096, func(r *mrand.Rand, _ int) int64 { return 16<<20 + r.Int64N(8<<20/4096)*4096 }},
		{"seq1m", 1 << 20, func(_ *mrand.Rand, i int) int64 { return int64(i) << 20 % benchDiskSize }},
	}
	for _, pat := range patterns {
		for _, src := range sources {
			for _, cache := range []int64{32 << 20, -1} {
				name := pat.name + "/" + src.name + "/cache"
				if cache < 0 {
					name += "-off"
				}
				if src.name == "file" {
					if cache < 0 {
						continue
					}
					name = pat.name + "/file" // the kernel's page cache only
				}
				b.Run(name, func(b *testing.B) {
					r, done := src.open(cache)
					defer done()
					p := make([]byte, pat.size)
					rng := mrand.New(mrand.NewPCG(1, 2))
					b.SetBytes(int64(pat.size))
					i := 0
					for b.Loop() {
						if _, err := r.ReadAt(p, pat.next(rng, i)); err != nil {
							b.Fatal(err)
						}
						i++
					}
				})
			}
		}
	}
}
