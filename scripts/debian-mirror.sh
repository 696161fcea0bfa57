#!/usr/bin/env bash
# Prints the Debian mirror this machine is configured with: $DEBIAN_MIRROR,
# else the first URI of a sources.list(.d) entry that serves the main
# archive (not -security), else deb.debian.org. Shared by the scripts that
# reach Debian suites other than the host's (debootstrap-root.sh,
# install-openscap.sh).
set -euo pipefail

if [[ -n ${DEBIAN_MIRROR:-} ]]; then
	echo "$DEBIAN_MIRROR"
	exit 0
fi
u=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
	grep -oE '^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)[a-z]+://[^[:space:]]+' |
	grep -oE '[a-z]+://[^[:space:]]+' | grep -E '/debian/?$' | head -1 || true)
echo "${u:-http://deb.debian.org/debian}"
