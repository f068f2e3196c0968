"""The Switchboard guest SDK for Python: helpers over the ``switchboard:call/call-handler``
world, in the spirit of the Rust ``switchboard-guest`` crate.

A component's ``app`` module defines the exported handler::

    from wit_world import exports
    import switchboard_guest as sb

    class Handler(exports.Handler):
        def handle(self, request, inbound):
            ...

and ``componentize-py -d wit -w call-handler componentize -p <this SDK's parent> app``
builds it into a ``wasm32-wasip2`` component. The bindings (``wit_world``) are generated at
build time from the WIT package.
"""

from .errors import WebSocketError, describe, error_code
from .http import HttpError, Response, request
from .io import now_ms, release, sleep, timer, wait_any
from .settings import setting, settings_with_prefix
from .timeline import complete_leg, declare_leg, fault, identify, mark, name_inbound_leg, transcript
from .websocket import (
    Closed,
    binary,
    connect,
    forwardable_code,
    receive,
    receive_blocking,
    send_blocking,
    text,
    try_send,
)

__all__ = [
    "Closed",
    "HttpError",
    "Response",
    "WebSocketError",
    "binary",
    "complete_leg",
    "connect",
    "declare_leg",
    "describe",
    "error_code",
    "fault",
    "forwardable_code",
    "identify",
    "mark",
    "name_inbound_leg",
    "now_ms",
    "receive",
    "receive_blocking",
    "release",
    "request",
    "send_blocking",
    "setting",
    "settings_with_prefix",
    "sleep",
    "text",
    "timer",
    "transcript",
    "try_send",
    "wait_any",
]
