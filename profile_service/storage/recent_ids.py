"""The event ids a profile has seen recently, kept inside its hash (field ``d``).

They used to live in a sorted set per profile (``keys.PartitionKeys.dedup``): four commands
per commit (``ZADD``, ``ZREMRANGEBYSCORE``, ``ZCARD``, ``PEXPIRE``) and a key of ~200 B per
visitor. In the hash they cost neither: the read returns the field with the state, the
service merges and trims it in Python, and the commit writes it with the state under the
same compare-and-set (so no concurrent writer can lose an id).

Format (JSON, short because it is read and written with every batch): ``[[ms, [id, ...]],
...]``, oldest first, one group per commit time. Semantics are those of the sorted set: an id
counts while its time is within the dedup window, and at most ``max_entries`` ids are kept
(the oldest dropped first).

The sorted set is still read where the field is absent: a profile last written before the
field existed (its ids are folded into the field by the next commit, which deletes the set),
or a visitor id whose profile was stitched away (``retire_profile.lua`` moves the field into
the set, where the visitor id's own events still find it until the window ends).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

__all__ = ["DEFAULT_DEDUP_MAX_ENTRIES", "decode", "encode", "from_scored"]

DEFAULT_DEDUP_MAX_ENTRIES = 10_000
"""Most event ids remembered per profile within the dedup window (oldest dropped first)."""


def decode(raw: Any) -> dict[str, float]:
    """Event id -> time seen (ms) of a stored field (``None``: no field, no ids)."""
    if not raw:
        return {}
    seen: dict[str, float] = {}
    for ms, ids in orjson.loads(raw):
        for event_id in ids:
            seen[event_id] = float(ms)
    return seen


def from_scored(pairs: Sequence[Any]) -> dict[str, float]:
    """Event id -> time seen of a sorted set's ``ZRANGE … WITHSCORES`` reply: a flat
    ``[member, score, ...]`` list (from a script) or ``(member, score)`` pairs (redis-py)."""
    if pairs and not isinstance(pairs[0], (list, tuple)):
        pairs = list(zip(pairs[0::2], pairs[1::2], strict=True))
    return {_text(member): float(score) for member, score in pairs}


def encode(
    seen: Mapping[str, float], new_ids: Iterable[str], now_ms: int, cutoff_ms: int, max_entries: int
) -> bytes:
    """The field after a commit at ``now_ms``: the ids of ``seen`` still in the window (time
    >= ``cutoff_ms``) and ``new_ids``, at most ``max_entries`` of them (newest kept)."""
    kept = sorted(((ms, i) for i, ms in seen.items() if ms >= cutoff_ms), key=lambda p: p[0])
    kept += [(float(now_ms), i) for i in new_ids]
    kept = kept[-max_entries:] if max_entries > 0 else []
    groups: list[list[Any]] = []
    for ms, event_id in kept:
        if groups and groups[-1][0] == int(ms):
            groups[-1][1].append(event_id)
        else:
            groups.append([int(ms), [event_id]])
    return orjson.dumps(groups)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
