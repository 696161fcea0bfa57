package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"guestkit.io/batch/internal/redact"
)

// fileStore is a local folder. os.Root keeps every access inside it, even
// through symlinks planted in the folder. As in MinIO, a key cannot also be
// the folder of another ("a" and "a/b").
type fileStore struct {
	dir string

	mu   sync.Mutex
	root *os.Root // nil until the folder exists
}

func init() {
	register(backend{scheme: "file", open: openFileURL, split: splitFile})
}

func openFileURL(_ context.Context, u *url.URL) (Store, error) {
	if err := checkFileURL(u); err != nil {
		return nil, err
	}
	return asStore(openFile(u.Path))
}

// splitFile: the folder is the bucket, the file name the key.
func splitFile(uri string, u *url.URL) (string, string, error) {
	if err := checkFileURL(u); err != nil {
		return "", "", err
	}
	dir, key := path.Split(u.Path)
	if key == "" {
		return "", "", fmt.Errorf("object URI %q: no file name", redact.Printable(uri))
	}
	// The bucket URL is parsed again by Open: escape it like URI does.
	return "file://" + escapePath(path.Clean(dir)), key, ValidateKey(key)
}

// openFile does not create the folder: a read through a mistyped URI must
// not leave folders behind. The first write creates it.
func openFile(dir string) (*fileStore, error) {
	if dir == "" {
		return nil, errors.New("file store: empty path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w", dir, err)
	}
	if st, err := os.Stat(abs); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("file store %s: not a folder", abs)
	}
	return &fileStore{dir: abs}, nil
}

// openRoot opens the folder, creating it first if create is set. A missing
// folder is fs.ErrNotExist, which reads report as ErrNotFound.
func (f *fileStore) openRoot(create bool) (*os.Root, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.root != nil {
		return f.root, nil
	}
	if create {
		if err := os.MkdirAll(f.dir, 0o755); err != nil {
			return nil, err
		}
	}
	root, err := os.OpenRoot(f.dir)
	if err != nil {
		return nil, err
	}
	f.root = root
	return root, nil
}

func (f *fileStore) URI(key string) string {
	return "file://" + escapePath(filepath.Join(f.dir, filepath.FromSlash(key)))
}

func (f *fileStore) mapErr(op, key string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s %s: %w", op, f.URI(key), ErrNotFound)
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%s %s: %w", op, f.URI(key), ErrExists)
	}
	return fmt.Errorf("%s %s: %w", op, f.URI(key), err)
}

