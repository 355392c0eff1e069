"""The delivery queues: one Redis stream per partition, read by the ``dispatchers`` group.

A queue entry carries only an idempotency key (field ``k``); the action itself is in its
record. Entries are taken with ``XREADGROUP`` and stay pending until a worker records the
result (``scripts/complete.lua`` acknowledges and deletes them in the same step). A worker
that dies with entries pending loses nothing: after ``claim_idle_ms`` any worker takes them
over with ``XAUTOCLAIM``. A live worker keeps its in-flight entries fresh with ``XCLAIM ...
JUSTID`` (which resets their idle time) so that a slow send is not mistaken for a dead
worker.

Retries wait in a per-partition sorted set scored by due time; ``scripts/promote.lua``
moves due ones back onto the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis

from crowd.dispatch.v1 import action_pb2
from dispatch_service.scripts import ScriptCall, load_script
from dispatch_service.transient import TransientLog, is_transient
from service_common.keys import DispatchKeys, failed_member
from service_common.redis_toolkit import streams
from service_common.redis_toolkit.scripts import run_scripts_settled
from service_common.redis_toolkit.streams import RawEntry

__all__ = [
    "GROUP",
    "Completion",
    "Loaded",
    "QueuedAction",
    "Result",
    "Taken",
    "claim_stale",
    "complete",
    "ensure_groups",
    "load_actions",
    "promote_due",
    "read_new",
    "touch",
]

logger = logging.getLogger(__name__)
_promote_log = TransientLog(logger)
_unread_log = TransientLog(logger)

GROUP = "dispatchers"
_ACCEPTED = str(action_pb2.ACTION_STATE_ACCEPTED).encode()

COMPLETE = load_script("complete")
LOAD = load_script("load")
PROMOTE = load_script("promote")

Result = Literal["delivered", "skipped", "retry", "failed", "drop"]


@dataclass(frozen=True)
class Taken:
    """A queue entry this worker holds (pending under its consumer name)."""

    partition: int
    entry_id: bytes
    key: str


@dataclass(frozen=True)
class QueuedAction:
    """A taken entry with its action, ready to deliver."""

    taken: Taken
    action: action_pb2.Action
    attempts: int
    since_ms: int
    """When the current delivery effort began (accepted, or last requeued from the dead
    letters); the age limit counts from here."""


@dataclass(frozen=True)
class Completion:
    """The result of one delivery attempt, to be recorded.

    ``drop`` only acknowledges the entry (its record is gone or no longer ACCEPTED).
    """

    taken: Taken
    result: Result
    connector_id: str = ""
    http_status: int = 0
    reason: str = ""
    retry_due_ms: int = 0
    attempted: bool = True
    visitor_id: str = ""
    """The action's visitor, for its live trace (empty for a bare ``drop``)."""
    action_id: str = ""


async def ensure_groups(redis: aioredis.Redis, partitions: int) -> None:
    """Create each partition's stream and consumer group if missing (from ``0``: entries
    queued before any worker ever ran must be delivered too)."""
    await streams.create_groups(redis, _queues(partitions), GROUP)


def _taken(raw: RawEntry) -> Taken | None:
    partition, entry_id, fields = raw
    if b"k" not in fields:
        return None
    return Taken(partition, entry_id, fields[b"k"].decode("utf-8"))


def _queues(partitions: int) -> list[str]:
    return [DispatchKeys(p).queue for p in range(partitions)]


async def read_new(
    redis: aioredis.Redis, partitions: int, consumer: str, count: int, block_ms: int
) -> list[Taken]:
    """Take up to ``count`` new entries across all partitions, waiting up to ``block_ms``."""
    raws = await streams.read_new(redis, _queues(partitions), GROUP, consumer, count, block_ms)
    return [t for raw in raws if (t := _taken(raw)) is not None]


async def claim_stale(
    redis: aioredis.Redis, partitions: int, consumer: str, min_idle_ms: int, count: int
) -> list[Taken]:
    """Take over entries pending with any consumer for longer than ``min_idle_ms``."""
    raws = await streams.claim_stale(
        redis, _queues(partitions), GROUP, consumer, min_idle_ms, count
    )
    return [t for raw in raws if (t := _taken(raw)) is not None]


async def touch(redis: aioredis.Redis, consumer: str, taken: Sequence[Taken]) -> None:
    """Reset the idle time of entries this worker is still working on."""
    by_partition: dict[int, list[bytes]] = {}
    for item in taken:
        by_partition.setdefault(item.partition, []).append(item.entry_id)
    queues = [DispatchKeys(p).queue for p in range(max(by_partition, default=-1) + 1)]
    await streams.keep_claimed(redis, queues, GROUP, consumer, by_partition)


