"""Which profiles keep a trace history, and how much of it.

Writing every commit's trace records into a stream for every visitor cost about a tenth of
the service's CPU and 5 KB of Redis memory per visitor, for a debugging aid that is read for
a handful of visitors. So a profile's trace stream is written only when

* the profile is **sampled**: a stable hash of its id falls under ``sample_rate`` (so a
  sampled visitor's history is whole, and the same on every replica);
* someone **follows** it: ``StreamTrace`` keeps the profile's tracing marker
  (``PartitionKeys.tracing``) alive while it runs, and the commit sees it (read with the
  profile on the ingest path, checked inside the commit script elsewhere);
* the event carries a **live-trace id** (the caller is debugging this visitor).

A kept history is capped in bytes: each ``XADD`` trims the stream to as many
entries of the size being written as fit in ``max_bytes``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import Enum

from service_common.trace_entries import TRACE_MAXLEN

__all__ = ["FOLLOW_MARKER_TTL_MS", "TraceHistory", "TraceWrite"]

FOLLOW_MARKER_TTL_MS = 10_000
"""Lifetime of the tracing marker; a follower refreshes it at every read (about every
second), so a follower that vanished stops costing within seconds."""

_SCALE = 1_000_000


class TraceWrite(Enum):
    """What a commit does with its trace records."""

    KEEP = "keep"
    """Write them (sampled, followed or carrying a live-trace id)."""
    IF_FOLLOWED = "if_followed"
    """Build them; the commit script writes them only if the tracing marker exists."""
    SKIP = "skip"
    """Neither build nor write them (known to be neither sampled nor followed)."""


@dataclass(frozen=True)
class TraceHistory:
    """The trace-history rule of one service (``trace_sample_rate``,
    ``trace_history_max_bytes``)."""

    sample_rate: float = 1.0
    max_bytes: int = 16_384

    def sampled(self, profile_id: str) -> bool:
        """Whether ``profile_id`` keeps its history whoever follows it."""
        if self.sample_rate >= 1.0:
            return True
        if self.sample_rate <= 0.0:
            return False
        # Salted: partitions use CRC-32 of the bare id, sampling must not pick partitions.
        bucket = zlib.crc32(b"trace:" + profile_id.encode("utf-8", "surrogatepass")) % _SCALE
        return bucket < self.sample_rate * _SCALE

    def choice(self, profile_id: str, followed: bool | None) -> TraceWrite:
        """What to do with a commit's records: ``followed`` is the tracing marker as read with
        the profile (``None``: not read, the commit script checks it)."""
        if followed or self.sampled(profile_id):
            return TraceWrite.KEEP
        return TraceWrite.IF_FOLLOWED if followed is None else TraceWrite.SKIP

    def max_entries(self, entry_bytes: int) -> int:
        """``MAXLEN`` for a stream whose entries are about ``entry_bytes`` long."""
        return max(1, min(TRACE_MAXLEN, self.max_bytes // max(1, entry_bytes)))
