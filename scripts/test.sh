#!/usr/bin/env bash
# The one test command (`npm test`, also run by CI): type check, lint, format, schema freshness and every tier.
# Integration and e2e tests start their own nats-server on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
tiers=${HAUL_TEST_TIERS:-"static unit int e2e"}
# Test files run two at a time (HAUL_TEST_JOBS): one per core of the CI machine. Each starts its own nats-server,
# services and folders, so two never share anything; and every test must pass on a busy machine anyway.
jobs=${HAUL_TEST_JOBS:-2}
# Every Node process reads and parses NODE_EXTRA_CA_CERTS at start (~70 ms of CPU for a system bundle): the tests
# start thousands (each emulated tool call is one) and talk to nothing outside this machine.
unset NODE_EXTRA_CA_CERTS

list() { find . -path ./node_modules -prune -o -path '*/node_modules' -prune -o -name "$1" -print | sort; }
run_tier() {
  local name=$1 pattern=$2 conc=$3
  mapfile -t files < <(list "$pattern")
  if [ ${#files[@]} -eq 0 ]; then echo "[test] no $name tests found" >&2; exit 1; fi
  echo "[test] $name: ${#files[@]} files" >&2
  node --import tsx --test --test-concurrency="$conc" --test-reporter=spec "${files[@]}"
}

for t in $tiers; do
  case $t in
    static)
      echo "[test] tsc" >&2; npx tsc -p tsconfig.json
      echo "[test] eslint" >&2; npx eslint --cache .
      echo "[test] prettier" >&2; npx prettier --check --log-level warn .
      ;;
    unit) run_tier unit '*.unit.test.ts' "$jobs" ;;
    int) run_tier integration '*.int.test.ts' "$jobs" ;;
    e2e) run_tier e2e '*.e2e.test.ts' "$jobs" ;;
    *) echo "unknown tier $t" >&2; exit 2 ;;
  esac
done
