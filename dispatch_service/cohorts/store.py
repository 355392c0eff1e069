"""``CohortStore``: durable intake of cohort changes, and reads of the cohort state.

Intake (:meth:`CohortStore.write`) is one Lua script call in the cohort's partition: it
merges the stream's changes into the cohort's pending hash (one field per identifier: the
last change wins, and only changes not yet sent wait there, which is exactly what Braze asks
for: "only users who have newly entered the cohort or who have left the cohort since the last
refresh"), records the wanted name, and queues the cohort for a sender unless it is queued
already. The call is atomic, so a stream is stored whole or not at all; a SyncCohort response
is sent only after it returned.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from opentelemetry import trace

from dispatch_service.braze.connector import BrazeConnector
from dispatch_service.cohorts.intake import CohortIntake, CohortSync, can_sync_cohorts
from dispatch_service.cohorts.queue import ensure_groups
from dispatch_service.redis_options import decodes_responses
from dispatch_service.transient import INTAKE_RETRY_S, run_scripts_retrying
from service_common.keys import (
    DISPATCH_META_PARTITIONS,
    CohortKeys,
    cohort_member,
    cohort_partition,
)
from service_common.redis_toolkit.partitions import check_partitions
from service_common.redis_toolkit.scripts import LuaScript, ScriptCall

__all__ = ["CohortDeadLetter", "CohortStore", "SyncReceipt", "redis_text", "text_map"]

# KEYS[1] pending hash, KEYS[2] meta hash, KEYS[3] dirty set, KEYS[4] queue stream.
# ARGV[1] member (connector NUL cohort), ARGV[2] name, ARGV[3] created_at (ISO-8601),
# ARGV[4] traceparent ('' for none), ARGV[5..] field, value pairs.
_WRITE = LuaScript("""
-- HSET takes many pairs per call; unpack stays far below Lua's C-stack limit (8,000).
for i = 5, #ARGV, 2000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 1999, #ARGV)))
end
redis.call('HSET', KEYS[2], 'name', ARGV[2])
redis.call('HSETNX', KEYS[2], 'created_at', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], 'traceparent', ARGV[4]) end
if redis.call('SADD', KEYS[3], ARGV[1]) == 1 then
  redis.call('XADD', KEYS[4], '*', 'c', ARGV[1])
end
return 1
""")


@dataclass(frozen=True)
class SyncReceipt:
    """What a stored SyncCohort stream amounts to."""

    accepted: int
    requests_planned: int


@dataclass(frozen=True)
class CohortDeadLetter:
    """A request Braze refused for good (or changes the sender gave up on)."""

    entry_id: str
    connector_id: str
    cohort_id: str
    kind: str
    """``members`` (a /cohorts/users request) or ``name`` (a /cohorts request)."""
    http_status: int
    reason: str
    failed_at_ms: int
    ids: int
    body: dict[str, Any]
    """The refused request body without credentials (``cohort_changes`` or ``name``)."""


def redis_text(value: object) -> str:
    """A Redis reply item as text (the clients here return bytes)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def text_map(raw: Mapping[Any, Any]) -> dict[str, str]:
    """A hash reply as a str -> str dict."""
    return {redis_text(k): redis_text(v) for k, v in raw.items()}


def current_traceparent() -> str:
    """W3C traceparent of the active span ('' when there is none)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return ""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


class CohortStore:
    """Cohort intake and state in Redis.

    Args:
        redis: A client with ``decode_responses=False``.
        partitions: The dispatch partition count (cohorts share the dispatch partitions).
        connectors: The configured connectors; only those that can sync cohorts are used.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        partitions: int,
        connectors: Mapping[str, BrazeConnector],
    ) -> None:
        if decodes_responses(redis):
            raise ValueError("CohortStore needs a Redis client with decode_responses=False")
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.redis = redis
        self.partitions = partitions
        self.connectors = {c.id: c for c in connectors.values() if can_sync_cohorts(c)}
        self._all_connectors = dict(connectors)

    async def ensure_queues(self) -> None:
        """Check the partition count and create the queues' consumer groups (idempotent)."""
        await check_partitions(self.redis, DISPATCH_META_PARTITIONS, self.partitions, "dispatch")
        await ensure_groups(self.redis, self.partitions)

    def intake(self) -> CohortIntake:
        """A reader for one SyncCohort stream."""
        return CohortIntake(self._all_connectors)

    def keys(self, connector_id: str, cohort_id: str) -> CohortKeys:
        """The key shapes of a cohort's partition."""
        return CohortKeys(cohort_partition(connector_id, cohort_id, self.partitions))

    async def write(self, sync: CohortSync, *, now: float | None = None) -> SyncReceipt:
        """Store a validated stream durably (one atomic script call) and queue the cohort."""
        keys = self.keys(sync.connector_id, sync.cohort_id)
        created_at = datetime.fromtimestamp(time.time() if now is None else now, UTC)
        args: list[str | int | float | bytes] = [
            cohort_member(sync.connector_id, sync.cohort_id),
            sync.name,
            created_at.isoformat(timespec="seconds"),
            current_traceparent(),
        ]
        for name, value in sync.changes.items():
            args.extend((name, value))
        script_keys = [
            keys.pending(sync.connector_id, sync.cohort_id),
            keys.meta(sync.connector_id, sync.cohort_id),
            keys.dirty,
            keys.queue,
        ]
        # Idempotent (the same fields and values again; queued only once), so a failover or
        # a slot migration of the cohort's partition is retried for a while.
        await run_scripts_retrying(
            self.redis, [ScriptCall(_WRITE, script_keys, args)], within_s=INTAKE_RETRY_S
        )
        return SyncReceipt(sync.accepted, sync.requests_planned)

    async def pending(self, connector_id: str, cohort_id: str) -> dict[str, str]:
        """The changes of a cohort not sent yet (field -> wanted value)."""
        key = self.keys(connector_id, cohort_id).pending(connector_id, cohort_id)
        return text_map(await self.redis.hgetall(key))

    async def meta(self, connector_id: str, cohort_id: str) -> dict[str, str]:
        """A cohort's name, exported name, creation time and last intake trace."""
        key = self.keys(connector_id, cohort_id).meta(connector_id, cohort_id)
        return text_map(await self.redis.hgetall(key))

    async def list_failed(self, connector_id: str = "", limit: int = 100) -> list[CohortDeadLetter]:
        """Dead letters of every partition (of one connector if given), newest first."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for partition in range(self.partitions):
                pipe.xrevrange(CohortKeys(partition).failed, count=limit)
            replies = await pipe.execute()
        letters = [
            _dead_letter(entry_id, fields) for reply in replies for entry_id, fields in reply
        ]
        if connector_id:
            letters = [d for d in letters if d.connector_id == connector_id]
        letters.sort(key=lambda d: (d.failed_at_ms, d.entry_id), reverse=True)
        return letters[:limit]


def _dead_letter(entry_id: bytes, fields: Mapping[bytes, bytes]) -> CohortDeadLetter:
    def text(name: str) -> str:
        return fields.get(name.encode(), b"").decode("utf-8")

    body = json.loads(text("b") or "{}")
    return CohortDeadLetter(
        entry_id=entry_id.decode(),
        connector_id=text("c"),
        cohort_id=text("i"),
        kind=text("k"),
        http_status=int(text("s") or 0),
        reason=text("r"),
        failed_at_ms=int(text("t") or 0),
        ids=int(text("n") or 0),
        body=body if isinstance(body, dict) else {},
    )
