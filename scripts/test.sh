#!/usr/bin/env bash
# The one test command (`npm test`, also run by CI): type check, lint, format, schema freshness and every tier.
# npm runs scripts/bootstrap.sh before it (pretest, and pretest:<tier> for `npm run test:<tier>`): the README's e2e
# test runs the bootstrap too, which must then find nothing to install while the other tests use node_modules.
# Integration and e2e tests start their own nats-server on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
tiers=${HAUL_TEST_TIERS:-"static unit int e2e"}
# Test files run several at a time, each tier as many as keeps this machine's cores busy without piling up (measured
# on 2 cores, CPU-s per wall second): unit tests compute (1.9 of 2 cores busy): one process per core
# (run_unit_in_shards); integration tests mostly wait on servers, timeouts and each other (0.95 of 2 at six files,
# 96 s; 1.5 at ten, 72-76 s): five per core; e2e tests run whole clusters but also wait on leases and redeliveries
# (1.64 of 2 at three files): one more than the cores (four at a time came out at 234-293 s against 250-293 s at three,
# within this VM's drift from hour to hour, for more load). HAUL_TEST_JOBS sets one count for every tier (1: one file
# at a time). Each file starts its own nats-server, services and folders, so files never share anything; and every
# test must pass on a busy machine anyway (the integration tier at ten passed in 84 s beside two busy loops).
# The tiers run one after the other: the e2e tier beside the static checks, unit and integration tiers instead of after
# them took longer (a whole `npm test` in 709 s against 648 s in sequence, one run each, the first with about a minute
# of other tests beside it: the unit tier 49 s instead of 14, the integration tier 259 s instead of 137, the e2e tier
# 679 s instead of 434).
cores=$(nproc)
jobs_for() {
  if [ -n "${HAUL_TEST_JOBS:-}" ]; then echo "$HAUL_TEST_JOBS"; return; fi
  case $1 in
    unit) echo "$cores" ;;
    int) echo $((5 * cores)) ;;
    e2e) echo $((cores + 1)) ;;
  esac
}
# How long one test file (one unit shard) may run before it fails as timed out, its process ended (the test runner's
# --test-timeout, in seconds): a test that waits forever then fails, named, instead of holding the run until CI gives
# up. The budget runs from the file's start, not while it waits for its turn; the longest suites of a whole run took
# 72 s (integration) and 94 s (e2e), and a file (one to a few suites) gets several times that, for a busy machine.
# --test-force-exit ends a file's process once its tests are done, whatever it left open: a test that failed before
# it stopped its nats-server (its stderr pipe open) otherwise kept its file, and the run, waiting.
# And inside a file, a test still running after each 120 s says so, by name (scripts/test-watchdog.mjs): the runner
# names only the file it timed out.
watchdog=$PWD/scripts/test-watchdog.mjs
budget_for() {
  case $1 in
    unit | int) echo 300 ;;
    e2e) echo 600 ;;
  esac
}
# Every Node process reads and parses NODE_EXTRA_CA_CERTS at start (~70 ms of CPU for a system bundle): the tests
# start thousands (each emulated tool call is one) and talk to nothing outside this machine.
unset NODE_EXTRA_CA_CERTS

# The tests' files (worlds, nats-server stores, CT images and dumps, the tiers' bundles, each test's temporary folder)
# go under TMPDIR. When TMPDIR is not set at all, that is a folder on tmpfs if /dev/shm is one where this user may make
# a folder and run a program, with 6 GiB free there and in memory (a whole run used at most 2.3 GiB, `df` every 2 s).
# On this VM's ext4 the same tests took 5-16 % more CPU (the live-migration e2e file, two interleaved pairs: 95.1 and
# 100.5 CPU-s on ext4, 89.9 and 84.5 on tmpfs, system time 31.7 and 33.6 against 28.7 and 26.8, wall 61-65 s against
# 54-58). Tests run scripts they write there, and a unix socket path under it must stay within 107 bytes: the prefix
# is short. The folder is removed however the script ends but SIGKILL; the next run removes a folder whose run is gone.
own_tmp=
scratch=
trap 'rm -rf ${scratch:+"$scratch"} ${own_tmp:+"$own_tmp"}' EXIT
kib_free() { df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print $4 }'; }
kib_available() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo 2>/dev/null; }
tmpfs_folder() {
  local d owner need=$((6 * 1024 * 1024))
  for d in /dev/shm/haul.*; do
    [ -d "$d" ] && [ -O "$d" ] || continue
    owner=$(cat "$d/.owner" 2>/dev/null || true)
    if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then rm -rf "$d"; fi
  done
  [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] || return 1
  [ "$(kib_free /dev/shm)" -ge "$need" ] 2>/dev/null && [ "$(kib_available)" -ge "$need" ] 2>/dev/null || return 1
  own_tmp=$(mktemp -d /dev/shm/haul.XXXXXX 2>/dev/null) || return 1
  echo $$ >"$own_tmp/.owner"
  printf '#!/bin/sh\nexit 0\n' >"$own_tmp/.exec-check" && chmod +x "$own_tmp/.exec-check" &&
    "$own_tmp/.exec-check" 2>/dev/null
}
if [ -z "${TMPDIR+set}" ]; then
  if tmpfs_folder; then
    export TMPDIR=$own_tmp
  elif [ -n "$own_tmp" ]; then
    rm -rf "$own_tmp" # noexec: the tests' scripts could not run there
    own_tmp=
  fi