func (f *fileStore) List(ctx context.Context, prefix string, fn func(Object) error) error {
	root, err := f.openRoot(false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no folder, no objects
	}
	if err != nil {
		return f.mapErr("list", prefix, err)
	}
	var objs []Object
	start := "."
	if i := strings.LastIndex(prefix, "/"); i > 0 {
		start = prefix[:i]
	}
	err = fs.WalkDir(root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == start {
				return fs.SkipAll
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.IsDir() {
			if p != "." && !strings.HasPrefix(p+"/", prefix) && !strings.HasPrefix(prefix, p+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(p, prefix) || isTemp(path.Base(p)) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // vanished
		}
		objs = append(objs, Object{Key: p, Size: info.Size(), LastModified: info.ModTime()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", f.URI(prefix), err)
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	for _, o := range objs {
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

func (f *fileStore) Get(ctx context.Context, key string, max int64) ([]byte, error) {
	r, _, err := f.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return readBounded(r, f.URI(key), max)
}

func (f *fileStore) Open(_ context.Context, key string) (io.ReadCloser, int64, error) {
	if err := ValidateKey(key); err != nil {
		return nil, 0, err
	}
	root, err := f.openRoot(false)
	if err != nil {
		return nil, 0, f.mapErr("get", key, err)
	}
	// O_NONBLOCK: a FIFO planted in the folder must not hang the open; it
	// changes nothing for regular files.
	fl, err := root.OpenFile(filepath.FromSlash(key), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, f.mapErr("get", key, err)
	}
	st, err := fl.Stat()
	if err != nil || !st.Mode().IsRegular() {
		fl.Close()
		return nil, 0, f.mapErr("get", key, fs.ErrNotExist)
	}
	return fl, st.Size(), nil
}

func (f *fileStore) Stat(_ context.Context, key string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	root, err := f.openRoot(false)
	if err != nil {
		return Object{}, f.mapErr("stat", key, err)
	}
	st, err := root.Stat(filepath.FromSlash(key))
	if err == nil && !st.Mode().IsRegular() {
		err = fs.ErrNotExist // a folder is no object, as in a bucket
	}
	if err != nil {
		return Object{}, f.mapErr("stat", key, err)
	}
	return Object{Key: key, Size: st.Size(), LastModified: st.ModTime()}, nil
}

// Temporary files are KEY.tmp-<16 hex digits>: List hides them, and writes
// refuse keys of that form so that no object is ever hidden.
const tmpMark = ".tmp-"

func isTemp(name string) bool {
	i := len(name) - len(tmpMark) - 16
	if i < 0 || name[i:i+len(tmpMark)] != tmpMark {
		return false
	}
	for _, c := range name[i+len(tmpMark):] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// checkWrite validates a key for writing and returns the open folder.
func (f *fileStore) checkWrite(op, key string) (*os.Root, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if isTemp(path.Base(key)) {
		return nil, fmt.Errorf("%w %q: the file store keeps names ending in %s<hex> for temporary files", ErrInvalidKey, redact.Printable(key), tmpMark)
	}
	root, err := f.openRoot(true)
	if err != nil {
		// Not mapErr: a folder that cannot be made is no missing object.
		return nil, fmt.Errorf("%s %s: %w", op, f.URI(key), err)
	}
	return root, nil
}

// writeTemp writes data beside key and returns the temporary name. The name
// is random: a clock or a counter repeats across processes sharing the
// folder, and a clash would fail O_EXCL.
func (f *fileStore) writeTemp(root *os.Root, op, key string, data []byte) (string, error) {
	return f.writeTempFrom(root, op, key, bytes.NewReader(data), nil)
}

// writeTempFrom is writeTemp from a reader; check, when set, runs once the
// content is written and refuses it.
func (f *fileStore) writeTempFrom(root *os.Root, op, key string, r io.Reader, check func() error) (string, error) {
	name := filepath.FromSlash(key)
	if dir := filepath.Dir(name); dir != "." {
		// Not mapErr: EEXIST here means a parent is an object ("a" for
		// "a/b"), which is not ErrExists for key.
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("%s %s: folder %s: %w", op, f.URI(key), filepath.ToSlash(dir), err)
		}
	}
	var rnd [8]byte
	rand.Read(rnd[:]) // never fails (crypto/rand)
	tmp := name + tmpMark + hex.EncodeToString(rnd[:])
	fl, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", f.mapErr(op, key, err)
	}
	_, werr := io.Copy(fl, r)
	if werr == nil && check != nil {
		werr = check()
	}
	serr := fl.Sync()
	cerr := fl.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		root.Remove(tmp)
		return "", f.mapErr(op, key, err)
	}
	return tmp, nil
}

func (f *fileStore) Put(_ context.Context, key string, data []byte) error {
	root, err := f.checkWrite("put", key)
	if err != nil {
		return err
	}
	tmp, err := f.writeTemp(root, "put", key, data)
	if err != nil {
		return err
	}
	if err := root.Rename(tmp, filepath.FromSlash(key)); err != nil {
		root.Remove(tmp)
		return f.mapErr("put", key, err)
	}
	return nil
}

// Create links a complete temporary file to key: link fails if key exists,
// so readers never see a partial object and two writers cannot both win.
func (f *fileStore) Create(_ context.Context, key string, data []byte) error {
	root, err := f.checkWrite("create", key)
	if err != nil {
		return err
	}
	tmp, err := f.writeTemp(root, "create", key, data)
	if err != nil {
		return err
	}
	defer root.Remove(tmp)
	if err := root.Link(tmp, filepath.FromSlash(key)); err != nil {
		return f.mapErr("create", key, err)
	}
	return nil
}

func (f *fileStore) Delete(_ context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	root, err := f.openRoot(false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return f.mapErr("delete", key, err)
	}
	name := filepath.FromSlash(key)
	// Remove would also take an empty folder, which is no object.
	if st, err := root.Lstat(name); err == nil && st.IsDir() {
		return nil
	}
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return f.mapErr("delete", key, err)
	}
	return nil
}

// Presigning has no meaning for a local folder: the URL is the file itself,
// usable by local runners only.
func (f *fileStore) PresignGet(_ context.Context, key string, _ time.Duration) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return f.URI(key), nil
}

func (f *fileStore) PresignPut(ctx context.Context, key string, ttl time.Duration) (string, error) {
	return f.PresignGet(ctx, key, ttl)
}

// upload streams u to a temporary file and renames it over key only once
// its size and sha256 are what was announced. Local files get no attested
// checksum: Stat leaves SHA256 empty, and readers hash the file itself.
func (f *fileStore) upload(ctx context.Context, key string, u *upload) error {
	root, err := f.checkWrite("upload", key)
	if err != nil {
		return err
	}
	tmp, err := f.writeTempFrom(root, "upload", key, ctxReader{ctx, u}, u.verify)
	if err != nil {
		return err
	}
	if err := root.Rename(tmp, filepath.FromSlash(key)); err != nil {
		root.Remove(tmp)
		return f.mapErr("upload", key, err)
	}
	return nil
}
