"""Redis client factory: build from a URL, prove the server answers, fail clearly if not.

``create_redis`` returns a ready ``redis.asyncio.Redis`` (or ``RedisCluster``) after a PING
succeeded, retrying with exponential backoff a bounded number of times. When Redis stays
unreachable it raises :class:`RedisUnavailableError` naming ``host:port`` (or the socket path) —
never the password, which is also registered with the log redactor.

The caller owns the client and closes it with ``await client.aclose()`` (put that in the
server's ``on_shutdown`` hooks).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal, overload
from urllib.parse import SplitResult, urlsplit, urlunsplit

import redis.asyncio
import redis.asyncio.cluster
import redis.exceptions

from service_common.logging import redact, register_secret

__all__ = ["RedisUnavailableError", "create_redis", "redact_url", "redis_target"]

logger = logging.getLogger(__name__)


class RedisUnavailableError(ConnectionError):
    """Redis did not answer PING within the allowed attempts."""


def _netloc_without_password(parts: SplitResult) -> str:
    if parts.password is None:
        return parts.netloc
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return f"{user}:***@{host}"


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (safe to log or show in errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url  # (urlunsplit would also turn unix:///path into unix:/path)
    return urlunsplit(parts._replace(netloc=_netloc_without_password(parts)))


def redis_target(url: str) -> str:
    """Where ``url`` points, for messages: ``host:port`` or ``unix:/path``."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


@overload
async def create_redis(
    url: str,
    *,
    cluster: Literal[False] = False,
    max_attempts: int = ...,
    initial_backoff: float = ...,
    max_backoff: float = ...,
    **client_options: Any,
) -> redis.asyncio.Redis: ...


@overload
async def create_redis(
    url: str,
    *,
    cluster: Literal[True],
    max_attempts: int = ...,
    initial_backoff: float = ...,
    max_backoff: float = ...,
    **client_options: Any,
) -> redis.asyncio.RedisCluster: ...


@overload
async def create_redis(
    url: str,
    *,
    cluster: bool,
    max_attempts: int = ...,
    initial_backoff: float = ...,
    max_backoff: float = ...,
    **client_options: Any,
) -> redis.asyncio.Redis | redis.asyncio.RedisCluster: ...


async def create_redis(
    url: str,
    *,
    cluster: bool = False,
    max_attempts: int = 5,
    initial_backoff: float = 0.1,
    max_backoff: float = 2.0,
    **client_options: Any,
) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
    """Connect to Redis at ``url`` and return the client once PING succeeds.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL (``unix://`` is not valid for a
            cluster). Options in the query string (``?db=1``) are honoured by redis-py.
        cluster: Build a ``RedisCluster`` (the URL names any one node).
        max_attempts: PINGs tried before giving up (at least 1).
        initial_backoff: Seconds slept after the first failure; doubles after each one.
        max_backoff: Upper bound of one sleep.
        **client_options: Passed to ``from_url``. Defaults set here: ``socket_connect_timeout``
            and ``socket_timeout`` 5 s, ``health_check_interval`` 30 s (so a connection idle
            across a Redis restart is re-validated instead of failing the next command).
            ``protocol`` is left to redis-py (RESP3 in redis-py 8; pass ``protocol=2`` for
            RESP2 reply shapes).

    Raises:
        RedisUnavailableError: After ``max_attempts`` failed PINGs; names the target, not the
            password.
        ValueError: For an unusable URL/option combination.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    parts = urlsplit(url)
    register_secret(parts.password)
    if cluster and parts.scheme == "unix":
        raise ValueError("Redis Cluster needs a redis:// or rediss:// URL, not unix://")
    client_options.setdefault("socket_connect_timeout", 5.0)
    client_options.setdefault("socket_timeout", 5.0)
    if not cluster:
        client_options.setdefault("health_check_interval", 30)

    target = redis_target(url)
    delay = initial_backoff
    last_error: Exception | None = None
    for attempt in range(1, max_attempts + 1):
        # A fresh client per attempt: RedisCluster discovers its nodes during initialisation,
        # and a failed discovery leaves the instance unusable.
        client: redis.asyncio.Redis | redis.asyncio.RedisCluster
        if cluster:
            client = redis.asyncio.RedisCluster.from_url(url, **client_options)
        else:
            client = redis.asyncio.from_url(url, **client_options)
        try:
            await client.ping()
            return client
        except (redis.exceptions.RedisError, OSError) as exc:
            # AuthenticationError is a ConnectionError subclass but will not heal with time.
            last_error = exc
            await client.aclose()
            if isinstance(exc, redis.exceptions.AuthenticationError) or attempt == max_attempts:
                break
            logger.warning(
                "Redis at %s not ready (%s); attempt %d/%d, retrying in %.2fs",
                target,
                type(exc).__name__,
                attempt,
                max_attempts,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff)
    reason = f"{type(last_error).__name__}: {last_error}" if last_error else "unknown error"
    # redis-py's messages name host and port only; redact anyway in case a URL slipped in.
    reason = redact(reason.replace(url, redact_url(url)))
    raise RedisUnavailableError(
        f"Redis at {target} did not answer PING after {max_attempts} attempt(s): {reason}"
    ) from last_error
