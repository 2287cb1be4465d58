#!/usr/bin/env bash
# Idempotent bootstrap for a fresh Debian/Ubuntu machine with Node.js 20 (20.12 or later):
#   - npm dependencies (npm ci) when node_modules is missing or older than package-lock.json
#   - nats-server, docker-compose, chromium, tmux and promtool from apt-get when they are missing
#   - with --tests: two other nats-servers beside it (Debian trixie's and sid's), which the tests also run haul on
#   - the bundles of every program (scripts/build.mjs) when a source is newer than the last build
# Used by `npm test` and `npm run demo`; safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bootstrap] %s\n' "$*" >&2; }

# 20.12: the emulated CT hashes its pages with crypto.hash.
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 12) ? 0 : 1)'; then
  say "Node.js >= 20.12 is required (found $(node --version))"; exit 1
fi

stamp=node_modules/.haul-bootstrap-stamp
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2
  touch "$stamp"
fi

# Debian packages the tests need: nats-server (the real bus), docker-compose (to check compose.yaml), chromium
# (the web view's browser test drives it with puppeteer-core, which never downloads a browser of its own), tmux
# (the terminal the live view of `haul migrate` is tested in, test/e2e/live-view.e2e.test.ts) and promtool (it
# checks and unit-tests deploy/prometheus/alerts.yml, test/deploy.unit.test.ts). Debian ships promtool only in the
# `prometheus` package, with the Prometheus server: bootstrap neither starts nor stops that server's unit.
missing=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
[ -x "${HAUL_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# Debian's archive key, which the other nats-servers' lists are checked against (Ubuntu does not have it by default).
[ "${1:-}" != --tests ] || [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
if ((${#missing[@]})); then
  if [ "$(id -u)" -eq 0 ]; then
    say "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || say "apt-get update failed; trying the install anyway"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing: ${missing[*]}. Install with: sudo apt-get install -y ${missing[*]}"; exit 1
  fi
fi

# The other nats-servers the tests also run haul on (test/support/nats-server.ts, NatsRelease), with --tests only
# (npm test, test:int and test:e2e; the demo and the unit tests do not need them):
#   - `newer`: Debian trixie's, 2.10 where Debian 12 has 2.9, where JetStream's API changed (a consumer create no
#     longer updates a durable);
#   - `current`: Debian sid's, the newest release Debian has (2.15.1 on 2026-12-06), where a stream with one replica
#     checks an append's expected sequence before its message id (packages/bus/src/event-log.ts storedWithId). It
#     follows sid: a new nats-server there is tested on the next clean run.
# apt-get fetches each with lists of its own, in a folder of ours: the suite's InRelease checked against Debian's
# archive key, the package against the lists' SHA-256. Nothing of this machine's apt sources, lists or installed
# packages changes; the binary is unpacked into node_modules/.cache (npm ci starts it afresh), under a temporary name
# until it has answered --version.
fetch_debian_nats_server() {
  local suite=$1 into=node_modules/.cache/haul/nats-server-$2 apt_dir debs
  if "$into/nats-server" --version >/dev/null 2>&1; then return; fi
  say "fetching Debian $suite's nats-server into $into (the tests run haul on it too)"
  apt_dir=$(mktemp -d)
  # Cleared as it fires: a RETURN trap set in a function stays set after it, for the next function's return.
  trap 'rm -rf "$apt_dir"; trap - RETURN' RETURN
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts" "$apt_dir/deb"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
    >"$apt_dir/sources.list"
  local apt_opts=(-qq -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
    -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=$apt_dir/parts"
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "Acquire::Languages=none"
    -o "Acquire::Retries=3" -o "APT::Sandbox::User=$(id -un)")
  # --error-on=any: a list that could not be fetched or checked fails here, not later as "unable to locate".
  if ! apt-get "${apt_opts[@]}" --error-on=any update >&2 ||
    ! (cd "$apt_dir/deb" && apt-get "${apt_opts[@]}" download "nats-server/$suite" >&2); then
    say "could not fetch nats-server from deb.debian.org ($suite main, checked against"
    say "/usr/share/keyrings/debian-archive-keyring.gpg), which the tests run haul on too"
    return 1
  fi
  debs=("$apt_dir"/deb/nats-server_*.deb)
  [ ${#debs[@]} -eq 1 ] || { say "expected one nats-server package, got: ${debs[*]}"; return 1; }
  dpkg-deb -x "${debs[0]}" "$apt_dir/root"
  mkdir -p "$into"
  install -m 0755 "$apt_dir/root/usr/sbin/nats-server" "$into/nats-server.tmp"
  "$into/nats-server.tmp" --version >/dev/null
  mv -f "$into/nats-server.tmp" "$into/nats-server"
  say "$("$into/nats-server" --version) in $into"
}
if [ "${1:-}" = --tests ]; then
  fetch_debian_nats_server trixie newer
  fetch_debian_nats_server sid current
fi

# Programs run from their bundles: rebuild them when a source changed (a no-op otherwise).
node scripts/build.mjs --if-stale
