"""The live trace log: how trace records are encoded into Redis streams and read back.

Writers append trace records to the profile's trace stream (``PartitionKeys.trace``) and,
for events carrying a live-trace id, to that id's stream (``keys.trace_by_id``). A stream
entry holds either one record as the JSON object in field ``e``, or, when one commit writes
several records (the usual case: an event writes two to four), all of them as a JSON array
of such objects in field ``b``: one ``XADD`` per commit instead of one per record. Both
streams are capped at about `TRACE_MAXLEN` entries and expire `TRACE_TTL_MS` after their
last write.

`TraceLog.follow` serves ``StreamTrace``: it replays stored records after a cursor and then
blocks on ``XREAD`` for new ones. A record's cursor is its stream entry id, or, for a record
of a ``b`` entry that is not its last, ``<entry id>.<index in the entry>``; so resuming after
any record is exact, and the cursor of an entry's last record is a plain stream id.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson
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
    "decode_entries",
    "decode_entry",
    "encode_entries",
    "encode_entry",
    "entry_doc",
    "otel_trace_id",
]

TRACE_MAXLEN = 1000
"""Approximate cap of every trace stream (``XADD MAXLEN ~``)."""

TRACE_TTL_MS = 12 * 60 * 60 * 1000
"""Trace streams expire 12 hours after their last entry."""

_CURSOR = re.compile(r"^(\d{1,20}(?:-\d{1,20})?)(?:\.(\d{1,9}))?$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def otel_trace_id(traceparent: str) -> str:
    """The trace id (hex) of a W3C ``traceparent``, or ``""`` when it is absent or invalid."""
    match = _TRACEPARENT.match(traceparent.strip().lower()) if traceparent else None
    if match is None or match.group(1) == "0" * 32:
        return ""
    return match.group(1)


def entry_doc(
    record: TraceRecord,
    *,
    profile_id: str,
    time_ms: int,
    event_id: str = "",
    trace_id: str = "",
    otel_id: str = "",
) -> dict[str, Any]:
    """The JSON object stored for one trace record (see `service_common.keys`)."""
    doc: dict[str, Any] = {"k": record.kind, "m": record.message, "t": time_ms, "p": profile_id}
    if record.details:
        doc["d"] = record.details
    if event_id:
        doc["ev"] = event_id
    if trace_id:
        doc["tr"] = trace_id
    if otel_id:
        doc["o"] = otel_id
    return doc


def _dumps(doc: Any) -> bytes:
    try:
        # default=str: details are for humans; an odd value must not fail a commit.
        return orjson.dumps(doc, default=str)
    except TypeError:  # beyond orjson (e.g. a non-string key): the laxer json module
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def encode_entry(
    record: TraceRecord,
    *,
    profile_id: str,
    time_ms: int,
    event_id: str = "",
    trace_id: str = "",
    otel_id: str = "",
) -> bytes:
    """Encode one trace record as the JSON of a stream entry's field ``e``."""
    doc = entry_doc(
        record,
        profile_id=profile_id,
        time_ms=time_ms,
        event_id=event_id,
        trace_id=trace_id,
        otel_id=otel_id,
    )
    return _dumps(doc)


def encode_entries(docs: Sequence[dict[str, Any]]) -> tuple[str, bytes]:
    """The field name and value of ONE stream entry holding ``docs`` (from `entry_doc`)."""
    if len(docs) == 1:
        return "e", _dumps(docs[0])
    return "b", _dumps(list(docs))


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


def _decode_doc(cursor: str, doc: Mapping[str, Any]) -> trace_pb2.TraceEntry:
    entry = trace_pb2.TraceEntry(
        cursor=cursor,
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


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)  # written by the json fallback of `_dumps` (e.g. a huge int)


def decode_entry(entry_id: str, fields: Mapping[str, bytes]) -> trace_pb2.TraceEntry:
    """Turn a stored one-record stream entry (field ``e``) into a ``TraceEntry``."""
    return _decode_doc(entry_id, _loads(fields["e"]))


def decode_entries(
    entry_id: str, fields: Mapping[str, bytes], skip_through: int = -1
) -> list[trace_pb2.TraceEntry]:
    """The ``TraceEntry`` messages of one stored stream entry (``e`` or ``b``), in order,
    leaving out those at index ``skip_through`` and before (resuming inside an entry)."""
    if "b" not in fields:
        return [decode_entry(entry_id, fields)] if skip_through < 0 else []
    docs = _loads(fields["b"])
    last = len(docs) - 1
    return [
        _decode_doc(entry_id if i == last else f"{entry_id}.{i}", doc)
        for i, doc in enumerate(docs)
        if i > skip_through
    ]


def _parse_cursor(after: str) -> tuple[str, int]:
    """Split a cursor into its stream entry id and the index of the record in that entry
    (``-1``: the cursor names the whole entry, i.e. its last record)."""
    match = _CURSOR.match(after)
    if match is None:
        raise InvalidArgument(
            [FieldViolation("after", 'must be empty, "0" or a cursor from a trace entry')]
        )
    index = match.group(2)
    return match.group(1), int(index) if index is not None else -1


def _flatten(
    entries: Iterable[tuple[str, Mapping[str, bytes]]], resume: tuple[str, int] | None = None
) -> list[trace_pb2.TraceEntry]:
    """Decode stream entries; ``resume`` = (entry id, index) leaves out the records of that
    entry up to that index."""
    out: list[trace_pb2.TraceEntry] = []
    for entry_id, fields in entries:
        skip = resume[1] if resume is not None and entry_id == resume[0] else -1
        out += decode_entries(entry_id, fields, skip)
    return out


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
        """Stored records after ``after`` ("0": from the start), oldest first (those of at
        most ``count`` stream entries)."""
        if after in ("", "0"):
            raw = await self._client.xrange(stream, min="-", max="+", count=count)
            return _flatten(range_entries(raw))
        entry_id, index = _parse_cursor(after)
        if index < 0:
            raw = await self._client.xrange(stream, min=f"({entry_id}", max="+", count=count)
            return _flatten(range_entries(raw))
        # Inside a multi-record entry: start at that entry and leave out what was seen of it.
        raw = await self._client.xrange(stream, min=entry_id, max="+", count=count)
        return _flatten(range_entries(raw), (entry_id, index))

    async def start_cursor(self, stream: str, after: str = "") -> str:
        """Resolve where following starts: ``after`` itself, or for ``""`` the newest entry
        now stored (so that only records written from this call on are followed)."""
        if after:
            if after == "0":
                return "0-0"
            _parse_cursor(after)  # validates
            return after
        newest = await self._client.xrevrange(stream, max="+", min="-", count=1)
        return as_text(newest[0][0]) if newest else "0-0"

    async def follow(
        self,
        stream: str,
        after: str = "",
        *,
        active: Callable[[], bool] | None = None,
    ) -> AsyncGenerator[trace_pb2.TraceEntry, None]:
        """Yield records after ``after`` and then new ones as they are written.

        ``after``: ``""`` = only records written from now on, ``"0"`` = all stored history
        first, otherwise the cursor of the last record already seen (see `start_cursor`).
        The generator runs until ``active()`` returns False (checked at least every
        ``block_ms``; pass e.g. ``lambda: not context.done()`` from a gRPC handler) or the
        consumer stops iterating. Do not rely on cancelling the consuming task alone:
        redis-py's blocking read can swallow a cancellation on Python 3.11.
        """
        last, index = _parse_cursor(await self.start_cursor(stream, after))
        if index >= 0:
            # The cursor is inside a multi-record entry: finish that entry first.
            raw = await self._client.xrange(stream, min=last, max=last, count=1)
            for record in _flatten(range_entries(raw), (last, index)):
                yield record
        while active is None or active():
            reply = await self._client.xread({stream: last}, count=100, block=self._block_ms)
            for entry_id, fields in stream_entries(reply):
                last = entry_id
                for record in decode_entries(entry_id, fields):
                    yield record
