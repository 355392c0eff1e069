"""Stitching through the public API on one Redis: two devices of one person become one
profile (lookups by either id and by the value, audiences count one), chains of three,
idempotent replay, guardrail refusals, import."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest

from crowd.client import CrowdClient, make_event
from crowd.profile.v1 import event_pb2, profile_service_pb2
from crowd.values import to_value_map
from tests.identity.defs import EVERYONE, identity_definitions
from tests.profile_api.helpers import ADMIN_KEY, bearer
from tests.profile_api.servers import Servers

CUSTOMER = "cust-4711-abc"
EMAIL = "ann.person@example.com"


@pytest.fixture
async def crowd(client: CrowdClient) -> CrowdClient:
    await client.publish_definitions(identity_definitions())
    return client


def _n(profile: object) -> float:
    return float(profile.attributes["n"].number_value)  # type: ignore[attr-defined]


async def test_phone_and_laptop_become_one_profile(crowd: CrowdClient) -> None:
    phone = await crowd.track_event("phone-1", "page_view", {"customer_id": CUSTOMER})
    assert phone.profile_id == "phone-1"
    assert not phone.stitched_profile_ids
    await crowd.track_event("laptop-1", "page_view")
    assert await crowd.audience_size(EVERYONE) == 2

    login = await crowd.track_event("laptop-1", "page_view", {"customer_id": CUSTOMER})

    assert login.profile_id == "phone-1"  # the older profile survives
    assert list(login.stitched_profile_ids) == ["laptop-1"]
    by_phone = await crowd.get_profile("phone-1")
    by_laptop = await crowd.get_profile("laptop-1")
    by_value = await crowd.get_profile(attribute_id="customer_id", value=CUSTOMER)
    assert by_phone.profile_id == by_laptop.profile_id == by_value.profile_id == "phone-1"
    assert set(by_phone.visitor_ids) == {"phone-1", "laptop-1"}
    assert [r.profile_id for r in by_phone.replaces] == ["laptop-1"]
    assert by_laptop.replaced_by == "phone-1"
    assert _n(by_phone) == 3  # sum of both profiles' counters
    assert await crowd.audience_size(EVERYONE) == 1

    # Later events of either device land on the one profile.
    after = await crowd.track_event("laptop-1", "page_view")
    assert after.profile_id == "phone-1"
    assert _n(await crowd.get_profile("phone-1")) == 4


async def test_replaying_the_same_events_changes_nothing(crowd: CrowdClient) -> None:
    events = [
        make_event("p-a", "page_view", {"customer_id": CUSTOMER}, event_id="e1"),
        make_event("p-b", "page_view", event_id="e2"),
        make_event("p-b", "page_view", {"customer_id": CUSTOMER}, event_id="e3"),
    ]
    for event in events:
        await crowd.track_events([event])
    before = await crowd.get_profile("p-b")
    replayed = await crowd.track_events(events)
    assert all(r.duplicate for r in replayed)
    assert {r.profile_id for r in replayed} == {"p-a"}
    after = await crowd.get_profile("p-b")
    assert after.profile_id == "p-a"
    assert _n(after) == _n(before) == 3
    assert len(after.replaces) == 1
    assert await crowd.audience_size(EVERYONE) == 1


async def test_a_chain_of_three_profiles_is_one_person(crowd: CrowdClient) -> None:
    await crowd.track_event("c-1", "page_view", {"customer_id": CUSTOMER})
    await crowd.track_event("c-2", "page_view", {"email": EMAIL})
    await crowd.track_event("c-3", "page_view")
    joined = await crowd.track_event("c-2", "page_view", {"customer_id": CUSTOMER})
    assert joined.profile_id == "c-1"
    third = await crowd.track_event("c-3", "page_view", {"email": EMAIL})
    assert third.profile_id == "c-1"
    assert list(third.stitched_profile_ids) == ["c-3"]
    for lookup in ("c-1", "c-2", "c-3"):
        assert (await crowd.get_profile(lookup)).profile_id == "c-1"
    by_email = await crowd.get_profile(attribute_id="email", value=EMAIL)
    assert by_email.profile_id == "c-1"
    survivor = await crowd.get_profile("c-1")
    assert {r.profile_id for r in survivor.replaces} == {"c-2", "c-3"}
    assert _n(survivor) == 5
    assert await crowd.audience_size(EVERYONE) == 1


async def test_the_first_holder_keeps_the_index_and_the_older_profile_survives(
    crowd: CrowdClient,
) -> None:
    await crowd.track_event("old-1", "page_view")
    await crowd.track_event("new-1", "page_view", {"email": EMAIL})
    # The older profile learns the value second: it still survives, and the index follows.
    result = await crowd.track_event("old-1", "page_view", {"email": EMAIL})
    assert result.profile_id == "old-1"
    assert list(result.stitched_profile_ids) == ["new-1"]
    assert (await crowd.get_profile(attribute_id="email", value=EMAIL)).profile_id == "old-1"
    assert (await crowd.get_profile("new-1")).profile_id == "old-1"


async def test_a_guardrail_refusal_is_reported_and_nothing_merges(crowd: CrowdClient) -> None:
    loyalty = "loyal-000-111"
    await crowd.track_event("g-1", "page_view", {"loyalty_id": loyalty})
    second = await crowd.track_event("g-2", "page_view", {"loyalty_id": loyalty})
    assert second.profile_id == "g-1"  # two profiles are allowed
    refused = await crowd.track_event("g-3", "page_view", {"loyalty_id": loyalty})

    assert refused.profile_id == "g-3"
    assert not refused.stitched_profile_ids
    assert [(n.attribute_id, n.outcome) for n in refused.identity_notes] == [
        ("loyalty_id", event_pb2.IDENTITY_OUTCOME_PROFILE_LIMIT)
    ]
    assert (await crowd.get_profile("g-3")).profile_id == "g-3"
    # The value stays with its first holder.
    assert (await crowd.get_profile(attribute_id="loyalty_id", value=loyalty)).profile_id == "g-1"
    assert await crowd.audience_size(EVERYONE) == 2


async def test_an_invalid_value_is_noted_and_does_not_stitch(crowd: CrowdClient) -> None:
    await crowd.track_event("i-1", "page_view", {"email": "null"})
    result = await crowd.track_event("i-2", "page_view", {"email": "null"})
    assert result.profile_id == "i-2"
    assert not result.stitched_profile_ids
    assert [n.attribute_id for n in result.identity_notes] == ["email"]
    assert result.identity_notes[0].outcome in (
        event_pb2.IDENTITY_OUTCOME_BLOCKED,
        event_pb2.IDENTITY_OUTCOME_INVALID,
    )


async def test_one_batch_carrying_both_devices_stitches_once(crowd: CrowdClient) -> None:
    results = await crowd.track_events(
        [
            make_event("b-1", "page_view", {"customer_id": CUSTOMER}),
            make_event("b-2", "page_view", {"customer_id": CUSTOMER}),
            make_event("b-2", "page_view"),
        ]
    )
    assert {r.profile_id for r in results} == {"b-1"}
    assert [list(r.stitched_profile_ids) for r in results] == [[], ["b-2"], []]
    survivor = await crowd.get_profile("b-2")
    assert survivor.profile_id == "b-1"
    assert _n(survivor) == 3
    assert await crowd.audience_size(EVERYONE) == 1


async def test_an_import_that_carries_a_known_value_stitches(crowd: CrowdClient) -> None:
    await crowd.track_event("imp-a", "page_view", {"customer_id": CUSTOMER})
    await crowd.track_event("imp-b", "page_view")

    async def chunks() -> AsyncIterator[profile_service_pb2.ImportRecordsRequest]:
        yield profile_service_pb2.ImportRecordsRequest(
            records=[
                profile_service_pb2.ImportRecord(
                    visitor=event_pb2.VisitorLookup(visitor_id="imp-b"),
                    data=to_value_map({"customer_id": CUSTOMER}),
                    record_id="r1",
                )
            ]
        )

    response = await crowd.profiles.ImportRecords(chunks(), metadata=bearer(ADMIN_KEY))
    assert response.imported == 1
    found = await crowd.get_profile("imp-b")
    assert found.profile_id == "imp-a"
    assert _n(found) == 3
    assert await crowd.audience_size(EVERYONE) == 1


async def test_conflicting_secondary_ids_stay_with_the_person_and_still_stitch(
    crowd: CrowdClient,
) -> None:
    # Both devices have a customer id of their own; the email makes them one person.
    await crowd.track_event("sec-1", "page_view", {"customer_id": CUSTOMER, "email": EMAIL})
    await crowd.track_event("sec-2", "page_view", {"customer_id": "cust-9999-xyz"})
    joined = await crowd.track_event("sec-2", "page_view", {"email": EMAIL})
    assert joined.profile_id == "sec-1"
    survivor = await crowd.get_profile("sec-1")
    assert survivor.identities["customer_id"] == CUSTOMER  # the survivor keeps its own
    assert [dict(r.identities) for r in survivor.replaces] == [
        {"customer_id": "cust-9999-xyz", "email": EMAIL}
    ]
    # The other customer id still finds the person, and still stitches a new device.
    assert (
        await crowd.get_profile(attribute_id="customer_id", value="cust-9999-xyz")
    ).profile_id == "sec-1"
    third = await crowd.track_event("sec-3", "page_view", {"customer_id": "cust-9999-xyz"})
    assert third.profile_id == "sec-1"
    assert await crowd.audience_size(EVERYONE) == 1


async def test_two_replicas_stitching_the_same_pair_at_once_make_one_person(
    servers: Servers,
) -> None:
    first, second = await servers.profile(), await servers.profile()
    async with (
        CrowdClient(first.address, api_key=ADMIN_KEY) as one,
        CrowdClient(second.address, api_key=ADMIN_KEY) as two,
    ):
        await one.publish_definitions(identity_definitions())
        await one.track_event("pair-1", "page_view", {"email": EMAIL})
        await one.track_event("pair-2", "page_view")
        # Two events of the second device carry the email at once, each to a replica: both
        # replicas find the value owned by pair-1 and stitch the same pair.
        results = await asyncio.gather(
            *(
                crowd.track_events(
                    [make_event("pair-2", "page_view", {"email": EMAIL}, event_id=event_id)]
                )
                for crowd, event_id in ((one, "login-a"), (two, "login-b"))
            )
        )
    assert {r.profile_id for [r] in results} == {"pair-1"}
    async with CrowdClient(first.address, api_key=ADMIN_KEY) as check:
        survivor = await check.get_profile("pair-2")
        assert survivor.profile_id == "pair-1"
        assert [r.profile_id for r in survivor.replaces] == ["pair-2"]  # merged once
        assert _n(survivor) == 4  # every event applied once
        assert await check.audience_size(EVERYONE) == 1


async def test_deleting_any_id_of_a_stitched_person_deletes_the_person(
    crowd: CrowdClient,
) -> None:
    await crowd.track_event("del-1", "page_view", {"email": EMAIL})
    await crowd.track_event("del-2", "page_view", {"customer_id": CUSTOMER})
    await crowd.track_event("del-2", "page_view", {"email": EMAIL})
    deleted = await crowd.delete_profile("del-2")
    assert set(deleted.visitor_ids) >= {"del-1", "del-2"}
    for lookup in ({"visitor_id": "del-1"}, {"visitor_id": "del-2"}):
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await crowd.get_profile(**lookup)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    for attribute_id, value in (("email", EMAIL), ("customer_id", CUSTOMER)):
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await crowd.get_profile(attribute_id=attribute_id, value=value)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert await crowd.audience_size(EVERYONE) == 0
