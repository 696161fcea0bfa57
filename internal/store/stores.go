package store

import (
	"context"
	"sync"
)

// Stores opens each bucket once and keeps it: a store holds a connection
// pool (and minio-go a region cache), so opening one per object costs a
// connection and a request each time. The zero value is ready to use and
// safe for concurrent use.
type Stores struct {
	mu sync.Mutex
	m  map[string]Store
}

// Open returns the store of bucketURL, opening it the first time.
func (s *Stores) Open(ctx context.Context, bucketURL string) (Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.m[bucketURL]; ok {
		return st, nil
	}
	st, err := Open(ctx, bucketURL)
	if err != nil {
		return nil, err
	}
	if s.m == nil {
		s.m = map[string]Store{}
	}
	s.m[bucketURL] = st
	return st, nil
}
