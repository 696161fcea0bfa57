package btrfs

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

const (
	rootItemMinSize  = 239 // up to the level, in the oldest root items
	rootSubvolRDOnly = 1 << 0
	maxSubvolumes    = 1 << 17
	maxPathDepth     = 2048 // directories between a subvolume and its parent's root
)

// rootInfo is what a ROOT_ITEM says of one tree.
type rootInfo struct {
	tree  treeRoot
	dirid uint64 // the root directory's inode
	flags uint64
	refs  uint32
}

// root returns the newest ROOT_ITEM of tree id.
func (f *FS) root(id uint64) (rootInfo, error) {
	if r, ok := f.roots.get(id); ok {
		return r, nil
	}
	c, err := f.search(f.rootTree(), key{id, typeRootItem, ^uint64(0)})
	if err != nil {
		return rootInfo{}, err
	}
	if !c.valid {
		return rootInfo{}, errNotFound
	}
	k, b := c.item()
	if k.obj != id || k.typ != typeRootItem {
		return rootInfo{}, errNotFound
	}
	if len(b) < rootItemMinSize {
		return rootInfo{}, corrupt("btrfs root tree: root item of tree %d has %d bytes", id, len(b))
	}
	le := binary.LittleEndian
	r := rootInfo{
		tree:  treeRoot{bytenr: le.Uint64(b[176:]), level: b[238], gen: le.Uint64(b[160:])},
		dirid: le.Uint64(b[168:]),
		flags: le.Uint64(b[208:]),
		refs:  le.Uint32(b[216:]),
	}
	if r.tree.level >= maxLevel {
		return rootInfo{}, corrupt("btrfs root tree: tree %d has level %d", id, r.tree.level)
	}
	f.roots.put(id, r)
	return r, nil
}

// nameHash is the key offset of a DIR_ITEM: crc32c seeded with ~1, with
// neither the usual inversion on entry nor on exit.
func nameHash(name string) uint64 {
	return uint64(^crc32.Update(1, castagnoli, []byte(name)))
}

// dirEntryRaw is one entry of a DIR_ITEM or DIR_INDEX item.
type dirEntryRaw struct {
	loc  key
	ft   uint8
	name string
}

// parseDirItems splits a DIR_ITEM (several entries whose names share a
// hash) or a DIR_INDEX (one entry).
func parseDirItems(b []byte, where string) ([]dirEntryRaw, error) {
	var out []dirEntryRaw
	le := binary.LittleEndian
	for len(b) > 0 {
		if len(b) < 30 {
			return nil, corrupt("btrfs %s: directory item truncated", where)
		}
		dataLen, nameLen := int(le.Uint16(b[25:])), int(le.Uint16(b[27:]))
		if nameLen == 0 || nameLen > maxNameLen || 30+nameLen+dataLen > len(b) {
			return nil, corrupt("btrfs %s: directory item with a %d-byte name and %d bytes of data in %d", where, nameLen, dataLen, len(b))
		}
		out = append(out, dirEntryRaw{loc: readKey(b), ft: b[29], name: string(b[30 : 30+nameLen])})
		b = b[30+nameLen+dataLen:]
	}
	return out, nil
}

// dirLookup finds name in directory ino of tree t through its DIR_ITEM.
func (f *FS) dirLookup(t treeRoot, ino uint64, name string) (dirEntryRaw, error) {
	b, err := f.lookup(t, key{ino, typeDirItem, nameHash(name)})
	if err != nil {
		return dirEntryRaw{}, err
	}
	items, err := parseDirItems(b, "directory")
	if err != nil {
		return dirEntryRaw{}, err
	}
	for _, it := range items {
		if it.name == name {
			return it, nil
		}
	}
	return dirEntryRaw{}, errNotFound
}

// Subvolume is one subvolume or snapshot, as `btrfs subvolume list`
// shows it with the top level mounted. (With another subvolume mounted,
// btrfs-progs shows the paths of the subvolumes under it relative to it,
// and libguestfs inspection, which mounts the default subvolume, passes
// those on.)
type Subvolume struct {
	ID       uint64
	Parent   uint64 // the subvolume it is in ("top level")
	Path     string // from the top level (5), as subvol= takes it, without a leading slash
	ReadOnly bool
}

type backref struct {
	parent, dirid uint64
	name          string
}

