"""{{name}}: echoes every message back to the caller until the caller closes; the text
message ``bye`` ends the call (the host then closes the socket with 1000)."""

from wit_world import exports
from wit_world.imports import websocket as ws

import switchboard_guest as sb


class Handler(exports.Handler):
    def handle(self, request, inbound):
        sb.mark("{{name}}.started", path=request.path)
        while True:
            message = sb.receive_blocking(inbound)
            if isinstance(message, sb.Closed):
                return
            if isinstance(message, ws.Message_Text) and message.value == "bye":
                return
            sb.send_blocking(inbound, message)
