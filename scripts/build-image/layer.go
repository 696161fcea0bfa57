package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// capabilityXattr is the one extended attribute kept: file capabilities
// (e.g. of ping) are part of what a package installs. The tar form is
// the one Docker and containerd read.
const capabilityXattr = "security.capability"

// writeLayer writes the tree under root to w as an uncompressed layer tar.
// Deterministic: entries in path order (os.ReadDir sorts), every mtime set
// to mtime, no access or change times, no user or group names. Kept: uid,
// gid, permission bits with setuid, setgid and sticky, symlinks, hard links
// (as links to the first path in order), file capabilities. Left out: the
// root directory itself, and device nodes, sockets and fifos: the runtime
// provides /dev. A directory on another file system than root is an error,
// because it is a mount (a /proc left mounted) and not part of the tree.
func writeLayer(w io.Writer, root string, mtime time.Time) error {
	rootInfo, err := os.Lstat(root)
	if err != nil {
		return fmt.Errorf("root filesystem: %w", err)
	}
	if !rootInfo.IsDir() {
		return fmt.Errorf("root filesystem %s is not a directory", root)
	}
	rootDev := rootInfo.Sys().(*syscall.Stat_t).Dev
	tw := tar.NewWriter(w)
	firstPath := map[[2]uint64]string{} // (device, inode) of a hard-linked file -> its first path
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == root {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Dev != rootDev {
			return fmt.Errorf("%s is on another file system than %s: unmount it", path, root)
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		hdr := &tar.Header{
			Name:    filepath.ToSlash(rel),
			Mode:    int64(st.Mode & 0o7777),
			Uid:     int(st.Uid),
			Gid:     int(st.Gid),
			ModTime: mtime,
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case mode&fs.ModeSymlink != 0:
			hdr.Typeflag = tar.TypeSymlink
			if hdr.Linkname, err = os.Readlink(path); err != nil {
				return err
			}
		case mode.IsRegular():
			if st.Nlink > 1 {
				key := [2]uint64{st.Dev, st.Ino}
				if first, ok := firstPath[key]; ok {
					hdr.Typeflag = tar.TypeLink
					hdr.Linkname = first
					break
				}
				firstPath[key] = hdr.Name
			}
			hdr.Typeflag = tar.TypeReg
			hdr.Size = info.Size()
			if c, ok := capability(path); ok {
				hdr.PAXRecords = map[string]string{"SCHILY.xattr." + capabilityXattr: c}
			}
		default:
			return nil
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("layer entry %s: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			return copyFile(tw, path, hdr.Size)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("layer of %s: %w", root, err)
	}
	return tw.Close()
}

// capability returns the file's security.capability attribute, if any.
func capability(path string) (string, bool) {
	buf := make([]byte, 256)
	n, err := syscall.Getxattr(path, capabilityXattr, buf)
	if err != nil || n <= 0 {
		return "", false
	}
	return string(buf[:n]), true
}

// copyFile copies exactly size bytes of path: a file that changed size
// since it was listed would make a corrupt tar.
func copyFile(w io.Writer, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if n != size {
		return fmt.Errorf("%s: read %d bytes, want %d: it changed during the build", path, n, size)
	}
	return nil
}

// writeLayerFile writes the tree under root as a gzip layer to path (under
// a temporary name, renamed when complete) and returns its size. gzip at
// the default level, as docker push compresses; its header has no time.
func writeLayerFile(path, root string, mtime time.Time) (size int64, err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".layer-*.tar.gz")
	if err != nil {
		return 0, fmt.Errorf("layer file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	zw := gzip.NewWriter(bw)
	if err := writeLayer(zw, root, mtime); err != nil {
		return 0, err
	}
	if err := errors.Join(zw.Close(), bw.Flush()); err != nil {
		return 0, fmt.Errorf("layer file %s: %w", tmp.Name(), err)
	}
	info, err := tmp.Stat()
	if err != nil {
		return 0, fmt.Errorf("layer file %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("layer file %s: %w", tmp.Name(), err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return 0, fmt.Errorf("layer file %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, fmt.Errorf("layer file: %w", err)
	}
	return info.Size(), nil
}