// Subvolumes lists the subvolumes and snapshots reachable from the top
// level, in id order, as `btrfs subvolume list` does. The top level itself
// (id 5) is not listed.
func (f *FS) Subvolumes() ([]Subvolume, error) {
	var ids []uint64
	refs := map[uint64]backref{}
	flags := map[uint64]uint64{}
	le := binary.LittleEndian
	err := f.walk(f.rootTree(), key{firstFreeObjectID, 0, 0}, func(k key, b []byte) (bool, error) {
		if k.obj > lastFreeObjectID {
			return false, nil
		}
		switch k.typ {
		case typeRootItem:
			if len(b) < rootItemMinSize {
				return false, corrupt("btrfs root tree: root item of tree %d has %d bytes", k.obj, len(b))
			}
			if _, seen := flags[k.obj]; !seen {
				ids = append(ids, k.obj)
			}
			flags[k.obj] = le.Uint64(b[208:])
		case typeRootBackref:
			if len(b) < 18 || 18+int(le.Uint16(b[16:])) > len(b) {
				return false, corrupt("btrfs root tree: back reference of tree %d truncated", k.obj)
			}
			refs[k.obj] = backref{parent: k.off, dirid: le.Uint64(b), name: string(b[18 : 18+int(le.Uint16(b[16:]))])}
		}
		if len(ids) > maxSubvolumes || len(refs) > maxSubvolumes {
			return false, unsupported("btrfs root tree: more than %d subvolumes", maxSubvolumes)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	paths := map[uint64]string{fsTreeObjectID: ""}
	dirs := map[ref]string{} // directory paths already resolved, so that each INODE_REF is read once
	var resolve func(id uint64, depth int) (string, bool, error)
	resolve = func(id uint64, depth int) (string, bool, error) {
		if p, ok := paths[id]; ok {
			return p, true, nil
		}
		r, ok := refs[id]
		if !ok || depth > maxPathDepth {
			return "", false, nil // deleted, or a loop of back references
		}
		parent, ok, err := resolve(r.parent, depth+1)
		if err != nil || !ok {
			return "", ok, err
		}
		dir, err := f.dirPath(r.parent, r.dirid, dirs)
		if errors.Is(err, errNotFound) {
			return "", false, nil
		}
		if err != nil {
			return "", false, err
		}
		p := dir + r.name
		if parent != "" {
			p = parent + "/" + p
		}
		paths[id] = p
		return p, true, nil
	}
	var out []Subvolume
	for _, id := range ids {
		p, ok, err := resolve(id, 0)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		out = append(out, Subvolume{ID: id, Parent: refs[id].parent, Path: p, ReadOnly: flags[id]&rootSubvolRDOnly != 0})
	}
	return out, nil
}

// dirPath is the path of directory ino inside tree id, from the tree's
// root directory, with a trailing slash ("" for the root itself). memo
// holds the paths found so far (of every directory on the way up).
func (f *FS) dirPath(id, ino uint64, memo map[ref]string) (string, error) {
	r, err := f.root(id)
	if err != nil {
		return "", err
	}
	type step struct {
		ino  uint64
		name string
	}
	var steps []step
	prefix := ""
	for ino != r.dirid {
		if p, ok := memo[ref{tree: id, ino: ino}]; ok {
			prefix = p
			break
		}
		if len(steps) >= maxPathDepth {
			return "", corrupt("btrfs tree %d: directory %d is more than %d levels deep", id, ino, maxPathDepth)
		}
		var parent uint64
		var name string
		err := f.walk(r.tree, key{ino, typeInodeRef, 0}, func(k key, b []byte) (bool, error) {
			if k.obj != ino || k.typ != typeInodeRef {
				return false, errNotFound
			}
			n := 0
			if len(b) >= 10 {
				n = int(binary.LittleEndian.Uint16(b[8:]))
			}
			if n == 0 || 10+n > len(b) {
				return false, corrupt("btrfs tree %d: inode reference of %d truncated", id, ino)
			}
			parent, name = k.off, string(b[10:10+n])
			return false, nil
		})
		if err != nil {
			return "", err
		}
		if name == "" {
			return "", errNotFound
		}
		steps = append(steps, step{ino, name})
		ino = parent
	}
	for i := len(steps) - 1; i >= 0; i-- {
		prefix += steps[i].name + "/"
		memo[ref{tree: id, ino: steps[i].ino}] = prefix
	}
	return prefix, nil
}

// Default is the id of the subvolume mounted when no subvol= option is
// given: the root tree's "default" directory entry, or the top level (5).
func (f *FS) Default() (uint64, error) {
	it, err := f.dirLookup(f.rootTree(), rootTreeDirObjectID, "default")
	if errors.Is(err, errNotFound) {
		return fsTreeObjectID, nil
	}
	if err != nil {
		return 0, err
	}
	return it.loc.obj, nil
}
