#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60), starting from the kept
# corpora in fuzz/corpus. cargo-fuzz needs nightly-only compiler flags; the installed
# stable toolchain accepts them with RUSTC_BOOTSTRAP=1 (no nightly can be fetched here).
# The first build compiles wasmtime with sanitizers: allow about 12 minutes on 2 cores.
#
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in twilio_message deepgram_message pipeline_events config_file allowlist_rule; do
  echo "== $target ($seconds s)" >&2
  cargo fuzz run -O "$target" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
    | grep -E "^(stat::number_of_executed_units|Done|SUMMARY)|panicked" || true
  if [ -d "artifacts/$target" ] && [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
    echo "crash found for $target: see fuzz/artifacts/$target" >&2
    exit 1
  fi
done
