#!/usr/bin/env bash
# Make sure a Docker engine answers. When none does and we run as root, install Debian's docker.io and start dockerd
# in the background; otherwise say what to do. It never touches an engine that already answers.
set -euo pipefail

sock="${CATTERY_DOCKER:-${DOCKER_HOST:-unix:///var/run/docker.sock}}"
answers() { timeout 5 docker -H "$sock" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# Docker's userland proxy hands a connection to a published port to the container from the bridge's own address
# when it cannot use NAT (an IPv6 client of an IPv4-only container): Postfix on port 25 would then judge SPF on that
# address instead of the sending server's, and the front door would see every IPv6 client as one. Without it,
# published ports are NAT rules only and the container sees the real client (IPv4; IPv6 clients fall back to IPv4).
daemon_json=/etc/docker/daemon.json
proxy_off() {
  grep -Eqs '"userland-proxy"[[:space:]]*:[[:space:]]*false' "$daemon_json" && return 0
  pgrep -a dockerd 2>/dev/null | grep -Eq -- '(^|[[:space:]])--userland-proxy(=|[[:space:]]+)false([[:space:]]|$)'
}

if command -v docker >/dev/null 2>&1 && answers; then
  echo "docker engine: $(docker -H "$sock" version --format '{{.Server.Version}}') at $sock"
  # Said, never changed: restarting someone's engine stops every container on it.
  if [ "$sock" = "unix:///var/run/docker.sock" ] && ! proxy_off; then
    echo "note: Docker's userland proxy is on; set \"userland-proxy\": false in $daemon_json and restart Docker before publishing mail's port 25 (README, the front door)." >&2
  fi
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "No Docker engine answers at $sock." >&2
  echo "Either run this as root (it installs Debian's docker.io and starts dockerd), or start Docker yourself" >&2
  echo "(sudo systemctl start docker) and add your user to the docker group, or set CATTERY_DOCKER." >&2
  exit 1
fi
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# A static busybox: ldd says "not a dynamic executable" and exits 1 for one. Its output is read whole, not piped into
# grep: under pipefail that exit status failed the pipeline, so the check asked for busybox-static (an apt-get update
# and install) every time the engine was not already running, as on every CI run.
static_busybox() {
  [ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 || return 1
  case "$(ldd /bin/busybox 2>&1 || true)" in *'not a dynamic executable'*) return 0 ;; *) return 1 ;; esac
}
static_busybox || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${need[@]}"
fi
if ! answers; then
  echo "starting dockerd (log: /var/log/cattery-dockerd.log)..."
  # Started as Debian configures it (daemon.json decides the userland proxy): the test machine and CI run the engine
  # every test was proven on; a server publishing mail's port 25 sets the proxy off in daemon.json (README).
  # In a session of its own (setsid): the engine must outlive whatever started it. Started in the caller's process
  # group, it died with that group when a CI step or a job runner stopped it (kill -- -PGID), under every later test.
  setsid nohup dockerd >/var/log/cattery-dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do answers && break; sleep 1; done
fi
answers || { echo "dockerd did not come up; see /var/log/cattery-dockerd.log" >&2; exit 1; }
echo "docker engine: $(docker -H "$sock" version --format '{{.Server.Version}}') at $sock"
