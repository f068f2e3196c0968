#!/usr/bin/env bash
# Runs every test: unit tests, the end-to-end suite on loopback (the dashboard in
# headless Chromium included), the Autobahn conformance cases, a fuzz smoke run, and
# rustfmt and clippy with warnings as errors. Builds the guest components itself and installs what it needs
# (wasm32-wasip2, Chromium, the kosoku runner).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --tests
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --workspace 2>&1 | tee "$log"
# `switchboard new` in each language makes a project whose own test passes.
scripts/check-new.sh
# The Kubernetes manifests and the Dockerfile: rendered, schema-checked (Kubernetes 1.37,
# strict) and held to the host's configuration (grace period, probes, ports, secrets).
scripts/check-kubernetes.sh
# WebSocket conformance (Autobahn sections 1-7, 10) of the inbound server and outbound client.
scripts/autobahn.sh
# A short fuzz run of the voice pipeline's parsers and state machine from the kept corpora
# (the host parsers' corpora are replayed by host/tests/fuzz_corpora.rs).
scripts/fuzz.sh --smoke
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
