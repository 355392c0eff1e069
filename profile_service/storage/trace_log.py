"""The live trace log: reading the trace streams of visitors and live-trace ids.

Writers append trace records to the profile's trace stream (``PartitionKeys.trace``) and,
for events carrying a live-trace id, to that id's stream (``keys.trace_by_id``), in the entry
format of `service_common.trace_entries` (shared with the dispatch service, which writes
delivery outcomes into the same streams): one ``XADD`` per commit, whatever the number of
records.

`TraceLog.follow` serves ``StreamTrace``: it replays stored records after a cursor and then
blocks on ``XREAD`` for new ones. Following a visitor keeps its tracing marker alive, so its
commits write trace records while it is followed even if it is not sampled
(`trace_history`). A record's cursor is its stream entry id, or, for a record
of a ``b`` entry that is not its last, ``<entry id>.<index in the entry>``; so resuming after
any record is exact, and the cursor of an entry's last record is a plain stream id.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping

import redis.asyncio

from crowd.profile.v1 import trace_pb2
from profile_service.storage.layout import Layout
from profile_service.storage.replies import as_text, range_entries, stream_entries
from profile_service.storage.trace_history import FOLLOW_MARKER_TTL_MS
from service_common import keys
from service_common.errors import FieldViolation, InvalidArgument
from service_common.trace_entries import decode_entries

__all__ = ["TraceLog"]

_CURSOR = re.compile(r"^(\d{1,20}(?:-\d{1,20})?)(?:\.(\d{1,9}))?$")


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

    async def visitor_follow_keys(self, visitor_id: str) -> tuple[str, str]:
        """The trace stream and the tracing marker of a visitor's surviving profile."""
        profile_id = await self._layout.resolve_profile_id(self._client, visitor_id)
        pkeys = self._layout.keys_for(profile_id)
        return pkeys.trace(profile_id), pkeys.tracing(profile_id)

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
        marker: str = "",
    ) -> AsyncGenerator[trace_pb2.TraceEntry, None]:
        """Yield records after ``after`` and then new ones as they are written.

        ``after``: ``""`` = only records written from now on, ``"0"`` = all stored history
        first, otherwise the cursor of the last record already seen (see `start_cursor`).
        The generator runs until ``active()`` returns False (checked at least every
        ``block_ms``; pass e.g. ``lambda: not context.done()`` from a gRPC handler) or the
        consumer stops iterating. Do not rely on cancelling the consuming task alone:
        redis-py's blocking read can swallow a cancellation on Python 3.11.

        ``marker``: the profile's tracing marker, set before the first read and refreshed
        before every blocking read while following (it expires on its own afterwards).
        """
        if marker:
            await self._client.set(marker, b"1", px=FOLLOW_MARKER_TTL_MS)
        last, index = _parse_cursor(await self.start_cursor(stream, after))
        if index >= 0:
            # The cursor is inside a multi-record entry: finish that entry first.
            raw = await self._client.xrange(stream, min=last, max=last, count=1)
            for record in _flatten(range_entries(raw), (last, index)):
                yield record
        while active is None or active():
            if marker:
                await self._client.set(marker, b"1", px=FOLLOW_MARKER_TTL_MS)
            reply = await self._client.xread({stream: last}, count=100, block=self._block_ms)
            for entry_id, fields in stream_entries(reply):
                last = entry_id
                for record in decode_entries(entry_id, fields):
                    yield record
