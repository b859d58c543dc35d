#!/usr/bin/env bash
# Make sure a Docker engine answers. When none does and we run as root, install Debian's docker.io and start dockerd
# in the background; otherwise say what to do. It never touches an engine that already answers.
set -euo pipefail

sock="${CATTERY_DOCKER:-${DOCKER_HOST:-unix:///var/run/docker.sock}}"
answers() { timeout 5 docker -H "$sock" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && answers; then
  echo "docker engine: $(docker -H "$sock" version --format '{{.Server.Version}}') at $sock"
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
  nohup dockerd >/var/log/cattery-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do answers && break; sleep 1; done
fi
answers || { echo "dockerd did not come up; see /var/log/cattery-dockerd.log" >&2; exit 1; }
echo "docker engine: $(docker -H "$sock" version --format '{{.Server.Version}}') at $sock"
