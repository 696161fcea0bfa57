package store

import (
	"context"
	"net/url"
	"sync"
)

// Stores opens each bucket once and keeps it: a store holds a connection
// pool (and minio-go a region cache), so opening one per object costs a
// connection and a request each time. The zero value is ready to use and
// safe for concurrent use.
type Stores struct {
	// Home is the bucket URL the specs come from, with its settings
	// (endpoint, path style, region). A bucket URL that names the same
	// scheme and bucket and has no settings of its own, such as the
	// s3://BUCKET of an image URI s3://BUCKET/images/x.qcow2, is opened
	// with Home's settings: specs name images by bucket and key, and
	// "BUCKET" there is the bucket the dispatcher was pointed at, on
	// MinIO as on S3. Optional.
	Home string

	mu sync.Mutex
	m  map[string]Store
}

// Open returns the store of bucketURL, opening it the first time.
func (s *Stores) Open(ctx context.Context, bucketURL string) (Store, error) {
	bucketURL = s.Resolve(bucketURL)
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

// Resolve returns the bucket URL Open opens for bucketURL: Home's settings
// for Home's bucket named without settings, else bucketURL unchanged.
func (s *Stores) Resolve(bucketURL string) string {
	if s.Home == "" {
		return bucketURL
	}
	u, err := url.Parse(bucketURL)
	if err != nil || !IsBucketScheme(u.Scheme) || u.RawQuery != "" || u.User != nil {
		return bucketURL
	}
	h, err := url.Parse(s.Home)
	if err != nil || h.Scheme != u.Scheme || h.Host != u.Host || h.RawQuery == "" {
		return bucketURL
	}
	// The bucket's root: Home's prefix is where specs live, not images.
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawQuery: h.RawQuery}).String()
}

// ResolveURI is an object URI with Resolve's settings in its query: in
// Home's bucket, s3://BUCKET/key becomes s3://BUCKET/key?endpoint=...,
// which a process given only the URI (a local runner) opens like the
// dispatcher does. Any other URI is returned unchanged.
func (s *Stores) ResolveURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.RawQuery != "" || !IsBucketScheme(u.Scheme) {
		return uri
	}
	b, err := url.Parse(s.Resolve((&url.URL{Scheme: u.Scheme, Host: u.Host}).String()))
	if err != nil || b.RawQuery == "" {
		return uri
	}
	u.RawQuery = b.RawQuery
	return u.String()
}
