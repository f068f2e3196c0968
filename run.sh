#!/usr/bin/env bash
# Runs Switchboard on its built-in defaults: the bundled voice-pipeline component on
# ws://127.0.0.1:8080/twilio/media, allowed to reach wss://api.deepgram.com with
# `Authorization: Token $DEEPGRAM_API_KEY`. Extra arguments go to `switchboard serve`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec cargo run --release --locked -p switchboard -- serve "$@"
