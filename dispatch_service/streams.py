"""Consumer-group reads over a set of partitioned Redis streams.

Both dispatch queues (actions and cohort changes) are one stream per partition read by a
consumer group: new entries with one blocking ``XREADGROUP`` over every partition, and
entries of dead consumers taken over with one pipelined ``XAUTOCLAIM`` per partition.
Callers give the stream names (index = partition) and get ``(partition, entry id, fields)``
back; entries deleted meanwhile (``XAUTOCLAIM`` may still list them) are skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from service_common.keys import DISPATCH_META_PARTITIONS

RawEntry = tuple[int, bytes, dict[bytes, bytes]]
"""``(partition, entry id, fields)`` of one stream entry."""


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
        replies = await pipe.execute()
    taken: list[RawEntry] = []
    for partition, reply in enumerate(replies):
        for _, entries in _stream_replies(reply):
            taken += [raw for entry in entries if (raw := _raw(partition, entry)) is not None]
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
) -> list[RawEntry]:
    """Take over entries pending with any consumer for longer than ``min_idle_ms``."""
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xautoclaim(stream, group, consumer, min_idle_ms, "0-0", count=count)
        replies = await pipe.execute()
    taken: list[RawEntry] = []
    for partition, reply in enumerate(replies):
        for entry in reply[1]:
            if (raw := _raw(partition, entry)) is not None:
                taken.append(raw)
    return taken


async def check_partitions(redis: aioredis.Redis, partitions: int) -> None:
    """Record the dispatch partition count in a new dataset, or check it against the recorded
    one (changing it would hide every queued entry of a re-homed partition).

    Raises:
        ValueError: the dataset was created with another partition count.
    """
    await redis.set(DISPATCH_META_PARTITIONS, partitions, nx=True)
    recorded = await redis.get(DISPATCH_META_PARTITIONS)
    if recorded is not None and int(recorded) != partitions:
        raise ValueError(
            f"this Redis holds dispatch data for {int(recorded)} partitions, not {partitions}"
        )
