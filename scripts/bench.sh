#!/usr/bin/env bash
# Runs Switchboard's benchmarks. With no arguments: Switchboard, the native Rust relay and
# the Node.js relay side by side (step search, table, JSON, SVG chart in target/bench),
# plus the instantiation benchmark. Other forms:
#   scripts/bench.sh soak --calls 200 --minutes 30     N calls for M minutes
#   scripts/bench.sh instantiate                       pooling vs on-demand
#   scripts/bench.sh languages                         the relay in Rust, TypeScript, Python
#   scripts/bench.sh --help
# Installs what it needs: the wasm32-wasip2 target and the TypeScript and Python guest
# toolchains (scripts/setup.sh --tests), Node.js (Debian's, if missing) and the Node
# relay's `ws` package (npm ci, pinned by package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "bench: installing Node.js (for the Node relay baseline)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "bench: node/npm missing and cannot be installed here; the Node relay will be skipped" >&2
  fi
fi
if command -v npm >/dev/null 2>&1; then
  (cd bench/node-relay && npm ci --no-audit --no-fund --silent)
fi
cargo build --release --locked -p switchboard -p switchboard-bench
exec target/release/switchboard-bench "$@"
