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
# Every Node process reads and parses NODE_EXTRA_CA_CERTS at start (~70 ms of CPU for a system bundle): the tests
# start thousands (each emulated tool call is one) and talk to nothing outside this machine.
unset NODE_EXTRA_CA_CERTS

# Every file the tests make (worlds, nats-server stores, CT images and dumps, each test's temporary folder) goes under
# TMPDIR. Unless the caller set it, that is a folder on tmpfs when /dev/shm is one with 6 GiB free (a whole run used
# at most 2.3 GiB of it), removed however the script ends. On this VM's ext4 the same tests took 5-16 % more CPU (the
# live-migration e2e file, two interleaved pairs: 95.1 and 100.5 CPU-s on ext4, 89.9 and 84.5 on tmpfs, system time
# 31.7 and 33.6 against 28.7 and 26.8, wall 61-65 s against 54-58). No code of haul's depends on where the folder is;
# the demo and the benchmarks keep the system's.
own_tmp=
if [ -z "${TMPDIR:-}" ] && [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] &&
  [ "$(df -Pk /dev/shm | awk 'NR == 2 { print $4 }')" -ge $((6 * 1024 * 1024)) ]; then
  own_tmp=$(mktemp -d /dev/shm/haul-test.XXXXXX)
  trap 'rm -rf "$own_tmp"' EXIT
  export TMPDIR=$own_tmp
fi
# What the tiers write for themselves (bundles, shards, outputs), removed however the script ends.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch" ${own_tmp:+"$own_tmp"}' EXIT

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
run_tier() {
  local name=$1 pattern=$2 conc=$3 bundles
  tier_files "$name" "$pattern"
  echo "[test] $name: ${#files[@]} files, $conc at a time" >&2
  node scripts/build.mjs --if-stale
  bundles=$(node scripts/build-tests.mjs "$scratch/$name" "${files[@]}")
  mapfile -t files <<<"$bundles"
  HAUL_TEST_BUILT=1 node --enable-source-maps --test --test-concurrency="$conc" --test-reporter=spec "${files[@]}"
}

# Unit tests in one process per core, not one per file: a file's process and module loading (0.6 s on average, 55 of
# the 70 file-seconds of 88 files) cost far more than its tests (15 s in all), and unit tests share no state, so each
# process imports its share of the files (every conc-th, in order) and runs them one after the other. A failure still
# names the test and its own file and line.
run_unit_in_shards() {
  local conc=$1 dir=$scratch/unit i path bundles
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
  node --enable-source-maps --test --test-concurrency="$conc" --test-reporter=spec "${files[@]}"
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
    unit) run_unit_in_shards "$(jobs_for unit)" ;;
    int) run_tier integration '*.int.test.ts' "$(jobs_for int)" ;;
    e2e) run_tier e2e '*.e2e.test.ts' "$(jobs_for e2e)" ;;
    *) echo "unknown tier $t" >&2; exit 2 ;;
  esac
done
