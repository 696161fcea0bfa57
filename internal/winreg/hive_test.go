package winreg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"guestkit.io/batch/internal/winreg/winregtest"
)

const softwarePrefix = `HKEY_LOCAL_MACHINE\SOFTWARE`

// typesReg holds one value of every type the API decodes.
const typesReg = `
[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows NT\CurrentVersion]
"ProductName"="Windows Server 2022 Datacenter"
"CurrentMajorVersionNumber"=dword:0000000a
"InstallDate"=hex(b):00,00,00,00,01,00,00,00
"PathName"=hex(2):43,00,3a,00,5c,00,57,00,69,00,6e,00,64,00,6f,00,77,00,73,00,00,00
"Sources"=hex(7):61,00,00,00,62,00,63,00,00,00,00,00
"DigitalProductId"=hex:a4,00,00,00,03
@="default"

[HKEY_LOCAL_MACHINE\SOFTWARE\Caf\u00e9]
"Nom"="valeur"
`

func softwareHive(t *testing.T) *Hive {
	t.Helper()
	reg := strings.ReplaceAll(typesReg, `\u00e9`, "\u00e9")
	data := winregtest.Hive(t, softwarePrefix, reg)
	h, err := Parse("SOFTWARE", data)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestValuesOfEveryType(t *testing.T) {
	h := softwareHive(t)
	k, err := h.Key(`microsoft\WINDOWS NT\currentversion`)
	if err != nil {
		t.Fatal(err)
	}
	if k.Path() != `Microsoft\Windows NT\CurrentVersion` || k.Name() != "CurrentVersion" {
		t.Errorf("path %q name %q", k.Path(), k.Name())
	}
	checks := []struct {
		name string
		typ  Type
		want func(v *Value) any
		is   any
	}{
		{"productname", SZ, func(v *Value) any { return v.String }, "Windows Server 2022 Datacenter"},
		{"CurrentMajorVersionNumber", DWord, func(v *Value) any { return v.Uint }, uint64(10)},
		{"InstallDate", QWord, func(v *Value) any { return v.Uint }, uint64(1) << 32},
		{"PathName", ExpandSZ, func(v *Value) any { return v.String }, `C:\Windows`},
		{"Sources", MultiSZ, func(v *Value) any { return v.Strings }, []string{"a", "bc"}},
		{"DigitalProductId", Binary, func(v *Value) any { return v.Data }, []byte{0xa4, 0, 0, 0, 3}},
		{"", SZ, func(v *Value) any { return v.String }, "default"},
	}
	for _, c := range checks {
		v, err := k.Value(c.name)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if v.Type != c.typ {
			t.Errorf("%s: type %s, want %s", c.name, v.Type, c.typ)
		}
		if got := c.want(v); !reflect.DeepEqual(got, c.is) {
			t.Errorf("%s: %#v, want %#v", c.name, got, c.is)
		}
	}
	if s, err := k.String("ProductName"); err != nil || s != "Windows Server 2022 Datacenter" {
		t.Errorf("String: %q %v", s, err)
	}
	if n, err := k.Uint("CurrentMajorVersionNumber"); err != nil || n != 10 {
		t.Errorf("Uint: %d %v", n, err)
	}
	if _, err := k.Uint("ProductName"); !errors.Is(err, ErrWrongType) || !strings.Contains(err.Error(), "REG_SZ") {
		t.Errorf("Uint of a string: %v", err)
	}
	if ss, err := k.Strings("ProductName"); err != nil || len(ss) != 1 {
		t.Errorf("Strings of REG_SZ: %q %v", ss, err)
	}
	vals, err := k.Values()
	if err != nil || len(vals) != len(checks) {
		t.Errorf("Values: %d values, %v", len(vals), err)
	}
	if _, err := k.Value("Absent"); !errors.Is(err, ErrNotFound) || !IsMissing(err) {
		t.Errorf("missing value: %v", err)
	}
	_, err = h.Key(`Microsoft\Windows NT\Nothing\Here`)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `Microsoft\Windows NT\Nothing`) {
		t.Errorf("missing key: %v", err)
	}
	// Names that are not ASCII are stored as UTF-16 by hivex.
	cafe, err := h.Key("CAFÉ")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := cafe.String("nom"); cafe.Name() != "Café" || s != "valeur" {
		t.Errorf("non-ASCII key %q value %q", cafe.Name(), s)
	}
	names, err := h.Root().SubkeyNames()
	if err != nil || !reflect.DeepEqual(names, []string{"Café", "Microsoft"}) {
		t.Errorf("root subkeys %q %v", names, err)
	}
}

