#!/usr/bin/env bash
# Runs Switchboard's main job on its built-in defaults: `switchboard demo`, a whole call
# offline (simulated Twilio caller -> host -> voice-pipeline component -> Deepgram
# simulator over wss). With arguments, runs `switchboard <arguments>` instead, e.g.
# `./run.sh serve` for the server on 127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
if [ "$#" -eq 0 ]; then
  set -- demo
fi
exec cargo run --release --locked -p switchboard -- "$@"
