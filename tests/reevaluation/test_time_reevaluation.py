"""Time-based re-evaluation on a real Redis with the real engine and an injected clock.

A visitor who purchased joins "purchased in the last 7 days"; with no further event, the
worker takes them out when 7 days have passed (the clock is injected: nobody waits a week)
and LEFT fires exactly once, also with two workers and repeated passes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import redis.asyncio

from crowd.definitions.loader import definitions_from_dict
from profile_service.definitions.compiler import compile_definitions
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import NormalizedEvent
from profile_service.engine.time_dependence import next_flip_ms
from profile_service.storage import EngineFunctions, Layout, ProfileReader, ProfileStore
from profile_service.storage.reevaluation_worker import ReevaluationWorker
from tests.backfill.helpers import outbox_actions

PARTITIONS = 8
DAY_MS = 86_400_000
T0 = 1_700_000_000_000
AUDIENCE = "recent_buyers"


def _action(action_id: str, trigger: str) -> dict[str, Any]:
    return {
        "id": action_id,
        "name": action_id,
        "audience": {"audience_id": AUDIENCE, "trigger": trigger},
        "connector_id": "braze",
        "track_user": {
            "identifier": {"external_id": {"attribute": "customer_id"}},
            "attributes": [{"name": "recent", "value": {"constant": trigger == "joined"}}],
        },
    }


def recent_buyers() -> CompiledDefinitions:
    document = {
        "attributes": [
            {
                "id": "customer_id",
                "scope": "visitor",
                "type": "visitor_id",
                "enrichments": [
                    {
                        "id": "from_event",
                        "kind": "set",
                        "when": "any_event",
                        "operands": [{"event": "customer_id"}],
                    }
                ],
            },
            {
                "id": "last_purchase",
                "scope": "visitor",
                "type": "date",
                "enrichments": [
                    {
                        "id": "on_purchase",
                        "kind": "capture_date",
                        "when": "any_event",
                        "rule": {
                            "groups": [
                                {
                                    "conditions": [
                                        {
                                            "input": {"event": "event.name"},
                                            "operator": "equals",
                                            "value": {"constant": "purchase"},
                                        }
                                    ]
                                }
                            ]
                        },
                    }
                ],
            },
        ],
        "audiences": [
            {
                "id": AUDIENCE,
                "name": "Purchased in the last 7 days",
                "expression": {
                    "condition": {
                        "input": {"attribute": "last_purchase"},
                        "operator": "occurred_within",
                        "offset": {"amount": 7, "unit": "days"},
                    }
                },
            }
        ],
        "actions": [_action("braze_joined", "joined"), _action("braze_left", "left")],
    }
    return compile_definitions(definitions_from_dict(document), "v1")


def _purchase(visitor_id: str, at_ms: int) -> NormalizedEvent:
    return NormalizedEvent(
        visitor_id,
        f"{visitor_id}-{at_ms}",
        "purchase",
        at_ms,
        {"customer_id": f"cust-{visitor_id}"},
    )


def test_the_next_flip_is_when_the_purchase_turns_seven_days_old() -> None:
    defs = recent_buyers()
    outcome = EngineFunctions.real().process_event(defs, None, _purchase("buyer1", T0), T0)
    assert AUDIENCE in outcome.state.audiences
    assert next_flip_ms(defs, outcome.state, T0) == T0 + 7 * DAY_MS


async def test_a_profile_leaves_when_seven_days_pass_and_left_fires_once(
    redis_client: redis.asyncio.Redis,
) -> None:
    defs = recent_buyers()
    layout = Layout(PARTITIONS)
    store = ProfileStore(redis_client, layout, EngineFunctions.real())
    await store.prepare()
    reader = ProfileReader(redis_client, layout)
    await store.apply_events(defs, [_purchase("buyer1", T0)], T0)
    await store.apply_events(defs, [_purchase("buyer2", T0 + 3 * DAY_MS)], T0 + 3 * DAY_MS)

    workers = [
        ReevaluationWorker(redis_client, store, lambda: defs, clock=lambda: T0) for _ in range(2)
    ]

    async def members() -> set[str]:
        found = set()
        for visitor_id in ("buyer1", "buyer2"):
            profile = await reader.get_profile(visitor_id)
            assert profile is not None
            if AUDIENCE in profile.state.audiences:
                found.add(visitor_id)
        return found

    # Six days on: both still qualify, nothing happens.
    for worker in workers:
        await worker.run_once(T0 + 6 * DAY_MS)
    assert await members() == {"buyer1", "buyer2"}

    # Seven days after buyer1's purchase, without any event: buyer1 leaves.
    week = T0 + 7 * DAY_MS
    for now in (week, week, week + 1, week + 2 * DAY_MS):
        for worker in workers:
            await worker.run_once(now)
    assert await members() == {"buyer2"}

    # buyer2 leaves at their own week.
    for worker in workers:
        await worker.run_once(T0 + 10 * DAY_MS + 1)
    assert await members() == set()

    fired = Counter(key.split(":")[1] for key in await outbox_actions(redis_client, PARTITIONS))
    assert fired == Counter({"braze_joined": 2, "braze_left": 2})
    keys = await outbox_actions(redis_client, PARTITIONS)
    assert sum(1 for k in keys if k.startswith("buyer1:braze_left:")) == 1
    # Nothing is left to re-evaluate.
    for pkeys in layout.all_partitions():
        assert await redis_client.zcard(pkeys.reevaluate_due) == 0


async def test_a_new_purchase_postpones_the_leave(redis_client: redis.asyncio.Redis) -> None:
    defs = recent_buyers()
    layout = Layout(PARTITIONS)
    store = ProfileStore(redis_client, layout, EngineFunctions.real())
    await store.prepare()
    await store.apply_events(defs, [_purchase("buyer", T0)], T0)
    await store.apply_events(defs, [_purchase("buyer", T0 + 5 * DAY_MS)], T0 + 5 * DAY_MS)
    worker = ReevaluationWorker(redis_client, store, lambda: defs)
    report, _ = await worker.run_once(T0 + 8 * DAY_MS)
    assert report.leaves == 0
    report, _ = await worker.run_once(T0 + 12 * DAY_MS)
    assert report.leaves == 1


async def test_the_background_pass_polls_a_partition_at_its_earliest_flip(
    redis_client: redis.asyncio.Redis,
) -> None:
    defs = recent_buyers()
    layout = Layout(PARTITIONS)
    store = ProfileStore(redis_client, layout, EngineFunctions.real())
    await store.prepare()
    await store.apply_events(defs, [_purchase("buyer", T0)], T0)
    worker = ReevaluationWorker(redis_client, store, lambda: defs, idle_poll_s=30 * DAY_MS / 1000)
    report, _ = await worker.run_due(T0 + DAY_MS)  # the first pass polls every partition
    assert report.leaves == 0
    # The buyer's partition is next polled when the leave is due (7 days after the purchase),
    # not at the idle poll 30 days later.
    report, _ = await worker.run_due(T0 + 12 * DAY_MS)
    assert report.leaves == 1
