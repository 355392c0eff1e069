"""The cohort queues: one Redis stream per dispatch partition, read by ``cohort-senders``.

An entry names a cohort with changes to send (field ``c``, ``connector NUL cohort``); the
changes themselves wait in the cohort's pending hash. Entries stay pending in the consumer
group until the sender has sent or dead-lettered every change it found, then they are
acknowledged and deleted. A worker that dies loses nothing: after ``claim_idle_ms`` another
takes its entries over with ``XAUTOCLAIM``; live workers refresh theirs (``XCLAIM ... JUSTID``).

One sender works on a cohort at a time (a lease with a token and a TTL, renewed while it
works), so a cohort's changes reach Braze in the order they were accepted.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from service_common.keys import CohortKeys, cohort_member
from service_common.redis_toolkit import streams
from service_common.redis_toolkit.scripts import LuaScript
from service_common.redis_toolkit.streams import RawEntry

__all__ = [
    "GROUP",
    "Entry",
    "Lease",
    "acknowledge",
    "claim_stale",
    "ensure_groups",
    "read_new",
    "touch",
]

GROUP = "cohort-senders"

# KEYS[1] lease. ARGV[1] token, ARGV[2] ttl ms. Takes a free lease or extends our own.
_ACQUIRE = LuaScript("""
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
""")

# KEYS[1] lease. ARGV[1] token. Frees the lease only if it is still ours.
_RELEASE = LuaScript("""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
""")


@dataclass(frozen=True)
class Entry:
    """A queue entry this worker holds (pending under its consumer name)."""

    partition: int
    entry_id: bytes
    connector_id: str
    cohort_id: str

    @property
    def member(self) -> str:
        """The cohort as named in the dirty set."""
        return cohort_member(self.connector_id, self.cohort_id)


async def ensure_groups(redis: aioredis.Redis, partitions: int) -> None:
    """Create each partition's stream and consumer group if missing (group at ``0``, so that
    entries written before any worker ran are read too)."""
    await streams.create_groups(redis, _queues(partitions), GROUP)


def _entry(raw: RawEntry) -> Entry | None:
    partition, entry_id, fields = raw
    if b"c" not in fields:
        return None
    connector_id, _, cohort_id = fields[b"c"].decode("utf-8").partition("\x00")
    return Entry(partition, entry_id, connector_id, cohort_id)


def _queues(partitions: int) -> list[str]:
    return [CohortKeys(p).queue for p in range(partitions)]


async def read_new(
    redis: aioredis.Redis, partitions: int, consumer: str, count: int, block_ms: int
) -> list[Entry]:
    """Take up to ``count`` new entries across all partitions, waiting up to ``block_ms``."""
    raws = await streams.read_new(redis, _queues(partitions), GROUP, consumer, count, block_ms)
    return [e for raw in raws if (e := _entry(raw)) is not None]


async def claim_stale(
    redis: aioredis.Redis, partitions: int, consumer: str, min_idle_ms: int, count: int
) -> list[Entry]:
    """Take over entries pending with any consumer for longer than ``min_idle_ms``."""
    raws = await streams.claim_stale(
        redis, _queues(partitions), GROUP, consumer, min_idle_ms, count
    )
    return [e for raw in raws if (e := _entry(raw)) is not None]


def _by_partition(entries: Sequence[Entry]) -> dict[int, list[bytes]]:
    grouped: dict[int, list[bytes]] = {}
    for entry in entries:
        grouped.setdefault(entry.partition, []).append(entry.entry_id)
    return grouped


def _queues_for(grouped: dict[int, list[bytes]]) -> list[str]:
    return _queues(max(grouped, default=-1) + 1)


async def touch(redis: aioredis.Redis, consumer: str, entries: Sequence[Entry]) -> None:
    """Reset the idle time of entries this worker is still working on."""
    grouped = _by_partition(entries)
    await streams.keep_claimed(redis, _queues_for(grouped), GROUP, consumer, grouped)


async def acknowledge(redis: aioredis.Redis, entries: Sequence[Entry]) -> None:
    """Acknowledge and delete finished entries (one round trip)."""
    grouped = _by_partition(entries)
    await streams.ack(redis, _queues_for(grouped), GROUP, grouped)


class Lease:
    """The right to send one cohort's changes; see the module docstring."""

    def __init__(self, redis: aioredis.Redis, entry: Entry, ttl_ms: int) -> None:
        self._redis = redis
        self._key = CohortKeys(entry.partition).lease(entry.connector_id, entry.cohort_id)
        self._ttl_ms = ttl_ms
        self._token = secrets.token_hex(16)
        self.held = False

    async def acquire(self) -> bool:
        """Take the lease if it is free (or extend it if ours); True if we hold it now."""
        self.held = bool(await _ACQUIRE.run(self._redis, [self._key], [self._token, self._ttl_ms]))
        return self.held

    async def renew(self) -> bool:
        """Extend the lease; False if it expired and someone else took it."""
        return await self.acquire()

    async def release(self) -> None:
        """Free the lease if it is still ours."""
        if self.held:
            self.held = False
            await _RELEASE.run(self._redis, [self._key], [self._token])
