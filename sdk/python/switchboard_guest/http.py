"""HTTP requests over ``wasi:http/outgoing-handler``, blocking in the same way as the
socket helpers (the wait is in ``wasi:io/poll``): an LLM's completion, a REST call.

The host applies the egress allowlist and the secret headers as for WebSockets, and never
follows a redirect: a 3xx comes back as it is.
"""

import json
import re
from dataclasses import dataclass

from componentize_py_types import Err
from wit_world.imports import outgoing_handler, streams, types

from .io import release, wait_any

LEG_HEADER = "switchboard-leg"
"""The request header naming the leg the host reports a request on; removed before sending."""

# The `error-code` cases, to tell an HTTP error from a header error raised by `Fields`.
_HTTP_ERRORS = [value for key, value in vars(types).items() if key.startswith("ErrorCode_") and isinstance(value, type)]

_URL = re.compile(r"^(https?)://([^/?#]+)([^#]*)", re.IGNORECASE)
_METHODS = {
    "GET": types.Method_Get,
    "HEAD": types.Method_Head,
    "POST": types.Method_Post,
    "PUT": types.Method_Put,
    "DELETE": types.Method_Delete,
    "CONNECT": types.Method_Connect,
    "OPTIONS": types.Method_Options,
    "TRACE": types.Method_Trace,
    "PATCH": types.Method_Patch,
}


class HttpError(Exception):
    """A failed request; ``code`` is the ``wasi:http`` ``error-code``."""

    def __init__(self, code: types.ErrorCode) -> None:
        value = getattr(code, "value", None)
        detail = "" if value is None else f" {value!r}"
        super().__init__(f"http: {type(code).__name__.removeprefix('ErrorCode_')}{detail}")
        self.code = code


@dataclass
class Response:
    """A whole response: header names in lower case, values as text."""

    status: int
    headers: "list[tuple[str, str]]"
    body: bytes

    def header(self, name: str) -> "str | None":
        """The first value of header ``name``."""
        return next((value for key, value in self.headers if key == name.lower()), None)

    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        """The body parsed as JSON."""
        return json.loads(self.body)


def _ns(ms: "float | None") -> "int | None":
    return None if ms is None else round(ms * 1_000_000)


def request(
    url: str,
    method: "str | None" = None,
    headers: "list[tuple[str, str]] | None" = None,
    body: "bytes | str | None" = None,
    leg: "str | None" = None,
    connect_timeout_ms: "float | None" = None,
    first_byte_timeout_ms: "float | None" = None,
    between_bytes_timeout_ms: "float | None" = None,
    max_body_bytes: int = 16 << 20,
) -> Response:
    """Sends a request and reads the whole response. Raises :class:`HttpError`."""
    parsed = _URL.match(url)
    if parsed is None:
        raise HttpError(types.ErrorCode_HttpRequestUriInvalid())
    if isinstance(body, str):
        body = body.encode("utf-8")
    fields = [(name.lower(), value.encode("utf-8")) for name, value in (headers or [])]
    if leg is not None:
        fields.append((LEG_HEADER, leg.encode("utf-8")))
    name = (method or ("GET" if body is None else "POST")).upper()
    try:
        # A forbidden header, an invalid authority or a refused request all raise here.
        outgoing = types.OutgoingRequest(types.Fields.from_list(fields))
        outgoing.set_method(_METHODS[name]() if name in _METHODS else types.Method_Other(name))
        outgoing.set_scheme(types.Scheme_Https() if parsed.group(1).lower() == "https" else types.Scheme_Http())
        outgoing.set_authority(parsed.group(2))
        outgoing.set_path_with_query(parsed.group(3) or "/")
        outgoing_body = outgoing.body()
        options = types.RequestOptions()
        options.set_connect_timeout(_ns(connect_timeout_ms))
        options.set_first_byte_timeout(_ns(first_byte_timeout_ms))
        options.set_between_bytes_timeout(_ns(between_bytes_timeout_ms))
        future = outgoing_handler.handle(outgoing, options)
    except Err as raised:
        code = raised.value if isinstance(raised.value, tuple(_HTTP_ERRORS)) else types.ErrorCode_InternalError(repr(raised.value))
        raise HttpError(code) from None
    try:
        # A body that cannot be written means the request failed: the future says why.
        try:
            _write_body(outgoing_body, body or b"")
            written = True
        except Err:
            written = False
        while True:
            outcome = future.get()
            if outcome is not None:
                if isinstance(outcome, Err):
                    raise HttpError(types.ErrorCode_InternalError("response taken twice"))
                if isinstance(outcome.value, Err):
                    raise HttpError(outcome.value.value)
                if not written:
                    raise HttpError(types.ErrorCode_HttpRequestBodySize(None))
                return _read_response(outcome.value.value, max_body_bytes)
            wait_any([future.subscribe()])
    finally:
        release(future)


def _write_body(outgoing_body, body: bytes) -> None:
    stream = outgoing_body.write()
    try:
        # blocking-write-and-flush takes at most 4096 bytes a call.
        for offset in range(0, len(body), 4096):
            stream.blocking_write_and_flush(body[offset:offset + 4096])
    finally:
        release(stream)
    types.OutgoingBody.finish(outgoing_body, None)


def _read_response(incoming, limit: int) -> Response:
    status = incoming.status()
    fields = incoming.headers()
    headers = [(name.lower(), value.decode("utf-8", errors="replace")) for name, value in fields.entries()]
    release(fields)
    incoming_body = incoming.consume()
    stream = incoming_body.stream()
    chunks = []
    length = 0
    try:
        while True:
            try:
                chunk = stream.blocking_read(65536)
            except Err as raised:
                if isinstance(raised.value, streams.StreamError_Closed):
                    break
                raise HttpError(types.ErrorCode_HttpResponseIncomplete()) from None
            length += len(chunk)
            if length > limit:
                raise HttpError(types.ErrorCode_HttpResponseBodySize(length))
            chunks.append(chunk)
    finally:
        release(stream)
        release(incoming_body)
        release(incoming)
    return Response(status, headers, b"".join(chunks))
