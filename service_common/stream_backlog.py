"""How far a consumer group is behind on a stream: entries not yet done, and the oldest one's age.

Entries stay in the stream after they are acknowledged, so the backlog is the group's ``lag``
(never delivered) plus its pending entries (delivered, not acknowledged yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

__all__ = ["Backlog", "stream_backlog"]


@dataclass(frozen=True)
class Backlog:
    entries: int
    oldest_ms: int | None
    """Creation time (ms) of the oldest entry not yet done, None when there is none."""


def _id_ms(entry_id: Any) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(text.split("-", 1)[0])


def _field(info: dict[Any, Any], name: str) -> Any:
    return info.get(name, info.get(name.encode()))


async def stream_backlog(redis: Redis, stream: str, group: str) -> Backlog:
    """The backlog of ``group`` on ``stream`` (3 cheap commands; a missing stream is empty)."""
    if not await redis.exists(stream):
        return Backlog(0, None)
    groups = await redis.xinfo_groups(stream)
    info = next((g for g in groups if _as_text(_field(g, "name")) == group), None)
    if info is None:
        length = int(await redis.xlen(stream))
        first = await redis.xrange(stream, count=1)
        return Backlog(length, _id_ms(first[0][0]) if first else None)
    pending = int(_field(info, "pending") or 0)
    lag = int(_field(info, "lag") or 0)
    oldest: list[int] = []
    if pending:
        summary = await redis.xpending(stream, group)
        if summary.get("min"):
            oldest.append(_id_ms(summary["min"]))
    if lag:
        last = _as_text(_field(info, "last-delivered-id"))
        after = await redis.xrange(stream, min=f"({last}", count=1)
        if after:
            oldest.append(_id_ms(after[0][0]))
    return Backlog(pending + lag, min(oldest) if oldest else None)


def _as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
