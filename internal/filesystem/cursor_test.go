package filesystem

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"sync"
	"testing"
)

func TestCursor(t *testing.T) {
	data := []byte("0123456789")
	r := bytes.NewReader(data)
	var c Cursor
	p := make([]byte, 4)
	for _, want := range []string{"0123", "4567", "89"} {
		n, err := c.Read(r, p)
		if err != nil || string(p[:n]) != want {
			t.Fatalf("Read = %q, %v; want %q", p[:n], err, want)
		}
	}
	if n, err := c.Read(r, p); n != 0 || err != io.EOF {
		t.Fatalf("Read at the end = %d, %v; want 0, EOF", n, err)
	}
	if n, err := c.Read(r, nil); n != 0 || err != nil {
		t.Fatalf("Read of nothing = %d, %v; want 0, nil", n, err)
	}
	for _, s := range []struct {
		off    int64
		whence int
		want   int64
	}{{3, io.SeekStart, 3}, {2, io.SeekCurrent, 5}, {-1, io.SeekEnd, 9}, {5, io.SeekEnd, 15}} {
		if got, err := c.Seek("f", int64(len(data)), s.off, s.whence); got != s.want || err != nil {
			t.Errorf("Seek(%d, %d) = %d, %v; want %d", s.off, s.whence, got, err, s.want)
		}
	}
	if n, err := c.Read(r, p); n != 0 || err != io.EOF {
		t.Errorf("Read past the end = %d, %v; want 0, EOF", n, err)
	}
	for _, whence := range []int{io.SeekStart, 7} {
		_, err := c.Seek("dir/f", int64(len(data)), -1, whence)
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != "dir/f" || !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Seek(-1, %d) = %v; want a PathError for dir/f wrapping ErrInvalid", whence, err)
		}
	}
	// Concurrent reads share the offset: together they read every byte
	// once.
	c = Cursor{}
	var mu sync.Mutex
	var got []byte
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 2)
			n, _ := c.Read(r, b)
			mu.Lock()
			got = append(got, b[:n]...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(got) != len(data) {
		t.Errorf("concurrent reads got %d bytes, want %d", len(got), len(data))
	}
}
