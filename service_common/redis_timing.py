"""Latency of every Redis round trip a service makes, for its ``*_redis_command_seconds`` histogram.

:func:`~service_common.redis.connect_redis` builds :class:`TimedRedis` /
:class:`TimedRedisCluster` when given a :data:`CommandObserver`: every command
(``execute_command``) and every pipeline (``execute``) reports its duration with an
*operation* label. Inside :func:`redis_step` (the engine's ``commit`` and ``read``, the
backfill's ``backfill.scan``, ...) the label is the step's name, so the few round trips that
matter most are told apart; elsewhere it is the command's name in lower case (``hgetall``,
``evalsha``, ``xreadgroup``) or ``pipeline``. Both come from the code, never from data, so
the label stays bounded (and is folded by ``bounded_label`` anyway).

Subclasses rather than OpenTelemetry's Redis instrumentation: that package patches the
redis-py classes process-wide (every client in the process, and spans only), whereas a
service's Redis spans come from :func:`service_common.step_spans.redis_span` already.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis.asyncio
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline

from service_common.metrics import bounded_label

__all__ = [
    "CommandObserver",
    "TimedRedis",
    "TimedRedisCluster",
    "current_step",
    "redis_step",
]

CommandObserver = Callable[[str, float], None]
"""Called with (operation, seconds) after each round trip, successful or not."""

_step: contextvars.ContextVar[str | None] = contextvars.ContextVar("crowd_redis_step", default=None)


@contextmanager
def redis_step(name: str) -> Iterator[None]:
    """Label the Redis round trips made inside this block ``name`` (a fixed step name)."""
    token = _step.set(name)
    try:
        yield
    finally:
        _step.reset(token)


def current_step() -> str | None:
    """The enclosing :func:`redis_step`'s name, if any."""
    return _step.get()


def _operation(args: tuple[Any, ...], default: str) -> str:
    step = _step.get()
    if step is not None:
        return step
    if args and isinstance(args[0], (str, bytes)):
        name = args[0].decode() if isinstance(args[0], bytes) else args[0]
        # "SCRIPT LOAD", "CLIENT SETNAME": the first word is the command.
        return bounded_label("redis_command", name.split(" ", 1)[0].lower())
    return default


class _Timer:
    def __init__(self, observe: CommandObserver, operation: str) -> None:
        self._observe = observe
        self._operation = operation
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._observe(self._operation, time.perf_counter() - self._started)


class TimedPipeline(Pipeline):
    """A standalone pipeline whose ``execute`` (one round trip) is observed."""

    observe: CommandObserver | None = None

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if self.observe is None or not self.command_stack:
            return await super().execute(raise_on_error)
        with _Timer(self.observe, _operation((), "pipeline")):
            return await super().execute(raise_on_error)


class TimedRedis(redis.asyncio.Redis):
    """A standalone client whose commands and pipelines are observed."""

    observe: CommandObserver | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        # redis-py's Redis.execute_command has no annotations.
        run: Callable[..., Awaitable[Any]] = super().execute_command
        if self.observe is None:
            return await run(*args, **options)
        with _Timer(self.observe, _operation(args, "command")):
            return await run(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = TimedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.observe = self.observe
        return pipe


class TimedClusterPipeline(ClusterPipeline):
    """A cluster pipeline whose ``execute`` (one round trip per node, in parallel) is observed."""

    observe: CommandObserver | None = None

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        if self.observe is None or not len(self):
            return await super().execute(raise_on_error, allow_redirections)
        with _Timer(self.observe, _operation((), "pipeline")):
            return await super().execute(raise_on_error, allow_redirections)


class TimedRedisCluster(redis.asyncio.RedisCluster):
    """A cluster client whose commands and pipelines are observed."""

    observe: CommandObserver | None = None

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self.observe is None:
            return await super().execute_command(*args, **kwargs)
        with _Timer(self.observe, _operation(args, "command")):
            return await super().execute_command(*args, **kwargs)

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # raises: unsupported in a cluster
        pipe = TimedClusterPipeline(self, transaction)  # type: ignore[abstract]
        pipe.observe = self.observe
        return pipe
