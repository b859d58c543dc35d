#!/usr/bin/env bash
# Runs the whole suite with tap and ends with the line CI reads: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
# What the tests made on the engine (cattery.hoster / cattery.test labels of a test hoster) and left behind counts as
# a failure: leaked networks use up Docker's address pools and later tests time out far from the cause.
test_objects() {
  command -v docker >/dev/null 2>&1 || return 0
  # By name: a test hoster's objects are named t<8 hex>-… (tests/helpers.ts testConfig); a cattery of the machine's own
  # running beside the suite is not the suite's business.
  { docker ps -a --format '{{.Names}}' 2>/dev/null | sed 's/^/c /'
    docker network ls --format '{{.Name}}' 2>/dev/null | sed 's/^/n /'
    docker volume ls --format '{{.Name}}' 2>/dev/null | sed 's/^/v /'
  } | grep -E '^[cnv] t[0-9a-f]{8}-' | sort -u
}
before=$(mktemp)
test_objects >"$before"
# Longest files first (their times on a fresh clone): tap's two lanes take files in the order given, and with the
# slow ones last one lane sat idle for minutes while the other finished them. Every other file follows, by name.
slow_first=(
  tests/docker/crash.test.ts tests/services/account-isolation.test.ts tests/ingress/reload.test.ts
  tests/services/pads.test.ts tests/services/files.test.ts tests/ingress/webmail-door.test.ts
  tests/services/webmail.test.ts tests/services/mail.test.ts tests/http/proxy.test.ts
  tests/identity/signup-browser.test.ts tests/http/hostile-input.test.ts tests/readme.test.ts
)
if [ "$#" -eq 0 ]; then
  mapfile -t rest < <(find tests -name '*.test.ts' -type f | LC_ALL=C sort)
  set -- "${slow_first[@]}"
  for f in "${rest[@]}"; do
    case " ${slow_first[*]} " in *" $f "*) ;; *) set -- "$@" "$f" ;; esac
  done
fi
npx tap --reporter=tap "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
leaked=$(test_objects | comm -13 "$before" - || true)
if [ -n "$leaked" ]; then
  echo "# the suite left $(wc -l <<<"$leaked") Docker objects behind (kind and name; removed now):"
  sed 's/^/#   /' <<<"$leaked"
  while read -r kind id; do
    case "$kind" in
      c) docker rm -f "$id" >/dev/null 2>&1 ;;
      n) docker network rm "$id" >/dev/null 2>&1 ;;
      v) docker volume rm "$id" >/dev/null 2>&1 ;;
    esac
  done <<<"$leaked"
fi
rm -f "$before"
summary=$(grep -E '^# \{ total: [0-9]+' "$log" | tail -1)
total=$(sed -nE 's/.*total: ([0-9]+).*/\1/p' <<<"$summary")
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
total=${total:-0}; pass=${pass:-0}; fail=${fail:-$((total - pass))}
rm -f "$log"
if [ -n "$leaked" ]; then fail=$((fail + 1)); status=1; fi
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
echo "${pass} passed, ${fail} failed"
exit "$status"
