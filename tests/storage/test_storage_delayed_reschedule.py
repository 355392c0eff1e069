"""Delayed end-of-visit actions on a real Redis with the real engine (Tealium's delayed
actions): one pending run per action and visitor, moved by a later qualifying visit end,
cancelled when the visitor leaves the audience; the clock is injected (no sleeping)."""

from __future__ import annotations

from typing import Any

import redis.asyncio

from crowd.definitions.loader import parse_definitions_text
from crowd.dispatch.v1 import action_pb2
from profile_service.definitions.compiler import check_and_compile
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import NormalizedEvent
from profile_service.storage import (
    EngineFunctions,
    Layout,
    ProfileReader,
    ProfileStore,
    VisitSweeper,
)
from tests.storage.helpers import outbox_actions, stream

T0 = 1_700_000_000_000
MINUTE = 60_000
HOUR = 60 * MINUTE
VISITOR = "visitor-1"

DEFINITIONS = """
attributes:
  - {id: cid, scope: visitor, type: string,
     enrichments: [{kind: set, when: new_visitor, operands: [{event: event.visitor_id}]}]}
  - {id: points, scope: visitor, type: number,
     enrichments: [{kind: increment, when: any_event, operands: [{event: points}]}]}
audiences:
  - id: gold
    name: Gold
    expression: {condition: {input: {attribute: points}, operator: greater_than_or_equal,
                             value: {constant: 100}}}
actions:
  - id: later
    connector_id: braze
    audience: {audience_id: gold, trigger: in_audience_at_visit_end}
    delay: 24h
    track_user:
      identifier: {external_id: {attribute: cid}}
      attributes: [{name: points, value: {attribute: points}}]
"""


def _defs() -> CompiledDefinitions:
    return check_and_compile(parse_definitions_text(DEFINITIONS), "v1")


def _event(event_id: str, time_ms: int, points: float) -> NormalizedEvent:
    return NormalizedEvent(VISITOR, event_id, "earn", time_ms, {"points": points})


async def _setup(
    client: redis.asyncio.Redis, layout: Layout
) -> tuple[CompiledDefinitions, ProfileStore, VisitSweeper]:
    defs = _defs()
    store = ProfileStore(client, layout, EngineFunctions.real())
    await store.prepare()
    return defs, store, VisitSweeper(client, store, lambda: defs)


async def _pending(client: redis.asyncio.Redis, layout: Layout) -> list[tuple[str, float]]:
    """The visitor's partition's pending delayed runs: (member, due ms)."""
    entries: list[Any] = await client.zrange(
        layout.keys_for(VISITOR).delayed, 0, -1, withscores=True
    )
    return [(_text(member), float(due)) for member, due in entries]


def _text(member: object) -> str:
    return member.decode() if isinstance(member, bytes) else str(member)


async def _fired_keys(client: redis.asyncio.Redis, layout: Layout) -> list[str]:
    actions = await outbox_actions(client, layout, VISITOR)
    return [a.idempotency_key for a in actions if a.action_id == "later"]


async def test_a_later_qualifying_visit_moves_the_pending_run_instead_of_adding_one(
    client: redis.asyncio.Redis, layout: Layout, reader: ProfileReader
) -> None:
    defs, store, sweeper = await _setup(client, layout)
    await store.apply_events(defs, [_event("e1", T0, 150.0)], T0)
    assert (await sweeper.sweep_once(T0 + HOUR)).visits_ended == 1
    assert [due for _, due in await _pending(client, layout)] == [T0 + HOUR + 24 * HOUR]

    # Twelve hours later another visit ends in the audience: the one pending run moves.
    await store.apply_events(defs, [_event("e2", T0 + 12 * HOUR, 1.0)], T0 + 12 * HOUR)
    found = await reader.get_profile(VISITOR)
    assert found is not None and found.state.visit is not None
    second_visit = found.state.visit.visit_id
    assert (await sweeper.sweep_once(T0 + 13 * HOUR)).visits_ended == 1
    assert [due for _, due in await _pending(client, layout)] == [T0 + 37 * HOUR]

    at_first_due = await sweeper.sweep_once(T0 + 25 * HOUR)
    assert at_first_due.delayed_fired == 0
    assert await _fired_keys(client, layout) == []

    at_new_due = await sweeper.sweep_once(T0 + 37 * HOUR)
    assert at_new_due.delayed_fired == 1
    assert await _fired_keys(client, layout) == [f"{VISITOR}:later:{second_visit}:end"]
    assert await _pending(client, layout) == []


async def test_leaving_the_audience_cancels_the_pending_run(
    client: redis.asyncio.Redis, layout: Layout
) -> None:
    defs, store, sweeper = await _setup(client, layout)
    await store.apply_events(defs, [_event("e1", T0, 150.0)], T0)
    await sweeper.sweep_once(T0 + HOUR)
    assert len(await _pending(client, layout)) == 1

    await store.apply_events(defs, [_event("e2", T0 + 2 * HOUR, -100.0)], T0 + 2 * HOUR)

    assert await _pending(client, layout) == []
    report = await sweeper.sweep_once(T0 + 30 * HOUR)
    assert report.delayed_fired == 0
    assert await _fired_keys(client, layout) == []