@dataclass(frozen=True)
class Loaded:
    """Taken entries with their actions read (see :func:`load_actions`)."""

    ready: list[QueuedAction]
    """Deliverable."""
    stale: list[Taken]
    """To acknowledge only: the record is gone or no longer ACCEPTED."""
    unread: list[Taken]
    """Their record could not be read now (on a cluster: a slot being migrated or failing
    over); they stay pending and are taken over again after ``claim_idle_ms``."""


async def load_actions(redis: aioredis.Redis, taken: Sequence[Taken]) -> Loaded:
    """Read the actions of taken entries.

    An entry is stale when its record is gone or no longer ACCEPTED: a stale duplicate
    (e.g. reclaimed from a worker that finished after all) must not be sent again.
    """
    if not taken:
        return Loaded([], [], [])
    # One script call per partition; the entries keep their order (that of the queues).
    by_partition: dict[int, list[int]] = {}
    for position, item in enumerate(taken):
        by_partition.setdefault(item.partition, []).append(position)
    calls = [
        ScriptCall(LOAD, [DispatchKeys(p).action(taken[i].key) for i in positions], [])
        for p, positions in by_partition.items()
    ]
    replies = await run_scripts_settled(redis, calls)
    records: list[Any] = [None] * len(taken)
    for positions, reply in zip(by_partition.values(), replies, strict=True):
        for n, position in enumerate(positions):
            records[position] = reply if isinstance(reply, Exception) else reply[5 * n : 5 * n + 5]
    loaded = Loaded([], [], [])
    for item, record in zip(taken, records, strict=True):
        if isinstance(record, Exception):
            if not is_transient(record):
                raise record
            loaded.unread.append(item)
            continue
        state, payload, attempts, accepted_at, retried_at = record
        if state != _ACCEPTED or payload is None:
            loaded.stale.append(item)
            continue
        action = action_pb2.Action()
        action.ParseFromString(payload)
        since = max(int(accepted_at or 0), int(retried_at or 0))
        loaded.ready.append(QueuedAction(item, action, int(attempts or 0), since))
    if loaded.unread:
        _unread_log.warning(
            "%d taken actions could not be read (%s); taken over again later",
            len(loaded.unread),
            type(next(r for r in replies if isinstance(r, Exception))).__name__,
        )
    return loaded


async def complete(
    redis: aioredis.Redis, completions: Sequence[Completion], now_ms: int, retention_ms: int
) -> list[Completion]:
    """Record results and acknowledge their entries: one script call per partition.

    Returns the completions that were not recorded (their partition's call failed, e.g. its
    slot was being migrated), for the caller to send again: only those, so that a recorded
    retry is not counted twice. A failure of the whole pipeline raises.
    """
    by_partition: dict[int, list[Completion]] = {}
    for completion in completions:
        by_partition.setdefault(completion.taken.partition, []).append(completion)
    calls: list[ScriptCall] = []
    for partition, items in by_partition.items():
        keys = DispatchKeys(partition)
        script_keys = [keys.queue, keys.retry, keys.failed]
        script_keys.extend(keys.action(c.taken.key) for c in items)
        # All items in one JSON argument (see the script): stream ids are ASCII.
        packed = orjson.dumps(
            [
                [
                    c.taken.entry_id.decode("ascii"),
                    c.taken.key,
                    c.result,
                    c.http_status,
                    c.reason,
                    c.retry_due_ms,
                    failed_member(c.connector_id, c.taken.key),
                    1 if c.attempted else 0,
                ]
                for c in items
            ]
        )
        calls.append(ScriptCall(COMPLETE, script_keys, [now_ms, retention_ms, packed]))
    results = await run_scripts_settled(redis, calls)
    return [
        c
        for items, result in zip(by_partition.values(), results, strict=True)
        if isinstance(result, Exception)
        for c in items
    ]


async def promote_due(redis: aioredis.Redis, partitions: int, now_ms: int, limit: int) -> int:
    """Move due retries of every partition back onto the queues; return how many moved."""
    calls = [
        ScriptCall(PROMOTE, [DispatchKeys(p).retry, DispatchKeys(p).queue], [now_ms, limit])
        for p in range(partitions)
    ]
    results = await run_scripts_settled(redis, calls)
    # A partition whose slot is being migrated (or failing over) is promoted next round; the
    # others are not held back by it.
    errors = [r for r in results if isinstance(r, Exception)]
    if errors and not all(is_transient(e) for e in errors):
        raise next(e for e in errors if not is_transient(e))
    if errors:
        _promote_log.warning(
            "due retries of %d partitions wait for a later round (%s)",
            len(errors),
            type(errors[0]).__name__,
        )
    return sum(int(n) for n in results if not isinstance(n, Exception))
