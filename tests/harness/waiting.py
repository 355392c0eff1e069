"""Waiting for state that offers no event to await (state in Redis written by a background task).

The deadline only bounds the wait; what a test asserts is the state it waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["eventually"]


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool] = bool,
    *,
    within: float = 20.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until ``done(result)`` (default: the result is truthy) and return that
    result; fail with the last result after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {result!r}")
        await asyncio.sleep(interval)
