package ext4

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"guestkit.io/batch/internal/filesystem"
	"guestkit.io/batch/internal/guest"
)

// TestMain makes the fuzzer minimize a new input for one run at most
// unless -test.fuzzminimizetime is given: inputs are 64 KiB images, and
// minimizing one (the default 60 s) would take all of CI's brief fuzzing.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if !set {
		if err := flag.Set("test.fuzzminimizetime", "1x"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}

// seeds are the small images of testdata (built by testdata/mkseeds.sh),
// but for journal.img.gz (see journalSeed).
func seeds(t testing.TB) map[string][]byte {
	all := seedFiles(t)
	delete(all, "journal")
	return all
}

func seedFiles(t testing.TB) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob("testdata/*.img.gz")
	if err != nil || len(names) == 0 {
		t.Fatalf("no seed images in testdata: %v", err)
	}
	out := map[string][]byte{}
	for _, name := range names {
		fd, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(fd)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(zr)
		fd.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(name), ".img.gz")] = data
	}
	return out
}

// TestSeeds reads the seed images with no host tool: what mkseeds.sh put
// in them.
func TestSeeds(t *testing.T) {
	blocks := make([]byte, 14000)
	for i := range blocks {
		blocks[i] = byte('A' + i%26)
	}
	sparse := make([]byte, 4*8192+len("stretch 4\n"))
	for i := range 5 {
		copy(sparse[i*8192:], "stretch "+string(rune('0'+i))+"\n")
	}
	for name, data := range seeds(t) {
		t.Run(name, func(t *testing.T) {
			info, ok := Probe(memDevice(data))
			wantType := map[string]string{"ext2": "ext2", "ext4": "ext4", "ext4-inline": "ext4"}[name]
			if !ok || info != (filesystem.Info{Type: wantType, Label: "seed", UUID: "0b3c1c8a-1d53-4c63-9a0b-2b3a3e1f0001"}) {
				t.Errorf("Probe: %+v %v", info, ok)
			}
			f, err := Open(memDevice(data))
			if err != nil {
				t.Fatal(err)
			}
			for file, want := range map[string][]byte{
				"hello":  []byte("hello world\n"),
				"blocks": blocks,
				"sparse": sparse,
				"dir/a":  []byte("a\n"),
			} {
				got, err := guest.ReadFile(volumeFS{f}, file, 1<<20)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: %q, %v", file, got, err)
				}
			}
			for link, want := range map[string]string{"link": "hello", "longlink": strings.Repeat("a", 100)} {
				if got, err := f.ReadLink(link); got != want || err != nil {
					t.Errorf("ReadLink(%s): %q, %v", link, got, err)
				}
			}
			fi, err := f.Lstat("hello")
			if o, _ := guest.OwnerOf(fi); err != nil || o != (guest.Owner{UID: 1000, GID: 100}) || fi.Mode() != 0o644 {
				t.Errorf("Lstat(hello): %v %+v, %v", fi.Mode(), o, err)
			}
			if fi, err := f.Lstat("dir/a"); err != nil || fi.Mode() != fs.ModeSetuid|0o755 {
				t.Errorf("Lstat(dir/a): %v", err)
			}
			if fi, err := f.Lstat("fifo"); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
				t.Errorf("Lstat(fifo): %v", err)
			}
			many, err := f.ReadDir("many")
			if err != nil || len(many) != 90 || many[0].Name() != "entry-1" || many[1].Name() != "entry-10" {
				t.Errorf("ReadDir(many): %d entries, %v", len(many), err)
			}
		})
	}
}

// TestConcurrent walks the seed images from several goroutines at once
// (run it with -race): every walk must see the same tree.
func TestConcurrent(t *testing.T) {
	for name, data := range seeds(t) {
		t.Run(name, func(t *testing.T) {
			f, err := Open(memDevice(data))
			if err != nil {
				t.Fatal(err)
			}
			want := walkVolume(t, f, func(string) bool { return false })
			f, err = Open(memDevice(data)) // with empty caches again
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			walks := make([]map[string]entry, 8)
			for i := range walks {
				wg.Go(func() { walks[i] = walkVolume(t, f, func(string) bool { return false }) })
			}
			wg.Wait()
			for _, got := range walks {
				compareWalks(t, got, want)
			}
		})
	}
}

