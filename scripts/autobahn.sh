#!/usr/bin/env bash
# Runs the Autobahn WebSocket test cases (sections 1-7 and 10, via the `kosoku` runner from
# PyPI) against Switchboard's inbound server, through the echo test guest, and against its
# outbound client, through the autobahn test guest; writes the reports and a summary to
# target/autobahn/ (and, with --update, the summary to conformance/summary.md). Fails if any
# case fails.
#
#   scripts/autobahn.sh [--update]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
export PATH="$PWD/target/py/bin:$PATH"   # kosoku and websockets, from the project's venv
cargo build -q -p switchboard -p switchboard-harness   # the binary and the test guests

out=target/autobahn
rm -rf "$out" && mkdir -p "$out"
guests=$PWD/target/guests/wasm32-wasip2/guest
cases=(-i '1.*' -i '2.*' -i '3.*' -i '4.*' -i '5.*' -i '6.*' -i '7.*' -i '10.*')
limits='max_message_bytes = 16777216
send_queue_bytes = 33554432
receive_buffer_bytes = 33554432
max_outbound_connects = 100000
cpu_total_ms = 3600000'

cat > "$out/inbound.toml" <<TOML
listen = "127.0.0.1:9011"
[operator]
listen = "127.0.0.1:0"
[[routes]]
path = "/"
component = "echo"
[components.echo]
wasm = "$guests/echo_guest.wasm"
[components.echo.limits]
$limits
TOML
cat > "$out/outbound.toml" <<TOML
listen = "127.0.0.1:9012"
[operator]
listen = "127.0.0.1:0"
[[routes]]
path = "/autobahn"
component = "autobahn"
# The driver waits for the guest's report without a word: no caller deadlines here.
first_message_timeout_ms = 600000
idle_timeout_ms = 900000
[components.autobahn]
wasm = "$guests/autobahn_guest.wasm"
allow_outbound = ["ws://127.0.0.1:9021"]
[components.autobahn.settings]
server = "ws://127.0.0.1:9021"
agent = "switchboard"
[components.autobahn.limits]
$limits
TOML

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
wait_for() { for _ in $(seq 100); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "timed out waiting for $1" >&2; return 1; }

echo "inbound: kosoku fuzzingclient -> switchboard (echo guest)" >&2
target/debug/switchboard serve --config "$out/inbound.toml" >"$out/inbound-host.log" 2>&1 & pids+=($!)
wait_for http://127.0.0.1:9011/healthz
kosoku -m fuzzingclient "${cases[@]}" -p 4 -o "$out/inbound" 127.0.0.1:9011

echo "outbound: switchboard (autobahn guest) -> kosoku fuzzingserver" >&2
kosoku -m fuzzingserver "${cases[@]}" -o "$out/outbound" 127.0.0.1:9021 >"$out/fuzzingserver.log" 2>&1 & pids+=($!)
target/debug/switchboard serve --config "$out/outbound.toml" >"$out/outbound-host.log" 2>&1 & pids+=($!)
wait_for http://127.0.0.1:9012/healthz
python - <<'PY'
import asyncio, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:9012/autobahn", max_size=None, ping_interval=None, open_timeout=30) as ws:
        print(await asyncio.wait_for(ws.recv(), 600))
asyncio.run(main())
PY
sleep 1

status=0
python - "$out" > "$out/summary.md" <<'PY' || status=$?
import collections, json, sys
out = sys.argv[1]
print("# Autobahn WebSocket conformance\n")
print("Sections 1-7 and 10 of the Autobahn test cases, run by `scripts/autobahn.sh` with the")
print("`kosoku` runner. Pass = OK, NON-STRICT or INFORMATIONAL.\n")
failed = 0
for side, title in (("inbound", "Inbound server (kosoku fuzzingclient -> host -> echo guest)"), ("outbound", "Outbound client (autobahn guest -> host's client -> kosoku fuzzingserver)")):
    index = json.load(open(f"{out}/{side}/index.json"))
    counts = collections.Counter()
    bad = []
    for cases in index.values():
        for case, result in cases.items():
            counts[result["behavior"]] += 1
            if result["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL") or result.get("behaviorClose") not in ("OK", "INFORMATIONAL"):
                bad.append(f"{case}: {result['behavior']} / close {result.get('behaviorClose')}")
    failed += len(bad)
    print(f"## {title}\n")
    print("| behavior | cases |\n|---|---|")
    for behavior, count in sorted(counts.items()):
        print(f"| {behavior} | {count} |")
    print(f"\nFailed: {len(bad)}" + ("".join(f"\n- {b}" for b in bad)) + "\n")
sys.exit(1 if failed else 0)
PY
cat "$out/summary.md"
if [ "${1:-}" = "--update" ]; then
  cp "$out/summary.md" conformance/summary.md
fi
exit "$status"
