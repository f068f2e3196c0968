"""Errors of the WebSocket imports as Python exceptions.

The world's functions that return ``result<_, error-code>`` raise
``componentize_py_types.Err`` whose ``value`` is the WIT ``error-code``.
:class:`WebSocketError` wraps it with a readable message.
"""

from componentize_py_types import Err
from wit_world.imports import websocket as ws


class WebSocketError(Exception):
    """A failed WebSocket operation; ``code`` is the host's ``error-code``."""

    def __init__(self, code: ws.ErrorCode) -> None:
        super().__init__(describe(code))
        self.code = code

    @property
    def closed(self) -> "ws.CloseFrame | None":
        """The close frame when the connection had ended, else ``None``."""
        return self.code.value if isinstance(self.code, ws.ErrorCode_Closed) else None


def error_code(raised: BaseException) -> ws.ErrorCode:
    """The ``error-code`` a WebSocket import raised, or ``internal-error`` for anything else."""
    if isinstance(raised, WebSocketError):
        return raised.code
    if isinstance(raised, Err):
        return raised.value
    return ws.ErrorCode_InternalError(repr(raised))


_NAMES = {
    ws.ErrorCode_Denied: "denied",
    ws.ErrorCode_InvalidUrl: "invalid-url",
    ws.ErrorCode_ConnectionLimit: "connection-limit",
    ws.ErrorCode_DnsError: "dns-error",
    ws.ErrorCode_ConnectionRefused: "connection-refused",
    ws.ErrorCode_ConnectTimeout: "connect-timeout",
    ws.ErrorCode_TlsError: "tls-error",
    ws.ErrorCode_HandshakeRejected: "handshake-rejected",
    ws.ErrorCode_MessageTooLarge: "message-too-large",
    ws.ErrorCode_Closed: "closed",
    ws.ErrorCode_WouldBlock: "would-block",
    ws.ErrorCode_InternalError: "internal-error",
}


def describe(code: ws.ErrorCode) -> str:
    """One line for an operator: ``denied``, ``closed (1000 bye)``, ``tls-error: unknown issuer``."""
    name = _NAMES.get(type(code), "internal-error")
    value = getattr(code, "value", None)
    if isinstance(code, ws.ErrorCode_Closed):
        reason = f" {value.reason}" if value.reason else ""
        return f"closed ({value.code}{reason})"
    if isinstance(code, ws.ErrorCode_HandshakeRejected):
        excerpt = f" {value.body_excerpt}" if value.body_excerpt else ""
        return f"handshake-rejected: HTTP {value.status}{excerpt}"
    if isinstance(value, str):
        return f"{name}: {value}"
    return name