// journalSeed is the image with a journal to replay, and the byte range
// of its journal's first log blocks (the superblock and every
// transaction).
func journalSeed(t testing.TB) (img []byte, off, end int) {
	img = seedFiles(t)["journal"]
	f, err := Open(memDevice(img))
	if err != nil {
		t.Fatal(err)
	}
	j, err := f.inode(f.sb.journalInum)
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.mapBlock(j, 0)
	if err != nil || r.phys == 0 || r.n < 10 {
		t.Fatalf("journal's first blocks: %+v, %v", r, err)
	}
	bs := int(f.sb.blockSize)
	return img, int(r.phys) * bs, int(r.phys+min(r.n, 12)) * bs
}

// TestJournalSeed reads the journal seed as replayed: hello's block from
// the journal (escaped), blocks' first block rewritten, its second revoked.
func TestJournalSeed(t *testing.T) {
	img, _, _ := journalSeed(t)
	f, err := Open(memDevice(img))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.replay) != 2 {
		t.Errorf("%d blocks replayed, want 2", len(f.replay))
	}
	orig := make([]byte, 2048) // the second block as mkseeds.sh wrote it
	for i := range orig {
		orig[i] = byte('A' + i%26)
	}
	want := map[string]string{
		"hello":  "\xc0\x3b\x39\x98journal",
		"blocks": strings.Repeat("J", 1024) + string(orig[1024:]),
	}
	for name, w := range want {
		got, err := guest.ReadFile(volumeFS{f}, name, 1<<20)
		if err != nil || !strings.HasPrefix(string(got), w) {
			t.Errorf("%s: %.40q, %v", name, got, err)
		}
	}
}

// FuzzJournal replays mutated journals: the input replaces the journal's
// first log blocks in the journal seed, then the image is opened and
// walked as in FuzzOpen.
func FuzzJournal(f *testing.F) {
	img, off, end := journalSeed(f)
	f.Add(img[off:end])
	f.Fuzz(func(t *testing.T, data []byte) {
		d := append([]byte(nil), img...)
		copy(d[off:end], data)
		fuzzBody(t, d)
	})
}

// volumeFS is enough of an fs.FS over a Volume for guest.ReadFile.
type volumeFS struct{ v filesystem.Volume }

func (v volumeFS) Open(name string) (fs.File, error) { return v.v.Open(name) }
func (v volumeFS) Stat(name string) (fs.FileInfo, error) {
	return v.v.Lstat(name)
}

// FuzzOpen opens a mutated image and walks it all: Probe, Open, every
// directory (each once, so that a directory linked into itself does not
// loop the walk), every entry's Lstat and Info, link targets, and the first
// MiB of every file by Read and ReadAt. Nothing may panic, hang or
// allocate without bound.
func FuzzOpen(f *testing.F) {
	for _, data := range seeds(f) {
		f.Add(data)
	}
	f.Fuzz(fuzzBody)
}

func fuzzBody(t *testing.T, data []byte) {
	start := time.Now()
	defer func() {
		if d := time.Since(start); d > 500*time.Millisecond {
			os.WriteFile(fmt.Sprintf("/tmp/ext4probe/slow-%d", time.Now().UnixNano()), data, 0o644)
		}
	}()
	{
		if len(data) > 4<<20 {
			return
		}
		dev := memDevice(data)
		Probe(dev)
		v, err := Open(dev)
		if err != nil {
			if !errors.Is(err, filesystem.ErrCorrupt) && !errors.Is(err, filesystem.ErrUnsupported) {
				t.Fatalf("Open: %v wraps neither ErrCorrupt nor ErrUnsupported", err)
			}
			return
		}
		seen := map[uint32]bool{}
		entries := 0
		var walk func(dir string)
		walk = func(dir string) {
			list, err := v.ReadDir(dir)
			if err != nil {
				return
			}
			for _, d := range list {
				if entries++; entries > 10000 {
					return
				}
				p := path.Join(dir, d.Name())
				_, _ = d.Info()
				fi, err := v.Lstat(p)
				if err != nil {
					continue
				}
				switch {
				case fi.Mode()&fs.ModeSymlink != 0:
					_, _ = v.ReadLink(p)
				case fi.IsDir():
					in, err := v.lookup(p)
					if err == nil && !seen[in.ino] {
						seen[in.ino] = true
						walk(p)
					}
				case fi.Mode().IsRegular():
					file, err := v.Open(p)
					if err != nil {
						continue
					}
					_, _ = io.Copy(io.Discard, io.LimitReader(file, 1<<20))
					buf := make([]byte, 4096)
					_, _ = file.(io.ReaderAt).ReadAt(buf, fi.Size()/2)
					file.Close()
				}
			}
		}
		walk(".")
	}
}
