package sweeptest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDebianImage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.img")
	DebianImage(t, p, "a", Package{"openssl", "3.0.13-1~deb12u1"})
	fi, err := os.Stat(p)
	if err != nil || fi.Size() != ImageSize {
		t.Fatalf("%v %v", fi, err)
	}
	q := filepath.Join(t.TempDir(), "b.img")
	DebianImage(t, q, "a", Package{"openssl", "3.0.13-1~deb12u1"})
	a, _ := os.ReadFile(p)
	b, _ := os.ReadFile(q)
	if string(a) != string(b) {
		t.Error("the same content makes different images")
	}
}
