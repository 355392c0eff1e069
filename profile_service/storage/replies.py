"""Small helpers that make Redis replies look the same under RESP2 and RESP3.

redis-py 8 speaks RESP3 by default and some reply shapes differ between the protocols
(stream reads are a dict under RESP3, a list of pairs under RESP2). The storage layer
accepts clients of either kind and of either ``decode_responses`` setting.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RedisArg", "StreamEntry", "as_bytes", "as_text", "range_entries", "stream_entries"]

RedisArg = str | bytes | int | float
"""A value that can be sent as a Redis argument."""

StreamEntry = tuple[str, dict[str, bytes]]
"""A stream entry: its id and its fields (names decoded, values raw)."""


def as_text(value: Any) -> str:
    """Return a reply value (``bytes`` or ``str``) as text."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def as_bytes(value: Any) -> bytes:
    """Return a reply value (``bytes`` or ``str``) as bytes."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def _entry(raw: Any) -> StreamEntry | None:
    entry_id, fields = raw[0], raw[1]
    if fields is None:  # an entry deleted while pending (XCLAIM/XAUTOCLAIM on Redis < 7)
        return None
    return as_text(entry_id), {as_text(k): as_bytes(v) for k, v in fields.items()}


def _entries(raw: Any) -> list[StreamEntry]:
    out = []
    for item in raw or ():
        entry = _entry(item)
        if entry is not None:
            out.append(entry)
    return out


def _is_entry(item: Any) -> bool:
    return (
        isinstance(item, list | tuple)
        and len(item) == 2
        and (item[1] is None or isinstance(item[1], dict))
    )


def stream_entries(reply: Any) -> list[StreamEntry]:
    """Entries of an ``XREAD``/``XREADGROUP`` reply for ONE stream, in order.

    RESP2: ``[[name, [(id, fields), ...]]]``; RESP3: ``{name: [[(id, fields), ...]]}``.
    """
    if not reply:
        return []
    if isinstance(reply, dict):
        (value,) = reply.values()
        if value and not _is_entry(value[0]):
            value = value[0]  # RESP3 wraps the entry list in one more list
        return _entries(value)
    return _entries(reply[0][1])


def range_entries(reply: Any) -> list[StreamEntry]:
    """Entries of an ``XRANGE``/``XREVRANGE`` reply or of the entry part of ``XAUTOCLAIM``."""
    return _entries(reply)
