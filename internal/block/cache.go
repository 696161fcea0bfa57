package block

import (
	"container/list"
	"sync"
)

// chunkSize is the cache's unit: filesystem metadata (inodes, directory
// blocks, extent and B-tree nodes) clusters within a few KiB to tens of
// KiB, and 64 KiB is also qcow2's default cluster, so one miss usually
// costs one cluster lookup in the daemon.
const chunkSize = 64 << 10

// chunkCache keeps the most recently used aligned chunks of a disk. The
// last chunk of a disk may be shorter than chunkSize.
type chunkCache struct {
	mu  sync.Mutex
	max int
	m   map[int64]*list.Element
	lru list.List // of *chunk, most recent first
}

type chunk struct {
	idx  int64
	data []byte
}

func newChunkCache(maxBytes int64) *chunkCache {
	return &chunkCache{max: int(max(1, maxBytes/chunkSize)), m: map[int64]*list.Element{}}
}

// get copies chunk idx from byte from into dst and reports whether it was
// cached.
func (c *chunkCache) get(idx int64, from int, dst []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[idx]
	if !ok {
		return false
	}
	c.lru.MoveToFront(e)
	copy(dst, e.Value.(*chunk).data[from:])
	return true
}

// put stores a copy of data as chunk idx.
func (c *chunkCache) put(idx int64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[idx]; ok {
		return // a concurrent reader fetched it too
	}
	var buf []byte // the evicted chunk's buffer, or a new one
	if c.lru.Len() >= c.max {
		old := c.lru.Remove(c.lru.Back()).(*chunk)
		delete(c.m, old.idx)
		buf = old.data[:0]
	} else {
		buf = make([]byte, 0, chunkSize)
	}
	buf = append(buf, data...)
	c.m[idx] = c.lru.PushFront(&chunk{idx: idx, data: buf})
}

func (c *chunkCache) has(idx int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[idx]
	return ok
}
