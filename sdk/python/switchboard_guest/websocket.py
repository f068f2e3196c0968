"""Sockets: receiving, sending with backpressure, opening outbound connections.

The imports never block; these helpers wait in ``wasi:io/poll`` where waiting is meant (a
full send queue, a handshake, an empty receive buffer), so a component reads like blocking
code while the host keeps serving every other call.
"""

from dataclasses import dataclass

from componentize_py_types import Err, Ok
from wit_world.imports import outbound
from wit_world.imports import websocket as ws

from .errors import WebSocketError, error_code
from .io import release, wait_any


@dataclass
class Closed:
    """The end of a connection, as :func:`receive` reports it."""

    frame: ws.CloseFrame


def text(value: str) -> ws.Message:
    """A text message."""
    return ws.Message_Text(value)


def binary(value: bytes) -> ws.Message:
    """A binary message."""
    return ws.Message_Binary(value)


def try_send(connection: ws.Connection, message: ws.Message) -> bool:
    """Queues ``message``; ``False`` when the send queue is full (wait on ``writable``)."""
    try:
        connection.send(message)
        return True
    except Err as raised:
        if isinstance(raised.value, ws.ErrorCode_WouldBlock):
            return False
        raise WebSocketError(raised.value) from None


def send_blocking(connection: ws.Connection, message: ws.Message) -> None:
    """Sends ``message``, waiting while the send queue is full. Raises :class:`WebSocketError`."""
    while not try_send(connection, message):
        wait_any([connection.writable()])


def receive(connection: ws.Connection) -> "ws.Message | Closed | None":
    """The next buffered message, ``None`` when none is buffered, or :class:`Closed` once
    the connection has ended. Never blocks."""
    try:
        return connection.receive()
    except Err as raised:
        if isinstance(raised.value, ws.ErrorCode_Closed):
            return Closed(raised.value.value)
        raise WebSocketError(raised.value) from None


def receive_blocking(connection: ws.Connection) -> "ws.Message | Closed":
    """The next message, waiting for one, or :class:`Closed` once the connection has ended."""
    while True:
        message = receive(connection)
        if message is not None:
            return message
        wait_any([connection.subscribe()])


def connect(
    url: str,
    headers: "list[tuple[str, str]] | None" = None,
    subprotocols: "list[str] | None" = None,
    timeout_ms: "float | None" = None,
    leg: "str | None" = None,
) -> ws.Connection:
    """Opens ``url`` (``wss://`` or ``ws://``) and waits for the handshake.

    Secret headers the host injects for the target replace ``headers`` of the same name.
    Raises :class:`WebSocketError` (``denied``, ``tls-error``, ``handshake-rejected``, ...).
    """
    options = outbound.ConnectOptions(
        headers or [],
        subprotocols or [],
        None if timeout_ms is None else round(timeout_ms * 1_000_000),
        leg,
    )
    try:
        future = outbound.connect(url, options)
    except Err as raised:
        raise WebSocketError(error_code(raised)) from None
    try:
        while True:
            outcome = future.get()
            if outcome is not None:
                if isinstance(outcome, Ok):
                    return outcome.value
                raise WebSocketError(outcome.value)
            wait_any([future.subscribe()])
    finally:
        release(future)


def forwardable_code(frame: ws.CloseFrame) -> int:
    """The code to pass a close on with: 1005, 1006 and 1015 describe a close but may not be
    sent in one, so they become 1000 and 1011."""
    if frame.code == 1005:
        return 1000
    if frame.code in (1006, 1015):
        return 1011
    return frame.code
