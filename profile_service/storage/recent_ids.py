"""The event ids a profile has seen recently, kept inside its hash (field ``d``).

They used to live in a sorted set per profile (``keys.PartitionKeys.dedup``): four commands
per commit (``ZADD``, ``ZREMRANGEBYSCORE``, ``ZCARD``, ``PEXPIRE``) and a key of ~200 B per
visitor. In the hash they cost neither: the read returns the field with the state, the
service merges and trims it in Python, and the commit writes it with the state under the
same compare-and-set (so no concurrent writer can lose an id).

The field also carries the profile's expiry deadline: when an event commit last set its TTL
(``commit.TTL_REFRESH_SLACK_MS``), so that the next can leave the TTL alone without one
more hash field. Other commits (visit ends, stitches) set the TTL without touching the
field: the deadline it holds then lags the real one (at worst one refresh more), or, after
the retention setting got shorter, lies beyond ``now + retention`` (which refreshes too).
Format: `encode`. Semantics are those of the sorted set: an id counts while its time is
within the dedup window, and at most ``max_entries`` ids are kept (the oldest dropped first).

The sorted set is still read where the field is absent: a profile last written before the
field existed (the next commit moves its ids into the field; the set expires with the
window), or a visitor id whose profile was stitched away (``retire_profile.lua`` moves the
field into the set, where the visitor id's own events still find it until the window ends).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["DEFAULT_DEDUP_MAX_ENTRIES", "RecentIds", "decode", "encode", "from_scored"]

DEFAULT_DEDUP_MAX_ENTRIES = 10_000
"""Most event ids remembered per profile within the dedup window (oldest dropped first)."""


@dataclass(frozen=True)
class RecentIds:
    """What a commit of events needs to write the field again."""

    seen: Mapping[str, float]
    """Event id -> time seen (ms), as read (ids older than ``cutoff_ms`` are dropped)."""
    new_ids: Sequence[str]
    """The ids of the events this commit applies (seen at its time)."""
    cutoff_ms: int
    """The start of the dedup window."""
    max_entries: int
    expires_ms: int | None
    """The profile's expiry deadline as read (``None``: none stored)."""


def decode(raw: Any) -> tuple[dict[str, float], int | None]:
    """Event id -> time seen (ms), and the expiry deadline, of a stored field (``None``: no
    field, no ids, no deadline)."""
    if not raw:
        return {}, None
    deadline, *groups = orjson.loads(raw)
    seen: dict[str, float] = {}
    ms = 0
    for delta, ids in groups:
        ms += delta
        for event_id in ids:
            seen[event_id] = float(ms)
    return seen, deadline


def from_scored(pairs: Sequence[Any]) -> dict[str, float]:
    """Event id -> time seen of a sorted set's ``ZRANGE … WITHSCORES`` reply: a flat
    ``[member, score, ...]`` list (from a script) or ``(member, score)`` pairs (redis-py)."""
    if pairs and not isinstance(pairs[0], (list, tuple)):
        pairs = list(zip(pairs[0::2], pairs[1::2], strict=True))
    return {_text(member): float(score) for member, score in pairs}


def encode(recent: RecentIds, now_ms: int, expires_ms: int) -> bytes:
    """The field after a commit at ``now_ms`` that leaves the profile's TTL at ``expires_ms``:
    ``[expires_ms, [ms, [id, ...]], [+ms, [id, ...]], ...]``, one group per commit time,
    oldest first, each time but the first as the difference to the one before (shorter).

    It holds the ids of ``recent.seen`` still in the window and ``recent.new_ids``, at most
    ``recent.max_entries`` of them (the newest)."""
    cutoff = recent.cutoff_ms
    kept = sorted(((ms, i) for i, ms in recent.seen.items() if ms >= cutoff), key=lambda p: p[0])
    kept += [(float(now_ms), i) for i in recent.new_ids]
    kept = kept[-recent.max_entries :] if recent.max_entries > 0 else []
    field: list[Any] = [expires_ms]
    last = 0
    for ms, event_id in kept:
        if len(field) > 1 and int(ms) == last:
            field[-1][1].append(event_id)
        else:
            field.append([int(ms) - last, [event_id]])
            last = int(ms)
    return orjson.dumps(field)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
