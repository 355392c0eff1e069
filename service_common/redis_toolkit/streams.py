"""The one consumer-group reader of both services, over a set of partitioned Redis streams.

The dispatch queues (actions and cohort changes) and the profile outboxes are one stream per
partition read by a consumer group: :func:`create_groups` makes the groups, :func:`read_new`
takes new entries (one blocking ``XREADGROUP`` over every partition, or one pipelined
``XREADGROUP`` per partition on a cluster), :func:`claim_stale` takes over the entries of
dead consumers (``XAUTOCLAIM``), :func:`keep_claimed` refreshes the idle time of entries
still being worked on, and :func:`ack` acknowledges (and deletes) finished ones.

Callers give the stream names (index = partition) and get ``(partition, entry id, fields)``
back; entries deleted meanwhile (``XAUTOCLAIM`` may still list them) are skipped, and a
group that vanished (the dataset was flushed) is created again on the spot, from ``0``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from service_common.redis_toolkit.retry import REDIS_LOOP, FailureBackoff

__all__ = [
    "RawEntry",
    "ack",
    "claim_stale",
    "create_groups",
    "keep_claimed",
    "read_loop",
    "read_new",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

RawEntry = tuple[int, bytes, dict[bytes, bytes]]
"""``(partition, entry id, fields)`` of one stream entry."""


EntryIds = Mapping[int, Sequence[bytes | str]]
"""Entry ids by partition."""


def _is_missing_group(reply: object) -> bool:
    return isinstance(reply, ResponseError) and "NOGROUP" in str(reply)


async def create_groups(
    redis: aioredis.Redis, streams: Sequence[str], group: str, *, only: Sequence[int] = ()
) -> None:
    """Create each stream (``only`` those partitions, if given) and its group if missing.

    The group starts at ``0``, not ``$``: entries written before any reader ran are read too.
    """
    partitions = list(only) or list(range(len(streams)))
    async with redis.pipeline(transaction=False) as pipe:
        for partition in partitions:
            pipe.xgroup_create(streams[partition], group, id="0", mkstream=True)
        replies = await pipe.execute(raise_on_error=False)
    for reply in replies:
        if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
            raise reply


async def _settle(
    redis: aioredis.Redis, streams: Sequence[str], group: str, replies: Sequence[Any]
) -> list[Exception]:
    """Create the groups that ``replies`` found missing; return the other errors."""
    missing = [p for p, reply in enumerate(replies) if _is_missing_group(reply)]
    if missing:
        logger.warning("consumer group %s missing on %d streams; creating it", group, len(missing))
        await create_groups(redis, streams, group, only=missing)
    return [r for r in replies if isinstance(r, Exception) and not _is_missing_group(r)]


_PARTIAL_LOG_EVERY_S = 10.0
_partial_logged: dict[str, float] = {}


def _keep_partial(errors: Sequence[Exception], replies: Sequence[Any], what: str) -> None:
    """Go on with the streams that answered when others failed (on a cluster: a slot being
    migrated, a master failing over): their entries are pending under this consumer already,
    and raising would leave them until the next takeover, and hold every other stream back
    for one stream's trouble. Raise only if every stream failed, so the caller backs off.
    Logged at most every ``_PARTIAL_LOG_EVERY_S`` per ``what`` (it may last a while)."""
    if not errors:
        return
    if len(errors) == len(replies):
        raise errors[0]
    now = time.monotonic()
    if now - _partial_logged.get(what, -_PARTIAL_LOG_EVERY_S) >= _PARTIAL_LOG_EVERY_S:
        _partial_logged[what] = now
        logger.warning(
            "%s: %d of %d streams failed (%s); the others go on",
            what,
            len(errors),
            len(replies),
            type(errors[0]).__name__,
        )


def _raw(partition: int, entry: Any) -> RawEntry | None:
    entry_id, fields = entry
    if not fields:
        return None  # deleted meanwhile
    return partition, bytes(entry_id), fields


async def read_new(
    redis: aioredis.Redis,
    streams: Sequence[str],
    group: str,
    consumer: str,
    count: int,
    block_ms: int,
    *,
    per_stream: bool | None = None,
) -> list[RawEntry]:
    """Take up to ``count`` new entries across ``streams``, waiting up to ``block_ms``.

    One blocking multi-stream ``XREADGROUP`` by default. Redis Cluster refuses a command over
    keys in several slots, so with ``per_stream`` (default: when the client is a cluster
    client) each stream is read without blocking in one pipeline (routed per slot), and an
    empty round waits ``block_ms`` before returning.
    """
    if per_stream is None:
        per_stream = isinstance(redis, RedisCluster)
    if per_stream:
        return await _read_each(redis, streams, group, consumer, count, block_ms)
    wanted: dict[Any, Any] = dict.fromkeys(streams, ">")
    reply = await redis.xreadgroup(group, consumer, wanted, count=count, block=block_ms)
    partition_of = {name.encode(): p for p, name in enumerate(streams)}
    taken: list[RawEntry] = []
    for name, entries in _stream_replies(reply):
        partition = partition_of[name if isinstance(name, bytes) else str(name).encode()]
        taken += [raw for entry in entries if (raw := _raw(partition, entry)) is not None]
    return taken


def _stream_replies(reply: Any) -> list[tuple[Any, list[Any]]]:
    """``[(stream name, entries)]`` from an XREADGROUP reply: RESP3 answers a map of
    stream -> [entries], RESP2 a list of [stream, entries]."""
    if isinstance(reply, dict):
        return [(name, value[0]) for name, value in reply.items()]
    return [(name, entries) for name, entries in reply or []]


async def _read_each(
    redis: aioredis.Redis,
    streams: Sequence[str],
    group: str,
    consumer: str,
    count: int,
    block_ms: int,
) -> list[RawEntry]:
    per_stream_count = max(1, count // len(streams)) if streams else count
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xreadgroup(group, consumer, {stream: ">"}, count=per_stream_count)
        replies = await pipe.execute(raise_on_error=False)
    errors = await _settle(redis, streams, group, replies)
    taken: list[RawEntry] = []
    for partition, reply in enumerate(replies):
        if isinstance(reply, Exception):
            continue
        for _, entries in _stream_replies(reply):
            taken += [raw for entry in entries if (raw := _raw(partition, entry)) is not None]
    _keep_partial(errors, replies, f"reading group {group}")
    if not taken and block_ms > 0:
        await asyncio.sleep(block_ms / 1000)
    return taken  # all of it: entries read are already pending under this consumer


async def claim_stale(
    redis: aioredis.Redis,
    streams: Sequence[str],
    group: str,
    consumer: str,
    min_idle_ms: int,
    count: int,
    *,
    cursors: list[str] | None = None,
) -> list[RawEntry]:
    """Take over entries pending with any consumer for longer than ``min_idle_ms``.

    Args:
        cursors: Where each stream's scan resumes (``XAUTOCLAIM``'s next id, updated in
            place), so that a long pending list is walked over several calls; ``None``
            scans from the start every time.
    """
    async with redis.pipeline(transaction=False) as pipe:
        for partition, stream in enumerate(streams):
            start = cursors[partition] if cursors is not None else "0-0"
            pipe.xautoclaim(stream, group, consumer, min_idle_ms, start, count=count)
        replies = await pipe.execute(raise_on_error=False)
    errors = await _settle(redis, streams, group, replies)
    taken: list[RawEntry] = []
    for partition, reply in enumerate(replies):
        if isinstance(reply, Exception):
            continue
        if cursors is not None:
            cursor = reply[0]
            cursors[partition] = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        # reply[2] (Redis 7): ids deleted while pending; XAUTOCLAIM already dropped them.
        for entry in reply[1]:
            if (raw := _raw(partition, entry)) is not None:
                taken.append(raw)
    _keep_partial(errors, replies, f"claiming stale entries of group {group}")
    return taken


async def keep_claimed(
    redis: aioredis.Redis, streams: Sequence[str], group: str, consumer: str, ids: EntryIds
) -> None:
    """Reset the idle time of entries this consumer is still working on (so no other
    consumer takes them over meanwhile)."""
    if not any(ids.values()):
        return
    async with redis.pipeline(transaction=False) as pipe:
        for partition, entry_ids in ids.items():
            if entry_ids:
                pipe.xclaim(
                    streams[partition], group, consumer, 0, cast(Any, list(entry_ids)), justid=True
                )
        await pipe.execute()


async def ack(
    redis: aioredis.Redis,
    streams: Sequence[str],
    group: str,
    ids: EntryIds,
    *,
    delete: bool = True,
) -> None:
    """Acknowledge finished entries and (by default) delete them, in one round trip."""
    if not any(ids.values()):
        return
    async with redis.pipeline(transaction=False) as pipe:
        for partition, entry_ids in ids.items():
            if entry_ids:
                pipe.xack(streams[partition], group, *entry_ids)
                if delete:
                    pipe.xdel(streams[partition], *entry_ids)
        await pipe.execute()


async def read_loop(
    read: Callable[[], Awaitable[T]],
    take: Callable[[T], Awaitable[None] | None],
    *,
    stopping: Callable[[], bool],
    held_full: Callable[[], bool],
    pause_s: float,
    ensure_groups: Callable[[], Awaitable[None]],
    what: str,
) -> None:
    """A worker's reading: ``take(await read())`` until ``stopping()``.

    While ``held_full()`` the loop pauses ``pause_s`` instead of reading (back-pressure:
    the destination is slower than the queue fills). A missing group (Redis restarted
    without persistence) is created again with ``ensure_groups``; any other failure is
    logged and retried with the shared ``REDIS_LOOP`` backoff.
    """
    backoff = FailureBackoff(REDIS_LOOP)
    while not stopping():
        try:
            if held_full():
                await asyncio.sleep(pause_s)
                continue
            taking = take(await read())
            if taking is not None:
                await taking
            backoff.succeeded()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if _is_missing_group(exc):
                logger.warning("%s consumer groups missing; creating them", what)
                with contextlib.suppress(Exception):
                    await ensure_groups()
            else:
                logger.exception("reading the %s failed", what)
            await backoff.failed()
