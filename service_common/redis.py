"""Redis client factory: build from a URL, prove the server answers, fail clearly if not.

``create_redis`` returns a ready ``redis.asyncio.Redis`` (or ``RedisCluster``) after a PING
succeeded, retrying with exponential backoff a bounded number of times. When Redis stays
unreachable it raises :class:`RedisUnavailableError` naming ``host:port`` (or the socket path) —
never the password, which is also registered with the log redactor.

The caller owns the client and closes it with ``await client.aclose()`` (put that in the
server's ``on_shutdown`` hooks).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, cast, overload
from urllib.parse import SplitResult, urlsplit, urlunsplit

import redis.asyncio
import redis.asyncio.cluster
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from service_common.logging import redact, register_secret
from service_common.redis_bound import BoundedRedis
from service_common.redis_timing import CommandObserver, TimedRedisCluster
from service_common.redis_toolkit.retry import Backoff, RetryLog, retrying
from service_common.settings import ServiceSettings

__all__ = [
    "CLUSTER_COMMAND_RETRIES",
    "REDIS_FAILURES",
    "RedisUnavailableError",
    "cluster_seed_nodes",
    "connect_redis",
    "connect_settings_redis",
    "create_redis",
    "log_redis_attempt",
    "redact_url",
    "redis_target",
]

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


_SOCKET_TIMEOUT_S = 5.0
_MAX_CONNECTIONS = 256

#: Redis failing, including a cluster failing over or moving slots once the client's own
#: retries ran out (``RedisClusterException`` is no ``RedisError``): what background loops
#: log and retry.
REDIS_FAILURES: tuple[type[Exception], ...] = (
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
    OSError,
)

#: How often a cluster command (or pipeline) is retried after a connection error, a timeout,
#: CLUSTERDOWN or an uncovered slot, with jittered backoff capped at 1 s: enough to ride out
#: a failover of a few seconds (the node timeout plus the election) before the caller sees
#: the error (the RPC then answers UNAVAILABLE and the client retries). MOVED and ASK are
#: followed on top of these.
CLUSTER_COMMAND_RETRIES = 12


def cluster_seed_nodes(url: str, nodes: Sequence[str] | str = ()) -> list[tuple[str, int]]:
    """``(host, port)`` of the cluster seeds: the node of ``url`` first, then ``nodes``
    (``host:port`` strings, or one comma-separated string), without duplicates."""
    parts = urlsplit(url)
    seeds = [(parts.hostname or "localhost", parts.port or 6379)]
    listed = nodes.split(",") if isinstance(nodes, str) else list(nodes)
    for node in (n.strip() for n in listed if n.strip()):
        host, _, port = node.rpartition(":")
        seed = (host.strip("[]"), int(port))
        if seed not in seeds:
            seeds.append(seed)
    return seeds


def _cluster_client(
    url: str,
    nodes: Sequence[str] | str,
    client_options: dict[str, Any],
    observe: CommandObserver | None,
) -> redis.asyncio.RedisCluster:
    # One RedisCluster, every seed a startup node: discovery asks them in turn, so start-up
    # survives a seed being down. The URL's credentials, TLS and options apply to every node.
    client_options.setdefault(
        "retry", Retry(ExponentialWithJitterBackoff(cap=1.0, base=0.05), CLUSTER_COMMAND_RETRIES)
    )
    seeds = cluster_seed_nodes(url, nodes)
    client_options["startup_nodes"] = [
        redis.asyncio.cluster.ClusterNode(host, port) for host, port in seeds
    ]
    if observe is None:
        return redis.asyncio.RedisCluster.from_url(url, **client_options)
    client = cast(TimedRedisCluster, TimedRedisCluster.from_url(url, **client_options))
    client.observe = observe
    return client


def connect_redis(
    url: str,
    *,
    cluster: bool = False,
    nodes: Sequence[str] | str = (),
    observe: CommandObserver | None = None,
    **client_options: Any,
) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
    """A client for ``url`` that has not talked to Redis yet (no PING; see :func:`create_redis`
    for the options). The services build theirs this way so they can start, report
    NOT_SERVING and wait for Redis (:mod:`service_common.readiness`).

    Args:
        url: The Redis URL (for a cluster: any one node, the first seed).
        cluster: Build a ``RedisCluster``: it discovers every node from the seeds, follows
            MOVED/ASK, refreshes its slot map after errors and retries connection errors,
            timeouts and CLUSTERDOWN (:data:`CLUSTER_COMMAND_RETRIES`).
        nodes: More cluster seeds (``host:port``, a list or one comma-separated string).
        observe: Told the latency of every command and pipeline (the service's
            ``*_redis_command_seconds`` histogram, see :mod:`service_common.redis_timing`).
        client_options: Passed to ``from_url``. ``socket_timeout`` (default 5 s) bounds
            each command and pipeline of a standalone client as a whole
            (:mod:`service_common.redis_bound`), and each socket read of a cluster client.

    Raises:
        ValueError: For an unusable URL/option combination.
    """
    parts = urlsplit(url)
    register_secret(parts.password)
    if cluster and parts.scheme == "unix":
        raise ValueError("Redis Cluster needs a redis:// or rediss:// URL, not unix://")
    client_options.setdefault("socket_connect_timeout", _SOCKET_TIMEOUT_S)
    client_options.setdefault("socket_timeout", _SOCKET_TIMEOUT_S)
    if cluster:
        return _cluster_client(url, nodes, client_options, observe)
    client_options.setdefault("health_check_interval", 30)
    client_options.setdefault("max_connections", _MAX_CONNECTIONS)
    # The socket timeout becomes one deadline per command or pipeline (redis_bound): redis-py
    # would otherwise arm a timer for every reply it reads.
    call_timeout = client_options.pop("socket_timeout")
    # A burst of calls beyond max_connections (a stall under load, hundreds of GetProfile in
    # flight) waits for a free connection, within the call's deadline; redis-py's default pool
    # fails such a call with "Too many connections".
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, socket_timeout=None, timeout=None, **client_options
    )
    client = BoundedRedis(connection_pool=pool)
    client.auto_close_connection_pool = True  # as from_url does: aclose() closes the pool
    client.observe = observe
    client.call_timeout = call_timeout
    return client


def connect_settings_redis(
    settings: ServiceSettings, *, observe: CommandObserver | None = None, **client_options: Any
) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
    """:func:`connect_redis` as ``settings`` say (``redis_url``, ``redis_cluster``,
    ``redis_cluster_nodes``; the socket timeout, or a standalone client's bound per call,
    outlasts a ``WAIT`` of ``redis_wait_timeout_ms``)."""
    client_options.setdefault(
        "socket_timeout", max(_SOCKET_TIMEOUT_S, settings.redis_wait_timeout_ms / 1000 + 1.0)
    )
    client_options.setdefault("max_connections", settings.redis_max_connections)
    return connect_redis(
        settings.redis_url,
        cluster=settings.redis_cluster,
        nodes=settings.redis_cluster_nodes,
        observe=observe,
        **client_options,
    )


def _heals(error: BaseException) -> bool:
    # AuthenticationError is a ConnectionError subclass but will not heal with time.
    return not isinstance(error, redis.exceptions.AuthenticationError)


def log_redis_attempt(target: str, attempts: int | None = None) -> RetryLog:
    """The one log line per failed attempt to reach Redis at ``target`` (never the URL,
    which may hold the password)."""

    def log(attempt: int, error: BaseException, delay: float) -> None:
        of = f"/{attempts}" if attempts is not None else ""
        logger.warning(
            "Redis at %s not ready (%s); attempt %d%s, retrying in %.2fs",
            target,
            type(error).__name__,
            attempt,
            of,
            delay,
        )

    return log


@overload
async def create_redis(
    url: str,
    *,
    cluster: Literal[False] = False,
    max_attempts: int | None = ...,
    initial_backoff: float = ...,
    max_backoff: float = ...,
    **client_options: Any,
) -> redis.asyncio.Redis: ...


@overload
async def create_redis(
    url: str,
    *,
    cluster: Literal[True],
    max_attempts: int | None = ...,
    initial_backoff: float = ...,
    max_backoff: float = ...,
    **client_options: Any,
) -> redis.asyncio.RedisCluster: ...


@overload
async def create_redis(
    url: str,
    *,
    cluster: bool,
    max_attempts: int | None = ...,
    initial_backoff: float = ...,
    max_backoff: float = ...,
    **client_options: Any,
) -> redis.asyncio.Redis | redis.asyncio.RedisCluster: ...


async def create_redis(
    url: str,
    *,
    cluster: bool = False,
    max_attempts: int | None = 5,
    initial_backoff: float = 0.1,
    max_backoff: float = 2.0,
    **client_options: Any,
) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
    """Connect to Redis at ``url`` and return the client once PING succeeds.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL (``unix://`` is not valid for a
            cluster). Options in the query string (``?db=1``) are honoured by redis-py.
        cluster: Build a ``RedisCluster`` (the URL names any one node).
        max_attempts: PINGs tried before giving up (at least 1); ``None`` tries forever.
        initial_backoff: Ceiling of the first (jittered) sleep; doubles after each failure.
        max_backoff: Upper bound of one sleep.
        **client_options: Passed to ``from_url``. Defaults set here: ``socket_connect_timeout``
            and ``socket_timeout`` 5 s (standalone: per call, see :func:`connect_redis`),
            ``health_check_interval`` 30 s (so a connection idle
            across a Redis restart is re-validated instead of failing the next command).
            ``protocol`` is left to redis-py (RESP3 in redis-py 8; pass ``protocol=2`` for
            RESP2 reply shapes).

    Raises:
        RedisUnavailableError: After ``max_attempts`` failed PINGs; names the target, not the
            password.
        ValueError: For an unusable URL/option combination.
    """
    if max_attempts is not None and max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    target = redis_target(url)
    last_error: BaseException | None = None
    try:
        async for attempt in retrying(
            Backoff(initial_backoff, max_backoff),
            retry_on=(redis.exceptions.RedisError, OSError),
            attempts=max_attempts,
            give_up_on=lambda error: not _heals(error),
            log=log_redis_attempt(target, max_attempts),
        ):
            with attempt:
                # A fresh client per attempt: RedisCluster discovers its nodes during
                # initialisation, and a failed discovery leaves the instance unusable.
                client = connect_redis(url, cluster=cluster, **client_options)
                try:
                    await client.ping()
                except BaseException:
                    await client.aclose()
                    raise
                return client
    except (redis.exceptions.RedisError, OSError) as exc:
        last_error = exc
    reason = f"{type(last_error).__name__}: {last_error}" if last_error else "unknown error"
    # redis-py's messages name host and port only; redact anyway in case a URL slipped in.
    reason = redact(reason.replace(url, redact_url(url)))
    raise RedisUnavailableError(
        f"Redis at {target} did not answer PING after {max_attempts} attempt(s): {reason}"
    ) from last_error
