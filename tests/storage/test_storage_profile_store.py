"""ProfileStore.apply_events on a real Redis: round trips, atomicity across instances, dedup,
order, and everything the commit writes beside the profile."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis
import redis.asyncio

from crowd.dispatch.v1 import action_pb2
from profile_service.engine.state import NormalizedEvent, Outcome, ProfileState
from profile_service.storage import (
    EngineFunctions,
    Layout,
    ProfileReader,
    ProfileStore,
    TraceLog,
)
from profile_service.storage.state_codec import decode_state, encode_state
from service_common import keys
from tests.storage.helpers import (
    STAND_IN_ENGINE,
    T0,
    counting_client,
    end_visit,
    evaluate_delayed,
    event,
    make_defs,
    process_event,
    stream,
)


async def _count(reader: ProfileReader, visitor_id: str) -> float:
    found = await reader.get_profile(visitor_id)
    assert found is not None
    return float(found.state.attributes["count"])


@pytest.mark.parametrize("protocol", [2, 3])
async def test_a_batch_of_500_events_over_100_visitors_costs_at_most_3_round_trips(
    redis_url: str, layout: Layout, protocol: int
) -> None:
    client, connection = counting_client(f"{redis_url}?protocol={protocol}")
    try:
        store = ProfileStore(client, layout, STAND_IN_ENGINE)
        await store.prepare()
        await client.ping()
        defs = make_defs()
        events = [event(f"visitor-{i % 100}", f"e{i}", time_ms=T0 + i) for i in range(500)]
        connection.sends = 0
        results = await store.apply_events(defs, events, T0 + 1000)

        assert connection.sends <= 3
        assert store.stats.round_trips <= 3
        assert len(results) == 500
        assert [r.index for r in results] == list(range(500))
        assert all(not r.duplicate and r.outcome is not None for r in results)
        reader = ProfileReader(client, layout)
        for i in (0, 42, 99):
            assert await _count(reader, f"visitor-{i}") == 5
    finally:
        await client.aclose()


async def test_two_instances_applying_500_increments_each_to_one_visitor_end_at_1000(
    redis_url: str, layout: Layout
) -> None:
    clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(2)]
    try:
        stores = [ProfileStore(c, layout, STAND_IN_ENGINE) for c in clients]
        for s in stores:
            await s.prepare()
        defs = make_defs()

        async def increments(n: int, store: ProfileStore) -> None:
            # Many single-event batches in flight at once on each instance.
            await asyncio.gather(
                *(store.apply_events(defs, [event("hot", f"i{n}-{k}")], T0 + k) for k in range(500))
            )

        await asyncio.gather(*(increments(n, s) for n, s in enumerate(stores)))

        assert await _count(ProfileReader(clients[0], layout), "hot") == 1000
    finally:
        for c in clients:
            await c.aclose()


async def test_a_profile_changed_between_read_and_write_is_reread_and_recomputed(
    redis_url: str, client: redis.asyncio.Redis, layout: Layout
) -> None:
    """Another replica writes the profile while this one computes: the compare-and-set
    refuses the stale write and the event is applied on top of the other replica's state."""
    defs = make_defs()
    plain = ProfileStore(client, layout, STAND_IN_ENGINE)
    await plain.prepare()
    await plain.apply_events(defs, [event("v", "first")], T0)

    other_replica = redis.Redis.from_url(redis_url)  # a separate connection, like a replica
    calls = 0

    def interfering_process_event(
        defs_: object,
        state: ProfileState | None,
        ev: NormalizedEvent,
        now_ms: int,
        *,
        trace: bool = True,
    ) -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            pkeys = layout.keys_for("v")
            stored = other_replica.hget(pkeys.profile("v"), "s")
            assert isinstance(stored, bytes)
            theirs = decode_state(stored)
            theirs.attributes["count"] = 10
            other_replica.hset(pkeys.profile("v"), mapping={"s": encode_state(theirs), "v": "x"})
        return process_event(defs, state, ev, now_ms, trace=trace)

    store = ProfileStore(
        client,
        layout,
        EngineFunctions(interfering_process_event, end_visit, evaluate_delayed),
    )
    try:
        results = await store.apply_events(defs, [event("v", "second")], T0 + 1)
    finally:
        other_replica.close()

    assert calls == 2
    assert store.stats.conflicts == 1
    assert results[0].outcome is not None
    assert results[0].outcome.changed_attributes["count"] == 11
    assert await _count(ProfileReader(client, layout), "v") == 11


async def test_duplicate_event_ids_are_ignored_within_the_window(
    store: ProfileStore, reader: ProfileReader
) -> None:
    defs = make_defs()
    await store.apply_events(defs, [event("v", "e1"), event("v", "e2")], T0)

    results = await store.apply_events(
        defs, [event("v", "e2"), event("v", "e3"), event("v", "e3")], T0 + 1000
    )

    assert [r.duplicate for r in results] == [True, False, True]
    assert results[0].outcome is None
    assert await _count(reader, "v") == 3


async def test_an_event_id_is_accepted_again_after_the_dedup_window(
    store: ProfileStore, reader: ProfileReader
) -> None:
    defs = make_defs()
    window = defs.limits.event_dedup_window_ms
    await store.apply_events(defs, [event("v", "e1")], T0)

    inside = await store.apply_events(defs, [event("v", "e1")], T0 + window - 1)
    after = await store.apply_events(defs, [event("v", "e1")], T0 + window + 1)

    assert inside[0].duplicate
    assert not after[0].duplicate
    assert await _count(reader, "v") == 2


