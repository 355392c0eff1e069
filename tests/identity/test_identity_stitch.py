"""Stitching in storage on a real Redis: one person becomes one profile, once, whatever
the order, the repetitions and the crashes between steps."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from profile_service.storage import Layout, ProfileReader, ProfileStore
from profile_service.storage.replies import as_text
from tests.identity.helpers import (
    EMAIL,
    T0,
    audience_members,
    event,
    identity_definitions,
    real_store,
)

DEFS = identity_definitions()
PHONE, LAPTOP = "phone-1111", "laptop-2222"


async def _phone_then_laptop(store: ProfileStore) -> list[object]:
    """The phone logs in and buys; the laptop buys anonymously, then logs in."""
    await store.apply_events(DEFS, [event(PHONE, "p1", "login", T0, email=EMAIL)], T0)
    await store.apply_events(DEFS, [event(PHONE, "p2", "purchase", T0 + 1)], T0 + 1)
    await store.apply_events(DEFS, [event(LAPTOP, "l1", "purchase", T0 + 2)], T0 + 2)
    return list(
        await store.apply_events(DEFS, [event(LAPTOP, "l2", "login", T0 + 3, email=EMAIL)], T0 + 3)
    )


async def test_second_device_login_stitches_into_the_first_profile(
    store: ProfileStore,
    reader: ProfileReader,
    redis_client: redis.asyncio.Redis,
    layout: Layout,
) -> None:
    [login] = await _phone_then_laptop(store)
    assert login.profile_id == PHONE  # type: ignore[attr-defined]  # the older profile survives
    assert login.stitched == (LAPTOP,)  # type: ignore[attr-defined]

    for lookup in (PHONE, LAPTOP):
        found = await reader.get_profile(lookup)
        assert found is not None and found.profile_id == PHONE
    by_email = await reader.find_by_identity("email", EMAIL)
    assert by_email is not None and by_email.profile_id == PHONE
    state = by_email.state
    assert state.attributes["orders"] == 2.0  # merge rule sum: one purchase on each device
    assert set(state.visitor_ids) == {PHONE, LAPTOP}
    assert [r["profile_id"] for r in state.replaces] == [LAPTOP]
    # The person is one member of the audience; the laptop's own profile is gone.
    assert await audience_members(redis_client, layout, "buyers") == {PHONE}
    assert not await redis_client.exists(layout.keys_for(LAPTOP).profile(LAPTOP))
    assert await redis_client.zcard(layout.keys_for(LAPTOP).stitches) == 0

    # Later events on either device land on the one profile.
    [later] = await store.apply_events(DEFS, [event(LAPTOP, "l3", "purchase", T0 + 4)], T0 + 4)
    assert later.profile_id == PHONE
    again = await reader.get_profile(PHONE)
    assert again is not None and again.state.attributes["orders"] == 3.0


async def test_replaying_the_same_events_changes_nothing(
    store: ProfileStore, reader: ProfileReader
) -> None:
    await _phone_then_laptop(store)
    before = await reader.get_profile(PHONE)
    # Every event again, by the same ids, through either device.
    replay = [
        event(PHONE, "p1", "login", T0, email=EMAIL),
        event(PHONE, "p2", "purchase", T0 + 1),
        event(LAPTOP, "l1", "purchase", T0 + 2),
        event(LAPTOP, "l2", "login", T0 + 3, email=EMAIL),
    ]
    results = await store.apply_events(DEFS, replay, T0 + 10)
    assert all(r.duplicate for r in results)
    after = await reader.get_profile(PHONE)
    assert before is not None and after is not None
    assert after.state.attributes == before.state.attributes
    assert store.stats.stitches == 1


async def test_a_chain_of_three_devices_becomes_one_profile(
    store: ProfileStore, reader: ProfileReader
) -> None:
    a, b, c = "device-aaaa", "device-bbbb", "device-cccc"
    await store.apply_events(DEFS, [event(a, "a1", "purchase", T0, email=EMAIL)], T0)
    await store.apply_events(
        DEFS, [event(b, "b1", "purchase", T0 + 1, customer_id="cust-777777")], T0 + 1
    )
    # c carries both values: it joins a by the email and b by the customer id.
    await store.apply_events(
        DEFS,
        [event(c, "c1", "purchase", T0 + 2, email=EMAIL, customer_id="cust-777777")],
        T0 + 2,
    )
    profiles = {(await reader.get_profile(v)).profile_id for v in (a, b, c)}  # type: ignore[union-attr]
    assert profiles == {a}
    found = await reader.get_profile(a)
    assert found is not None
    assert found.state.attributes["orders"] == 3.0
    assert {r["profile_id"] for r in found.state.replaces} == {b, c}
    by_customer = await reader.find_by_identity("customer_id", "cust-777777")
    assert by_customer is not None and by_customer.profile_id == a


async def test_a_guardrail_refuses_and_the_value_stays_with_its_first_holder(
    store: ProfileStore, reader: ProfileReader
) -> None:
    defs = identity_definitions(max_profiles=2)
    for n, device in enumerate(("first-device", "second-device", "third-device")):
        results = await store.apply_events(
            defs, [event(device, f"e{n}", "login", T0 + n, email=EMAIL)], T0 + n
        )
    [third] = results
    assert third.profile_id == "third-device" and third.stitched == ()
    assert third.outcome is not None
    [note] = third.outcome.identity_notes
    assert "at most 2 allowed" in note.message
    owner = await reader.find_by_identity("email", EMAIL)
    assert owner is not None and owner.profile_id == "first-device"
    assert store.stats.stitches == 1 and store.stats.stitches_refused == 1


class Crash(Exception):
    """Raised by the fault hook: the process dies between two steps of a stitch."""


async def _crash_mid_stitch(redis_client: redis.asyncio.Redis, layout: Layout, step: str) -> None:
    """The laptop's login stitches in a replica that dies before ``step``."""
    crashing = await real_store(redis_client, layout)

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    crashing.stitch_fault = crash
    with pytest.raises(Crash):
        await _phone_then_laptop(crashing)
    assert await redis_client.zcard(layout.keys_for(LAPTOP).stitches) == 1


