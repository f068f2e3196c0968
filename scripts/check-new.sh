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
trap 'rm -rf "$scratch"' EXIT
for lang in rust ts python; do
  project="$scratch/hello-$lang"
  echo "check-new: switchboard new hello-$lang --lang $lang" >&2
  "$switchboard" new "hello-$lang" --lang "$lang" --dir "$project" >/dev/null
  case $lang in
    rust) (cd "$project" && CARGO_TARGET_DIR="$root/target" cargo test --offline -q 2>&1 | tail -n 20) ;;
    ts) (cd "$project" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error && SWITCHBOARD="$switchboard" npm test 2>&1 | grep -E '^(not )?ok|^# (pass|fail)') ;;
    python) (cd "$project" && SWITCHBOARD="$switchboard" SWITCHBOARD_PYTHON="$root/target/py/bin/python" ./test.sh 2>&1 | grep -E '^(OK|FAILED|Ran|test_)') ;;
  esac
  echo "check-new: the $lang project's own test passed" >&2
done
