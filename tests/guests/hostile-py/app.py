"""Test guest in Python that misbehaves on purpose, as its ``mode`` setting says:

- ``loop``: spins forever without yielding (the CPU budget must stop it);
- ``snoop``: reports to the caller, as JSON, everything it can see that could carry a
  secret: its settings, the request's headers, the environment, the arguments, the files
  under ``/``, what stdin holds, whether a socket of its own connects, and what a connect to ``target`` with a guest-chosen ``authorization``
  header returned.

After a report it waits for the caller to close.
"""

import json
import os
import sys

from wit_world import exports

import switchboard_guest as sb


class Handler(exports.Handler):
    def handle(self, request, inbound):
        mode = sb.setting("mode") or ""
        sb.mark("hostile.mode", mode=mode)
        if mode == "loop":
            counter = 0
            while True:
                counter = (counter + 1) % 1_000_003
        if mode == "snoop":
            sb.send_blocking(inbound, sb.text(snoop(request)))
        while not isinstance(sb.receive_blocking(inbound), sb.Closed):
            pass


def snoop(request):
    target = sb.setting("target")
    outcome = "no target"
    if target is not None:
        try:
            socket = sb.connect(target, headers=[("authorization", "Token guest-chosen")])
            outcome = f"ok protocol={socket.protocol()}"
            socket.close(1000, "done")
        except sb.WebSocketError as error:
            outcome = str(error)
    try:
        files = sorted(os.listdir("/"))
    except OSError as error:
        files = f"error: {error}"
    try:
        stdin = sys.stdin.read()
    except Exception as error:
        stdin = f"error: {error}"
    try:
        import socket

        with socket.create_connection(("127.0.0.1", 80), timeout=1) as raw:
            tcp = f"connected {raw.getpeername()}"
    except Exception as error:
        tcp = f"error: {error!r}"
    return json.dumps({
        "settings": sb.settings_with_prefix(""),
        "headers": request.headers,
        "env": dict(os.environ),
        "argv": sys.argv,
        "files": files,
        "stdin": stdin,
        "socket": tcp,
        "connect": outcome,
    })