func TestManySubkeysAndBigValue(t *testing.T) {
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Many\\K%05d]\n\"N\"=dword:%08x\n\n", i, i)
	}
	big := strings.Repeat("x", 40000)
	fmt.Fprintf(&b, "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Big]\n\"V\"=\"%s\"\n", big)
	h, err := Parse("SOFTWARE", winregtest.Hive(t, softwarePrefix, b.String()))
	if err != nil {
		t.Fatal(err)
	}
	many, err := h.Key("Many")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := many.Subkeys()
	if err != nil || len(keys) != 1000 {
		t.Fatalf("%d subkeys, %v", len(keys), err)
	}
	for i, k := range keys {
		if k.Name() != fmt.Sprintf("K%05d", i) {
			t.Fatalf("subkey %d is %s", i, k.Name())
		}
	}
	k, err := many.Subkey("k00999")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := k.Uint("n"); n != 999 {
		t.Errorf("K00999\\N = %d", n)
	}
	bk, err := h.Key("Big")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := bk.String("V"); err != nil || s != big {
		t.Errorf("big value: %d chars, %v", len(s), err)
	}
}

// sizedFS reports a size for one file without holding its bytes.
type sizedFS struct {
	fstest.MapFS
	name string
	size int64
}

type sizedInfo struct {
	fs.FileInfo
	size int64
}

func (i sizedInfo) Size() int64 { return i.size }

func (s sizedFS) Stat(name string) (fs.FileInfo, error) {
	fi, err := s.MapFS.Stat(name)
	if err == nil && name == s.name {
		return sizedInfo{fi, s.size}, nil
	}
	return fi, err
}

func (s sizedFS) Open(name string) (fs.File, error) {
	if name == s.name {
		return nil, errors.New("the size bound must hold without opening")
	}
	return s.MapFS.Open(name)
}

func (s sizedFS) ReadLink(name string) (string, error) { return s.MapFS.ReadLink(name) }
func (s sizedFS) Lstat(name string) (fs.FileInfo, error) {
	return s.Stat(name)
}

func TestOpenBounds(t *testing.T) {
	const name = "Windows/System32/config/SOFTWARE"
	fsys := sizedFS{fstest.MapFS{name: {Data: []byte("regf")}}, name, MaxHiveSize + 1}
	_, err := Open(fsys, name)
	if err == nil || !strings.Contains(err.Error(), "/"+name) || !strings.Contains(err.Error(), "exceeds read limit") {
		t.Errorf("huge hive: %v", err)
	}
	_, err = Open(fstest.MapFS{}, name)
	if !IsMissing(err) {
		t.Errorf("missing hive: %v", err)
	}
	h, err := Open(fstest.MapFS{name: {Data: winregtest.Empty()}}, name)
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != "/"+name || h.Root().Name() != "ROOT" {
		t.Errorf("name %q root %q", h.Name, h.Root().Name())
	}
}

// hostile patches a copy of a hivex hive.
func hostile(t *testing.T, patch func(h *Hive, data []byte)) []byte {
	t.Helper()
	data := winregtest.Hive(t, softwarePrefix, "[HKEY_LOCAL_MACHINE\\SOFTWARE\\A\\B]\n\"V\"=\"hello\"\n\"D\"=dword:00000001\n")
	h, err := Parse("x", data)
	if err != nil {
		t.Fatal(err)
	}
	patch(h, data)
	return data
}

// nkField returns the file offset of a field of key k's nk cell payload.
func nkField(k *Key, field int) int { return 0x1000 + int(k.off) + 4 + field }

