// Package winregtest writes registry hives for tests with the real hivex
// tools: an empty hive is built here, then hivexregedit --merge (Debian
// package libwin-hivex-perl, listed in scripts/packages-test.txt) writes
// the keys and values of a .reg text into it, as libguestfs's phony Windows
// guests are made.
package winregtest

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"
)

// Empty returns a hive with only a root key: the 4 KiB header, then one
// 4 KiB bin holding the root nk cell, the security (sk) cell that hivex
// copies to every key it adds, and free space.
func Empty() []byte {
	h := make([]byte, 0x2000)
	le := binary.LittleEndian
	copy(h, "regf")
	le.PutUint32(h[0x04:], 1)      // sequence 1
	le.PutUint32(h[0x08:], 1)      // sequence 2
	le.PutUint32(h[0x14:], 1)      // major version
	le.PutUint32(h[0x18:], 5)      // minor version (5: lh indexes)
	le.PutUint32(h[0x1c:], 0)      // primary file
	le.PutUint32(h[0x20:], 1)      // format: direct memory load
	le.PutUint32(h[0x24:], 0x20)   // root cell offset
	le.PutUint32(h[0x28:], 0x1000) // hive bins data size
	le.PutUint32(h[0x2c:], 1)      // clustering factor
	for i, u := range utf16.Encode([]rune(`\guestkit\test`)) {
		le.PutUint16(h[0x30+2*i:], u)
	}
	var sum uint32
	for i := 0; i < 0x1fc; i += 4 {
		sum ^= le.Uint32(h[i:])
	}
	le.PutUint32(h[0x1fc:], sum)

	bin := h[0x1000:]
	copy(bin, "hbin")
	le.PutUint32(bin[0x04:], 0)      // offset of this bin
	le.PutUint32(bin[0x08:], 0x1000) // size of this bin

	// Root key at 0x20: flags 0x2c = root, cannot delete, ASCII name.
	const name = "ROOT"
	nk := bin[0x20:]
	nkSize := (4 + 0x4c + len(name) + 7) &^ 7
	le.PutUint32(nk[0:], uint32(-int32(nkSize)))
	copy(nk[4:], "nk")
	le.PutUint16(nk[6:], 0x2c)
	le.PutUint32(nk[4+0x10:], 0)          // parent
	le.PutUint32(nk[4+0x14:], 0)          // subkeys
	le.PutUint32(nk[4+0x1c:], 0xffffffff) // subkey list
	le.PutUint32(nk[4+0x20:], 0xffffffff) // volatile subkey list
	le.PutUint32(nk[4+0x24:], 0)          // values
	le.PutUint32(nk[4+0x28:], 0xffffffff) // value list
	skOff := 0x20 + nkSize
	le.PutUint32(nk[4+0x2c:], uint32(skOff)) // security
	le.PutUint32(nk[4+0x30:], 0xffffffff)    // class
	le.PutUint16(nk[4+0x48:], uint16(len(name)))
	copy(nk[4+0x4c:], name)

	// Security cell: a list of one, pointing at itself, with a minimal
	// self-relative descriptor (no owner, group or ACLs).
	sd := []byte{1, 0, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	sk := bin[skOff:]
	skSize := (4 + 0x14 + len(sd) + 7) &^ 7
	le.PutUint32(sk[0:], uint32(-int32(skSize)))
	copy(sk[4:], "sk")
	le.PutUint32(sk[4+0x04:], uint32(skOff)) // flink
	le.PutUint32(sk[4+0x08:], uint32(skOff)) // blink
	le.PutUint32(sk[4+0x0c:], 1)             // reference count
	le.PutUint32(sk[4+0x10:], uint32(len(sd)))
	copy(sk[4+0x14:], sd)

	free := skOff + skSize
	le.PutUint32(bin[free:], uint32(0x1000-free)) // positive: unallocated
	return h
}

// Hive returns a hive holding the keys and values of reg, a .reg text in
// regedit's format ("Windows Registry Editor Version 5.00", [keys],
// "name"=value lines). Key paths in reg start with prefix, which is not
// stored (`HKEY_LOCAL_MACHINE\SOFTWARE` for a SOFTWARE hive).
func Hive(t testing.TB, prefix, reg string) []byte {
	t.Helper()
	bin, err := exec.LookPath("hivexregedit")
	if err != nil {
		t.Fatalf("hivexregedit (Debian package libwin-hivex-perl, scripts/packages-test.txt) is not installed: %v", err)
	}
	dir := t.TempDir()
	hive := filepath.Join(dir, "hive")
	if err := os.WriteFile(hive, Empty(), 0o644); err != nil {
		t.Fatal(err)
	}
	regFile := filepath.Join(dir, "merge.reg")
	reg = "Windows Registry Editor Version 5.00\n\n" + withParents(prefix, strings.TrimPrefix(reg, "Windows Registry Editor Version 5.00\n"))
	if err := os.WriteFile(regFile, []byte(reg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--merge", "--prefix", prefix, hive, regFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hivexregedit --merge: %v\n%s", err, out)
	}
	data, err := os.ReadFile(hive)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// withParents adds an empty section for every parent key that reg does
// not name before its children: hivexregedit creates one key level at a
// time and refuses a key whose parent does not exist.
func withParents(prefix, reg string) string {
	seen := map[string]bool{}
	var b strings.Builder
	for _, line := range strings.SplitAfter(reg, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") && !strings.HasPrefix(t, "[-") && strings.HasSuffix(t, "]") {
			key := t[1 : len(t)-1]
			rel := strings.TrimPrefix(strings.TrimPrefix(key, prefix), `\`)
			parts := strings.Split(rel, `\`)
			for i := 1; i < len(parts); i++ {
				parent := prefix + `\` + strings.Join(parts[:i], `\`)
				if !seen[strings.ToLower(parent)] {
					seen[strings.ToLower(parent)] = true
					b.WriteString("[" + parent + "]\n\n")
				}
			}
			seen[strings.ToLower(key)] = true
		}
		b.WriteString(line)
	}
	return b.String()
}
