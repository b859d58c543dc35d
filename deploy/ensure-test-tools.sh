#!/usr/bin/env bash
# What the tests need beyond the Docker engine, all from Debian: Chromium (driven by playwright-core), libxml2's
# xmllint (a strict XML parser for the mail client documents, tests/ingress/), and Knot DNS (knotd from `knot`,
# kzonecheck from `knot-dnssecutils`): the real authoritative server the DNS check is tested against and the zone
# checker the generated snippets must pass (tests/ingress/dns-check.test.ts), and NSS's certutil (libnss3-tools), with
# which a test puts its CA in a Chromium profile's own certificate store (tests/ingress/wss.test.ts), and poppler's
# pdftotext, which reads back the text of the yearly report's PDF (tests/publication/transparency.test.ts).
# Installed when missing and we run as root; otherwise say what to do.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v xmllint >/dev/null 2>&1 || missing+=(libxml2-utils)
command -v knotd >/dev/null 2>&1 || missing+=(knot)
command -v kzonecheck >/dev/null 2>&1 || missing+=(knot-dnssecutils)
command -v certutil >/dev/null 2>&1 || missing+=(libnss3-tools)
command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
if [ "${#missing[@]}" -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "Missing test tools: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} from Debian..."
export DEBIAN_FRONTEND=noninteractive
# Where systemd runs, knot's package also starts its own service on port 53; the tests never use it (they start
# their own knotd on a free loopback port).
apt-get install -y -q "${missing[@]}" || { apt-get update -q && apt-get install -y -q "${missing[@]}"; }
