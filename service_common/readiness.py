"""Readiness on Redis: a service listens at once, reports NOT_SERVING until Redis answers and
its Redis-dependent start-up is done, then follows Redis with a watchdog.

:class:`RedisReadiness` runs in the background of a started server
(:class:`service_common.server.ManagedServer`):

1. PING until Redis answers, forever, with the start-up backoff (``REDIS_STARTUP`` or the
   ``redis_connect_retry_max_seconds`` setting), one
   log line per failed attempt naming ``host:port`` only;
2. run the service's ``prepare`` hooks (check partitions, load scripts and definitions,
   start workers); a Redis error there starts again from 1, any other error is fatal;
3. report SERVING, then PING every ``watchdog_interval_s``: NOT_SERVING while Redis does
   not answer, SERVING again when it does (each change logged once).

Until step 2 is done, :class:`ReadinessInterceptor` answers every RPC but health and
reflection with ``UNAVAILABLE``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
import grpc.aio
import redis.exceptions
from redis.asyncio import Redis, RedisCluster

from service_common._handlers import Behavior, rewrap_handler
from service_common.errors import STORAGE_OUTAGES, Unavailable
from service_common.redis import log_redis_attempt, redis_target
from service_common.redis_toolkit.retry import REDIS_STARTUP, Backoff, retrying
from service_common.settings import ServiceSettings

__all__ = ["ReadinessInterceptor", "RedisReadiness"]

logger = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[Any]]
#: Errors that mean "Redis is not reachable (yet)": retried, never fatal. On a cluster this
#: includes one that is forming, failing over or moving slots (CLUSTERDOWN, uncovered slots).
REDIS_DOWN_ERRORS = (*STORAGE_OUTAGES, OSError)
#: Methods that answer whether or not Redis is there.
_ALWAYS_OPEN = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


def _is_down(error: BaseException) -> bool:
    return isinstance(error, REDIS_DOWN_ERRORS) and not isinstance(
        error, redis.exceptions.AuthenticationError
    )


class RedisReadiness:
    """Whether a service can serve: Redis answers and its start-up work is done.

    Args:
        redis: The service's client (built without a PING, see ``connect_redis``).
        target: ``host:port`` for the logs (never the URL: it may hold the password).
        prepare: Start-up work that needs Redis, awaited in order once it answers.
        watchdog_interval_s: How often Redis is pinged once serving.
        connect_backoff: The backoff between start-up attempts.
    """

    def __init__(
        self,
        redis: Redis | RedisCluster,
        target: str,
        prepare: Sequence[Hook] = (),
        *,
        watchdog_interval_s: float = 1.0,
        connect_backoff: Backoff = REDIS_STARTUP,
    ) -> None:
        self._connect_backoff = connect_backoff
        self._redis = redis
        self._target = target
        self._prepare = list(prepare)
        self._interval_s = watchdog_interval_s
        self.prepared = False
        self.redis_up = False
        self._first_outcome = asyncio.Event()

    @classmethod
    def for_settings(
        cls, redis: Redis | RedisCluster, settings: ServiceSettings, prepare: Sequence[Hook]
    ) -> RedisReadiness:
        """The readiness of a service configured by ``settings`` (Redis target, watchdog
        interval, start-up backoff cap)."""
        return cls(
            redis,
            redis_target(settings.redis_url),
            prepare,
            watchdog_interval_s=settings.redis_watchdog_interval_seconds,
            connect_backoff=Backoff(
                REDIS_STARTUP.initial_s, settings.redis_connect_retry_max_seconds
            ),
        )

    async def wait_first_outcome(self) -> None:
        """Return once the first attempt is over: prepared, or Redis found unreachable."""
        await self._first_outcome.wait()

    async def run(self, report: Callable[[bool], Awaitable[None]]) -> None:
        """Prepare, then watch Redis until cancelled; ``report(serving)`` on each change.

        Raises:
            Exception: A fatal start-up error (not a Redis outage) from a ``prepare`` hook.
        """
        try:
            await self._connect_and_prepare()
        except BaseException:
            self._first_outcome.set()
            raise
        self.prepared = self.redis_up = True
        await report(True)
        self._first_outcome.set()
        while True:
            await asyncio.sleep(self._interval_s)
            up = await self._answers()
            if up != self.redis_up:
                self.redis_up = up
                if up:
                    logger.info("Redis at %s answers again: serving", self._target)
                else:
                    logger.warning("Redis at %s does not answer: not serving", self._target)
                await report(up)

    async def _connect_and_prepare(self) -> None:
        log_attempt = log_redis_attempt(self._target)

        def log(attempt: int, error: BaseException, delay: float) -> None:
            self._first_outcome.set()  # start() may return: health says NOT_SERVING
            log_attempt(attempt, error, delay)

        async for attempt in retrying(
            self._connect_backoff, retry_on=Exception, give_up_on=_fatal, log=log
        ):
            with attempt:
                await self._redis.ping()
                for hook in self._prepare:
                    await hook()

    async def _answers(self) -> bool:
        try:
            await self._redis.ping()
        except (redis.exceptions.RedisError, OSError):
            return False
        return True


def _fatal(error: BaseException) -> bool:
    return not _is_down(error)


class ReadinessInterceptor(grpc.aio.ServerInterceptor):
    """Answers ``UNAVAILABLE`` to every RPC but health and reflection until ``readiness``
    is prepared (afterwards a Redis outage surfaces as ``UNAVAILABLE`` from the RPC itself)."""

    def __init__(self, readiness: RedisReadiness) -> None:
        self._readiness = readiness

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if (
            handler is None
            or self._readiness.prepared
            or handler_call_details.method.startswith(_ALWAYS_OPEN)
        ):
            return handler
        return _unavailable(handler)


def _unavailable(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """The same kind of handler, raising ``Unavailable`` before the servicer runs (the
    error-mapping interceptor outside this one turns it into the status)."""

    def unary(_: Behavior) -> Callable[..., Awaitable[Any]]:
        async def refuse(_request: Any, _context: Any) -> Any:
            raise _not_ready()

        return refuse

    def stream(_: Behavior) -> Callable[..., AsyncIterator[Any]]:
        async def refuse(_request: Any, _context: Any) -> AsyncIterator[Any]:
            raise _not_ready()
            yield  # pragma: no cover - makes this an async generator, never reached

        return refuse

    return rewrap_handler(handler, unary_response=unary, stream_response=stream)


def _not_ready() -> Unavailable:
    return Unavailable("Redis is not reachable yet; retry later", reason="REDIS_UNAVAILABLE")
