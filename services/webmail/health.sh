#!/bin/bash
# Healthy when lighttpd answers and PHP-FPM's workers do too: fpm's ping page, reached through lighttpd (loopback
# only, see lighttpd.conf), so both daemons are checked without Roundcube opening a session row per check.
set -euo pipefail
exec 3<>/dev/tcp/127.0.0.1/8080
printf 'GET /cattery-ping HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
IFS= read -r -t 4 status <&3
[[ "$status" == "HTTP/1.0 200"* ]]
