"""Waiting: on pollables (sockets, handshakes, timers) and on the clock.

A component never blocks the host: it waits in ``wasi:io/poll``, where the host runs other
calls until something is ready. Pollables belong to the socket they came from:
:func:`release` them before the socket (:func:`wait_any` does it for you).
"""

from wit_world.imports import monotonic_clock, poll


def wait_any(pollables: "list[poll.Pollable]") -> "list[int]":
    """Blocks until one of ``pollables`` (made for this wait) is ready; returns the ready
    indices and releases every pollable."""
    try:
        return list(poll.poll(pollables))
    finally:
        for pollable in pollables:
            release(pollable)


def timer(ms: float) -> poll.Pollable:
    """A pollable that becomes ready after ``ms`` milliseconds."""
    return monotonic_clock.subscribe_duration(max(0, round(ms * 1_000_000)))


def sleep(ms: float) -> None:
    """Sleeps for ``ms`` milliseconds (other calls run meanwhile)."""
    wait_any([timer(ms)])


def now_ms() -> int:
    """Monotonic milliseconds, for measuring intervals."""
    return monotonic_clock.now() // 1_000_000


def release(resource: object) -> None:
    """Drops a resource (a pollable, a socket) now instead of when it is collected."""
    if resource is not None:
        resource.__exit__(None, None, None)
