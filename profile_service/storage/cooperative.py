"""Letting other tasks run between the steps of CPU-bound work on the event loop.

The engine runs in the event loop's thread. A batch, a sweep or a backfill chunk that
evaluates hundreds of profiles in one go held the loop for tens of milliseconds, and every
request that arrived meanwhile (a GetProfile, a health check) waited for it: the p99 spikes
of GetProfile under background work. Yielding every few profiles bounds that wait to a few
profiles' worth of work, for a few microseconds per yield.
"""

from __future__ import annotations

import asyncio

__all__ = ["YIELD_EVERY", "let_others_run"]

YIELD_EVERY = 8
"""Profiles evaluated between two yields (about 1 to 3 ms of engine work)."""


async def let_others_run(done: int, every: int = YIELD_EVERY) -> None:
    """Yield to the event loop after every ``every``-th step (``done`` counts from 0)."""
    if done % every == every - 1:
        await asyncio.sleep(0)