async def test_leaving_and_rejoining_within_one_batch_keeps_the_pending_run(
    client: redis.asyncio.Redis, layout: Layout
) -> None:
    defs, store, sweeper = await _setup(client, layout)
    await store.apply_events(defs, [_event("e1", T0, 150.0)], T0)
    await sweeper.sweep_once(T0 + HOUR)
    before = await _pending(client, layout)

    # Out and back in before the commit ends: the trigger still holds, nothing is cancelled.
    await store.apply_events(
        defs,
        [_event("e2", T0 + 2 * HOUR, -100.0), _event("e3", T0 + 2 * HOUR + MINUTE, 100.0)],
        T0 + 2 * HOUR + MINUTE,
    )

    assert await _pending(client, layout) == before
    assert (await sweeper.sweep_once(T0 + 3 * HOUR)).visits_ended == 1  # moves it to +27 h
    assert (await sweeper.sweep_once(T0 + 27 * HOUR)).delayed_fired == 1
    assert len(await _fired_keys(client, layout)) == 1


async def test_a_run_moved_by_a_visit_end_in_the_same_sweep_waits_for_its_new_time(
    client: redis.asyncio.Redis, layout: Layout
) -> None:
    defs, store, sweeper = await _setup(client, layout)
    await store.apply_events(defs, [_event("e1", T0, 150.0)], T0)
    await sweeper.sweep_once(T0 + HOUR)  # pending until T0 + 25 h
    await store.apply_events(defs, [_event("e2", T0 + 24 * HOUR, 1.0)], T0 + 24 * HOUR)

    # This sweep reads the run as due, then ends the second visit, which moves it.
    report = await sweeper.sweep_once(T0 + 25 * HOUR)

    assert report.visits_ended == 1
    assert report.delayed_fired == 0
    assert [due for _, due in await _pending(client, layout)] == [T0 + 49 * HOUR]
    assert await _fired_keys(client, layout) == []
    assert (await sweeper.sweep_once(T0 + 49 * HOUR)).delayed_fired == 1


STITCH_DEFINITIONS = DEFINITIONS.replace(
    "attributes:\n",
    "attributes:\n"
    "  - {id: email, scope: visitor, type: visitor_id,\n"
    "     enrichments: [{kind: set, when: any_event, operands: [{event: email}],\n"
    "       rule: {groups: [{conditions: [{input: {event: email}, operator: is_assigned}]}]}}]}\n",
).replace("type: number,\n", "type: number, merge_rule: sum,\n")
PHONE, LAPTOP, EMAIL = "phone-delayed-1", "laptop-delayed-2", "ann.delayed@example.com"


async def test_a_pending_run_of_a_profile_stitched_away_fires_for_the_survivor(
    client: redis.asyncio.Redis, layout: Layout
) -> None:
    defs = check_and_compile(parse_definitions_text(STITCH_DEFINITIONS), "v1")
    store = ProfileStore(client, layout, EngineFunctions.real())
    await store.prepare()
    sweeper = VisitSweeper(client, store, lambda: defs)
    login = NormalizedEvent(PHONE, "p1", "login", T0 - HOUR, {"email": EMAIL})
    await store.apply_events(defs, [login], T0 - HOUR)
    # The laptop reaches Gold anonymously; its visit ends with a run pending for a day.
    earn = NormalizedEvent(LAPTOP, "l1", "earn", T0, {"points": 150.0})
    await store.apply_events(defs, [earn], T0)
    await sweeper.sweep_once(T0 + HOUR)
    pending = layout.keys_for(LAPTOP).delayed
    assert await client.zcard(pending) == 1

    # The laptop logs in: it is stitched into the older phone profile and retired.
    later_login = NormalizedEvent(LAPTOP, "l2", "login", T0 + 2 * HOUR, {"email": EMAIL})
    [result] = await store.apply_events(defs, [later_login], T0 + 2 * HOUR)
    assert result.profile_id == PHONE and result.stitched == (LAPTOP,)

    # When due, the person's run is decided on the survivor and fires, once.
    report = await sweeper.sweep_once(T0 + HOUR + 24 * HOUR)
    assert report.delayed_fired == 1
    assert await client.zcard(pending) == 0
    entries = await stream(client, layout.keys_for(LAPTOP).outbox)
    fired = [action_pb2.Action.FromString(fields["a"]) for _, fields in entries]
    [action] = [a for a in fired if a.action_id == "later"]
    survivor = await ProfileReader(client, layout).get_profile(LAPTOP)
    assert survivor is not None and survivor.profile_id == PHONE
    # Built from the merged profile (its cid per the merge rule), not the retired one.
    assert action.track_user.user.external_id == survivor.state.attributes["cid"]
    assert survivor.state.attributes["points"] == 150.0
