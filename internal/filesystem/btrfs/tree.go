package btrfs

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// key orders every item of a tree: object id, then type, then offset.
type key struct {
	obj uint64
	typ uint8
	off uint64
}

func readKey(b []byte) key {
	return key{binary.LittleEndian.Uint64(b), b[8], binary.LittleEndian.Uint64(b[9:])}
}

func (a key) cmp(b key) int {
	switch {
	case a.obj != b.obj:
		return cmpU64(a.obj, b.obj)
	case a.typ != b.typ:
		return cmpU64(uint64(a.typ), uint64(b.typ))
	default:
		return cmpU64(a.off, b.off)
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// treeRoot is where a tree starts, with the level and generation its
// root block must have.
type treeRoot struct {
	bytenr uint64
	level  uint8
	gen    uint64
}

// node is a checked tree block: its item table is known to fit, its keys
// to increase.
type node struct {
	b       []byte
	logical uint64
	level   uint8
	gen     uint64
	n       int
}

func (n *node) key(i int) key {
	if n.level == 0 {
		return readKey(n.b[headerSize+i*itemSize:])
	}
	return readKey(n.b[headerSize+i*keyPtrSize:])
}

// data is the i-th item's data, in a leaf.
func (n *node) data(i int) []byte {
	p := n.b[headerSize+i*itemSize+keySize:]
	off := binary.LittleEndian.Uint32(p)
	size := binary.LittleEndian.Uint32(p[4:])
	return n.b[headerSize+int(off) : headerSize+int(off)+int(size)]
}

// ptr is the i-th child's address and generation, in a node.
func (n *node) ptr(i int) (uint64, uint64) {
	p := n.b[headerSize+i*keyPtrSize+keySize:]
	return binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:])
}

// node returns the tree block at logical, checked, which must have the
// given level and generation.
func (f *FS) node(logical uint64, level uint8, gen uint64) (*node, error) {
	n, ok := f.nodes.get(logical)
	if !ok {
		var err error
		if n, err = f.readNode(logical); err != nil {
			return nil, err
		}
		f.nodes.put(logical, n)
	}
	if n.level != level {
		return nil, corrupt("btrfs: tree block at %d has level %d, expected %d", logical, n.level, level)
	}
	if n.gen != gen {
		return nil, corrupt("btrfs: tree block at %d has generation %d, expected %d", logical, n.gen, gen)
	}
	return n, nil
}

// readNode reads a tree block from the first copy whose checksum holds.
func (f *FS) readNode(logical uint64) (*node, error) {
	size := uint64(f.sb.nodeSize)
	if logical%uint64(f.sb.sectorSize) != 0 {
		return nil, corrupt("btrfs: tree block at %d is not sector aligned", logical)
	}
	phys, n, err := f.mapLogical(logical)
	if err != nil {
		return nil, err
	}
	if n < size {
		return nil, corrupt("btrfs: tree block at %d crosses its chunk's end", logical)
	}
	b := make([]byte, size)
	cs := csumSize(f.sb.csumType)
	for i, p := range phys {
		if err = f.readPhys(b, p); err != nil {
			continue
		}
		if !bytes.Equal(checksum(f.sb.csumType, b[32:])[:cs], b[:cs]) {
			err = corrupt("btrfs: tree block at %d (copy %d, physical %d): checksum mismatch", logical, i, p)
			continue
		}
		return f.checkNode(logical, b)
	}
	return nil, err
}

func (f *FS) checkNode(logical uint64, b []byte) (*node, error) {
	le := binary.LittleEndian
	if got := le.Uint64(b[0x30:]); got != logical {
		return nil, corrupt("btrfs: tree block at %d says it is at %d", logical, got)
	}
	if !bytes.Equal(b[0x20:0x30], f.sb.metaFSID[:]) {
		return nil, corrupt("btrfs: tree block at %d belongs to another filesystem", logical)
	}
	n := &node{b: b, logical: logical, gen: le.Uint64(b[0x50:]), level: b[0x64]}
	nr := le.Uint32(b[0x60:])
	space := uint32(len(b) - headerSize)
	if n.level >= maxLevel {
		return nil, corrupt("btrfs: tree block at %d has level %d", logical, n.level)
	}
	if n.level == 0 {
		if nr > space/itemSize {
			return nil, corrupt("btrfs: leaf at %d has %d items", logical, nr)
		}
		n.n = int(nr)
		table := uint32(n.n * itemSize)
		for i := 0; i < n.n; i++ {
			p := b[headerSize+i*itemSize+keySize:]
			off, size := le.Uint32(p), le.Uint32(p[4:])
			if off < table || off > space || size > space-off {
				return nil, corrupt("btrfs: leaf at %d: item %d has data at %d+%d", logical, i, off, size)
			}
		}
	} else {
		if nr == 0 || nr > space/keyPtrSize {
			return nil, corrupt("btrfs: node at %d has %d pointers", logical, nr)
		}
		n.n = int(nr)
	}
	for i := 1; i < n.n; i++ {
		if n.key(i-1).cmp(n.key(i)) >= 0 {
			return nil, corrupt("btrfs: tree block at %d: keys %d and %d out of order", logical, i-1, i)
		}
	}
	return n, nil
}