async def test_events_of_one_visitor_apply_in_batch_order(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout
) -> None:
    defs = make_defs()
    events = [event(f"v{i % 3}", f"e{i}", amount=i) for i in range(30)]

    results = await store.apply_events(defs, events, T0)

    # Running totals prove the order: the k-th event of v0 sees the sum of the ones before.
    totals: dict[str, int] = {}
    for ev, result in zip(events, results, strict=True):
        totals[ev.visitor_id] = totals.get(ev.visitor_id, 0) + ev.data["amount"]
        assert result.outcome is not None
        assert result.outcome.changed_attributes["count"] == totals[ev.visitor_id]
    log = TraceLog(client, layout)
    history = await log.history(await log.visitor_stream("v0"))
    assert [e.event_id for e in history] == [f"e{i}" for i in range(0, 30, 3)]


async def test_the_commit_writes_audiences_outbox_visit_expiry_and_retention(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout
) -> None:
    defs = make_defs(visit_timeout_ms=60_000)
    events = [event("v", f"e{i}", name="fire" if i == 0 else "view") for i in range(3)]

    await store.apply_events(defs, events, T0)

    pkeys = layout.keys_for("v")
    assert await client.sismember(pkeys.audience("big"), "v")
    assert await client.zscore(pkeys.visits_due, "v") == T0 + 60_000
    ttl = await client.pttl(pkeys.profile("v"))
    assert defs.limits.visitor_retention_ms - 60_000 < ttl <= defs.limits.visitor_retention_ms
    entries = await stream(client, pkeys.outbox)
    fired = [action_pb2.Action.FromString(fields["a"]) for _, fields in entries]
    assert [a.idempotency_key for a in fired] == ["v:feed:e0", "v:joined_big:e2"]
    assert [fields["k"] for _, fields in entries] == [b"v:feed:e0", b"v:joined_big:e2"]


async def test_leaving_an_audience_removes_the_membership(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout
) -> None:
    defs = make_defs()
    await store.apply_events(defs, [event("v", f"e{i}") for i in range(3)], T0)
    assert await client.sismember(layout.keys_for("v").audience("big"), "v")

    await store.apply_events(defs, [event("v", "down", amount=-5)], T0 + 1)

    assert not await client.sismember(layout.keys_for("v").audience("big"), "v")


async def test_events_by_an_aliased_visitor_id_apply_to_the_surviving_profile(
    redis_url: str, layout: Layout
) -> None:
    client, connection = counting_client(redis_url)
    try:
        store = ProfileStore(client, layout, STAND_IN_ENGINE)
        await store.prepare()
        defs = make_defs()
        await store.apply_events(defs, [event("survivor", "s1")], T0)
        await client.set(layout.keys_for("anon").alias("anon"), "survivor")
        connection.sends = 0

        results = await store.apply_events(
            defs, [event("anon", "a1"), event("survivor", "s2"), event("anon", "a2")], T0 + 1
        )

        assert connection.sends <= 3  # read, read survivors, write
        assert [r.profile_id for r in results] == ["survivor"] * 3
        assert [r.outcome.changed_attributes["count"] for r in results if r.outcome] == [2, 3, 4]
        assert await client.exists(layout.keys_for("anon").profile("anon")) == 0
        assert await _count(ProfileReader(client, layout), "anon") == 4
    finally:
        await client.aclose()


async def test_a_stale_alias_whose_survivor_is_gone_is_ignored(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout, reader: ProfileReader
) -> None:
    await client.set(layout.keys_for("anon").alias("anon"), "gone")

    results = await store.apply_events(make_defs(), [event("anon", "a1")], T0)

    assert results[0].profile_id == "anon"
    assert await _count(reader, "anon") == 1


async def test_events_with_a_live_trace_id_are_also_written_to_that_trace_stream(
    store: ProfileStore, client: redis.asyncio.Redis
) -> None:
    await store.apply_events(
        make_defs(), [event("v", "e1", trace_id="debug-1"), event("v", "e2")], T0
    )

    entries = await stream(client, keys.trace_by_id("debug-1"))
    assert [json.loads(fields["e"])["ev"] for _, fields in entries] == ["e1"]
    assert 0 < await client.pttl(keys.trace_by_id("debug-1")) <= 12 * 3600 * 1000


async def test_an_identity_value_finds_its_profile_until_it_changes(
    store: ProfileStore, reader: ProfileReader
) -> None:
    defs = make_defs()
    await store.apply_events(defs, [event("v", "e1", email="a@example.com")], T0)

    found = await reader.find_by_identity("email", "a@example.com")
    assert found is not None and found.profile_id == "v"

    await store.apply_events(defs, [event("v", "e2", email="b@example.com")], T0 + 1)
    assert await reader.find_by_identity("email", "a@example.com") is None
    found = await reader.find_by_identity("email", "b@example.com")
    assert found is not None and found.profile_id == "v"


async def test_a_store_recovers_when_redis_forgot_its_scripts(
    store: ProfileStore, client: redis.asyncio.Redis, reader: ProfileReader
) -> None:
    defs = make_defs()
    await store.apply_events(defs, [event("v", "e1")], T0)
    await client.script_flush()

    await store.apply_events(defs, [event("v", "e2")], T0 + 1)

    assert await _count(reader, "v") == 2
