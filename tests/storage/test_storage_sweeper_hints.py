"""The sweeper's background loop skips idle partitions (`DueHints`) and still ends every visit
on time: at its expiry for live events, within the idle poll for events dated in the past,
and at once after a definitions change."""

from __future__ import annotations

import redis.asyncio

from profile_service.storage import ProfileStore, VisitSweeper
from tests.storage.helpers import T0, event, make_defs

HOUR_MS = 3_600_000


async def test_idle_partitions_are_not_polled_until_a_new_visit_could_end(
    store: ProfileStore, client: redis.asyncio.Redis
) -> None:
    defs = make_defs(visit_timeout_ms=1000)
    sweeper = VisitSweeper(client, store, lambda: defs, idle_poll_s=60)
    await sweeper.sweep_due(T0)  # the first sweep polls every partition
    round_trips = store.stats.round_trips

    await sweeper.sweep_due(T0 + 1)

    assert store.stats.round_trips == round_trips  # nothing can be due yet: no poll
    # A visit started after the poll ends no earlier than its timeout, when it is swept.
    await store.apply_events(defs, [event("v", "e1", time_ms=T0 + 1)], T0 + 1)
    assert (await sweeper.sweep_due(T0 + 1001)).visits_ended == 1


async def test_a_visit_already_due_when_written_ends_within_the_idle_poll(
    store: ProfileStore, client: redis.asyncio.Redis
) -> None:
    defs = make_defs()  # 30-minute visits
    sweeper = VisitSweeper(client, store, lambda: defs, idle_poll_s=10)
    await sweeper.sweep_due(T0)
    # A visit dated an hour ago (the stand-in engine dates it by the commit's clock): it
    # expired before it was written.
    await store.apply_events(defs, [event("v", "e1", time_ms=T0 - HOUR_MS)], T0 - HOUR_MS)

    assert (await sweeper.sweep_due(T0 + 10_000)).visits_ended == 1


async def test_a_definitions_change_polls_every_partition_again(
    store: ProfileStore, client: redis.asyncio.Redis
) -> None:
    current = [make_defs()]  # 30-minute visits: the first poll's hints reach far
    sweeper = VisitSweeper(client, store, lambda: current[0], idle_poll_s=60)
    await sweeper.sweep_due(T0)
    current[0] = make_defs(version="shorter", visit_timeout_ms=1000)
    await store.apply_events(current[0], [event("v", "e1", time_ms=T0 + 1)], T0 + 1)

    assert (await sweeper.sweep_due(T0 + 1001)).visits_ended == 1


async def test_a_partition_with_due_visits_is_polled_until_none_is_left(
    store: ProfileStore, client: redis.asyncio.Redis
) -> None:
    defs = make_defs(visit_timeout_ms=1000)
    sweeper = VisitSweeper(client, store, lambda: defs, batch_limit=2, idle_poll_s=60)
    await store.apply_events(defs, [event(f"v{n}", "e1") for n in range(20)], T0)

    ended = 0
    for tick in range(20):
        report = await sweeper.sweep_due(T0 + 1000 + tick)
        ended += report.visits_ended

    assert ended == 20
