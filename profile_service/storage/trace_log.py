"""The live trace log: how trace entries are encoded into Redis streams and read back.

Writers (the profile commit script, the sweeper) append one JSON field ``e`` per entry to the
profile's trace stream (``PartitionKeys.trace``), and, for events carrying a live-trace id,
to that id's stream (``keys.trace_by_id``). Both streams are capped at about
`TRACE_MAXLEN` entries and expire `TRACE_TTL_MS` after their last write.

`TraceLog.follow` serves ``StreamTrace``: it replays stored entries after a cursor and then
blocks on ``XREAD`` for new ones. The cursor is the stream entry id.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import redis.asyncio
from google.protobuf import struct_pb2

from crowd.common.v1 import value_pb2
from crowd.profile.v1 import trace_pb2
from profile_service.engine.state import TraceRecord
from profile_service.storage.layout import Layout
from profile_service.storage.replies import as_text, range_entries, stream_entries
from service_common import keys
from service_common.errors import FieldViolation, InvalidArgument

__all__ = [
    "TRACE_MAXLEN",
    "TRACE_TTL_MS",
    "TraceLog",
    "decode_entry",
    "encode_entry",
    "otel_trace_id",
]

TRACE_MAXLEN = 1000
"""Approximate cap of every trace stream (``XADD MAXLEN ~``)."""

TRACE_TTL_MS = 12 * 60 * 60 * 1000
"""Trace streams expire 12 hours after their last entry."""

_STREAM_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def otel_trace_id(traceparent: str) -> str:
    """The trace id (hex) of a W3C ``traceparent``, or ``""`` when it is absent or invalid."""
    match = _TRACEPARENT.match(traceparent.strip().lower()) if traceparent else None
    if match is None or match.group(1) == "0" * 32:
        return ""
    return match.group(1)


def encode_entry(
    record: TraceRecord,
    *,
    profile_id: str,
    time_ms: int,
    event_id: str = "",
    trace_id: str = "",
    otel_id: str = "",
) -> str:
    """Encode one trace record as the JSON stored in a trace stream entry."""
    doc: dict[str, Any] = {"k": record.kind, "m": record.message, "t": time_ms, "p": profile_id}
    if record.details:
        doc["d"] = record.details
    if event_id:
        doc["ev"] = event_id
    if trace_id:
        doc["tr"] = trace_id
    if otel_id:
        doc["o"] = otel_id
    # default=str: details are for humans; an odd value must not fail a commit.
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str)


def _to_value(value: Any) -> value_pb2.Value:
    if value is None:
        return value_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    if isinstance(value, bool):
        return value_pb2.Value(bool_value=value)
    if isinstance(value, int | float):
        return value_pb2.Value(number_value=float(value))
    if isinstance(value, str):
        return value_pb2.Value(string_value=value)
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return value_pb2.Value(string_list=value_pb2.StringList(values=value))
        if all(isinstance(v, bool) for v in value):
            return value_pb2.Value(bool_list=value_pb2.BoolList(values=value))
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            return value_pb2.Value(number_list=value_pb2.NumberList(values=value))
    # Maps and mixed lists have no Value kind: show them as JSON text.
    return value_pb2.Value(string_value=json.dumps(value, separators=(",", ":"), default=str))


def decode_entry(entry_id: str, fields: Mapping[str, bytes]) -> trace_pb2.TraceEntry:
    """Turn a stored stream entry back into a ``crowd.profile.v1.TraceEntry``."""
    doc = json.loads(fields["e"])
    entry = trace_pb2.TraceEntry(
        cursor=entry_id,
        kind=int(doc.get("k", 0)),  # type: ignore[arg-type]
        profile_id=doc.get("p", ""),
        event_id=doc.get("ev", ""),
        trace_id=doc.get("tr", ""),
        message=doc.get("m", ""),
        otel_trace_id=doc.get("o", ""),
    )
    entry.time.FromMilliseconds(int(doc.get("t", 0)))
    for name, value in (doc.get("d") or {}).items():
        entry.details[str(name)].CopyFrom(_to_value(value))
    return entry


def _check_cursor(after: str) -> None:
    if after and not _STREAM_ID.match(after):
        raise InvalidArgument(
            [FieldViolation("after", 'must be empty, "0" or a cursor from a trace entry')]
        )


class TraceLog:
    """Reads the trace streams of visitors and live-trace ids."""

    def __init__(self, client: redis.asyncio.Redis, layout: Layout, *, block_ms: int = 1000):
        """``block_ms`` is one ``XREAD BLOCK``; keep it below the client's socket timeout."""
        self._client = client
        self._layout = layout
        self._block_ms = block_ms

    async def visitor_stream(self, visitor_id: str) -> str:
        """The trace stream key of a visitor (following its alias to the surviving profile)."""
        profile_id = await self._layout.resolve_profile_id(self._client, visitor_id)
        return self._layout.keys_for(profile_id).trace(profile_id)

    @staticmethod
    def trace_id_stream(trace_id: str) -> str:
        """The stream key of a live-trace id."""
        return keys.trace_by_id(trace_id)

    async def history(
        self, stream: str, after: str = "0", count: int = 1000
    ) -> list[trace_pb2.TraceEntry]:
        """Stored entries after ``after`` ("0": from the start), oldest first."""
        _check_cursor(after)
        start = "-" if after in ("", "0") else f"({after}"
        raw = await self._client.xrange(stream, min=start, max="+", count=count)
        return [decode_entry(entry_id, fields) for entry_id, fields in range_entries(raw)]

    async def start_cursor(self, stream: str, after: str = "") -> str:
        """Resolve where following starts: ``after`` itself, or for ``""`` the newest entry
        now stored (so that only entries written from this call on are followed)."""
        _check_cursor(after)
        if after:
            return "0-0" if after == "0" else after
        newest = await self._client.xrevrange(stream, max="+", min="-", count=1)
        return as_text(newest[0][0]) if newest else "0-0"

    async def follow(
        self,
        stream: str,
        after: str = "",
        *,
        active: Callable[[], bool] | None = None,
    ) -> AsyncGenerator[trace_pb2.TraceEntry, None]:
        """Yield entries after ``after`` and then new ones as they are written.

        ``after``: ``""`` = only entries written from now on, ``"0"`` = all stored history
        first, otherwise the cursor of the last entry already seen (see `start_cursor`).
        The generator runs until ``active()`` returns False (checked at least every
        ``block_ms``; pass e.g. ``lambda: not context.done()`` from a gRPC handler) or the
        consumer stops iterating. Do not rely on cancelling the consuming task alone:
        redis-py's blocking read can swallow a cancellation on Python 3.11.
        """
        last = await self.start_cursor(stream, after)
        while active is None or active():
            reply = await self._client.xread({stream: last}, count=100, block=self._block_ms)
            for entry_id, fields in stream_entries(reply):
                last = entry_id
                yield decode_entry(entry_id, fields)
