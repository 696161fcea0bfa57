package libguestfs

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"guestkit.io/batch/internal/block"
)

// fileDevice is an image file seen only as a block.Device, as a remote
// object is.
type fileDevice struct {
	f    *os.File
	size int64
}

func (d *fileDevice) Size() int64                             { return d.size }
func (d *fileDevice) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }

// TestLaunchNBD inspects debian.qcow2 served from a block.Export, as a
// remote image is: the appliance's qemu reads the qcow2 over NBD, and
// inspection finds the root and the hostname the image was built with.
func TestLaunchNBD(t *testing.T) {
	img := testImage(t, "debian.qcow2")
	var expected struct {
		OS []struct {
			Root     string `json:"root"`
			Hostname string `json:"hostname"`
		} `json:"operating_systems"`
	}
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(img), "debian.expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &expected); err != nil || len(expected.OS) != 1 {
		t.Fatalf("debian.expected.json: %v", err)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	exp, err := block.Export(ctx, &fileDevice{f: f, size: st.Size()}, block.ExportOptions{Name: "debian"})
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Close()
	start := time.Now()
	s, err := Launch(ctx, Options{Image: "debian.qcow2 (nbd)", Format: "qcow2", NBD: exp.Socket(), ExportName: exp.Name(), Accel: AccelTCG})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	launched := exp.Stats()
	roots, err := s.Roots(ctx)
	if err != nil || len(roots) != 1 || roots[0] != expected.OS[0].Root {
		t.Fatalf("roots = %v, %v; want %s", roots, err, expected.OS[0].Root)
	}
	facts, err := s.OSFacts(ctx, roots[0])
	if err != nil {
		t.Fatal(err)
	}
	if facts.Hostname != expected.OS[0].Hostname || facts.Distro != "debian" {
		t.Errorf("hostname %q distro %q, want %q debian", facts.Hostname, facts.Distro, expected.OS[0].Hostname)
	}
	x := exp.Stats()
	if x.Reads == 0 || x.Errors != 0 || exp.Err() != nil {
		t.Errorf("export stats %+v, error %v", x, exp.Err())
	}
	t.Logf("launch and inspection in %s: the export served %d connections, %d requests, %d reads, %d bytes of the %d-byte qcow2 (launch: %d requests, %d bytes)",
		time.Since(start).Round(time.Millisecond), x.Connections, x.Requests, x.Reads, x.BytesRead, st.Size(), launched.Requests, launched.BytesRead)
}
