// Package winreg reads Windows registry hive files (SOFTWARE, SYSTEM, SAM,
// SECURITY) from a guest's filesystem, for the Windows inspection sections
// and the Windows profile rules.
//
// A hive is read whole through guest.FS (so the same code runs on the
// appliance, the direct backend and in-memory trees), its header is checked
// with www.velocidex.com/golang/regparser, and keys and values are decoded
// with regparser's cell layouts. Walking the cells is done here rather than
// with regparser's Subkeys/ValueData: those follow counts and offsets from
// the file without bounds (an "ri" index naming itself recurses until the
// stack overflows, which no recover catches). Here every count, size and
// nesting level is bounded, each index cell is visited once, and a corrupt
// hive is an error wrapping ErrCorrupt, never a panic.
package winreg

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"

	"www.velocidex.com/golang/regparser"

	"guestkit.io/batch/internal/guest"
)

// Bounds. A real SOFTWARE hive of a long-lived server is 100-200 MiB, the
// largest hive by far; SYSTEM is tens of MiB, SAM and SECURITY well under
// one. Nothing legitimate comes near the other limits either: the biggest
// keys (Component Based Servicing\Packages, Services) hold some ten
// thousand subkeys.
const (
	// MaxHiveSize is the largest hive file Open reads.
	MaxHiveSize = 256 << 20
	// MaxSubkeys bounds the subkeys of one key.
	MaxSubkeys = 1 << 17
	// MaxValues bounds the values of one key.
	MaxValues = 1 << 16
	// MaxValueSize bounds one value's data.
	MaxValueSize = 8 << 20
	// MaxDepth bounds the components of a key path.
	MaxDepth = 512
	// maxIndexNesting bounds "ri" index nesting; Windows writes one level.
	maxIndexNesting = 4
	// maxBigDataSegments bounds the segments of one "db" value.
	maxBigDataSegments = MaxValueSize / 16344
)

var (
	// ErrNotFound is returned (wrapped) for a missing key or value.
	ErrNotFound = errors.New("not found")
	// ErrCorrupt is returned (wrapped) for a hive whose structures are
	// out of bounds or inconsistent.
	ErrCorrupt = errors.New("corrupt registry hive")
	// ErrWrongType is returned (wrapped) when a value is read as a type it
	// does not have.
	ErrWrongType = errors.New("wrong value type")
)

// Type is a registry value type (REG_SZ, REG_DWORD, ...).
type Type uint32

// Value types, as in winnt.h.
const (
	None             Type = regparser.REG_NONE
	SZ               Type = regparser.REG_SZ
	ExpandSZ         Type = regparser.REG_EXPAND_SZ
	Binary           Type = regparser.REG_BINARY
	DWord            Type = regparser.REG_DWORD
	DWordBigEndian   Type = regparser.REG_DWORD_BIG_ENDIAN
	Link             Type = regparser.REG_LINK
	MultiSZ          Type = regparser.REG_MULTI_SZ
	ResourceList     Type = regparser.REG_RESOURCE_LIST
	FullResourceDesc Type = regparser.REG_FULL_RESOURCE_DESCRIPTOR
	ResourceReqList  Type = regparser.REG_RESOURCE_REQUIREMENTS_LIST
	QWord            Type = regparser.REG_QWORD
)

// String is the winnt.h name ("REG_SZ"), or the number for other types.
func (t Type) String() string {
	if s := regparser.RegTypeToString(uint32(t)); s != "REG_UNKNOWN" {
		return s
	}
	return fmt.Sprintf("REG_0x%x", uint32(t))
}

// Hive is one parsed hive file, held in memory.
type Hive struct {
	// Name is the guest path the hive was read from (for errors).
	Name string
	data []byte
	reg  *regparser.Registry
	root uint32
	top  *Key
}

// Open reads and parses the hive at path (an io/fs path, "Windows/System32/
// config/SOFTWARE"). A file larger than MaxHiveSize is refused with an
// error naming it; a missing file is an error matching fs.ErrNotExist.
func Open(fsys guest.FS, path string) (*Hive, error) {
	data, err := guest.ReadFile(fsys, path, MaxHiveSize)
	if err != nil {
		return nil, fmt.Errorf("registry hive /%s: %w", path, err)
	}
	return Parse("/"+path, data)
}

