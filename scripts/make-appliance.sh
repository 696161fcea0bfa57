#!/usr/bin/env bash
# Builds the fixed libguestfs appliance of the guestkit-runner image, inside
# the image's root filesystem, as root. The one recipe for both builds: the
# Dockerfile (target runner) copies it to /usr/share/guestkit/ and runs it;
# scripts/build-image.sh runs the same copy in its chroot.
#
#   bash /usr/share/guestkit/make-appliance.sh [DIR]   # DIR: /opt/guestkit/appliance
#
# Pods launch the fixed appliance as is, instead of running supermin into a
# cache on every start. Its ext2 root is 4 GiB sparse; image layers do not
# keep holes, so every node would store 4 GiB of zeros: it is shrunk to its
# contents plus 256 MiB of free space for the appliance. The kernel is
# copied 0600 from /boot, hence the chmod. Last, the appliance boots (TCG)
# as uid 65532 with only LIBGUESTFS_PATH pointing at it, so an unreadable
# file or a broken appliance fails the build rather than the first Job.
# Both boots use TCG even if the builder exposes /dev/kvm: nested KVM that
# hangs is common.
set -euo pipefail

dir=${1:-/opt/guestkit/appliance}
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg

cache=$(mktemp -d)
LIBGUESTFS_CACHEDIR="$cache" libguestfs-make-fixed-appliance "$dir"
rm -rf "$cache"

cd "$dir"
# Exit status 1 means "errors corrected": the file system is fine after it.
e2fsck -fy root >/dev/null || (($? == 1))
resize2fs -M root
resize2fs root "$(($(stat -c %s root) / 1048576 + 256))M"
chmod 0755 . && chmod 0644 ./*

setpriv --reuid=65532 --regid=65532 --clear-groups \
	env -i PATH="$PATH" HOME=/tmp TMPDIR=/tmp LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg \
	LIBGUESTFS_PATH="$dir" \
	guestfish -a /dev/null run
rm -rf /tmp/* /var/tmp/* /tmp/.guestfs-* /var/tmp/.guestfs-*