async def _assert_one_person(
    redis_client: redis.asyncio.Redis, layout: Layout, reader: ProfileReader, orders: float
) -> None:
    found = await reader.get_profile(LAPTOP)
    assert found is not None and found.profile_id == PHONE
    assert found.state.attributes["orders"] == orders
    assert [r["profile_id"] for r in found.state.replaces] == [LAPTOP]
    assert not await redis_client.exists(layout.keys_for(LAPTOP).profile(LAPTOP))
    assert await redis_client.zcard(layout.keys_for(LAPTOP).stitches) == 0


@pytest.mark.parametrize("step", ["merge", "repoint", "retire"])
async def test_a_stitch_interrupted_before_any_step_is_completed_exactly_once(
    redis_client: redis.asyncio.Redis, layout: Layout, reader: ProfileReader, step: str
) -> None:
    await _crash_mid_stitch(redis_client, layout, step)

    # No event comes: another replica's sweeper completes it; a second pass finds it done.
    other = await real_store(redis_client, layout)
    pending = layout.keys_for(LAPTOP).stitches
    partition = layout.keys_for(LAPTOP).partition
    stalled = [(partition, as_text(m)) for m in await redis_client.zrange(pending, 0, -1)]
    assert await other.recover_stitches(DEFS, stalled, T0 + 60_000) == 1
    assert await other.recover_stitches(DEFS, stalled, T0 + 60_001) == 1  # idempotent
    await _assert_one_person(redis_client, layout, reader, orders=2.0)
    assert other.stats.stitches == 1  # counted once, by the call that retired the profile


@pytest.mark.parametrize("step", ["merge", "repoint", "retire"])
async def test_the_next_event_of_an_interrupted_stitch_finishes_it_before_it_is_answered(
    redis_client: redis.asyncio.Redis, layout: Layout, reader: ProfileReader, step: str
) -> None:
    await _crash_mid_stitch(redis_client, layout, step)

    # The client retries the login (a duplicate now) through another replica, and the laptop
    # buys again: both land on the survivor, which holds the whole person when they return.
    other = await real_store(redis_client, layout)
    retry, later = await other.apply_events(
        DEFS,
        [
            event(LAPTOP, "l2", "login", T0 + 3, email=EMAIL),
            event(LAPTOP, "l9", "purchase", T0 + 5),
        ],
        T0 + 5,
    )
    assert retry.duplicate and retry.profile_id == PHONE
    assert not later.duplicate and later.profile_id == PHONE
    await _assert_one_person(redis_client, layout, reader, orders=3.0)
    assert other.stats.stitches == 1


async def test_two_replicas_stitching_at_once_agree_on_one_survivor(
    redis_client: redis.asyncio.Redis, layout: Layout, reader: ProfileReader
) -> None:
    first, second = await real_store(redis_client, layout), await real_store(redis_client, layout)
    await first.apply_events(DEFS, [event(PHONE, "p1", "purchase", T0, email=EMAIL)], T0)
    await first.apply_events(DEFS, [event("tablet-3333", "t1", "purchase", T0 + 1)], T0 + 1)
    await first.apply_events(DEFS, [event(LAPTOP, "l1", "purchase", T0 + 2)], T0 + 2)
    # Both other devices log in with the phone's email at the same time, on two replicas.
    await asyncio.gather(
        first.apply_events(DEFS, [event(LAPTOP, "l2", "login", T0 + 3, email=EMAIL)], T0 + 3),
        second.apply_events(
            DEFS, [event("tablet-3333", "t2", "login", T0 + 3, email=EMAIL)], T0 + 3
        ),
    )
    owners = {(await reader.get_profile(v)).profile_id for v in (PHONE, LAPTOP, "tablet-3333")}  # type: ignore[union-attr]
    assert owners == {PHONE}
    found = await reader.get_profile(PHONE)
    assert found is not None and found.state.attributes["orders"] == 3.0


async def test_cross_stitches_form_no_cycle(
    redis_client: redis.asyncio.Redis, layout: Layout, reader: ProfileReader
) -> None:
    # a holds an email, b a customer id; at once a gets b's customer id and b a's email.
    a, b = "cross-aaaa", "cross-bbbb"
    first, second = await real_store(redis_client, layout), await real_store(redis_client, layout)
    await first.apply_events(DEFS, [event(a, "a1", "purchase", T0, email=EMAIL)], T0)
    await first.apply_events(
        DEFS, [event(b, "b1", "purchase", T0 + 1, customer_id="cust-888888")], T0 + 1
    )
    await asyncio.gather(
        first.apply_events(
            DEFS, [event(a, "a2", "login", T0 + 2, customer_id="cust-888888")], T0 + 2
        ),
        second.apply_events(DEFS, [event(b, "b2", "login", T0 + 2, email=EMAIL)], T0 + 2),
    )
    owners = {(await reader.get_profile(v)).profile_id for v in (a, b)}  # type: ignore[union-attr]
    assert owners == {a}
    found = await reader.get_profile(a)
    assert found is not None and found.state.attributes["orders"] == 2.0
