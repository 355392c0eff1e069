"""In-process locks per visitor, so that one replica never races itself.

Cross-replica safety comes from the compare-and-set in Redis; these locks only stop
concurrent batches *inside one process* from competing for the same profile (which would
turn every hot visitor into a retry storm). Locks are taken in sorted order, so two
batches holding overlapping sets cannot deadlock, and are forgotten when unused.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

__all__ = ["KeyedLocks"]


class KeyedLocks:
    """A lazily created `asyncio.Lock` per key, with reference counting."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    def __len__(self) -> int:
        """Number of keys currently locked or waited for."""
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold the locks of every key in ``keys`` (duplicates allowed) for the block."""
        ordered = sorted(set(keys))
        for key in ordered:
            self._users[key] = self._users.get(key, 0) + 1
            self._locks.setdefault(key, asyncio.Lock())
        acquired: list[str] = []
        try:
            for key in ordered:
                await self._locks[key].acquire()
                acquired.append(key)
            yield
        finally:
            for key in acquired:
                self._locks[key].release()
            for key in ordered:
                remaining = self._users[key] - 1
                if remaining:
                    self._users[key] = remaining
                else:
                    del self._users[key]
                    del self._locks[key]