// Parse parses a hive held in memory; name is used in errors.
func Parse(name string, data []byte) (h *Hive, err error) {
	// regparser reads through io.ReaderAt and never indexes slices, but a
	// hive is untrusted input: make a missed case an error, not a crash.
	defer func() {
		if r := recover(); r != nil {
			h, err = nil, fmt.Errorf("registry hive %s: %w: %v", name, ErrCorrupt, r)
		}
	}()
	if len(data) < 0x1000+0x20 {
		return nil, fmt.Errorf("registry hive %s: %w: %d bytes is shorter than a header and one bin", name, ErrCorrupt, len(data))
	}
	reg, err := regparser.NewRegistry(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("registry hive %s: %w: %v", name, ErrCorrupt, err)
	}
	h = &Hive{Name: name, data: data, reg: reg, root: reg.BaseBlock.RootCell()}
	if h.top, err = h.key(h.root, ""); err != nil {
		return nil, err
	}
	return h, nil
}

// corrupt builds an ErrCorrupt error naming the hive and the place.
func (h *Hive) corrupt(format string, args ...any) error {
	return fmt.Errorf("registry hive %s: %w: %s", h.Name, ErrCorrupt, fmt.Sprintf(format, args...))
}

// cell returns the payload of the allocated cell at hive offset off
// (relative to the first bin, as all cell references are).
func (h *Hive) cell(off uint32) ([]byte, error) {
	abs := 0x1000 + int64(off)
	if off == 0xffffffff || abs+4 > int64(len(h.data)) {
		return nil, h.corrupt("cell 0x%x outside the file", off)
	}
	size := int32(binary.LittleEndian.Uint32(h.data[abs:]))
	if size >= 0 {
		return nil, h.corrupt("cell 0x%x is not allocated", off)
	}
	n := -int64(size)
	if n < 8 || abs+n > int64(len(h.data)) {
		return nil, h.corrupt("cell 0x%x: size %d out of bounds", off, n)
	}
	return h.data[abs+4 : abs+n], nil
}

// Key is one registry key of a hive.
type Key struct {
	h *Hive
	// off is the nk cell's hive offset.
	off  uint32
	nk   *regparser.CM_KEY_NODE
	name string
	path string
}

// nk layout (offsets into the cell payload, after the 4-byte size).
const (
	nkFlagCompName = 0x20
	nkMinSize      = 0x4c // fixed part up to the name
	vkFlagCompName = 0x0001
	vkMinSize      = 0x14
)

