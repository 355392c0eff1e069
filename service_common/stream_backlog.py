"""How far a queue stream is behind: entries not yet done, and the oldest one's age.

The outbox and the dispatch queues delete an entry once it is done (XDEL in the completing
script), so what is left in the stream is exactly the backlog: ``XLEN`` and the first entry.
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


async def stream_backlog(redis: Redis, stream: str) -> Backlog:
    """The backlog of ``stream`` (two cheap commands; a missing stream is empty)."""
    length = int(await redis.xlen(stream))
    if not length:
        return Backlog(0, None)
    first = await redis.xrange(stream, count=1)
    return Backlog(length, _id_ms(first[0][0]) if first else None)
