#!/usr/bin/env bash
# Runs every test: unit tests, the end-to-end suite on loopback (the dashboard in
# headless Chromium included), and clippy with warnings as errors. Builds the guest
# components itself and installs what it needs (wasm32-wasip2, Chromium).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --tests
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
