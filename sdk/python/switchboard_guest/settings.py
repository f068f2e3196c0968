"""The component's non-secret settings (``[components.<name>.settings]`` in the host's
configuration), read through ``wasi:config/store``. Secrets never appear here: the host adds
them to outbound requests itself.
"""

from componentize_py_types import Err
from wit_world.imports import store


def setting(key: str) -> "str | None":
    """The setting ``key``, or ``None`` when it is unset or unreadable."""
    try:
        return store.get(key)
    except Err:
        return None


def settings_with_prefix(prefix: str) -> "list[tuple[str, str]]":
    """Every setting whose key starts with ``prefix``, keyed by the rest of the key."""
    try:
        entries = store.get_all()
    except Err:
        return []
    return [(key[len(prefix):], value) for key, value in entries if key.startswith(prefix)]
