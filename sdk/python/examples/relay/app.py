"""Relays messages between the caller and one outbound WebSocket, both ways.

Settings: ``target`` (the outbound URL), optional ``subprotocols`` (comma-separated),
``leg`` (the outbound connection's leg), ``timeout_ms``, and ``header.<name>`` entries sent
as handshake headers. An ``Authorization`` header for the target is injected by the host
(``secret_headers`` in its configuration): this code never sees it. When the connect fails
the caller gets ``connect-failed: <error>`` and a 1011 close. Either side's close is passed
on to the other side with the same code. A side whose peer stops reading stalls only its
own direction: the other keeps flowing.
"""

from collections import deque

from wit_world import exports
from wit_world.imports import websocket as ws

import switchboard_guest as sb


class Handler(exports.Handler):
    def handle(self, request, inbound):
        target = sb.setting("target")
        if target is None:
            sb.mark("relay.no-target")
            inbound.close(1011, "relay: no target configured")
            return
        timeout = sb.setting("timeout_ms")
        subprotocols = [p.strip() for p in (sb.setting("subprotocols") or "").split(",") if p.strip()]
        try:
            outbound = sb.connect(
                target,
                headers=sb.settings_with_prefix("header."),
                subprotocols=subprotocols,
                timeout_ms=None if timeout is None else float(timeout),
                leg=sb.setting("leg"),
            )
        except (sb.WebSocketError, ValueError) as error:
            sb.mark("relay.connect-failed", error=str(error))
            sb.try_send(inbound, sb.text(f"connect-failed: {error}"))
            inbound.close(1011, "outbound connect failed")
            return
        sb.mark("relay.connected", protocol=outbound.protocol() or "")
        pump(inbound, outbound)
        sb.release(outbound)


def pump(inbound, outbound):
    """Moves messages both ways until one side ends, then closes the other with its code."""
    to_outbound, to_inbound = deque(), deque()
    while True:
        ended = move(inbound, outbound, to_outbound) or move(outbound, inbound, to_inbound)
        if ended is not None:
            frame, other = ended
            try:
                other.close(sb.forwardable_code(frame), frame.reason)
            except Exception:
                pass  # already closed: nothing to pass on
            sb.mark("relay.closed", code=str(frame.code))
            return
        # A side with nothing pending can receive; one with pending messages waits for room.
        sb.wait_any([
            inbound.subscribe() if not to_outbound else outbound.writable(),
            outbound.subscribe() if not to_inbound else inbound.writable(),
        ])


def move(source, sink, pending):
    """Forwards what ``source`` has buffered to ``sink``; the close frame and the side to
    close once ``source`` ends."""
    while True:
        while pending:
            try:
                if not sb.try_send(sink, pending[0]):
                    sb.mark("relay.backpressure", queued=str(sink.queued_bytes()))
                    return None
            except sb.WebSocketError as error:
                if error.closed is not None:
                    return error.closed, source
                sb.mark("relay.send-failed", error=str(error))
                return ws.CloseFrame(1011, "relay send failed"), source
            pending.popleft()
        try:
            message = sb.receive(source)
        except sb.WebSocketError as error:
            sb.mark("relay.receive-failed", error=str(error))
            return ws.CloseFrame(1011, "relay receive failed"), sink
        if message is None:
            return None
        if isinstance(message, sb.Closed):
            return message.frame, sink
        pending.append(message)
