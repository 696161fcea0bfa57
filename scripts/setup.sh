#!/usr/bin/env bash
# Installs what building and testing guestkit-batch needs on Debian 12.
# Idempotent: it installs only missing packages and runs apt-get update at
# most once. Needs root (or sudo).
#
#   bash scripts/setup.sh          # build + test packages
#   bash scripts/setup.sh --build  # only what building the runner needs
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lists=("$HERE/packages.txt")
[[ "${1:-}" == "--build" ]] || lists+=("$HERE/packages-test.txt")

mapfile -t want < <(cat "${lists[@]}" | sed 's/#.*//' | awk 'NF {print $1}' | sort -u)
missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

SUDO=()
[[ $(id -u) -eq 0 ]] || SUDO=(sudo)
if ((${#missing[@]})); then
	echo "setup: installing ${missing[*]}" >&2
	"${SUDO[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# libguestfs's appliance is built from the host's kernel, which must be
# readable by the user running it (Debian installs it 0600).
for k in /boot/vmlinuz-*; do
	[[ -r "$k" ]] || "${SUDO[@]}" chmod 0644 "$k"
done

if ! command -v go >/dev/null; then
	echo "setup: Go is required (1.25 or newer); install it from https://go.dev/dl" >&2
	exit 1
fi
echo "setup: ok" >&2