func TestHostileHives(t *testing.T) {
	keyA := func(h *Hive) *Key {
		k, err := h.Key("A")
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keyB := func(h *Hive) *Key {
		k, err := h.Key(`A\B`)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	le := binary.LittleEndian
	cases := []struct {
		name  string
		data  func() []byte
		walk  func(h *Hive) error
		wants string
	}{
		{"huge subkey count", func() []byte {
			return hostile(t, func(h *Hive, d []byte) { le.PutUint32(d[nkField(keyA(h), 0x14):], 0xfffffff0) })
		}, func(h *Hive) error { _, err := h.Key(`A\B`); return err }, "claims 4294967280 subkeys"},
		{"subkey count beyond the index", func() []byte {
			return hostile(t, func(h *Hive, d []byte) { le.PutUint32(d[nkField(keyA(h), 0x14):], 5000) })
		}, func(h *Hive) error { _, err := keyA(h).Subkeys(); return err }, ""},
		{"index entries overrun", func() []byte {
			return hostile(t, func(h *Hive, d []byte) {
				idx := 0x1000 + int(le.Uint32(d[nkField(keyA(h), 0x1c):])) + 4
				le.PutUint16(d[idx+2:], 0xffff)
				le.PutUint32(d[nkField(keyA(h), 0x14):], 0xffff)
			})
		}, func(h *Hive) error { _, err := keyA(h).Subkeys(); return err }, "overrun its cell"},
		{"ri index naming itself", func() []byte {
			return hostile(t, func(h *Hive, d []byte) {
				off := le.Uint32(d[nkField(keyA(h), 0x1c):])
				idx := 0x1000 + int(off) + 4
				copy(d[idx:], "ri")
				le.PutUint16(d[idx+2:], 1)
				le.PutUint32(d[idx+4:], off)
			})
		}, func(h *Hive) error { _, err := keyA(h).Subkeys(); return err }, "referenced twice"},
		{"subkey list outside the file", func() []byte {
			return hostile(t, func(h *Hive, d []byte) { le.PutUint32(d[nkField(keyA(h), 0x1c):], 0x7ffffff0) })
		}, func(h *Hive) error { _, err := keyA(h).Subkeys(); return err }, "outside the file"},
		{"huge value count", func() []byte {
			return hostile(t, func(h *Hive, d []byte) { le.PutUint32(d[nkField(keyB(h), 0x24):], 1<<30) })
		}, func(h *Hive) error { _, err := keyB(h).Values(); return err }, "claims 1073741824 values"},
		{"value data too large", func() []byte {
			return hostile(t, func(h *Hive, d []byte) {
				vl := 0x1000 + int(le.Uint32(d[nkField(keyB(h), 0x28):])) + 4
				for i := range 2 {
					vk := 0x1000 + int(le.Uint32(d[vl+4*i:])) + 4
					if string(d[vk+0x14:vk+0x15]) == "V" {
						le.PutUint32(d[vk+4:], 0x7fffffff)
					}
				}
			})
		}, func(h *Hive) error { _, err := keyB(h).Value("V"); return err }, "limit"},
		{"value data beyond its cell", func() []byte {
			return hostile(t, func(h *Hive, d []byte) {
				vl := 0x1000 + int(le.Uint32(d[nkField(keyB(h), 0x28):])) + 4
				for i := range 2 {
					vk := 0x1000 + int(le.Uint32(d[vl+4*i:])) + 4
					if string(d[vk+0x14:vk+0x15]) == "V" {
						le.PutUint32(d[vk+4:], 4096)
					}
				}
			})
		}, func(h *Hive) error { _, err := keyB(h).Value("V"); return err }, "overruns"},
		{"inline DWORD of 3 bytes", func() []byte {
			return hostile(t, func(h *Hive, d []byte) {
				vl := 0x1000 + int(le.Uint32(d[nkField(keyB(h), 0x28):])) + 4
				for i := range 2 {
					vk := 0x1000 + int(le.Uint32(d[vl+4*i:])) + 4
					if string(d[vk+0x14:vk+0x15]) == "D" {
						le.PutUint32(d[vk+4:], 0x80000003)
					}
				}
			})
		}, func(h *Hive) error { _, err := keyB(h).Uint("D"); return err }, "REG_DWORD of 3 bytes"},
		{"key name overruns its cell", func() []byte {
			return hostile(t, func(h *Hive, d []byte) { le.PutUint16(d[nkField(keyB(h), 0x48):], 0xffff) })
		}, func(h *Hive) error { _, err := h.Key(`A\B`); return err }, "overruns its cell"},
		{"root outside the file", func() []byte {
			d := winregtest.Empty()
			le.PutUint32(d[0x24:], 0x10000000)
			return d
		}, nil, "outside the file"},
		{"no magic", func() []byte { d := winregtest.Empty(); copy(d, "nope"); return d }, nil, "registry magic"},
		{"truncated", func() []byte { return winregtest.Empty()[:0x1010] }, nil, "shorter than a header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := c.data()
			h, err := Parse("/Windows/System32/config/SOFTWARE", data)
			if err == nil && c.walk != nil {
				err = c.walk(h)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.wants) || !strings.Contains(err.Error(), "SOFTWARE") {
				t.Errorf("error %q: want ErrCorrupt naming the hive and %q", err, c.wants)
			}
		})
	}
}

// TestBigDataAndRootIndex rewrites a hivex hive into the two layouts
// Windows writes and hivex does not: a value over 16344 bytes split into
// "db" segments, and subkeys listed through an "ri" index of "li" lists.
func TestBigDataAndRootIndex(t *testing.T) {
	le := binary.LittleEndian
	data := winregtest.Hive(t, softwarePrefix, `
[HKEY_LOCAL_MACHINE\SOFTWARE\Big]
"V"="`+strings.Repeat("x", 10000)+`"

[HKEY_LOCAL_MACHINE\SOFTWARE\Many]
"Spare"=hex:`+strings.TrimSuffix(strings.Repeat("00,", 64), ",")+`

[HKEY_LOCAL_MACHINE\SOFTWARE\Many\K0]

[HKEY_LOCAL_MACHINE\SOFTWARE\Many\K1]
`)
	h, err := Parse("x", data)
	if err != nil {
		t.Fatal(err)
	}
	// The value's one data cell becomes a db cell, its segment list and
	// two segments, the second filling the rest of the old cell.
	big, _ := h.Key("Big")
	offs, _ := big.valueOffsets()
	vk := 0x1000 + int(offs[0]) + 4
	d := le.Uint32(data[vk+8:])
	abs := 0x1000 + int(d)
	cellSize := -int(int32(le.Uint32(data[abs:])))
	seg2 := cellSize - 16 - 16 - 16352
	size := 16344 + seg2 - 4
	le.PutUint32(data[abs:], uint32(0xfffffff0)) // -16
	copy(data[abs+4:], "db")
	le.PutUint16(data[abs+6:], 2)
	le.PutUint32(data[abs+8:], d+16)
	le.PutUint32(data[abs+16:], uint32(0xfffffff0))
	le.PutUint32(data[abs+20:], d+32)
	le.PutUint32(data[abs+24:], d+32+16352)
	neg := func(n int) uint32 { return uint32(-int32(n)) }
	le.PutUint32(data[abs+32:], neg(16352))
	le.PutUint32(data[abs+32+16352:], neg(seg2))
	for i := 0; i < 16344; i += 2 {
		data[abs+36+i], data[abs+37+i] = 'y', 0
	}
	for i := 0; i < seg2-4; i += 2 {
		data[abs+32+16352+4+i], data[abs+32+16352+5+i] = 'z', 0
	}
	le.PutUint32(data[vk+4:], uint32(size))
	s, err := big.String("V")
	if want := strings.Repeat("y", 8172) + strings.Repeat("z", (seg2-4)/2); err != nil || s != want {
		t.Errorf("db value: %d chars (want %d), %v", len(s), len(want), err)
	}
	le.PutUint16(data[abs+6:], 1)
	if _, err := big.String("V"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "16344 of") {
		t.Errorf("db value missing a segment: %v", err)
	}

	// Many's lh index becomes an ri naming one li list, written into the
	// data cell of its Spare value.
	many, _ := h.Key("Many")
	lh := 0x1000 + int(le.Uint32(data[nkField(many, 0x1c):]))
	k0, k1 := le.Uint32(data[lh+8:]), le.Uint32(data[lh+16:])
	spare, _ := many.valueOffsets()
	li := le.Uint32(data[0x1000+int(spare[0])+4+8:])
	p := 0x1000 + int(li) + 4
	copy(data[p:], "li")
	le.PutUint16(data[p+2:], 2)
	le.PutUint32(data[p+4:], k0)
	le.PutUint32(data[p+8:], k1)
	copy(data[lh+4:], "ri")
	le.PutUint16(data[lh+6:], 1)
	le.PutUint32(data[lh+8:], li)
	names, err := many.SubkeyNames()
	if err != nil || !reflect.DeepEqual(names, []string{"K0", "K1"}) {
		t.Errorf("ri/li subkeys %q, %v", names, err)
	}
}

func TestTruncatedAnywhere(t *testing.T) {
	data := winregtest.Hive(t, softwarePrefix, typesReg)
	start := time.Now()
	for n := 0; n < len(data); n += 61 {
		h, err := Parse("x", data[:n])
		if err != nil {
			continue
		}
		walk(h.Root(), 0, new(int))
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("truncations took %s", d)
	}
}

// walk reads every key and value it reaches, bounded, ignoring errors.
func walk(k *Key, depth int, budget *int) {
	if depth > 16 || *budget <= 0 {
		return
	}
	*budget--
	_, _ = k.Values()
	keys, _ := k.Subkeys()
	*budget -= len(keys)
	for _, sk := range keys {
		walk(sk, depth+1, budget)
	}
}

func FuzzHive(f *testing.F) {
	f.Add(winregtest.Empty())
	f.Add(winregtest.Hive(f, softwarePrefix, typesReg))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := Parse("fuzz", data)
		if err != nil {
			return
		}
		budget := 2000
		walk(h.Root(), 0, &budget)
		_, _ = h.Key(`Microsoft\Windows NT\CurrentVersion`)
		_, _ = CurrentControlSet(h)
	})
}
