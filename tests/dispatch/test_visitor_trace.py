"""Suppressions appear in the visitor's live trace when the profile service shares Redis."""

from __future__ import annotations

import redis.asyncio as aioredis

from crowd.dispatch.v1 import action_pb2
from crowd.profile.v1 import trace_pb2
from dispatch_service.queue import ActionStore
from dispatch_service.visitor_trace import VisitorTrace
from profile_service.storage import Layout, TraceLog
from service_common import keys
from tests.dispatch.conftest import PARTITIONS
from tests.dispatch.helpers import CONNECTOR, cooldown, track_action

PROFILE_PARTITIONS = 8


async def _trace_of(redis: aioredis.Redis, visitor_id: str) -> list[trace_pb2.TraceEntry]:
    """The visitor's trace as the profile service's StreamTrace reads it."""
    log = TraceLog(redis, Layout(PROFILE_PARTITIONS))
    return await log.history(await log.visitor_stream(visitor_id), after="0")


async def test_a_suppressed_action_is_noted_in_the_visitors_trace(
    redis_client: aioredis.Redis,
) -> None:
    await redis_client.set(keys.META_PARTITIONS, PROFILE_PARTITIONS)  # a profile service here
    store = ActionStore(redis_client, PARTITIONS, [CONNECTOR], trace=VisitorTrace(redis_client))
    first, second = (
        track_action("first", cap=cooldown("promo", 10)),
        track_action("second", action_id="a-second", cap=cooldown("promo", 5)),
    )
    outcomes = await store.submit([first, second])

    assert outcomes[1].state == action_pb2.ACTION_STATE_SUPPRESSED
    [entry] = await _trace_of(redis_client, second.visitor_id)
    assert entry.kind == trace_pb2.TRACE_ENTRY_KIND_ACTION_SUPPRESSED
    assert entry.details["idempotency_key"].string_value == "second"
    assert entry.details["reason"].string_value == outcomes[1].reason


async def test_nothing_is_written_without_a_profile_service_on_this_redis(
    redis_client: aioredis.Redis,
) -> None:
    store = ActionStore(redis_client, PARTITIONS, [CONNECTOR], trace=VisitorTrace(redis_client))
    action = track_action("lonely", cap=cooldown("promo", 10))
    await store.submit([action, track_action("other", cap=cooldown("promo", 5))])

    assert not [k async for k in redis_client.scan_iter(match="*:trace:*")]