// key decodes the nk cell at off; path is the key's path for errors.
func (h *Hive) key(off uint32, parent string) (*Key, error) {
	p, err := h.cell(off)
	if err != nil {
		return nil, err
	}
	if len(p) < nkMinSize || p[0] != 'n' || p[1] != 'k' {
		return nil, h.corrupt("cell 0x%x under %q is not a key (nk)", off, parent)
	}
	nk := h.reg.Profile.CM_KEY_NODE(h.reg.Reader, 0x1000+int64(off)+4)
	n := int(nk.NameLength())
	if nkMinSize+n > len(p) {
		return nil, h.corrupt("key 0x%x under %q: name of %d bytes overruns its cell", off, parent, n)
	}
	name := decodeName(p[nkMinSize:nkMinSize+n], nk.Flags()&nkFlagCompName != 0)
	k := &Key{h: h, off: off, nk: nk, name: name}
	switch {
	case parent == "" && off == h.root:
		k.path = ""
	case parent == "":
		k.path = name
	default:
		k.path = parent + `\` + name
	}
	return k, nil
}

// decodeName decodes a key or value name: Latin-1 when the "compressed"
// flag is set, UTF-16LE otherwise.
func decodeName(b []byte, compressed bool) string {
	if compressed {
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return string(r)
	}
	return decodeUTF16(b)
}

// decodeUTF16 decodes UTF-16LE, dropping a trailing odd byte.
func decodeUTF16(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// Root is the hive's root key.
func (h *Hive) Root() *Key { return h.top }

// Key opens a key by its backslash-separated path below the hive root,
// matching each component case-insensitively, as Windows does
// (`Microsoft\Windows NT\CurrentVersion`). "" is the root. A missing key is
// an error matching ErrNotFound.
func (h *Hive) Key(path string) (*Key, error) {
	return h.Root().Key(path)
}

// Name is the key's own name.
func (k *Key) Name() string { return k.name }

// Path is the key's path below the hive root, as it is spelled in the hive.
func (k *Key) Path() string { return k.path }

// Hive is the hive the key belongs to.
func (k *Key) Hive() *Hive { return k.h }

// Key opens a key below k by a relative path (see Hive.Key).
func (k *Key) Key(path string) (*Key, error) {
	parts := strings.FieldsFunc(path, func(r rune) bool { return r == '\\' || r == '/' })
	if len(parts) > MaxDepth {
		return nil, fmt.Errorf("registry hive %s: key path %q: more than %d components", k.h.Name, path, MaxDepth)
	}
	cur := k
	for _, name := range parts {
		next, err := cur.Subkey(name)
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}

// Subkey opens the direct subkey called name (case-insensitive).
func (k *Key) Subkey(name string) (*Key, error) {
	var found *Key
	err := k.eachSubkey(func(off uint32) (bool, error) {
		sk, err := k.h.key(off, k.path)
		if err != nil {
			return false, err
		}
		if strings.EqualFold(sk.name, name) {
			found = sk
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("registry hive %s: key %s: %w", k.h.Name, join(k.path, name), ErrNotFound)
	}
	return found, nil
}

func join(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + `\` + name
}

// Subkeys lists the direct subkeys, in the hive's (sorted) order.
func (k *Key) Subkeys() ([]*Key, error) {
	var out []*Key
	err := k.eachSubkey(func(off uint32) (bool, error) {
		sk, err := k.h.key(off, k.path)
		if err != nil {
			return false, err
		}
		out = append(out, sk)
		return true, nil
	})
	return out, err
}

// SubkeyNames lists the names of the direct subkeys.
func (k *Key) SubkeyNames() ([]string, error) {
	keys, err := k.Subkeys()
	names := make([]string, len(keys))
	for i, sk := range keys {
		names[i] = sk.name
	}
	return names, err
}

// eachSubkey calls fn with the nk offset of every subkey until fn returns
// false. It walks lf/lh/li leaves and ri roots without recursion, visiting
// each index cell once and at most MaxSubkeys entries.
func (k *Key) eachSubkey(fn func(off uint32) (bool, error)) error {
	count := k.nk.SubKeyCounts()[0]
	if count == 0 {
		return nil
	}
	if count > MaxSubkeys {
		return k.h.corrupt("key %q claims %d subkeys (limit %d)", k.path, count, MaxSubkeys)
	}
	type item struct {
		off   uint32
		depth int
	}
	stack := []item{{k.nk.SubKeyLists()[0], 0}}
	seen := map[uint32]bool{}
	total := uint32(0)
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[it.off] {
			return k.h.corrupt("key %q: subkey index 0x%x is referenced twice", k.path, it.off)
		}
		seen[it.off] = true
		p, err := k.h.cell(it.off)
		if err != nil {
			return fmt.Errorf("key %q subkey index: %w", k.path, err)
		}
		if len(p) < 4 {
			return k.h.corrupt("key %q: subkey index 0x%x too short", k.path, it.off)
		}
		sig := string(p[:2])
		n := int(binary.LittleEndian.Uint16(p[2:]))
		stride := 8
		if sig == "li" || sig == "ri" {
			stride = 4
		}
		switch sig {
		case "lf", "lh", "li", "ri":
		default:
			return k.h.corrupt("key %q: subkey index 0x%x has signature %q", k.path, it.off, sig)
		}
		if 4+n*stride > len(p) {
			return k.h.corrupt("key %q: subkey index 0x%x: %d entries overrun its cell", k.path, it.off, n)
		}
		if sig == "ri" {
			if it.depth >= maxIndexNesting {
				return k.h.corrupt("key %q: subkey indexes nested more than %d deep", k.path, maxIndexNesting)
			}
			// Push in reverse so leaves are visited in order.
			for i := n - 1; i >= 0; i-- {
				stack = append(stack, item{binary.LittleEndian.Uint32(p[4+4*i:]), it.depth + 1})
			}
			continue
		}
		for i := 0; i < n; i++ {
			total++
			if total > count || total > MaxSubkeys {
				return k.h.corrupt("key %q: subkey indexes list more than the %d subkeys it claims", k.path, count)
			}
			more, err := fn(binary.LittleEndian.Uint32(p[4+stride*i:]))
			if err != nil || !more {
				return err
			}
		}
	}
	if total != count {
		return k.h.corrupt("key %q claims %d subkeys, its indexes list %d", k.path, count, total)
	}
	return nil
}

// Value is one decoded registry value. Which field holds the data depends
// on Type: String for REG_SZ, REG_EXPAND_SZ and REG_LINK (trailing NULs
// dropped); Strings for REG_MULTI_SZ; Uint for REG_DWORD (either byte
// order) and REG_QWORD; Data always holds the raw bytes (the only field
// for REG_BINARY and other types).
type Value struct {
	Name    string
	Type    Type
	Data    []byte
	String  string
	Strings []string
	Uint    uint64
}

// Values lists the key's values in the hive's order.
func (k *Key) Values() ([]*Value, error) {
	offs, err := k.valueOffsets()
	if err != nil {
		return nil, err
	}
	out := make([]*Value, 0, len(offs))
	for _, off := range offs {
		v, err := k.value(off, true)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Value reads the value called name (case-insensitive; "" is the default
// value). A missing value is an error matching ErrNotFound.
func (k *Key) Value(name string) (*Value, error) {
	offs, err := k.valueOffsets()
	if err != nil {
		return nil, err
	}
	for _, off := range offs {
		v, err := k.value(off, false)
		if err != nil {
			return nil, err
		}
		if strings.EqualFold(v.Name, name) {
			return k.value(off, true)
		}
	}
	return nil, fmt.Errorf("registry hive %s: key %s: value %q: %w", k.h.Name, k.path, name, ErrNotFound)
}

// String reads a REG_SZ or REG_EXPAND_SZ value (not expanded).
func (k *Key) String(name string) (string, error) {
	v, err := k.Value(name)
	if err != nil {
		return "", err
	}
	if v.Type != SZ && v.Type != ExpandSZ {
		return "", fmt.Errorf("registry hive %s: key %s: value %q is %s, not a string: %w", k.h.Name, k.path, name, v.Type, ErrWrongType)
	}
	return v.String, nil
}

// Uint reads a REG_DWORD or REG_QWORD value.
func (k *Key) Uint(name string) (uint64, error) {
	v, err := k.Value(name)
	if err != nil {
		return 0, err
	}
	switch v.Type {
	case DWord, DWordBigEndian, QWord:
		return v.Uint, nil
	}
	return 0, fmt.Errorf("registry hive %s: key %s: value %q is %s, not a number: %w", k.h.Name, k.path, name, v.Type, ErrWrongType)
}

// Strings reads a REG_MULTI_SZ value; a REG_SZ value gives one string.
func (k *Key) Strings(name string) ([]string, error) {
	v, err := k.Value(name)
	if err != nil {
		return nil, err
	}
	switch v.Type {
	case MultiSZ:
		return v.Strings, nil
	case SZ, ExpandSZ:
		return []string{v.String}, nil
	}
	return nil, fmt.Errorf("registry hive %s: key %s: value %q is %s, not strings: %w", k.h.Name, k.path, name, v.Type, ErrWrongType)
}

// valueOffsets returns the vk cell offsets of the key's value list.
func (k *Key) valueOffsets() ([]uint32, error) {
	vl := k.nk.ValueList()
	count := vl.Count()
	if count == 0 {
		return nil, nil
	}
	if count > MaxValues {
		return nil, k.h.corrupt("key %q claims %d values (limit %d)", k.path, count, MaxValues)
	}
	p, err := k.h.cell(vl.List())
	if err != nil {
		return nil, fmt.Errorf("key %q value list: %w", k.path, err)
	}
	if int(count)*4 > len(p) {
		return nil, k.h.corrupt("key %q: %d values overrun the value list cell", k.path, count)
	}
	offs := make([]uint32, count)
	for i := range offs {
		offs[i] = binary.LittleEndian.Uint32(p[4*i:])
	}
	return offs, nil
}

// value decodes the vk cell at off; with data false only the name and
// type are read.
func (k *Key) value(off uint32, data bool) (*Value, error) {
	p, err := k.h.cell(off)
	if err != nil {
		return nil, fmt.Errorf("key %q value: %w", k.path, err)
	}
	if len(p) < vkMinSize || p[0] != 'v' || p[1] != 'k' {
		return nil, k.h.corrupt("key %q: cell 0x%x is not a value (vk)", k.path, off)
	}
	vk := k.h.reg.Profile.CM_KEY_VALUE(k.h.reg.Reader, 0x1000+int64(off)+4)
	n := int(vk.NameLength())
	if vkMinSize+n > len(p) {
		return nil, k.h.corrupt("key %q: value 0x%x: name overruns its cell", k.path, off)
	}
	v := &Value{
		Name: decodeName(p[vkMinSize:vkMinSize+n], vk.Flags()&vkFlagCompName != 0),
		Type: Type(vk.Type()),
	}
	if !data {
		return v, nil
	}
	if v.Data, err = k.valueData(vk); err != nil {
		return nil, fmt.Errorf("key %q value %q: %w", k.path, v.Name, err)
	}
	if err := v.decode(); err != nil {
		return nil, fmt.Errorf("registry hive %s: key %s: value %q: %w", k.h.Name, k.path, v.Name, err)
	}
	return v, nil
}

// valueData returns a value's raw bytes: inline (4 bytes at most), in one
// cell, or in "db" big-data segments.
func (k *Key) valueData(vk *regparser.CM_KEY_VALUE) ([]byte, error) {
	size := vk.DataLength()
	if size&0x80000000 != 0 {
		size &^= 0x80000000
		if size > 4 {
			return nil, k.h.corrupt("inline data of %d bytes", size)
		}
		raw := make([]byte, 4)
		binary.LittleEndian.PutUint32(raw, vk.Data())
		return raw[:size], nil
	}
	if size == 0 {
		return []byte{}, nil
	}
	if size > MaxValueSize {
		return nil, k.h.corrupt("data of %d bytes (limit %d)", size, MaxValueSize)
	}
	p, err := k.h.cell(vk.Data())
	if err != nil {
		return nil, err
	}
	if len(p) >= 8 && p[0] == 'd' && p[1] == 'b' && size > 16344 {
		return k.bigData(p, size)
	}
	if int(size) > len(p) {
		return nil, k.h.corrupt("data of %d bytes overruns its %d-byte cell", size, len(p))
	}
	return bytes.Clone(p[:size]), nil
}

// bigData joins the segments of a "db" cell.
func (k *Key) bigData(db []byte, size uint32) ([]byte, error) {
	n := int(binary.LittleEndian.Uint16(db[2:]))
	if n > maxBigDataSegments+1 {
		return nil, k.h.corrupt("big data with %d segments", n)
	}
	list, err := k.h.cell(binary.LittleEndian.Uint32(db[4:]))
	if err != nil {
		return nil, err
	}
	if n*4 > len(list) {
		return nil, k.h.corrupt("big data segment list overruns its cell")
	}
	out := make([]byte, 0, size)
	for i := 0; i < n && uint32(len(out)) < size; i++ {
		seg, err := k.h.cell(binary.LittleEndian.Uint32(list[4*i:]))
		if err != nil {
			return nil, err
		}
		take := min(len(seg), 16344, int(size)-len(out))
		out = append(out, seg[:take]...)
	}
	if uint32(len(out)) < size {
		return nil, k.h.corrupt("big data: %d of %d bytes in its segments", len(out), size)
	}
	return out, nil
}

// decode fills the typed field from Data.
func (v *Value) decode() error {
	switch v.Type {
	case SZ, ExpandSZ, Link:
		s := decodeUTF16(v.Data)
		if i := strings.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}
		v.String = s
	case MultiSZ:
		for _, s := range strings.Split(decodeUTF16(v.Data), "\x00") {
			if s != "" {
				v.Strings = append(v.Strings, s)
			}
		}
	case DWord:
		if len(v.Data) != 4 {
			return fmt.Errorf("%w: REG_DWORD of %d bytes", ErrCorrupt, len(v.Data))
		}
		v.Uint = uint64(binary.LittleEndian.Uint32(v.Data))
	case DWordBigEndian:
		if len(v.Data) != 4 {
			return fmt.Errorf("%w: REG_DWORD_BIG_ENDIAN of %d bytes", ErrCorrupt, len(v.Data))
		}
		v.Uint = uint64(binary.BigEndian.Uint32(v.Data))
	case QWord:
		if len(v.Data) != 8 {
			return fmt.Errorf("%w: REG_QWORD of %d bytes", ErrCorrupt, len(v.Data))
		}
		v.Uint = binary.LittleEndian.Uint64(v.Data)
	}
	return nil
}
