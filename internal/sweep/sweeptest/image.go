// Package sweeptest makes tiny Debian disk images for sweep tests and the
// sweep benchmark: a raw ext4 filesystem (no partition table) that the
// runner's direct backend inspects in milliseconds, with the packages
// asked for in its dpkg database.
package sweeptest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Package is a dpkg package: Version is dpkg's full version.
type Package struct{ Name, Version string }

// ImageSize is the size of every image: 4 MiB, the smallest ext4 that
// holds the files with room to spare.
const ImageSize = 4 << 20

// DebianImage writes a raw ext4 image at path whose root is a Debian 12
// with pkgs installed (amd64). Salt goes into /etc/hostname, so that
// images with the same packages differ. mkfs.ext4 -d fills it without
// root or a mount.
func DebianImage(tb testing.TB, path, salt string, pkgs ...Package) {
	tb.Helper()
	if err := debianImage(path, salt, pkgs); err != nil {
		tb.Fatalf("sweeptest: image %s: %v", path, err)
	}
}

func debianImage(path, salt string, pkgs []Package) error {
	root, err := os.MkdirTemp("", "sweeptest-root-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	var status strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&status, "Package: %s\nStatus: install ok installed\nArchitecture: amd64\nVersion: %s\n\n", p.Name, p.Version)
	}
	files := map[string]string{
		"etc/os-release":       "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
		"etc/debian_version":   "12.5\n",
		"etc/hostname":         salt + "\n",
		"etc/hosts":            "127.0.0.1 localhost\n",
		"etc/fstab":            "LABEL=root / ext4 defaults 0 1\n",
		"var/lib/dpkg/status":  status.String(),
		"usr/bin/.keep":        "",
		"usr/sbin/.keep":       "",
		"etc/ssh/sshd_config":  "PermitRootLogin no\n",
		"etc/login.defs":       "PASS_MAX_DAYS 90\n",
		"etc/passwd":           "root:x:0:0:root:/root:/bin/bash\n",
		"etc/shadow":           "root:*:19000:0:99999:7:::\n",
		"etc/group":            "root:x:0:\n",
		"root/.keep":           "",
		"tmp/.keep":            "",
		"var/log/.keep":        "",
		"etc/sysctl.conf":      "",
		"etc/apt/sources.list": "deb http://deb.debian.org/debian bookworm main\n",
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			return err
		}
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(ImageSize); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Fixed UUID and hash seed so that two images with the same content
	// are byte-for-byte alike apart from the files; E2FSPROGS_FAKE_TIME
	// pins the timestamps.
	cmd := exec.Command("mkfs.ext4", "-q", "-F", "-L", "root", "-U", "5e1f0000-0000-4000-8000-000000000001",
		"-E", "hash_seed=5e1f0000-0000-4000-8000-000000000002", "-d", root, path)
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME=1700000000")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4: %w: %s", err, out)
	}
	return nil
}
