"""The call's timeline and its legs: markers, the names the call is known by, transcript
lines, and faults with the side they happened on.
"""

from wit_world.imports import legs, markers


def _value(attribute: "str | int | float | bool") -> markers.Value:
    if isinstance(attribute, bool):
        return markers.Value_Flag(attribute)
    if isinstance(attribute, int):
        return markers.Value_Integer(attribute)
    if isinstance(attribute, float):
        return markers.Value_Number(attribute)
    return markers.Value_Text(str(attribute))


def mark(name: str, attributes: "dict[str, str | int | float | bool] | None" = None, /, **more: "str | int | float | bool") -> None:
    """Records marker ``name`` on the call's timeline, with ``attributes`` (a dict, for keys
    that are not Python names, such as ``"handshake-ms"``) and keyword attributes."""
    merged = {**(attributes or {}), **more}
    markers.emit(name, [(key, _value(value)) for key, value in merged.items()])


def fault(leg: str, impact: str, cause: str, detail: str) -> None:
    """Records a fault on ``leg``: ``"recovered"`` degrades the call, ``"failed"`` fails it."""
    impacts = {"failed": legs.Impact.FAILED, "recovered": legs.Impact.RECOVERED}
    if impact not in impacts:
        raise ValueError(f"impact must be 'recovered' or 'failed', not {impact!r}")
    legs.fault(leg, impacts[impact], cause, detail)


def name_inbound_leg(name: str) -> None:
    """Names the inbound connection's leg (it is ``caller`` until then)."""
    legs.name_inbound(name)


def declare_leg(name: str) -> None:
    """Declares a leg that is not a connection, so its markers get a lane of their own."""
    legs.declare(name)


def complete_leg(leg: str) -> None:
    """Says ``leg`` has done its part: its later abnormal end is not a fault."""
    legs.complete(leg)


def identify(kind: str, name: str) -> None:
    """Records a name the call is known by elsewhere, e.g. ``identify("call_sid", sid)``."""
    markers.identify(kind, name)


def transcript(speaker: str, text: str, start_ms: "int | None" = None, end_ms: "int | None" = None, confidence: "float | None" = None) -> None:
    """Adds one line to the call's transcript."""
    markers.transcript(markers.TranscriptEntry(speaker, text, start_ms, end_ms, confidence))