fi
echo "[test] the tests' files go under ${TMPDIR:-/tmp}${own_tmp:+ (tmpfs)}" >&2
# What the tiers write for themselves (bundles, shards, outputs), removed however the script ends.
scratch=$(mktemp -d)

list() { find . -path ./node_modules -prune -o -path '*/node_modules' -prune -o -name "$1" -print | sort; }
# The tier's test files into `files` (sorted); none found is a failure, not a pass.
tier_files() {
  mapfile -t files < <(list "$2")
  if [ ${#files[@]} -eq 0 ]; then echo "[test] no $1 tests found" >&2; exit 1; fi
}
# Every tier's test files run from JavaScript bundles of their sources, not through tsx, which cost each test process
# seconds of CPU to load its TypeScript (scripts/build-tests.mjs; the measurements in docs/decisions.md 4). A failure
# names the source file and line (source maps). The programs the tests start are checked fresh once here
# (scripts/build.mjs), not by every test process (HAUL_TEST_BUILT, test/support/build.ts).
# The test runner on bundled test files: `conc` files at a time, each within `budget` seconds, with the watchdog.
run_test_files() {
  local conc=$1 budget=$2
  shift 2
  node --enable-source-maps --import "$watchdog" --test --test-concurrency="$conc" \
    --test-timeout=$((budget * 1000)) --test-force-exit --test-reporter=spec "$@"
}

run_tier() {
  local name=$1 pattern=$2 conc=$3 budget=$4 bundles
  tier_files "$name" "$pattern"
  echo "[test] $name: ${#files[@]} files, $conc at a time" >&2
  node scripts/build.mjs --if-stale
  bundles=$(node scripts/build-tests.mjs "$scratch/$name" "${files[@]}")
  mapfile -t files <<<"$bundles"
  HAUL_TEST_BUILT=1 run_test_files "$conc" "$budget" "${files[@]}"
}

# Unit tests in one process per core, not one per file: a file's process and module loading (0.6 s on average, 55 of
# the 70 file-seconds of 88 files) cost far more than its tests (15 s in all), and unit tests share no state, so each
# process imports its share of the files (every conc-th, in order) and runs them one after the other. A failure still
# names the test and its own file and line.
run_unit_in_shards() {
  local conc=$1 budget=$2 dir=$scratch/unit i path bundles
  tier_files unit '*.unit.test.ts'
  echo "[test] unit: ${#files[@]} files in $conc processes" >&2
  mkdir -p "$dir"
  for ((i = 0; i < ${#files[@]}; i++)); do
    path="$PWD/${files[i]#./}"
    path=${path//\\/\\\\}
    echo "import '${path//\'/\\\'}';" >>"$dir/unit-$((i % conc)).test.mjs"
  done
  bundles=$(node scripts/build-tests.mjs "$dir/bundles" "$dir"/unit-*.test.mjs)
  mapfile -t files <<<"$bundles"
  run_test_files "$conc" "$budget" "${files[@]}"
}

# tsc, eslint and prettier side by side (each uses one core), each one's output printed whole once it is done.
static_checks() {
  local out=$scratch/static failed=0
  mkdir -p "$out"
  npx tsc -p tsconfig.json >"$out/tsc" 2>&1 & local tsc=$!
  npx eslint --cache . >"$out/eslint" 2>&1 & local eslint=$!
  npx prettier --check --log-level warn . >"$out/prettier" 2>&1 & local prettier=$!
  for check in tsc eslint prettier; do
    if wait "${!check}"; then echo "[test] $check: ok" >&2; else echo "[test] $check: FAILED" >&2; failed=1; fi
    cat "$out/$check"
  done
  return "$failed"
}

for t in $tiers; do
  case $t in
    static) static_checks ;;
    unit) run_unit_in_shards "$(jobs_for unit)" "$(budget_for unit)" ;;
    int) run_tier integration '*.int.test.ts' "$(jobs_for int)" "$(budget_for int)" ;;
    e2e) run_tier e2e '*.e2e.test.ts' "$(jobs_for e2e)" "$(budget_for e2e)" ;;
    *) echo "unknown tier $t" >&2; exit 2 ;;
  esac
done
