#!/usr/bin/env bash
# Runs every test: unit tests, the end-to-end suite on loopback (the dashboard in
# headless Chromium included), the Autobahn conformance cases, and clippy with warnings
# as errors. Builds the guest
# components itself and installs what it needs (wasm32-wasip2, Chromium).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --tests
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
# WebSocket conformance (Autobahn sections 1-7, 10) of the inbound server and outbound client.
scripts/autobahn.sh
