#!/usr/bin/env bash
# Install Debian's `chromium` (headless browser for tests/e2e/test_report.py) if it is missing,
# then print the binary's path. Idempotent: nothing is fetched when chromium is already there,
# and `apt-get update` runs only when apt does not know the package yet.
# Exit 2 (and a reason on stderr) when it cannot be installed here: not root, or no apt-get.
set -euo pipefail

find_chromium() {
    local name
    for name in chromium chromium-browser; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

if path=$(find_chromium); then
    echo "$path"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium.sh: apt-get not found; install Chromium by hand" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_chromium.sh: chromium is missing and installing it needs root (apt-get)" >&2
    exit 2
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show chromium >/dev/null 2>&1; then
    apt-get update -qq >&2
fi
apt-get install -y -qq --no-install-recommends chromium >&2
find_chromium || { echo "install_chromium.sh: chromium installed but not on PATH" >&2; exit 2; }
