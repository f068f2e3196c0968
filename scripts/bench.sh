#!/usr/bin/env bash
# Runs Switchboard's benchmarks. With no arguments: Switchboard, the native Rust relay and
# the Node.js relay side by side (step search, table, JSON, SVG chart in target/bench),
# plus the instantiation benchmark. Other forms:
#   scripts/bench.sh soak --calls 200 --minutes 30     N calls for M minutes
#   scripts/bench.sh instantiate                       pooling vs on-demand
#   scripts/bench.sh languages                         the relay in Rust, TypeScript, Python
#   scripts/bench.sh --help
# Installs what it needs: the wasm32-wasip2 target and the TypeScript and Python guest
# toolchains and Node.js (scripts/setup.sh --tests), and the Node relay's `ws` package (npm ci, pinned by package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
# setup.sh --tests has installed Node.js and npm (for the TypeScript guests) or stopped.
(cd bench/node-relay && npm ci --no-audit --no-fund --silent)
cargo build --release --locked -p switchboard -p switchboard-bench
exec target/release/switchboard-bench "$@"
