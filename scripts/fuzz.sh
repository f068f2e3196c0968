#!/usr/bin/env bash
# Runs the cargo-fuzz targets from the kept corpora in fuzz/corpus.
#
#   scripts/fuzz.sh [SECONDS]   every target for SECONDS each (default 60)
#   scripts/fuzz.sh --smoke     the three voice-pipeline targets for 10 s each (CI)
#
# cargo-fuzz needs nightly-only compiler flags; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1 (no nightly can be fetched here). The host targets (config_file,
# allowlist_rule) compile wasmtime with sanitizers: about 12 minutes on 2 cores the first
# time. The voice-pipeline targets build in about a minute.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
component_targets="twilio_message deepgram_message pipeline_events"
host_targets="config_file allowlist_rule"
if [ "${1:-}" = "--smoke" ]; then
  seconds=10
  targets=$component_targets
else
  seconds=${1:-60}
  targets="$component_targets $host_targets"
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
# A smoke run writes what it finds to a scratch corpus, so the kept corpora (and the
# working tree) stay as they are; a full run grows the kept corpora.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $targets; do
  features=()
  case " $host_targets " in *" $target "*) features=(--features host) ;; esac
  echo "== fuzz $target ($seconds s)" >&2
  # libFuzzer exits non-zero on a crash and leaves the input in fuzz/artifacts/<target>.
  corpora=()
  if [ "${1:-}" = "--smoke" ]; then
    mkdir -p "$scratch/$target"
    corpora=("$scratch/$target" "corpus/$target")
  fi
  if ! cargo fuzz run -O "${features[@]}" "$target" "${corpora[@]}" -- -max_total_time="$seconds" -print_final_stats=1 >"/tmp/fuzz-$target.log" 2>&1; then
    grep -E "panicked|ERROR|SUMMARY|Test unit written" "/tmp/fuzz-$target.log" >&2 || tail -20 "/tmp/fuzz-$target.log" >&2
    echo "fuzz: $target failed; the input is in fuzz/artifacts/$target" >&2
    exit 1
  fi
  grep -E "^stat::number_of_executed_units" "/tmp/fuzz-$target.log" | sed "s/^/  $target /" >&2 || true
done
