"""The storage layer driving the real engine on the seed definitions (shared/seeds/000):
events in batches, the visit ended by two sweepers without any event, and the Braze action
of joining "VIP cart abandoners" reaching the dispatch submit exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio

from crowd.definitions.loader import load_definitions_file
from profile_service.definitions.compiler import check_and_compile
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import NormalizedEvent
from profile_service.storage import (
    EngineFunctions,
    Layout,
    OutboxForwarder,
    ProfileReader,
    ProfileStore,
    VisitSweeper,
)
from tests.storage.helpers import RecordingSubmit

SEED = Path(__file__).resolve().parents[2] / "examples" / "definitions" / "seed_vip.yaml"
ACTION = "braze_vip_cart_abandoner"
T0 = 1_700_000_000_000
MINUTE = 60_000
HOUR = 60 * MINUTE


def seed_defs() -> CompiledDefinitions:
    return check_and_compile(load_definitions_file(SEED), "v1")


def ev(name: str, time_ms: int, **data: object) -> NormalizedEvent:
    return NormalizedEvent("visitor-1", f"{name}-{time_ms}", name, time_ms, dict(data))


async def test_seed_scenario_end_to_end_through_storage(
    redis_url: str, client: redis.asyncio.Redis, layout: Layout, reader: ProfileReader
) -> None:
    defs = seed_defs()
    engine = EngineFunctions.real()
    store = ProfileStore(client, layout, engine)
    await store.prepare()

    # Visit 1: identified, spends 550 -> VIP (one batch, applied in order).
    await store.apply_events(
        defs,
        [
            ev("page_view", T0, customer_id="cust-42"),
            ev("purchase", T0 + MINUTE, order_total=300.0),
            ev("purchase", T0 + 2 * MINUTE, order_total=250.0),
        ],
        T0 + 2 * MINUTE,
    )
    sweeper = VisitSweeper(client, store, lambda: defs)
    assert (await sweeper.sweep_once(T0 + HOUR)).visits_ended == 1

    # Visit 2: a cart, then silence. Two replicas sweep at the same moment.
    await store.apply_events(defs, [ev("cart_add", T0 + 2 * HOUR)], T0 + 2 * HOUR)
    found = await reader.get_profile("visitor-1")
    assert found is not None and found.state.visit is not None
    visit_id = found.state.visit.visit_id
    other_client = redis.asyncio.Redis.from_url(redis_url)
    try:
        other = VisitSweeper(other_client, ProfileStore(other_client, layout, engine), lambda: defs)
        reports = await asyncio.gather(
            sweeper.sweep_once(T0 + 3 * HOUR), other.sweep_once(T0 + 3 * HOUR)
        )
    finally:
        await other_client.aclose()
    assert sum(r.visits_ended for r in reports) == 1

    found = await reader.get_profile("visitor-1")
    assert found is not None
    assert found.state.visit is None
    assert set(found.state.audiences) == {"vip_cart_abandoners"}
    assert await reader.audience_size("vip_cart_abandoners") == 1
    identified = await reader.find_by_identity("customer_id", "cust-42")
    assert identified is not None and identified.profile_id == "visitor-1"

    submit = RecordingSubmit()
    forwarder = OutboxForwarder(client, layout, submit)
    while await forwarder.forward_once():
        pass
    assert submit.idempotency_keys() == [f"visitor-1:{ACTION}:{visit_id}:end"]
    track = submit.accepted[0].track_user
    assert track.user.external_id == "cust-42"
    assert [e.name for e in track.events] == ["vip_cart_abandoner"]
