"""A background loop that stops cooperatively.

Why not just ``task.cancel()``: redis-py runs every socket read and write under
``asyncio.wait_for`` (the socket timeout), and on Python 3.11 ``wait_for`` swallows a
cancellation that arrives as the inner operation completes. A cancelled ``while True``
worker then simply carries on, and whoever awaits it hangs. So `stop` asks the loop to
finish its current round (the loop checks `stopping`, and `pause` returns early on a stop),
waits for it, and cancels only if it has not returned within a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["BackgroundLoop"]

logger = logging.getLogger(__name__)


class BackgroundLoop:
    """Runs one coroutine in a task and stops it cooperatively."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def stopping(self) -> bool:
        """True once `stop` was called: the loop should return at its next check."""
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        """True while the task runs."""
        return self._task is not None and not self._task.done()

    def start(self, body: Callable[[], Awaitable[None]]) -> None:
        """Start ``body()`` in a task (no-op if already running)."""
        if self.running:
            return
        self._stop.clear()

        async def run() -> None:
            await body()

        self._task = asyncio.create_task(run(), name=self._name)

    async def pause(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Sleep ``seconds``, returning early when stopping or when ``wake`` is set."""
        waiters = [asyncio.ensure_future(self._stop.wait())]
        if wake is not None:
            waiters.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def stop(self, grace_s: float = 10.0) -> None:
        """Ask the loop to stop; cancel it if it has not returned within ``grace_s``."""
        self._stop.set()
        task, self._task = self._task, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=grace_s)
        if not done:
            logger.warning("%s did not stop within %.1fs; cancelling it", self._name, grace_s)
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await task
            except Exception:
                logger.exception("%s failed", self._name)
