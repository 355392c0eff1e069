"""One deadline per standalone Redis call instead of one per reply read.

redis-py enforces ``socket_timeout`` by wrapping every reply it reads in ``asyncio.timeout``:
a pipeline of 500 script calls sets up and cancels 500 timers, 2-4% of the profile
service's CPU during ingest. :func:`~service_common.redis.connect_redis` therefore builds
standalone clients without a socket timeout and bounds each command and each pipeline
``execute`` as a whole here: a hung Redis (stopped, or a network that swallows packets)
still fails the call within the bound, as :class:`redis.exceptions.TimeoutError`, which
the services already treat as an outage (the RPC answers UNAVAILABLE, background loops
retry). Cluster clients keep redis-py's socket timeout: their retries and slot refreshes
react to that error inside redis-py.

When the bound fires, the cancellation reaches redis-py while it writes or reads, and
redis-py disconnects that connection (its reply stream is unusable), as it does after a
socket timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.exceptions
from redis.asyncio.client import Pipeline

from service_common.redis_timing import TimedPipeline, TimedRedis

__all__ = ["BoundedPipeline", "BoundedRedis", "bounded"]

T = TypeVar("T")


async def bounded(call: Awaitable[T], seconds: float | None) -> T:
    """Await ``call`` for at most ``seconds`` (``None``: no bound); past it, raise
    :class:`redis.exceptions.TimeoutError` (a ``RedisError``, like a socket timeout)."""
    if seconds is None:
        return await call
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await call
    except TimeoutError as exc:
        if not scope.expired():
            raise  # a TimeoutError of the call itself, not of our bound
        raise redis.exceptions.TimeoutError(f"Redis did not answer within {seconds:g} s") from exc


class BoundedPipeline(TimedPipeline):
    """A standalone pipeline whose ``execute`` (one round trip) has one deadline."""

    call_timeout: float | None = None

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        return await bounded(super().execute(raise_on_error), self.call_timeout)


class BoundedRedis(TimedRedis):
    """A standalone client whose every command and pipeline has one deadline
    (``call_timeout`` seconds) and is observed when ``observe`` is set."""

    call_timeout: float | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        run: Callable[..., Awaitable[Any]] = super().execute_command
        return await bounded(run(*args, **options), self.call_timeout)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = BoundedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.observe = self.observe
        pipe.call_timeout = self.call_timeout
        return pipe
