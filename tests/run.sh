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
# What an earlier run left behind when it was killed: its containers restart with the engine (unless-stopped) and
# run their health checks for ever, which made a whole later run two to four times slower. Removed when older than any
# run of a test file (tap stops a file after 15 minutes): a suite running beside this one keeps its own.
remove_stale() {
  command -v docker >/dev/null 2>&1 || return 0
  local cutoff=$(( $(date +%s) - ${CATTERY_TEST_STALE_S:-3600} )) kind name created at removed=0
  for kind in container network volume; do
    while read -r name created; do
      [ -n "$name" ] || continue
      # Networks print "2026-12-03 12:10:09.6 +0000 UTC", which date reads without its last word.
      at=$(date -d "${created% UTC}" +%s 2>/dev/null) || continue
      [ "$at" -lt "$cutoff" ] || continue
      docker "$kind" rm $([ "$kind" = container ] && echo -f) "$name" >/dev/null 2>&1 && removed=$((removed + 1))
    done < <(docker "$kind" ls $([ "$kind" = container ] && echo -a) --format '{{.Name'"$([ "$kind" = container ] && echo s)"'}}' 2>/dev/null \
      | grep -E '^t[0-9a-f]{8}-' \
      | xargs -r docker "$kind" inspect -f '{{.Name}} {{'"$([ "$kind" = volume ] && echo .CreatedAt || echo .Created)"'}}' 2>/dev/null | sed 's#^/##')
  done
  [ "$removed" -eq 0 ] || echo "# removed $removed Docker objects that an earlier, interrupted run of the tests left behind"
}
remove_stale
before=$(mktemp)
test_objects >"$before"
# tap rebuilds its Test class for the configured plugins (package.json drops @tapjs/typescript: tsx loads the tests)
# only once a run has started, after that run has chosen its loaders: in a fresh clone, the whole first run loaded
# every file through ts-node as well. Build first when the installed class still has the default plugins.
if grep -q '@tapjs/typescript' node_modules/@tapjs/test/test-built/dist/esm/index.js 2>/dev/null; then
  npx tap build >/dev/null
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
# CI keeps only the end of what the suite printed: name every failure there, with the file it is in.
failures=$(awk '/^# Subtest: tests\//{file=$3} /^ *not ok / && !/# TODO/{sub(/^ +/,""); print "#   " file ": " substr($0,1,200)}' "$log")
if [ -n "$failures" ]; then
  echo "# failures (file: test):"
  printf '%s\n' "$failures" | tail -40
fi
summary=$(grep -E '^# \{ total: [0-9]+' "$log" | tail -1)
total=$(sed -nE 's/.*total: ([0-9]+).*/\1/p' <<<"$summary")
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
# tap omits `fail:` when nothing failed; its todos are neither passes nor failures.
total=${total:-0}; pass=${pass:-0}; fail=${fail:-0}
rm -f "$log"
if [ -n "$leaked" ]; then fail=$((fail + 1)); status=1; fi
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
echo "${pass} passed, ${fail} failed"
exit "$status"
