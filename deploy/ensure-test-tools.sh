#!/usr/bin/env bash
# What the tests need beyond the Docker engine: Debian's Chromium, driven by playwright-core, and Debian's Knot DNS
# (knotd, kzonecheck), the real authoritative server the DNS check is tested against (tests/ingress/dns-check.test.ts).
# Installed when missing and we run as root; otherwise say what to do.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
{ command -v knotd >/dev/null 2>&1 && command -v kzonecheck >/dev/null 2>&1; } || missing+=(knot)
if [ "${#missing[@]}" -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "Missing: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} from Debian..."
export DEBIAN_FRONTEND=noninteractive
# knot's package starts its own service on install where systemd runs; the tests start their own knotd on loopback
# and never use it (policy-rc.d is not touched: on a container there is no init to start it anyway).
apt-get install -y -q "${missing[@]}" || { apt-get update -q && apt-get install -y -q "${missing[@]}"; }
