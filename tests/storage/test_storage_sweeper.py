"""VisitSweeper on a real Redis: visits end by inactivity without any event, exactly once with
several sweepers, and due delayed actions are re-evaluated and moved to the outbox once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio
import redis.asyncio

from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import Outcome, ProfileState
from profile_service.storage import (
    EngineFunctions,
    Layout,
    ProfileReader,
    ProfileStore,
    VisitSweeper,
)
from profile_service.storage.layout import system_clock_ms
from tests.harness import eventually
from tests.storage.helpers import (
    STAND_IN_ENGINE,
    T0,
    end_visit,
    evaluate_delayed,
    event,
    make_defs,
    outbox_actions,
    process_event,
)


@pytest_asyncio.fixture
async def replicas(
    redis_url: str, layout: Layout
) -> AsyncIterator[list[tuple[ProfileStore, redis.asyncio.Redis]]]:
    """Two replicas: each its own Redis client and store."""
    clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(2)]
    stores = [ProfileStore(c, layout, STAND_IN_ENGINE) for c in clients]
    for s in stores:
        await s.prepare()
    try:
        yield list(zip(stores, clients, strict=True))
    finally:
        for c in clients:
            await c.aclose()


def _sweepers(
    replicas: list[tuple[ProfileStore, redis.asyncio.Redis]], defs: CompiledDefinitions
) -> list[VisitSweeper]:
    return [VisitSweeper(c, s, lambda: defs, interval_s=0.05) for s, c in replicas]


async def _outbox_keys(client: redis.asyncio.Redis, layout: Layout, visitor_id: str) -> list[str]:
    """Idempotency keys of the visitor's actions in its partition's outbox, in order."""
    return [a.idempotency_key for a in await outbox_actions(client, layout, visitor_id)]


async def test_a_visit_ends_by_inactivity_exactly_once_with_two_sweepers_running(
    replicas: list[tuple[ProfileStore, redis.asyncio.Redis]],
    reader: ProfileReader,
    client: redis.asyncio.Redis,
    layout: Layout,
) -> None:
    defs = make_defs(visit_timeout_ms=1000)
    ingest, _ = replicas[0]
    await ingest.apply_events(defs, [event("v", "e1")], system_clock_ms())
    sweepers = _sweepers(replicas, defs)
    for sweeper in sweepers:
        sweeper.start()
    try:

        async def visit_ended() -> bool:
            found = await reader.get_profile("v")
            return found is not None and found.state.visit is None

        await eventually(visit_ended, within=10, what="the visit to end")
        # Both sweepers keep running over the same data: still only one ending.
        runs = [s.sweeps for s in sweepers]

        async def both_swept_again() -> bool:
            return all(s.sweeps >= r + 2 for s, r in zip(sweepers, runs, strict=True))

        await eventually(both_swept_again, what="more sweeps")
    finally:
        for sweeper in sweepers:
            await sweeper.stop()

    found = await reader.get_profile("v")
    assert found is not None
    assert found.state.attributes["visits_ended"] == 1
    assert found.state.visit_count == 1
    assert sum(store.stats.visits_ended for store, _ in replicas) == 1
    assert await _outbox_keys(client, layout, "v") == ["v:visit_end:v-1"]
    assert await client.zscore(layout.keys_for("v").visits_due, "v") is None


async def test_concurrent_sweeps_at_the_same_instant_end_each_visit_once(
    replicas: list[tuple[ProfileStore, redis.asyncio.Redis]],
    reader: ProfileReader,
    client: redis.asyncio.Redis,
    layout: Layout,
) -> None:
    defs = make_defs(visit_timeout_ms=1000)
    ingest, _ = replicas[0]
    visitors = [f"v{i}" for i in range(50)]
    await ingest.apply_events(defs, [event(v, "e1") for v in visitors], T0)
    sweepers = _sweepers(replicas, defs)

    reports = await asyncio.gather(*(s.sweep_once(T0 + 1000) for s in sweepers))

    assert sum(r.visits_ended for r in reports) == 50
    for visitor_id in visitors:
        found = await reader.get_profile(visitor_id)
        assert found is not None and found.state.attributes["visits_ended"] == 1
        assert await _outbox_keys(client, layout, visitor_id) == [
            f"{visitor_id}:visit_end:{visitor_id}-1"
        ]


async def test_a_visit_not_yet_due_is_left_open(
    store: ProfileStore, client: redis.asyncio.Redis, reader: ProfileReader
) -> None:
    defs = make_defs(visit_timeout_ms=1000)
    await store.apply_events(defs, [event("v", "e1")], T0)
    sweeper = VisitSweeper(client, store, lambda: defs)

    report = await sweeper.sweep_once(T0 + 999)

    assert report.visits_ended == 0
    found = await reader.get_profile("v")
    assert found is not None and found.state.visit is not None


async def test_an_event_after_expiry_ends_the_visit_itself_and_reschedules_the_next_one(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout, reader: ProfileReader
) -> None:
    defs = make_defs(visit_timeout_ms=1000)
    await store.apply_events(defs, [event("v", "e1")], T0)

    results = await store.apply_events(defs, [event("v", "e2")], T0 + 5000)

    assert results[0].outcome is not None and results[0].outcome.visit_ended
    assert await client.zscore(layout.keys_for("v").visits_due, "v") == T0 + 6000
    sweeper = VisitSweeper(client, store, lambda: defs)
    assert (await sweeper.sweep_once(T0 + 5500)).visits_ended == 0
    found = await reader.get_profile("v")
    assert found is not None and found.state.attributes["visits_ended"] == 1


async def test_a_due_entry_of_a_vanished_profile_is_removed(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout
) -> None:
    defs = make_defs(visit_timeout_ms=1000)
    await store.apply_events(defs, [event("v", "e1")], T0)
    pkeys = layout.keys_for("v")
    await client.delete(pkeys.profile("v"))  # as if retention expired it

    report = await VisitSweeper(client, store, lambda: defs).sweep_once(T0 + 2000)

    assert report.visits_ended == 0
    assert await client.zscore(pkeys.visits_due, "v") is None


async def test_a_due_delayed_action_fires_once_if_the_visitor_still_qualifies(
    replicas: list[tuple[ProfileStore, redis.asyncio.Redis]],
    client: redis.asyncio.Redis,
    layout: Layout,
) -> None:
    defs = make_defs(visit_timeout_ms=1000)
    ingest, _ = replicas[0]
    # Three events put "v" in audience big; delay_ms asks for a delayed end-of-visit action.
    await ingest.apply_events(defs, [event("v", f"e{i}", delay_ms=500) for i in range(3)], T0)
    await ingest.apply_events(defs, [event("w", "e1", delay_ms=500)], T0)  # not in big
    sweepers = _sweepers(replicas, defs)
    await sweepers[0].sweep_once(T0 + 1000)  # ends both visits: delayed entries due at +1500
    assert await client.zcard(layout.keys_for("v").delayed) == 1

    early = await asyncio.gather(*(s.sweep_once(T0 + 1499) for s in sweepers))
    due = await asyncio.gather(*(s.sweep_once(T0 + 1500) for s in sweepers))

    assert sum(r.delayed_fired for r in early) == 0
    assert sum(r.delayed_fired for r in due) == 1
    assert sum(r.delayed_dropped for r in due) == 1  # w no longer qualifies
    assert (await _outbox_keys(client, layout, "v")).count("v:delayed_end:delayed-1") == 1
    assert "w:delayed_end:delayed-1" not in await _outbox_keys(client, layout, "w")
    for visitor_id in ("v", "w"):
        assert await client.zcard(layout.keys_for(visitor_id).delayed) == 0


async def test_an_engine_failure_on_one_profile_does_not_stop_other_visits_ending(
    client: redis.asyncio.Redis, layout: Layout, reader: ProfileReader
) -> None:
    def end_visit_failing_for_bad(
        defs: CompiledDefinitions, state: ProfileState, now_ms: int, *, trace: bool = True
    ) -> Outcome:
        if state.profile_id == "bad":
            raise ValueError("engine bug")
        return end_visit(defs, state, now_ms, trace=trace)

    store = ProfileStore(
        client, layout, EngineFunctions(process_event, end_visit_failing_for_bad, evaluate_delayed)
    )
    await store.prepare()
    defs = make_defs(visit_timeout_ms=1000)
    await store.apply_events(defs, [event("good", "e1"), event("bad", "e1")], T0)

    report = await VisitSweeper(client, store, lambda: defs).sweep_once(T0 + 1000)

    assert report.visits_ended == 1
    good = await reader.get_profile("good")
    assert good is not None and good.state.visit is None
    # The failing one is looked at again a minute later instead of every sweep.
    assert await client.zscore(layout.keys_for("bad").visits_due, "bad") == T0 + 61_000
