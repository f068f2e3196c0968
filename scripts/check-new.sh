#!/usr/bin/env bash
# Makes a project with `switchboard new` in each language and runs that project's own
# test command, as its README says, against this checkout's `switchboard` binary:
#   rust:   cargo test          (sharing this workspace's target directory and lockfile)
#   ts:     npm ci && npm test  (packages from the npm cache that setup.sh filled)
#   python: ./test.sh           (in the project venv target/py, which has its requirements)
# Run by ./test.sh after the cargo tests; needs scripts/setup.sh --tests.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cargo build --locked -q -p switchboard
switchboard="$root/target/debug/switchboard"
scratch=$(mktemp -d)
for lang in rust ts python; do
  project="$scratch/hello-$lang"
  log="$scratch/hello-$lang.log"
  echo "check-new: switchboard new hello-$lang --lang $lang" >&2
  "$switchboard" new "hello-$lang" --lang "$lang" --dir "$project" >/dev/null
  case $lang in
    rust) run() { CARGO_TARGET_DIR="$root/target" cargo test --offline; } ;;
    ts) run() { npm ci --prefer-offline --no-audit --no-fund --loglevel=error && SWITCHBOARD="$switchboard" npm test; } ;;
    python) run() { SWITCHBOARD="$switchboard" SWITCHBOARD_PYTHON="$root/target/py/bin/python" ./test.sh; } ;;
  esac
  if ! (cd "$project" && run) >"$log" 2>&1; then
    cat "$log" >&2
    echo "check-new: the $lang project's own test FAILED; the project is kept in $project" >&2
    exit 1
  fi
  echo "check-new: the $lang project's own test passed" >&2
done
rm -rf "$scratch"
