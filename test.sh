#!/usr/bin/env bash
# Runs every test: unit tests, the end-to-end suite on loopback, and clippy with
# warnings as errors. Builds the guest components itself.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
