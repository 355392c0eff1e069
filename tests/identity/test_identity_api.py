"""Stitching through the public gRPC API: results, lookups, audiences and the trace."""

from __future__ import annotations

import asyncio

from crowd.client import CrowdClient, make_event
from crowd.profile.v1 import trace_pb2
from tests.identity.helpers import EMAIL, identity_definitions

PHONE, LAPTOP = "phone-api-1111", "laptop-api-2222"


DOCUMENT = identity_definitions().document


async def _stitched_kinds(crowd: CrowdClient, visitor_id: str) -> list[int]:
    kinds: list[int] = []

    async def read() -> None:
        async for entry in crowd.stream_trace(visitor_id, after="0"):
            kinds.append(entry.kind)
            if entry.kind == trace_pb2.TRACE_ENTRY_KIND_VISITOR_STITCHED:
                return

    await asyncio.wait_for(read(), timeout=20)
    return kinds


async def test_two_devices_one_person_through_the_api(client: CrowdClient) -> None:
    await client.publish_definitions(DOCUMENT)
    await client.track_event(PHONE, "login", {"email": EMAIL})
    await client.track_event(PHONE, "purchase")
    await client.track_event(LAPTOP, "purchase")
    assert await client.audience_size("buyers") == 2  # two profiles, not yet known as one

    [login] = await client.track_events([make_event(LAPTOP, "login", {"email": EMAIL})])
    assert login.profile_id == PHONE
    assert list(login.stitched_profile_ids) == [LAPTOP]

    for lookup in (PHONE, LAPTOP):
        profile = await client.get_profile(lookup)
        assert profile.profile_id == PHONE
        assert [r.profile_id for r in profile.replaces] == [LAPTOP]
    assert (await client.get_profile(LAPTOP)).replaced_by == PHONE
    assert (await client.get_profile(PHONE)).replaced_by == ""
    by_email = await client.get_profile(attribute_id="email", value=EMAIL)
    assert by_email.profile_id == PHONE
    assert set(by_email.visitor_ids) == {PHONE, LAPTOP}
    assert by_email.attributes["orders"].number_value == 2.0

    assert await client.audience_size("buyers") == 1
    assert await client.audience_members("buyers") == [PHONE]
    assert trace_pb2.TRACE_ENTRY_KIND_VISITOR_STITCHED in await _stitched_kinds(client, PHONE)


async def test_an_invalid_visitor_id_value_is_reported_not_set(client: CrowdClient) -> None:
    await client.publish_definitions(DOCUMENT)
    [result] = await client.track_events([make_event("short-id-visitor", "login", {"email": "ab"})])
    [note] = result.identity_notes
    assert note.attribute_id == "email" and note.value == "ab"
    profile = await client.get_profile("short-id-visitor")
    assert "email" not in profile.identities
