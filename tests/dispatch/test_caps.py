"""Frequency caps: Tealium cooldown groups with priorities, and simple per-action caps."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from crowd.dispatch.v1 import action_pb2
from dispatch_service.queue import ActionStore
from tests.dispatch.conftest import PARTITIONS
from tests.dispatch.helpers import CONNECTOR, cooldown, queued_keys, simple_cap, track_action

ACCEPTED = action_pb2.ACTION_STATE_ACCEPTED
SUPPRESSED = action_pb2.ACTION_STATE_SUPPRESSED
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
HOUR = 3600.0


async def test_cooldown_group_fires_highest_priority_and_records_why_others_did_not(
    store: ActionStore, redis_client: aioredis.Redis
) -> None:
    outcomes = await store.submit(
        [
            track_action("low", action_id="a-low", cap=cooldown("promo", 10)),
            track_action("high", action_id="a-high", cap=cooldown("promo", 30)),
            track_action("mid", action_id="a-mid", cap=cooldown("promo", 20)),
            track_action("uncapped", action_id="a-free"),
        ],
        now=NOW,
    )

    assert [o.state for o in outcomes] == [SUPPRESSED, ACCEPTED, SUPPRESSED, ACCEPTED]
    assert outcomes[0].reason == "cooldown group promo: lower priority than high"
    assert outcomes[2].reason == "cooldown group promo: lower priority than high"
    assert sorted(await queued_keys(redis_client, PARTITIONS)) == ["high", "uncapped"]
    status = await store.get("low")
    assert status is not None
    assert (status.state, status.reason) == (SUPPRESSED, outcomes[0].reason)


async def test_equal_priority_fires_only_the_first(store: ActionStore) -> None:
    outcomes = await store.submit(
        [
            track_action("first", cap=cooldown("promo", 10)),
            track_action("second", cap=cooldown("promo", 10)),
        ],
        now=NOW,
    )

    assert [o.state for o in outcomes] == [ACCEPTED, SUPPRESSED]
    assert outcomes[1].reason == "cooldown group promo: same priority as first, which came first"


async def test_group_waits_its_cooldown_per_visitor(store: ActionStore) -> None:
    await store.submit([track_action("start", cap=cooldown("promo", 10, hours=6))], now=NOW)

    during = await store.submit(
        [
            track_action("during", cap=cooldown("promo", 99, hours=6)),
            track_action("other-visitor", visitor="visitor-2", cap=cooldown("promo", 1)),
            track_action("other-group", cap=cooldown("welcome", 1)),
        ],
        now=NOW + 5 * HOUR,
    )
    after = await store.submit(
        [track_action("after", cap=cooldown("promo", 1, hours=6))], now=NOW + 6 * HOUR + 1
    )

    assert [o.state for o in during] == [SUPPRESSED, ACCEPTED, ACCEPTED]
    assert during[0].reason == "cooldown group promo active until 2023-11-15T04:13:20Z"
    assert after[0].state == ACCEPTED


async def test_replicas_submitting_at_once_fire_one_action_of_a_group(
    store: ActionStore, redis_url: str
) -> None:
    replicas = [aioredis.Redis.from_url(redis_url) for _ in range(4)]
    try:
        stores = [ActionStore(client, PARTITIONS, [CONNECTOR]) for client in replicas]
        results = await asyncio.gather(
            *(
                s.submit([track_action(f"race-{i}", cap=cooldown("promo", 10))], now=NOW)
                for i, s in enumerate(stores)
            )
        )
    finally:
        for client in replicas:
            await client.aclose()

    states = [outcomes[0].state for outcomes in results]
    assert states.count(ACCEPTED) == 1
    assert states.count(SUPPRESSED) == 3


async def test_simple_cap_allows_n_sends_per_sliding_window(store: ActionStore) -> None:
    def capped(key: str) -> action_pb2.Action:
        return track_action(key, action_id="welcome-mail", cap=simple_cap(3, 60))

    states = [(await store.submit([capped(f"s{i}")], now=NOW + i))[0] for i in range(5)]
    # The first send leaves the 60 s window at NOW + 60; the fourth fits in after it.
    later = await store.submit([capped("later")], now=NOW + 60.5)
    full_again = await store.submit([capped("full")], now=NOW + 60.6)
    other_visitor = await store.submit(
        [track_action("v2", visitor="v-2", action_id="welcome-mail", cap=simple_cap(3, 60))],
        now=NOW + 4,
    )

    assert [o.state for o in states] == [ACCEPTED] * 3 + [SUPPRESSED] * 2
    assert states[3].reason == "frequency cap: at most 3 sends of welcome-mail per 1m"
    assert later[0].state == ACCEPTED
    assert full_again[0].state == SUPPRESSED
    assert other_visitor[0].state == ACCEPTED


async def test_simple_cap_counts_sends_within_one_request(store: ActionStore) -> None:
    outcomes = await store.submit(
        [track_action(f"k{i}", action_id="a", cap=simple_cap(2, 3600)) for i in range(4)],
        now=NOW,
    )

    assert [o.state for o in outcomes] == [ACCEPTED, ACCEPTED, SUPPRESSED, SUPPRESSED]


async def test_group_skips_a_candidate_its_simple_cap_suppresses(store: ActionStore) -> None:
    await store.submit([track_action("earlier", action_id="top", cap=simple_cap(1, 3600))], now=NOW)
    top = track_action("top", action_id="top", cap=cooldown("promo", 50))
    top.frequency_cap.max_sends = 1
    top.frequency_cap.window.seconds = 3600

    outcomes = await store.submit(
        [top, track_action("next", action_id="next", cap=cooldown("promo", 10))], now=NOW + 1
    )

    assert [o.state for o in outcomes] == [SUPPRESSED, ACCEPTED]
    assert outcomes[0].reason.startswith("frequency cap: at most 1 sends of top")


async def test_duplicate_of_a_suppressed_action_returns_its_reason(store: ActionStore) -> None:
    await store.submit(
        [
            track_action("win", cap=cooldown("promo", 2)),
            track_action("lose", cap=cooldown("promo", 1)),
        ],
        now=NOW,
    )
    (again,) = await store.submit([track_action("lose", cap=cooldown("promo", 1))], now=NOW + 1)

    assert (again.state, again.duplicate) == (SUPPRESSED, True)
    assert again.reason == "cooldown group promo: lower priority than win"
