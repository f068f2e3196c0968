"""Echoes every message back to the caller, then returns when the caller closes. The text
message ``bye`` makes it return at once without closing (the host then closes with 1000).
Records ``echo.started`` and ``echo.peer-closed``, as the Rust echo guest does."""

from wit_world import exports
from wit_world.imports import websocket as ws

import switchboard_guest as sb


class Handler(exports.Handler):
    def handle(self, request, inbound):
        sb.mark("echo.started", path=request.path)
        while True:
            message = sb.receive_blocking(inbound)
            if isinstance(message, sb.Closed):
                sb.mark("echo.peer-closed", code=str(message.frame.code))
                return
            if isinstance(message, ws.Message_Text) and message.value == "bye":
                return
            sb.send_blocking(inbound, message)
