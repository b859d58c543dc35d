#!/bin/sh
# cattery's node guard: keeps, in the node's own network namespace, the rules that stop a Swarm task from reaching
# its node and the other nodes through its way out (docker_gwbridge), the engine API and the swarm's ports included:
#   filter INPUT        -i docker_gwbridge                 (not a reply)  DROP   its own node, every address of it
#   filter DOCKER-USER  -i docker_gwbridge -d <node addr>  (not a reply)  DROP   each node of the swarm
# "Not a reply": conntrack state other than ESTABLISHED/RELATED. A task opens nothing towards them; replies to
# connections opened from outside (a published port, the host reaching a task) still pass. A task's DNS is Docker's
# resolver at 127.0.0.11 inside the task's own namespace, which never crosses INPUT.
# Each rule carries the comment `cattery-guard`: the guard only ever deletes rules bearing it (a node that left the
# swarm), never another. It never removes its rules on exit either: a guard that stops leaves the node closed.
#   cattery-guard run     apply, then check and re-apply every CATTERY_GUARD_INTERVAL_S seconds (default 3)
#   cattery-guard check   exit 0 when every rule is in place (the service's health check)
# CATTERY_GUARD_NODES: the swarm nodes' addresses (IPv4), separated by commas or spaces, given by the manager.
set -eu
set -f

TAG=cattery-guard
BRIDGE=docker_gwbridge
INTERVAL=${CATTERY_GUARD_INTERVAL_S:-3}
NODES=$(printf '%s' "${CATTERY_GUARD_NODES:-}" | tr ',' ' ')

say() { printf '%s cattery-guard: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

for a in $NODES; do
  case "$a" in
    *[!0-9.]* | '' | .* | *. | *..*) say "not an IPv4 address: $a"; exit 2 ;;
  esac
done
case "$INTERVAL" in *[!0-9]* | '' | 0) say "CATTERY_GUARD_INTERVAL_S must be a whole number of seconds"; exit 2 ;; esac

# The backend the node's dockerd writes with (Docker runs whichever `iptables` its host has: legacy or nft). Rules
# written with the other one sit in tables Docker's chains never reach, so the guard finds Docker's own DOCKER-USER
# chain and writes beside it; when both backends have one (a node that switched), the one with more rules wins, as
# Kubernetes' iptables-wrapper decides.
backend() {
  best='' most=-1
  for b in nft legacy; do
    if n=$("iptables-$b" -w 5 -t filter -S DOCKER-USER 2>/dev/null | wc -l) && [ "$n" -gt 0 ]; then
      all=$("iptables-$b-save" -t filter 2>/dev/null | grep -c '^-A' || true)
      if [ "$all" -gt "$most" ]; then best=$b most=$all; fi
    fi
  done
  [ -n "$best" ] && printf '%s\n' "$best"
}

B=''
ipt() { "iptables-$B" -w 5 "$@"; }

# The rule specs, one per line (word-split on spaces: none of their fields holds one).
rules() {
  printf '%s\n' "INPUT -i $BRIDGE -m conntrack ! --ctstate RELATED,ESTABLISHED -m comment --comment $TAG -j DROP"
  for a in $NODES; do
    printf '%s\n' "DOCKER-USER -d $a/32 -i $BRIDGE -m conntrack ! --ctstate RELATED,ESTABLISHED -m comment --comment $TAG -j DROP"
  done
}

# Returns 1 when a rule was missing (and, with `fix`, inserted at the top of its chain).
pass() {
  fix=$1 ok=0
  B=$(backend) || B=''
  if [ -z "$B" ]; then say "no DOCKER-USER chain in either iptables backend: is dockerd running with iptables?"; return 1; fi
  rules | {
    missing=0
    while IFS= read -r line; do
      # shellcheck disable=SC2086 # fields without spaces, split on purpose
      set -- $line
      chain=$1; shift
      if ! ipt -C "$chain" "$@" 2>/dev/null; then
        missing=1
        if [ "$fix" = fix ]; then ipt -I "$chain" 1 "$@" && say "($B) inserted: -I $chain 1 $*"; fi
      fi
    done
    exit "$missing"
  } || ok=1
  if [ "$fix" = fix ]; then
    # Our own rules for addresses no longer in the swarm: deleted. Whole fields only: the comment is the tag itself.
    ipt -S DOCKER-USER | while IFS= read -r line; do
      set -- $line
      mine=no dest=''
      while [ $# -gt 0 ]; do
        case "$1" in
          --comment) [ "${2:-}" = "$TAG" ] && mine=yes ;;
          -d) dest=${2:-} ;;
        esac
        shift
      done
      [ "$mine" = yes ] || continue
      keep=no
      for a in $NODES; do [ "$dest" = "$a/32" ] && keep=yes; done
      if [ "$keep" = no ]; then
        set -- $line
        shift 2
        ipt -D DOCKER-USER "$@" && say "($B) deleted a rule for a node no longer in the swarm: $dest"
      fi
    done
  fi
  return $ok
}

case "${1:-run}" in
  check) pass check ;;
  run)
    trap 'say "stopping (the rules stay)"; exit 0' TERM INT
    say "guarding $BRIDGE; nodes: ${NODES:-none}"
    while :; do
      pass fix || true
      sleep "$INTERVAL" & wait $! || true
    done ;;
  *) say "usage: cattery-guard run|check"; exit 2 ;;
esac