// cursor is a position in a tree: one block and slot per level, root
// first. Each block's keys lie in [its parent's key, the next parent key),
// so a walk meets every key once, in order.
type cursor struct {
	f     *FS
	path  []pos
	done  bool
	valid bool // the leaf slot names an item
}

type pos struct {
	n     *node
	slot  int
	hi    key // keys of this block are below hi
	hasHi bool
}

// search places a cursor on the last item whose key is <= k (or before
// the first item when there is none).
func (f *FS) search(t treeRoot, k key) (*cursor, error) {
	if t.level >= maxLevel {
		return nil, corrupt("btrfs: tree at %d has level %d", t.bytenr, t.level)
	}
	root, err := f.node(t.bytenr, t.level, t.gen)
	if err != nil {
		return nil, err
	}
	c := &cursor{f: f, path: make([]pos, 0, int(t.level)+1)}
	p := pos{n: root}
	for {
		slot := lastLE(p.n, k)
		if p.n.level == 0 {
			p.slot = slot
			c.path = append(c.path, p)
			c.valid = slot >= 0
			return c, nil
		}
		if slot < 0 {
			slot = 0
		}
		p.slot = slot
		c.path = append(c.path, p)
		if p, err = c.child(p); err != nil {
			return nil, err
		}
	}
}

// lastLE is the last slot of n whose key is <= k, or -1.
func lastLE(n *node, k key) int {
	lo, hi := 0, n.n // answer in [lo-1, hi-1]
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if n.key(m).cmp(k) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// child reads the block p points to at its slot, and checks that its
// keys stay in the range p promises.
func (c *cursor) child(p pos) (pos, error) {
	bytenr, gen := p.n.ptr(p.slot)
	ch, err := c.f.node(bytenr, p.n.level-1, gen)
	if err != nil {
		return pos{}, err
	}
	q := pos{n: ch, hi: p.hi, hasHi: p.hasHi}
	if p.slot+1 < p.n.n {
		q.hi, q.hasHi = p.n.key(p.slot+1), true
	}
	if ch.n == 0 || ch.key(0) != p.n.key(p.slot) {
		return pos{}, corrupt("btrfs: tree block at %d does not start with its parent's key (parent %d slot %d)", bytenr, p.n.logical, p.slot)
	}
	if q.hasHi && ch.key(ch.n-1).cmp(q.hi) >= 0 {
		return pos{}, corrupt("btrfs: tree block at %d has keys past its parent's range (parent %d slot %d)", bytenr, p.n.logical, p.slot)
	}
	return q, nil
}

// next moves to the following item; false at the end of the tree.
func (c *cursor) next() (bool, error) {
	if c.done {
		return false, nil
	}
	leaf := len(c.path) - 1
	c.path[leaf].slot++
	if c.path[leaf].slot < c.path[leaf].n.n {
		c.valid = true
		return true, nil
	}
	i := leaf - 1
	for ; i >= 0; i-- {
		c.path[i].slot++
		if c.path[i].slot < c.path[i].n.n {
			break
		}
	}
	if i < 0 {
		c.done, c.valid = true, false
		return false, nil
	}
	for j := i; j < leaf; j++ {
		q, err := c.child(c.path[j])
		if err != nil {
			c.done, c.valid = true, false
			return false, err
		}
		q.slot = 0
		c.path[j+1] = q
	}
	c.valid = true
	return true, nil
}

func (c *cursor) item() (key, []byte) {
	p := c.path[len(c.path)-1]
	return p.n.key(p.slot), p.n.data(p.slot)
}

// walk calls fn on every item from the first whose key is >= start, in
// key order, until fn returns false.
func (f *FS) walk(t treeRoot, start key, fn func(key, []byte) (bool, error)) error {
	c, err := f.search(t, start)
	if err != nil {
		return err
	}
	if c.valid {
		if k, _ := c.item(); k.cmp(start) < 0 {
			c.valid = false
		}
	}
	for {
		if !c.valid {
			ok, err := c.next()
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
		}
		c.valid = false
		k, data := c.item()
		more, err := fn(k, data)
		if err != nil || !more {
			return err
		}
	}
}

var errNotFound = errors.New("item not found")

// lookup returns the data of the item with key k exactly, or errNotFound.
func (f *FS) lookup(t treeRoot, k key) ([]byte, error) {
	c, err := f.search(t, k)
	if err != nil {
		return nil, err
	}
	if c.valid {
		if got, data := c.item(); got == k {
			return data, nil
		}
	}
	return nil, errNotFound
}
