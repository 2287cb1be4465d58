#!/usr/bin/env bash
# Idempotent bootstrap for a fresh Debian/Ubuntu machine with Node.js 20 (20.12 or later):
#   - npm dependencies (npm ci) when node_modules is missing or older than package-lock.json
#   - nats-server, docker-compose, chromium, tmux and promtool from apt-get when they are missing
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

# Programs run from their bundles: rebuild them when a source changed (a no-op otherwise).
node scripts/build.mjs --if-stale
