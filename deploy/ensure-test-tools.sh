#!/usr/bin/env bash
# What the tests need beyond the Docker engine: Debian's Chromium, driven by playwright-core. Installed when missing
# and we run as root; otherwise say what to do.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "Chromium is missing: sudo apt-get install -y chromium" >&2
  exit 1
fi
echo "installing chromium from Debian..."
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }
