"""The live-trace entry format: the contract between every writer and the reader of trace streams.

A visitor's trace stream (``keys.PartitionKeys.trace``) and a live-trace id's stream
(``keys.trace_by_id``) are written by the profile service (the engine's records of each commit)
and by the dispatch service (delivery outcomes, `dispatch_service.visitor_trace`), and read by
the profile service (``StreamTrace``). Both services therefore share this one definition of an
entry, here in the shared layer, rather than one service importing the other's storage code.

A stream entry holds either one record as the JSON object in field ``e``, or, when one commit
writes several records, all of them as a JSON array of such objects in field ``b``. A record is
``{"k": kind, "m": message, "t": time ms, "p": profile id, "d": details, "ev": event id,
"tr": live-trace id, "o": OpenTelemetry trace id}`` (empty fields left out). Every stream is
capped at about `TRACE_MAXLEN` entries and expires `TRACE_TTL_MS` after its last write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import struct_pb2

from crowd.common.v1 import value_pb2
from crowd.profile.v1 import trace_pb2

__all__ = [
    "TRACE_MAXLEN",
    "TRACE_TTL_MS",
    "TraceRecord",
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

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


@dataclass(frozen=True)
class TraceRecord:
    """One trace entry to append to a visitor's trace stream."""

    kind: int
    """A ``crowd.profile.v1.TraceEntryKind`` value."""
    message: str
    details: dict[str, Any] = field(default_factory=dict)


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
    """The JSON object stored for one trace record (see the module docstring)."""
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
    leaving out those at index ``skip_through`` and before (resuming inside an entry).

    The cursor of a record is its entry id, or, for a record of a ``b`` entry that is not its
    last, ``<entry id>.<index in the entry>``."""
    if "b" not in fields:
        return [decode_entry(entry_id, fields)] if skip_through < 0 else []
    docs = _loads(fields["b"])
    last = len(docs) - 1
    return [
        _decode_doc(entry_id if i == last else f"{entry_id}.{i}", doc)
        for i, doc in enumerate(docs)
        if i > skip_through
    ]
